/**
 * Postgres as teams run it past one machine, on loopback: etcd holds the leader lease, three Postgres
 * 15 nodes each run under their own Patroni, which decides who leads and promotes a standby when the
 * lease lapses, and HAProxy sends every connection to whichever node Patroni's REST API reports as the
 * leader. The app connects through HAProxy only, and never learns which node it talks to.
 *
 *   npm run cluster:ha                                   # the app's instances on it (tools/cluster.ts)
 *   tsx dev/with-db.ts --test --ha -- tsx tools/chaos.ts --ha   # what `npm run chaos:ha` does
 *
 * Debian's packages (`apt-get install patroni etcd-server haproxy postgresql`), started by hand, no
 * systemd. Everything lives in the clone's state folder (`ha-test` or `ha-dev`) and starts empty on
 * every run; as root, Patroni and Postgres run as the `postgres` user (Postgres refuses root). Every
 * port is a free loopback port chosen at start (dev/ports.ts).
 *
 * Why these settings:
 * - `synchronous_mode: true` with `synchronous_mode_strict: true`. Synchronous mode makes the leader
 *   wait, at each COMMIT, for one standby Patroni names in `synchronous_standby_names`, and Patroni
 *   only promotes that standby: an acknowledged commit is on the node that takes over. Strict, because
 *   without it Patroni drops the synchronous standby when none is healthy and lets the leader commit
 *   alone; if that leader then dies, what it acknowledged meanwhile is gone. Strict refuses (blocks)
 *   commits instead while no standby can confirm them. With three nodes that takes two nodes down.
 *   `--async` (the control run) turns synchronous mode off, to show what that costs.
 * - `ttl: 10`, `loop_wait: 1`, `retry_timeout: 4`: a leader that stops renewing its lease loses it
 *   10 s later, and Patroni requires loop_wait + 2 x retry_timeout <= ttl. Shorter leases promote
 *   sooner and risk promoting over a pause of a few seconds (a long GC, a busy disk).
 * - HAProxy asks each node `OPTIONS /primary` every 500 ms (200 only on the leader holding the lock)
 *   and, once a node fails twice, cuts the sessions it had (`on-marked-down shutdown-sessions`), so
 *   no client keeps talking to a demoted or frozen leader.
 *
 * - etcd's v2 API (Patroni's `etcd:` section), not v3 (`etcd3:`). Debian 12's Patroni 3.0.2 renews
 *   the leader key through v3 from a cached view of the cluster, and when the lease has already lapsed
 *   it writes the key again without checking that nobody took it meanwhile (fixed upstream in 3.0.3,
 *   patroni/patroni#2689). A leader frozen past its lease then wakes, overwrites the key of the node
 *   promoted in its place, and goes on leading; the promoted node is demoted, and a client still
 *   connected to the old leader gets its write acknowledged. The chaos run's freeze event found it
 *   (in about one run in three). Through v2 the renewal is a compare-and-swap on the key's value: it
 *   fails, and the old leader demotes itself. With Patroni 3.0.3 or later, v3 is as safe.
 *
 * Stop order: HAProxy, then every Patroni (each stops its Postgres), then etcd: a Patroni whose etcd
 * has gone waits for it instead of stopping.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import postgres from 'postgres';
import type { Database, DatabaseRequest } from './database';
import { listenerPort } from './ports';
import {
  DatabaseStartError,
  ensureDatabase,
  postgresRunner,
  RELOCATED_ROOT,
  type RunAs,
  reachableDataDir,
} from './postgres';
import { debianBinaries } from './replicated';
import { statePath } from './state';

const PATRONI = '/usr/bin/patroni';
const ETCD = '/usr/bin/etcd';
const HAPROXY = '/usr/sbin/haproxy';
const PASSWORD = 'postgres'; // loopback only, a throwaway cluster: not a secret
const NODES = 3;
// The lease (see the header): a leader that stops renewing it is replaced about this long after.
export const HA_TTL_SECONDS = 10;
// How long a whole start may take: etcd, three initdb/basebackups, a synchronous standby.
const START_TIMEOUT_MS = 120_000;
// How long Patroni gets to stop its Postgres cleanly before it is killed.
const STOP_TIMEOUT_MS = 20_000;

export interface HaNode {
  name: string;
  pgPort: number;
  restPort: number;
  dataDir: string;
  config: string;
}

/** Where the cluster lives: what the chaos run needs to find the leader and break it (HA_STATE). */
export interface HaState {
  dir: string;
  nodes: HaNode[];
  etcdPort: number;
  haproxyPort: number;
  synchronous: boolean;
  /** Who Patroni runs as: the chaos run restarts a killed node's Patroni the same way. */
  runAs?: RunAs;
}

