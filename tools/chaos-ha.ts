/**
 * The faults of `npm run chaos:ha`, played against the Patroni cluster of dev/patroni.ts while the
 * chaos workload runs through HAProxy (tools/chaos.ts --ha), one after the other:
 *
 *   kill        the leader's link to its standbys stalls for 2 s (its WAL senders are stopped), then
 *               the leader dies: SIGKILL to its Patroni and every Postgres process. Patroni promotes a
 *               standby once the lease lapses; the dead node's Patroni is started again and rejoins.
 *   freeze      the leader stops (SIGSTOP to its Patroni and Postgres) past its lease; Patroni promotes
 *               a standby; then the old leader wakes (SIGCONT) while a client is still connected to it
 *               directly and tries one more write, as a client whose connection nobody cut would.
 *               Patroni demotes it and it rejoins as a standby.
 *   switchover  a planned change of leader, asked of Patroni's REST API (POST /switchover).
 *
 * A probe writes one row through HAProxy every 200 ms: how long writes were refused after each event
 * is measured from it, not guessed from Patroni's logs.
 */
import fs from 'node:fs';
import postgres from 'postgres';
import {
  type HaNode,
  type HaState,
  leader,
  members,
  postgresProcesses,
  signalNode,
  spawnPatroni,
  switchover,
} from '../dev/patroni';

export type HaEventKind = 'kill' | 'freeze' | 'switchover';

export interface HaEvent {
  kind: HaEventKind;
  /** When the fault was made (the kill, the SIGSTOP, the switchover request). */
  at: number;
  from: string;
  to?: string;
  /** When a new leader answered /primary. */
  promotedAt?: number;
  /** For `freeze`: whether the woken old leader acknowledged the write of the client still connected to it. */
  zombieWriteAcknowledged?: boolean;
  /** For `freeze`: what that write got instead. */
  zombieWriteOutcome?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// How long the leader's standbys are starved before it dies (as a slow link would).
const STALL_MS = 2_000;
// The longest any one wait of an event may take (a promotion is expected in about the lease, 10 s).
const EVENT_TIMEOUT_MS = 60_000;

async function waitFor<T>(what: string, check: () => Promise<T | undefined>, ms = EVENT_TIMEOUT_MS): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`chaos:ha: ${what} within ${ms / 1000} s`);
    await sleep(200);
  }
}

async function currentLeader(state: HaState): Promise<HaNode> {
  return waitFor('no node answered /primary', () => leader(state));
}

async function newLeader(state: HaState, old: HaNode): Promise<HaNode> {
  return waitFor(`no node took over from ${old.name}`, async () => {
    const l = await leader(state);
    return l && l.name !== old.name ? l : undefined;
  });
}

/**
 * Waits until `node` runs again as a standby and the cluster is whole: a leader, every other member
 * running with a known lag, and (synchronous) a synchronous standby named, three checks in a row. A
 * node may look running for a moment before pg_rewind restarts it; the next event must not begin
 * before a standby can be promoted, or Patroni, rightly, promotes none.
 */
async function rejoined(state: HaState, node: HaNode): Promise<void> {
  let streak = 0;
  await waitFor(`${node.name} did not rejoin as a standby`, async () => {
    const m = await members(state);
    const whole =
      m.length === state.nodes.length &&
      m.some((x) => x.role === 'leader') &&
      m.every((x) => x.role === 'leader' || (x.state === 'running' && typeof x.lag === 'number')) &&
      (!synchronousNow || m.some((x) => x.role === 'sync_standby'));
    streak = whole ? streak + 1 : 0;
    return streak >= 3 ? true : undefined;
  });
}

/** Whether a synchronous standby is expected (false once makeAsynchronous ran). */
let synchronousNow = true;

/** Turns Patroni's synchronous mode off (the control run) and waits until no standby is synchronous. */
export async function makeAsynchronous(state: HaState): Promise<void> {
  const l = await currentLeader(state);
  const res = await fetch(`http://127.0.0.1:${l.restPort}/config`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ synchronous_mode: false, synchronous_mode_strict: false }),
  });
  if (!res.ok) throw new Error(`Patroni refused the configuration change: ${res.status} ${await res.text()}`);
  synchronousNow = false;
  await waitFor('a standby is still synchronous', async () =>
    (await members(state)).some((m) => m.role === 'sync_standby') ? undefined : true,
  );
}

/** The leader's link stalls, then the leader dies; its Patroni is started again and rejoins. */
export async function killLeader(state: HaState, log: (line: string) => void): Promise<HaEvent> {
  const old = await currentLeader(state);
  const senders = postgresProcesses(old).filter((pid) => cmdline(pid).includes('walsender'));
  for (const pid of senders) process.kill(pid, 'SIGSTOP');
  log(`[chaos:ha] kill: ${old.name}'s standbys stall for ${STALL_MS / 1000} s (${senders.length} WAL senders stopped)`);
  await sleep(STALL_MS);
  const at = Date.now();
  signalNode(old, 'SIGKILL');
  log(`[chaos:ha] kill: ${old.name} (leader) SIGKILLed, its Patroni and every Postgres process`);
  const next = await newLeader(state, old);
  const event: HaEvent = { kind: 'kill', at, from: old.name, to: next.name, promotedAt: Date.now() };
  log(`[chaos:ha] kill: ${next.name} leads, ${((event.promotedAt! - at) / 1000).toFixed(1)} s after the kill`);
  spawnPatroni(old, state.dir, state.runAs);
  await rejoined(state, old);
  log(`[chaos:ha] kill: ${old.name} rejoined as a standby`);
  return event;
}

