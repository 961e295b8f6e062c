/**
 * A primary and a streaming standby on loopback, for the failover chaos run and `npm run
 * cluster:replicated`:
 *
 *   tsx dev/with-db.ts --test --replicated -- tsx tools/chaos.ts --failover
 *
 * Debian's PostgreSQL binaries (`apt-get install postgresql`): a standby is made with
 * `pg_basebackup` and promoted with `pg_ctl promote`, which the embedded package does not ship.
 * Both start empty on every run (their data is a test's, under the state folder), as the
 * `postgres` user when we are root.
 *
 * - Synchronous replication: the primary names the standby in `synchronous_standby_names`, with
 *   `synchronous_commit = on`: a COMMIT returns only once the standby has the commit on disk, so a
 *   commit the app acknowledged survives the primary's death. `setSynchronous(false)` turns it off
 *   (the async run): commits return at once and the standby follows a little behind.
 * - The standby itself names no synchronous standby: promoted, it has none to wait for (a primary
 *   that waited for a standby that does not exist would stop committing).
 * - The app finds the writable server itself: its URL names both hosts, with
 *   `target_session_attrs=primary`. postgres.js tries them in turn and keeps a server that is not in
 *   recovery. (`read-write` does not work with postgres.js 3.4.9 on PostgreSQL 14 and later: those
 *   report `default_transaction_read_only = off` on a standby, which it takes as writable.)
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { getLauncherEnv } from '../server/env.js';
import type { Database, DatabaseRequest } from './database';
import { listenerPort } from './ports';
import {
  DatabaseStartError,
  ensureDatabase,
  explainFailure,
  postgresRunner,
  RELOCATED_ROOT,
  type RunAs,
  reachableDataDir,
} from './postgres';
import { statePath } from './state';

const PASSWORD = 'postgres'; // loopback only, a test cluster: not a secret
const STANDBY_NAME = 'standby';
const PG_CTL_WAIT_SECONDS = 60;

export interface ReplicaNode {
  port: number;
  dataDir: string;
}

/** Where the pair lives: what the chaos run needs to kill the primary and promote the standby. */
export interface ReplicatedState {
  binDir: string;
  primary: ReplicaNode;
  standby: ReplicaNode;
}

export interface ReplicatedCluster extends ReplicatedState {
  /** The app's URL: both hosts, the writable one found by postgres.js. */
  url: string;
  /** The primary's maintenance database, on its own (ensureDatabase, setSynchronous). */
  primaryAdminUrl: string;
  stop(): Promise<void>;
}

/** The newest Debian PostgreSQL with the replication tools, e.g. /usr/lib/postgresql/15/bin. */
export function debianBinaries(): string {
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root)
    ? fs
        .readdirSync(root)
        .filter((v) => /^\d+$/.test(v))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  for (const v of versions) {
    const bin = path.join(root, v, 'bin');
    if (['pg_basebackup', 'pg_ctl', 'initdb', 'postgres'].every((b) => fs.existsSync(path.join(bin, b)))) return bin;
  }
  throw new DatabaseStartError(
    'A replicated Postgres needs pg_basebackup and pg_ctl promote, which the embedded Postgres does not ship, and no ' +
      'Debian PostgreSQL was found in /usr/lib/postgresql.',
    'install it (`apt-get install postgresql`; its own service is not needed), or run without --replicated.',
  );
}

const ids = (user: RunAs | undefined) => (user ? { uid: user.uid, gid: user.gid } : {});