/** A member of the cluster as Patroni's REST API lists it (GET /cluster). */
export interface HaMember {
  name: string;
  role: 'leader' | 'replica' | 'sync_standby' | string;
  state: string;
  lag?: number | string;
}

function patroniConfig(state: HaState, node: HaNode, scope: string): string {
  const q = (s: string) => JSON.stringify(s); // a YAML string is a JSON string
  return `# Generated by dev/patroni.ts for one run; deleted and rewritten on the next.
scope: ${q(scope)}
namespace: /checkout/
name: ${q(node.name)}
log:
  level: INFO
restapi:
  listen: 127.0.0.1:${node.restPort}
  connect_address: 127.0.0.1:${node.restPort}
etcd:
  hosts: 127.0.0.1:${state.etcdPort}
bootstrap:
  dcs:
    ttl: ${HA_TTL_SECONDS}
    loop_wait: 1
    retry_timeout: 4
    maximum_lag_on_failover: 1048576
    synchronous_mode: ${state.synchronous}
    synchronous_mode_strict: ${state.synchronous}
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        max_connections: 300
        wal_level: replica
        hot_standby: 'on'
        wal_log_hints: 'on'
        max_wal_senders: 10
        max_replication_slots: 10
        synchronous_commit: 'on'
  initdb:
    - encoding: UTF8
    - locale: C
    - auth: scram-sha-256
  pg_hba:
    - host replication replicator 127.0.0.1/32 scram-sha-256
    - host all all 127.0.0.1/32 scram-sha-256
postgresql:
  listen: 127.0.0.1:${node.pgPort}
  connect_address: 127.0.0.1:${node.pgPort}
  data_dir: ${q(node.dataDir)}
  bin_dir: ${q(debianBinaries())}
  pgpass: ${q(path.join(state.dir, `${node.name}.pgpass`))}
  authentication:
    superuser:
      username: postgres
      password: ${q(PASSWORD)}
    replication:
      username: replicator
      password: ${q(PASSWORD)}
    rewind:
      username: postgres
      password: ${q(PASSWORD)}
  parameters:
    unix_socket_directories: ${q(state.dir)}
`;
}

function haproxyConfig(state: HaState): string {
  const servers = state.nodes
    .map((n) => `  server ${n.name} 127.0.0.1:${n.pgPort} check port ${n.restPort}`)
    .join('\n');
  return `# Generated by dev/patroni.ts for one run: every connection goes to the node Patroni reports as leader.
global
  maxconn 2000
defaults
  mode tcp
  timeout connect 2s
  timeout client 30m
  timeout server 30m
  timeout check 1s
listen postgres
  bind 127.0.0.1:${state.haproxyPort}
  option httpchk OPTIONS /primary
  http-check expect status 200
  default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions
${servers}
`;
}

/** The processes whose command line names `needle` (this cluster's folder): ours, left or running. */
export function processesNaming(needle: string): { pid: number; cmd: string }[] {
  const found: { pid: number; cmd: string }[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(needle)) found.push({ pid: Number(entry), cmd });
    } catch {} // gone meanwhile
  }
  return found;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {} // already gone
}