/**
 * The leader freezes past its lease, a standby is promoted, and the old leader wakes up with a client
 * still connected to it that writes at once. With synchronous mode that write waits for a standby that
 * now follows someone else, and is never acknowledged; asynchronous, it may be, and is then lost.
 */
export async function freezeLeader(state: HaState, database: string, log: (line: string) => void): Promise<HaEvent> {
  const old = await currentLeader(state);
  // A client connected to the leader itself, past HAProxy: nobody will cut its connection.
  const direct = postgres(`postgres://postgres:postgres@127.0.0.1:${old.pgPort}/${database}`, {
    max: 1,
    onnotice: () => {},
  });
  await direct`select 1`;
  const at = Date.now();
  signalNode(old, 'SIGSTOP');
  log(`[chaos:ha] freeze: ${old.name} (leader) stopped (SIGSTOP to its Patroni and Postgres)`);
  const next = await newLeader(state, old).catch(async (err: unknown) => {
    signalNode(old, 'SIGCONT'); // never leave a node frozen behind a failed event
    await direct.end({ timeout: 0 });
    throw err;
  });
  const event: HaEvent = { kind: 'freeze', at, from: old.name, to: next.name, promotedAt: Date.now() };
  log(`[chaos:ha] freeze: ${next.name} leads, ${((event.promotedAt! - at) / 1000).toFixed(1)} s after the freeze`);
  // Let HAProxy see the new leader, then wake the old one with its client's write already on its way.
  await sleep(1_000);
  const write = direct`insert into chaos_probe (note) values ('written to the woken old leader') returning id`.then(
    () => 'acknowledged',
    (err: Error) => `refused (${err.message.slice(0, 80)})`,
  );
  signalNode(old, 'SIGCONT');
  log(`[chaos:ha] freeze: ${old.name} woken (SIGCONT) with a client connected to it`);
  // No statement_timeout and no cancel: a cancelled wait for a standby returns COMMIT to the client.
  const outcome = await Promise.race([write, sleep(20_000).then(() => 'no answer in 20 s')]);
  event.zombieWriteAcknowledged = outcome === 'acknowledged';
  event.zombieWriteOutcome = outcome;
  log(`[chaos:ha] freeze: the old leader's write: ${outcome}`);
  await direct.end({ timeout: 0 });
  await rejoined(state, old);
  log(`[chaos:ha] freeze: ${old.name} rejoined as a standby`);
  return event;
}

/** A planned switchover to the synchronous standby (or any standby, asynchronous). */
export async function switchLeader(state: HaState, log: (line: string) => void): Promise<HaEvent> {
  const old = await currentLeader(state);
  const m = await members(state);
  const candidate =
    m.find((x) => x.role === 'sync_standby')?.name ?? m.find((x) => x.role !== 'leader' && x.state === 'running')?.name;
  if (!candidate) throw new Error('chaos:ha: no standby to switch over to');
  const at = Date.now();
  const answer = await switchover(old, candidate);
  log(`[chaos:ha] switchover: ${old.name} -> ${candidate}: Patroni answered ${answer.status} ${answer.text.trim()}`);
  if (answer.status !== 200) throw new Error(`chaos:ha: switchover refused: ${answer.status} ${answer.text}`);
  const next = await newLeader(state, old);
  const event: HaEvent = { kind: 'switchover', at, from: old.name, to: next.name, promotedAt: Date.now() };
  await rejoined(state, old);
  log(`[chaos:ha] switchover: ${next.name} leads; ${old.name} rejoined as a standby`);
  return event;
}

/** One write through HAProxy every 200 ms, each with its outcome: the measure of "writes refused". */
export function startProbe(url: string): { stop(): Promise<{ at: number; end: number; ok: boolean }[]> } {
  const results: { at: number; end: number; ok: boolean }[] = [];
  let stopped = false;
  const loop = (async () => {
    let sql = postgres(url, { max: 1, connect_timeout: 2, onnotice: () => {} });
    while (!stopped) {
      const at = Date.now();
      const ok = await Promise.race([
        sql`insert into chaos_probe (note) values ('probe')`.then(
          () => true,
          () => false,
        ),
        sleep(2_000).then(() => false),
      ]);
      results.push({ at, end: Date.now(), ok });
      if (!ok) {
        // A hung or broken connection: drop it (no cancel) and connect afresh.
        void sql.end({ timeout: 0 });
        sql = postgres(url, { max: 1, connect_timeout: 2, onnotice: () => {} });
      }
      await sleep(200);
    }
    await sql.end({ timeout: 0 });
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return results;
    },
  };
}

/**
 * How long writes were refused after an event: from the first failed probe write after it to the
 * first one that succeeded after the last failure, within `until`. 0 when no write failed.
 */
export function refusedWindow(
  probes: { at: number; end: number; ok: boolean }[],
  from: number,
  until: number,
): { from: number; to: number } | undefined {
  const span = probes.filter((p) => p.end >= from && p.at <= until);
  const failed = span.filter((p) => !p.ok);
  if (failed.length === 0) return undefined;
  const first = failed[0]!;
  const last = failed.at(-1)!;
  const back = span.find((p) => p.ok && p.at >= last.end);
  return { from: first.at, to: back?.end ?? until };
}

function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '';
  }
}