function run(
  cmd: string,
  args: string[],
  user: RunAs | undefined,
  env: Record<string, string> = {},
): { ok: boolean; output: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...ids(user), env: { ...process.env, ...env }, timeout: 120_000 });
  return { ok: r.status === 0, output: `${r.error?.message ?? ''}${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

/** The postmaster's pid, from its lock file. */
function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The processes whose parent is `pid` (a postmaster's backends, WAL sender, checkpointer, ...). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {} // gone meanwhile
  }
  return out;
}

function stopNode(binDir: string, node: ReplicaNode, user: RunAs | undefined, mode: 'fast' | 'immediate'): void {
  if (!fs.existsSync(path.join(node.dataDir, 'postmaster.pid'))) return;
  run(
    path.join(binDir, 'pg_ctl'),
    ['stop', '-D', node.dataDir, '-m', mode, '-w', '-t', String(PG_CTL_WAIT_SECONDS)],
    user,
  );
}

function startNode(binDir: string, node: ReplicaNode, user: RunAs | undefined): void {
  const flags = [
    `-p ${node.port}`,
    '-c listen_addresses=127.0.0.1',
    "-c unix_socket_directories=''",
    '-c max_connections=300',
    '-c wal_level=replica',
    '-c hot_standby=on',
    '-c synchronous_commit=on',
  ].join(' ');
  const log = path.join(node.dataDir, 'server.log');
  const r = run(
    path.join(binDir, 'pg_ctl'),
    ['start', '-D', node.dataDir, '-l', log, '-w', '-t', String(PG_CTL_WAIT_SECONDS), '-o', flags],
    user,
  );
  if (!r.ok) {
    const tail = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n').slice(-8).join('\n') : '';
    throw explainFailure(`Postgres did not start on port ${node.port}`, `${r.output}\n${tail}`.trim(), {
      dataDir: node.dataDir,
      port: node.port,
    });
  }
}

/** Starts an empty primary and its standby, and a database `database` on them. */
export async function startReplicatedPostgres(options: {
  ports: [number, number];
  dir: string;
  database: string;
  log?: (line: string) => void;
}): Promise<ReplicatedCluster> {
  const log = options.log ?? ((line: string) => console.log(line));
  const binDir = debianBinaries();
  const user = postgresRunner();
  const dir = reachableDataDir(path.join(options.dir, 'primary'), user, RELOCATED_ROOT);
  const primary: ReplicaNode = { port: options.ports[0], dataDir: dir };
  const standby: ReplicaNode = { port: options.ports[1], dataDir: path.join(path.dirname(dir), 'standby') };
  // What an earlier run left (a killed primary, a promoted standby): stopped and wiped.
  for (const node of [primary, standby]) {
    stopNode(binDir, node, user, 'immediate');
    fs.rmSync(node.dataDir, { recursive: true, force: true });
  }

  // The primary: initdb with a password, as the embedded cluster (dev/postgres.ts).
  const secrets = fs.mkdtempSync(path.join(os.tmpdir(), 'checkout-initdb-'));
  const pwfile = path.join(secrets, 'pw');
  try {
    fs.writeFileSync(pwfile, `${PASSWORD}\n`, { mode: 0o600 });
    fs.mkdirSync(primary.dataDir, { mode: 0o700 });
    if (user) for (const p of [secrets, pwfile, primary.dataDir]) fs.chownSync(p, user.uid, user.gid);
    const init = run(
      path.join(binDir, 'initdb'),
      [
        `--pgdata=${primary.dataDir}`,
        '--auth=scram-sha-256',
        '--username=postgres',
        `--pwfile=${pwfile}`,
        '--encoding=UTF8',
        '--no-locale',
      ],
      user,
    );
    if (!init.ok)
      throw explainFailure('initdb could not create the primary', init.output, {
        dataDir: primary.dataDir,
        port: primary.port,
      });
  } finally {
    fs.rmSync(secrets, { recursive: true, force: true });
  }
  startNode(binDir, primary, user);

  // The standby: a copy of the primary taken over the replication protocol, then streaming from it.
  // initdb's pg_hba.conf already lets 127.0.0.1 connect for replication, with the password.
  fs.mkdirSync(standby.dataDir, { mode: 0o700 }); // empty: pg_basebackup fills it
  if (user) fs.chownSync(standby.dataDir, user.uid, user.gid);
  const backup = run(
    path.join(binDir, 'pg_basebackup'),
    [
      '-h',
      '127.0.0.1',
      '-p',
      String(primary.port),
      '-U',
      'postgres',
      '-D',
      standby.dataDir,
      '-X',
      'stream',
      '-c',
      'fast',
    ],
    user,
    { PGPASSWORD: PASSWORD },
  );
  if (!backup.ok)
    throw new DatabaseStartError(
      `pg_basebackup could not copy the primary: ${backup.output}`,
      `read the message above; the data of both lives in ${path.dirname(dir)}`,
    );
  fs.writeFileSync(path.join(standby.dataDir, 'standby.signal'), '');
  fs.appendFileSync(
    path.join(standby.dataDir, 'postgresql.auto.conf'),
    `primary_conninfo = 'host=127.0.0.1 port=${primary.port} user=postgres password=${PASSWORD} ` +
      `application_name=${STANDBY_NAME}'\n`,
  );
  if (user)
    for (const f of ['standby.signal', 'postgresql.auto.conf'])
      fs.chownSync(path.join(standby.dataDir, f), user.uid, user.gid);
  startNode(binDir, standby, user);

  const primaryAdminUrl = `postgres://postgres:${PASSWORD}@127.0.0.1:${primary.port}/postgres`;
  await setSynchronous(primaryAdminUrl, true);
  await ensureDatabase(primaryAdminUrl, options.database, true);
  const hosts = `127.0.0.1:${primary.port},127.0.0.1:${standby.port}`;
  const url = `postgres://postgres:${PASSWORD}@${hosts}/${options.database}?target_session_attrs=primary`;
  log(
    `[db] replicated Postgres (${path.basename(path.dirname(binDir))}): primary on 127.0.0.1:${primary.port}, ` +
      `synchronous standby on 127.0.0.1:${standby.port} (data in ${path.dirname(dir)})`,
  );
  return {
    url,
    primaryAdminUrl,
    binDir,
    primary,
    standby,
    stop: async () => {
      stopNode(binDir, standby, user, 'fast');
      stopNode(binDir, primary, user, 'fast');
    },
  };
}