async function waitGone(pids: number[], ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (pids.some(alive)) {
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

/** Starts one node's Patroni in its own process group (a Ctrl-C in the terminal must not reach it first). */
export function spawnPatroni(node: HaNode, dir: string, runAs: RunAs | undefined): ChildProcess {
  const log = fs.openSync(path.join(dir, `${node.name}.patroni.log`), 'a');
  const child = spawn(PATRONI, [node.config], {
    stdio: ['ignore', log, log],
    detached: true,
    cwd: dir,
    env: { ...process.env, HOME: dir, LANG: 'C.UTF-8' },
    ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
  });
  fs.closeSync(log);
  child.unref();
  return child;
}

/** GET a node's REST API path; undefined when it does not answer within a second. */
export async function rest<T>(port: number, what: string): Promise<{ status: number; body: T } | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${what}`, { signal: AbortSignal.timeout(1000) });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : {}) as T };
  } catch {
    return undefined;
  }
}

/** The members as the first node that answers sees them. */
export async function members(state: HaState): Promise<HaMember[]> {
  for (const n of state.nodes) {
    const r = await rest<{ members?: HaMember[] }>(n.restPort, '/cluster');
    if (r?.body.members) return r.body.members;
  }
  return [];
}

/** The node that answers `/primary` with 200 (the leader holding the lock), if any. */
export async function leader(state: HaState): Promise<HaNode | undefined> {
  for (const n of state.nodes) if ((await rest(n.restPort, '/primary'))?.status === 200) return n;
  return undefined;
}

/** Stops whatever a run (this one or a killed one) left in `dir`: HAProxy, every Patroni and Postgres, then etcd. */
export async function stopAll(dir: string): Promise<void> {
  const mine = () => processesNaming(dir);
  const haproxy = mine().filter((p) => p.cmd.startsWith(HAPROXY));
  for (const p of haproxy) signal(p.pid, 'SIGTERM');
  const patronis = mine().filter((p) => p.cmd.includes(PATRONI));
  for (const p of patronis) signal(p.pid, 'SIGCONT'); // a frozen one cannot stop
  for (const p of patronis) signal(p.pid, 'SIGTERM');
  if (
    !(await waitGone(
      patronis.map((p) => p.pid),
      STOP_TIMEOUT_MS,
    ))
  ) {
    for (const p of patronis) signal(p.pid, 'SIGKILL');
  }
  // Postgres left by a Patroni that was SIGKILLed (by the chaos run, or above): its postmaster and children.
  const postgres = mine().filter((p) => /\/postgres\b/.test(p.cmd.split(' ')[0] ?? ''));
  for (const p of postgres) signal(p.pid, 'SIGCONT');
  for (const p of postgres) signal(p.pid, 'SIGQUIT'); // immediate shutdown
  if (
    !(await waitGone(
      postgres.map((p) => p.pid),
      10_000,
    ))
  )
    for (const p of postgres) signal(p.pid, 'SIGKILL');
  const rest = mine(); // etcd last, and anything else still naming the folder
  for (const p of rest) signal(p.pid, 'SIGTERM');
  if (
    !(await waitGone(
      rest.map((p) => p.pid),
      10_000,
    ))
  )
    for (const p of rest) signal(p.pid, 'SIGKILL');
  for (const p of [...haproxy]) if (alive(p.pid)) signal(p.pid, 'SIGKILL');
}

async function until<T>(what: string, ms: number, check: () => Promise<T | undefined>, logs: string[]): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      const tails = logs
        .filter((f) => fs.existsSync(f))
        .map((f) => `${path.basename(f)}:\n${fs.readFileSync(f, 'utf8').trim().split('\n').slice(-6).join('\n')}`);
      throw new DatabaseStartError(`${what} within ${ms / 1000} s.\n${tails.join('\n')}`, 'read the logs above.');
    }
    await sleep(250);
  }
}

/** Whether a new connection to `url` reaches a server that accepts writes (not in recovery). */
async function writable(url: string): Promise<boolean> {
  const sql = postgres(url, { max: 1, connect_timeout: 2, onnotice: () => {} });
  try {
    const [row] = await sql`select pg_is_in_recovery() as standby`;
    return row?.standby === false;
  } catch {
    return false;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Starts etcd, three Patroni nodes and HAProxy, empty, and returns once a leader has a synchronous standby. */
export async function startHaCluster(options: {
  dir: string;
  database: string;
  synchronous?: boolean;
  log?: (line: string) => void;
}): Promise<{ url: string; state: HaState; stop(): Promise<void> }> {
  const log = options.log ?? ((line: string) => console.log(line));
  const missing = [PATRONI, ETCD, HAPROXY].filter((p) => !fs.existsSync(p));
  if (missing.length)
    throw new DatabaseStartError(
      `--ha needs Patroni, etcd and HAProxy, and ${missing.join(', ')} is missing.`,
      'install them (`apt-get install patroni etcd-server haproxy postgresql`; their services are not needed).',
    );
  const runAs = postgresRunner();
  const dir = path.dirname(reachableDataDir(path.join(options.dir, 'node0'), runAs, RELOCATED_ROOT));
  await stopAll(dir); // what a killed earlier run left
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (runAs) fs.chownSync(dir, runAs.uid, runAs.gid);
  const synchronous = options.synchronous ?? true;
  const nodes: HaNode[] = [];
  for (let i = 0; i < NODES; i++) {
    const name = `node${i}`;
    nodes.push({
      name,
      pgPort: await listenerPort(),
      restPort: await listenerPort(),
      dataDir: path.join(dir, name),
      config: path.join(dir, `${name}.yml`),
    });
  }
  const state: HaState = {
    dir,
    nodes,
    etcdPort: await listenerPort(),
    haproxyPort: await listenerPort(),
    synchronous,
    runAs,
  };
  const stop = () => stopAll(dir);
  try {
    // etcd: one member, its data in the folder.
    const etcdPeer = await listenerPort();
    const etcdLog = fs.openSync(path.join(dir, 'etcd.log'), 'a');
    spawn(
      ETCD,
      [
        '--name',
        'checkout',
        '--data-dir',
        path.join(dir, 'etcd'),
        '--listen-client-urls',
        `http://127.0.0.1:${state.etcdPort}`,
        '--advertise-client-urls',
        `http://127.0.0.1:${state.etcdPort}`,
        '--listen-peer-urls',
        `http://127.0.0.1:${etcdPeer}`,
        '--initial-advertise-peer-urls',
        `http://127.0.0.1:${etcdPeer}`,
        '--initial-cluster',
        `checkout=http://127.0.0.1:${etcdPeer}`,
        // Patroni talks to etcd's v2 API (its \`etcd:\` section): see "Why these settings".
        '--enable-v2=true',
      ],
      { stdio: ['ignore', etcdLog, etcdLog], detached: true, cwd: dir },
    ).unref();
    fs.closeSync(etcdLog);
    await until(
      `etcd did not answer on 127.0.0.1:${state.etcdPort}`,
      20_000,
      async () => ((await rest(state.etcdPort, '/health'))?.status === 200 ? true : undefined),
      [path.join(dir, 'etcd.log')],
    );

    // Patroni: the first node bootstraps (initdb), the others copy it (pg_basebackup) and stream.
    const scope = `checkout-${createHash('sha256').update(dir).digest('hex').slice(0, 8)}`;
    for (const node of nodes) {
      fs.writeFileSync(node.config, patroniConfig(state, node, scope), { mode: 0o600 });
      if (runAs) fs.chownSync(node.config, runAs.uid, runAs.gid);
      spawnPatroni(node, dir, runAs);
    }
    const logs = nodes.map((n) => path.join(dir, `${n.name}.patroni.log`));
    await until(
      'Patroni did not elect a leader with a streaming synchronous standby',
      START_TIMEOUT_MS,
      async () => {
        const m = await members(state);
        const running = m.filter((x) => x.state === 'running' || x.state === 'streaming');
        const ready = running.length === NODES && m.some((x) => x.role === 'leader');
        const sync = !synchronous || m.some((x) => x.role === 'sync_standby');
        return ready && sync ? true : undefined;
      },
      logs,
    );

    // HAProxy: in front of all three, following the leader.
    const haConf = path.join(dir, 'haproxy.cfg');
    fs.writeFileSync(haConf, haproxyConfig(state));
    const haLog = fs.openSync(path.join(dir, 'haproxy.log'), 'a');
    spawn(HAPROXY, ['-f', haConf, '-db'], { stdio: ['ignore', haLog, haLog], detached: true, cwd: dir }).unref();
    fs.closeSync(haLog);
    const adminUrl = `postgres://postgres:${PASSWORD}@127.0.0.1:${state.haproxyPort}/postgres`;
    // HAProxy counts every server up until its first checks fail (2 x 500 ms): wait until fresh
    // connections land on the leader only, several in a row.
    let onLeader = 0;
    await until(
      `HAProxy did not settle on the leader on 127.0.0.1:${state.haproxyPort}`,
      20_000,
      async () => {
        onLeader = (await writable(adminUrl)) ? onLeader + 1 : 0;
        return onLeader >= 8 ? true : undefined;
      },
      [path.join(dir, 'haproxy.log')],
    );
    await ensureDatabase(adminUrl, options.database, true);
    const m = await members(state);
    log(
      `[db] Patroni cluster (etcd on 127.0.0.1:${state.etcdPort}; ${m
        .map((x) => `${x.name} ${x.role}`)
        .join(', ')}); HAProxy on 127.0.0.1:${state.haproxyPort} follows the leader; ` +
        `${synchronous ? 'synchronous_mode strict' : 'asynchronous (synchronous_mode off)'} (data in ${dir})`,
    );
    return {
      url: `postgres://postgres:${PASSWORD}@127.0.0.1:${state.haproxyPort}/${options.database}`,
      state,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * The Patroni cluster as a database source (dev/database.ts), for `--ha`. HA_ASYNC=1 starts it with
 * synchronous_mode off (the chaos run's control). HA_STATE names the file where the chaos run finds it.
 */
export async function start(request: DatabaseRequest): Promise<Database> {
  const cluster = await startHaCluster({
    dir: statePath(request.test ? 'ha-test' : 'ha-dev'),
    database: request.database,
    synchronous: process.env.HA_ASYNC !== '1',
  });
  const stateFile = path.join(cluster.state.dir, 'ha.json');
  fs.writeFileSync(stateFile, JSON.stringify(cluster.state, null, 2));
  return { url: cluster.url, env: { HA_STATE: stateFile }, stop: cluster.stop };
}

/** The postmaster of a node and every process it started (backends, WAL sender, checkpointer...). */
export function postgresProcesses(node: HaNode): number[] {
  let pid: number | undefined;
  try {
    pid = Number(fs.readFileSync(path.join(node.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return [];
  }
  if (!pid || !alive(pid)) return [];
  const out = [pid];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(entry));
    } catch {}
  }
  return out;
}

/** The Patroni process of a node (by its config file on the command line). */
export function patroniProcess(node: HaNode): number | undefined {
  return processesNaming(node.config).find((p) => p.cmd.includes(PATRONI))?.pid;
}

/** Sends `sig` to a node's Patroni and all its Postgres processes; returns how many it reached. */
export function signalNode(node: HaNode, sig: NodeJS.Signals): number {
  const pids = [patroniProcess(node), ...postgresProcesses(node)].filter((p): p is number => p !== undefined);
  for (const p of pids) signal(p, sig);
  return pids.length;
}

/** Asks Patroni for a planned switchover from the leader to `candidate`; resolves with its answer. */
export async function switchover(from: HaNode, candidate: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://127.0.0.1:${from.restPort}/switchover`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ leader: from.name, candidate }),
    signal: AbortSignal.timeout(30_000),
  });
  return { status: res.status, text: await res.text() };
}