/**
 * Synchronous (a COMMIT waits for the standby to have it on disk) or asynchronous replication, set
 * on the running primary (ALTER SYSTEM, then a reload). Waits until the standby streams in that mode.
 */
export async function setSynchronous(primaryAdminUrl: string, synchronous: boolean): Promise<void> {
  const sql = postgres(primaryAdminUrl, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`alter system set synchronous_standby_names = '${synchronous ? STANDBY_NAME : ''}'`);
    await sql`select pg_reload_conf()`;
    const want = synchronous ? 'sync' : 'async';
    for (let i = 0; ; i++) {
      const rows =
        await sql`select sync_state, state from pg_stat_replication where application_name = ${STANDBY_NAME}`;
      if (rows[0]?.state === 'streaming' && rows[0]?.sync_state === want) return;
      if (i > 300)
        throw new DatabaseStartError(
          `The standby is not streaming ${want}hronously after 30 s (${JSON.stringify(rows)}).`,
          "read the standby's server.log in its data folder.",
        );
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await sql.end();
  }
}

/**
 * The primary dies at once, as its machine would: SIGKILL to the postmaster and every process it
 * started, so nothing gets to flush, say goodbye to a client or send the standby one more record.
 */
export function killPrimary(state: ReplicatedState): void {
  const pid = postmasterPid(state.primary.dataDir);
  if (!pid) throw new Error(`no primary running in ${state.primary.dataDir}`);
  const victims = [pid, ...childrenOf(pid)];
  for (const p of victims) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {} // already gone
  }
}

/**
 * Makes the standby fall behind, as a slow or broken link would: the primary's WAL sender is
 * stopped (SIGSTOP), so the standby receives nothing more until the returned function lets it go on
 * (SIGCONT), or the primary dies with it. With synchronous replication every COMMIT waits
 * meanwhile; with asynchronous, commits go on and are acknowledged by the primary alone.
 */
export function pauseReplication(state: ReplicatedState): () => void {
  const pid = postmasterPid(state.primary.dataDir);
  const sender = pid ? childrenOf(pid).find((c) => readCmdline(c).startsWith('postgres: walsender')) : undefined;
  if (!sender) throw new Error(`the primary in ${state.primary.dataDir} has no WAL sender running`);
  process.kill(sender, 'SIGSTOP');
  return () => {
    try {
      process.kill(sender, 'SIGCONT');
    } catch {} // gone with the primary
  };
}

function readCmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '';
  }
}

/** Promotes the standby (`pg_ctl promote`): it ends recovery and accepts writes. */
export function promoteStandby(state: ReplicatedState): void {
  const r = run(
    path.join(state.binDir, 'pg_ctl'),
    ['promote', '-D', state.standby.dataDir, '-w', '-t', String(PG_CTL_WAIT_SECONDS)],
    postgresRunner(),
  );
  if (!r.ok) throw new Error(`pg_ctl promote failed: ${r.output}`);
}

/**
 * The pair as a database source (dev/database.ts), for `--replicated`: both nodes on free ports (or
 * REPLICATED_PG_PORT and the next one), and REPLICATED_PG_STATE naming the file where the chaos run
 * finds them.
 */
export async function start(request: DatabaseRequest): Promise<Database> {
  const fixed = getLauncherEnv().REPLICATED_PG_PORT;
  const ports: [number, number] = fixed ? [fixed, fixed + 1] : [await listenerPort(), await listenerPort()];
  const pair = await startReplicatedPostgres({
    ports,
    dir: statePath(`replicated-${request.test ? 'test' : 'dev'}`),
    database: request.database,
  });
  const stateFile = path.join(path.dirname(pair.primary.dataDir), 'cluster.json');
  const { binDir, primary, standby, primaryAdminUrl } = pair;
  fs.writeFileSync(stateFile, JSON.stringify({ binDir, primary, standby, primaryAdminUrl }, null, 2));
  return { url: pair.url, env: { REPLICATED_PG_STATE: stateFile }, stop: () => pair.stop() };
}
