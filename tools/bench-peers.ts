/**
 * What protection costs and what it buys: the same order (`placeOrder`, the same cart) placed in one
 * Node process with no protection, with this project's keyed execution, and with the most used Node
 * library for the job, @node-idempotency/core, on its Redis storage and on its memory storage. For
 * each: orders per second, latency, replays per second, and what it adds per order (Postgres
 * statements, Redis commands). Then the same correctness probes against each, counted from Postgres
 * and from what each call really returned:
 *   storm          50 concurrent calls with one key: how many orders, how many callers got one answer
 *   crash          the order commits, the process dies before the answer is recorded, a restarted
 *                  process gets the retry: how many orders, is the key refused (and for how long)
 *   lost response  the first answer never reaches the client; is the retry's answer byte-identical
 *   two customers  the same predictable key from two customers: does the second get the first's order
 *
 * The library is used as its README shows: `onRequest` before the work (a stored answer is sent back
 * as it is), the work, then `onResponse` with the answer; its options are its defaults.
 *
 * The Redis storage runs against a redis-server this module starts on a free loopback port (never
 * the system's 6379), without persistence, and stops when done, also on an error or Ctrl-C.
 *
 * Called by the benchmark (tools/bench.ts); alone: `npx tsx dev/with-db.ts --test -- tsx tools/bench-peers.ts`.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { Idempotency } from '@node-idempotency/core';
import { MemoryStorageAdapter } from '@node-idempotency/storage-adapter-memory';
import { RedisStorageAdapter } from '@node-idempotency/storage-adapter-redis';
import { sql } from 'drizzle-orm';
import { createDatabase, type Db } from '../db/client';
import { freePort } from '../dev/ports';
import { statePath } from '../dev/state';
import { clearFaults, isProcessGone, ProcessGone, planFault, setDecisionListeners } from '../server/idempotency';
import { placeOrder } from '../server/services/orders';
import { DECISION_LISTENERS } from '../server/start';
import { parseFlags } from './args';
import { type CoreRow, INPUT, keyedOrder, measure } from './bench-core';

export type ProtectionName = 'baseline' | 'ours' | 'peer-redis' | 'peer-memory';

export const PROTECTION_LABELS: Record<ProtectionName, string> = {
  baseline: 'none (one transaction)',
  ours: 'this project (keys in Postgres, one transaction)',
  'peer-redis': '@node-idempotency/core, Redis storage',
  'peer-memory': '@node-idempotency/core, memory storage',
};

/** What each probe saw. Every field is counted from what happened, never assumed. */
export interface ProbeResults {
  storm: {
    callers: number;
    /** Orders in Postgres for the storm's customer. */
    orders: number;
    /** Callers whose answer is byte-identical to the most common successful answer. */
    sameAnswer: number;
    /** How many different successful answers there were (1: everyone answered got the same). */
    distinctAnswers: number;
    /** Callers that got an error, by error code. */
    refused: Record<string, number>;
  };
  crash: {
    orders: number;
    /** The retry's error code when it was refused; null: it was answered. */
    refusedWith: string | null;
    /** How long the key stays refused (ms), when the store says. */
    stuckForMs: number | null;
  };
  lostResponse: { orders: number; identical: boolean };
  twoCustomers: { secondGotFirstsOrder: boolean; ordersOfSecond: number };
}

export interface PeerRow {
  protection: ProtectionName;
  label: string;
  /** First executions (a new key each); for the baseline, plain orders. */
  first: CoreRow;
  /** Replays of keys stored during `first`; none for the baseline. */
  replay: CoreRow | null;
  /** Redis commands per first execution (Redis storage only). */
  redisCommands: number | null;
  /** Calls into the in-process store per first execution (memory storage only). */
  storageCalls: number | null;
  probes: ProbeResults;
}

export interface PeerReport {
  rows: PeerRow[];
  /** Protections left out, each with one line saying why and what to do. */
  skipped: string[];
  seconds: number;
  rounds: number;
  callers: number;
  /** Whether ours logged and counted each decision, as a server does (as tools/bench-core.ts). */
  decisionsLogged: boolean;
  elapsedSeconds: number;
}

export interface PeerBenchOptions {
  /** Seconds per measured run (each protection is measured `rounds` times, interleaved). */
  seconds?: number;
  rounds?: number;
  callers?: number;
  log?: (line: string) => void;
}

// Three interleaved rounds of 3 s each, medians kept: the four protections see the same noise from a
// shared 2-core machine, and the whole comparison with its probes stays near a minute.
const DEFAULT_SECONDS = 3;
const DEFAULT_ROUNDS = 3;
// As tools/bench-core.ts: 20 concurrent callers on a pool of 20.
const DEFAULT_CALLERS = 20;
// The storm of issue #11: 50 concurrent calls with one key.
const STORM_CALLERS = 50;
// The tRPC path the checkout is posted to: part of the library's cache key, as its README shows.
const PEER_PATH = '/api/trpc/checkout.placeOrder';
// No options beyond the library's defaults, as its README's example: not tuned either way. Its defaults
// keep an answer 24 h and refuse a duplicate that arrives while the first is in flight (REQUEST_IN_PROGRESS).
const PEER_OPTIONS = {};
// How long redis-server may take to say it is ready before it is given up on.
const REDIS_START_TIMEOUT_MS = 10_000;

export const REDIS_MISSING =
  'redis-server not found: the Redis peer is left out (Debian/Ubuntu: `apt-get install redis-server`; the benchmark ' +
  'starts and stops its own instance)';

// ---------------------------------------------------------------------------------------------
// The protections, behind one shape
// ---------------------------------------------------------------------------------------------

/** One way of placing the order, as one process sees it. */
interface Guard {
  /** One order with this key; returns what the client gets, throws what the client gets as an error. */
  order(customer: string, key: string): Promise<unknown>;
  /** The same call, but its process dies after the order committed and before the answer is recorded. */
  crash(customer: string, key: string): Promise<void>;
  /** The same protection in another process: a new pool, a new library instance. */
  restarted(): Promise<Guard>;
  /** How long the key stays refused, if the store can tell. */
  keyTtlMs(customer: string, key: string): Promise<number | null>;
  /** Closes its pool and store; `dead`: at once, as a dead process's connections are dropped. */
  close(options?: { dead?: boolean }): Promise<void>;
}

type Peer = Idempotency;
type PeerStorage = ConstructorParameters<typeof Idempotency>[0];

function baselineGuard(url: string, max: number): Guard {
  const { db, sql: client } = createDatabase(url, { max });
  return {
    order: (customer) => db.transaction((tx) => placeOrder(tx, customer, INPUT)),
    crash: async (customer) => {
      await db.transaction((tx) => placeOrder(tx, customer, INPUT)); // committed; then the process is gone
    },
    restarted: async () => baselineGuard(url, max),
    keyTtlMs: async () => null,
    close: (o) => client.end({ timeout: o?.dead ? 0 : undefined }),
  };
}

// postgres.js's error for a connection that closed under a query, and Postgres's for a terminated backend.
const connectionCut = (err: unknown) =>
  ['CONNECTION_CLOSED', '57P01'].includes(String((err as { code?: unknown } | null)?.code));

function oursGuard(url: string, max: number): Guard {
  const { db, sql: client } = createDatabase(url, { max });
  // Refusals (in use, other input) are thrown, as the tRPC middleware throws them.
  const order = async (customer: string, key: string) => (await keyedOrder(db, customer, key)).data;
  return {
    order,
    crash: async (customer, key) => {
      // The project's own crash: at 'executed' the order is written, its answer not yet stored; the
      // transaction's connection is cut and the request stops there, as if the process died.
      // What the dead request itself sees is either that (ProcessGone) or its cut connection.
      planFault({ scope: customer, procedure: 'checkout.placeOrder', boundary: 'executed', action: 'vanish' });
      try {
        await order(customer, key);
      } catch (err) {
        if (isProcessGone(err) || connectionCut(err)) return;
        throw err;
      } finally {
        clearFaults(customer);
      }
      throw new Error('the planned crash at the executed boundary did not happen');
    },
    restarted: async () => oursGuard(url, max),
    keyTtlMs: async (customer, key) => {
      const [row] = await db.execute<{ ms: number }>(sql`
        select (extract(epoch from expires_at - now()) * 1000)::float8 as ms
        from idempotency_keys where scope = ${customer} and key = ${key}`);
      return row ? row.ms : null;
    },
    // A crashed request keeps its reserved connection (nothing after the crash releases it): only
    // dropping the pool, as the end of a process does, frees it.
    close: (o) => client.end({ timeout: o?.dead ? 0 : undefined }),
  };
}

/** The library as its README shows it, around the same transaction as the baseline. */
async function peerOrder(
  peer: Peer,
  db: Db,
  customer: string,
  key: string,
  crashBeforeRecord = false,
): Promise<unknown> {
  const req = { method: 'POST', path: PEER_PATH, headers: { 'idempotency-key': key }, body: INPUT };
  const stored = await peer.onRequest(req);
  if (stored) return stored.body; // a duplicate: the stored answer, sent back as it is
  const order = await db.transaction((tx) => placeOrder(tx, customer, INPUT));
  if (crashBeforeRecord) throw new ProcessGone('after the work, before onResponse');
  await peer.onResponse(req, { body: order, additional: { status: 200 } });
  return order;
}

const peerCacheKey = (key: string) => `node-idempotency:POST:${PEER_PATH}:${key}`;

function peerGuard(
  url: string,
  max: number,
  storage: () => Promise<PeerStorage>,
  redis: RedisServer | null,
): Promise<Guard> {
  return storage().then((store) => {
    const peer = new Idempotency(store, PEER_OPTIONS);
    const { db, sql: client } = createDatabase(url, { max });
    return {
      order: (customer, key) => peerOrder(peer, db, customer, key),
      crash: async (customer, key) => {
        try {
          await peerOrder(peer, db, customer, key, true);
        } catch (err) {
          if (isProcessGone(err)) return;
          throw err;
        }
      },
      restarted: () => peerGuard(url, max, storage, redis),
      keyTtlMs: async (_customer, key) => {
        if (!redis) return null;
        const ms = Number(await redis.cli('PTTL', peerCacheKey(key)));
        return ms >= 0 ? ms : null;
      },
      close: async (o) => {
        await client.end({ timeout: o?.dead ? 0 : undefined });
        await store.disconnect?.();
      },
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Probes
// ---------------------------------------------------------------------------------------------

const errorCode = (err: unknown): string => {
  const e = err as { errorCode?: unknown; code?: unknown; name?: unknown } | null;
  return String(e?.errorCode ?? e?.code ?? e?.name ?? 'error');
};

async function countOrders(db: Db, customer: string): Promise<number> {
  const [row] = await db.execute<{ n: number }>(
    sql`select count(*)::int as n from orders where customer_id = ${customer}`,
  );
  return row!.n;
}

async function ownerOf(db: Db, orderId: string): Promise<string | null> {
  const [row] = await db.execute<{ customer_id: string }>(sql`select customer_id from orders where id = ${orderId}`);
  return row?.customer_id ?? null;
}

/** The four probes against one protection. `check` is a pool of its own that reads Postgres. */
async function probe(guard: Guard, check: Db): Promise<ProbeResults> {
  // 50-way same-key storm.
  const stormCustomer = randomUUID();
  const stormKey = randomUUID();
  const answers = await Promise.allSettled(
    Array.from({ length: STORM_CALLERS }, () => guard.order(stormCustomer, stormKey)),
  );
  const byAnswer = new Map<string, number>();
  const refused: Record<string, number> = {};
  for (const a of answers) {
    if (a.status === 'fulfilled')
      byAnswer.set(JSON.stringify(a.value), (byAnswer.get(JSON.stringify(a.value)) ?? 0) + 1);
    else refused[errorCode(a.reason)] = (refused[errorCode(a.reason)] ?? 0) + 1;
  }
  const storm = {
    callers: STORM_CALLERS,
    orders: await countOrders(check, stormCustomer),
    sameAnswer: Math.max(0, ...byAnswer.values()),
    distinctAnswers: byAnswer.size,
    refused,
  };

  // A crash between the work and the record in one process, then the retry in its restarted one.
  const crashCustomer = randomUUID();
  const crashKey = randomUUID();
  const dying = await guard.restarted();
  await dying.crash(crashCustomer, crashKey);
  await dying.close({ dead: true });
  const restarted = await guard.restarted();
  let refusedWith: string | null = null;
  let stuckForMs: number | null = null;
  try {
    await restarted.order(crashCustomer, crashKey);
  } catch (err) {
    refusedWith = errorCode(err);
    stuckForMs = await restarted.keyTtlMs(crashCustomer, crashKey);
  } finally {
    await restarted.close();
  }
  const crash = { orders: await countOrders(check, crashCustomer), refusedWith, stuckForMs };

  // A lost response: the first answer is dropped on its way; the client retries with the same key.
  const lostCustomer = randomUUID();
  const lostKey = randomUUID();
  const original = await guard.order(lostCustomer, lostKey);
  const retried = await guard.order(lostCustomer, lostKey);
  const lostResponse = {
    orders: await countOrders(check, lostCustomer),
    identical: JSON.stringify(retried) === JSON.stringify(original),
  };

  // The same predictable key ("cart-1", as a client counting its carts would send) from two customers.
  const first = randomUUID();
  const second = randomUUID();
  const predictable = `cart-1-${randomUUID().slice(0, 8)}`; // the suffix only keeps separate runs apart
  await guard.order(first, predictable);
  const secondsAnswer = (await guard.order(second, predictable)) as { id: string };
  const twoCustomers = {
    secondGotFirstsOrder: (await ownerOf(check, secondsAnswer.id)) === first,
    ordersOfSecond: await countOrders(check, second),
  };

  return { storm, crash, lostResponse, twoCustomers };
}

// ---------------------------------------------------------------------------------------------
// redis-server, started and stopped here
// ---------------------------------------------------------------------------------------------

export interface RedisServer {
  url: string;
  port: number;
  /** One redis-cli command against this server; its output, trimmed. */
  cli(...args: string[]): Promise<string>;
  /** Commands the server has run so far (INFO commandstats, without INFO itself). */
  commands(): Promise<number>;
  stop(): Promise<void>;
}

function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(path.delimiter)) {
    const candidate = path.join(dir, name);
    if (fs.existsSync(candidate)) return candidate;
  }
  for (const dir of ['/usr/sbin', '/usr/bin']) if (fs.existsSync(path.join(dir, name))) return path.join(dir, name);
  return null;
}

/** Where redis-server is installed (its redis-cli beside it), or null. */
export function redisServerPath(): string | null {
  return onPath('redis-cli') ? onPath('redis-server') : null;
}

/**
 * Starts a private redis-server on a free loopback port, without persistence, its working folder in
 * the clone's state folder. Returns a line saying why instead when redis-server is not installed.
 */
export async function startRedis(): Promise<RedisServer | { skipped: string }> {
  const server = redisServerPath();
  const cliBin = onPath('redis-cli');
  if (!server || !cliBin) return { skipped: REDIS_MISSING };
  const dir = statePath('redis-bench');
  fs.mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const child: ChildProcess = spawn(
    server,
    [
      '--bind',
      '127.0.0.1',
      '--port',
      String(port),
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      '--daemonize',
      'no',
      '--logfile',
      '',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  // Stop it with this process, however this process ends.
  const stopNow = () => child.exitCode === null && child.kill('SIGTERM');
  const onSignal = (signal: NodeJS.Signals) => {
    stopNow();
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal); // the signal's usual end
  };
  process.on('exit', stopNow).on('SIGINT', onSignal).on('SIGTERM', onSignal);
  const forget = () => process.off('exit', stopNow).off('SIGINT', onSignal).off('SIGTERM', onSignal);

  let output = '';
  const ready = await new Promise<string | null>((resolve) => {
    const timer = setTimeout(
      () => resolve(`no 'Ready to accept connections' within ${REDIS_START_TIMEOUT_MS / 1000} s`),
      REDIS_START_TIMEOUT_MS,
    );
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve(null);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(`exited with ${code}`);
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve(err.message);
    });
  });
  if (ready) {
    stopNow();
    forget();
    return {
      skipped:
        `redis-server did not start (${ready}): the Redis peer is left out. Its ` +
        `output:\n${output.trim().split('\n').slice(-5).join('\n')}`,
    };
  }
  child.stdout!.resume();
  child.stderr!.resume();

  const cli = async (...args: string[]) =>
    (await promisify(execFile)(cliBin, ['-h', '127.0.0.1', '-p', String(port), ...args])).stdout.trim();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    cli,
    commands: async () => {
      let calls = 0;
      for (const m of (await cli('INFO', 'commandstats')).matchAll(/^cmdstat_(\w+):calls=(\d+)/gm))
        if (m[1] !== 'info') calls += Number(m[2]);
      return calls;
    },
    stop: async () => {
      forget();
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The comparison
// ---------------------------------------------------------------------------------------------

interface Contender {
  protection: ProtectionName;
  guard: Guard;
  /** Redis commands so far, or calls into the memory store so far. */
  redisCommands?: () => Promise<number>;
  storageCalls?: () => number;
}

/** Counts the calls into a store (for the memory storage, each is one map operation). */
function countingStorage(store: PeerStorage, count: () => void): PeerStorage {
  return {
    setIfNotExists: (...a) => {
      count();
      return store.setIfNotExists(...a);
    },
    set: (...a) => {
      count();
      return store.set(...a);
    },
    get: (...a) => {
      count();
      return store.get(...a);
    },
  };
}

async function contenders(url: string, max: number, redis: RedisServer | null): Promise<Contender[]> {
  const list: Contender[] = [
    { protection: 'baseline', guard: baselineGuard(url, max) },
    { protection: 'ours', guard: oursGuard(url, max) },
  ];
  if (redis) {
    const guard = await peerGuard(
      url,
      max,
      async () => {
        const store = new RedisStorageAdapter({ url: redis.url });
        await store.connect();
        return store;
      },
      redis,
    );
    list.push({ protection: 'peer-redis', guard, redisCommands: () => redis.commands() });
  }
  let memoryCalls = 0; // over every instance: a restarted one starts empty, the count goes on
  const guard = await peerGuard(
    url,
    max,
    async () => countingStorage(new MemoryStorageAdapter(), () => memoryCalls++),
    null,
  );
  list.push({ protection: 'peer-memory', guard, storageCalls: () => memoryCalls });
  return list;
}

async function withRedis<T>(
  log: (line: string) => void,
  skipped: string[],
  run: (redis: RedisServer | null) => Promise<T>,
): Promise<T> {
  const started = await startRedis();
  if ('skipped' in started) {
    skipped.push(started.skipped);
    log(`[peers] ${started.skipped}`);
    return run(null);
  }
  log(`[peers] redis-server on 127.0.0.1:${started.port} (no persistence), stopped when done`);
  try {
    return await run(started);
  } finally {
    await started.stop();
  }
}

/** Only the probes, against every protection (what the test runs). */
export async function peerProbes(databaseUrl: string, options: { log?: (line: string) => void } = {}) {
  const log = options.log ?? (() => {});
  const skipped: string[] = [];
  const check = createDatabase(databaseUrl, { max: 2 });
  try {
    const probes = await withRedis(log, skipped, async (redis) => {
      const list = await contenders(databaseUrl, DEFAULT_CALLERS, redis);
      const results: Partial<Record<ProtectionName, ProbeResults>> = {};
      try {
        for (const c of list) results[c.protection] = await probe(c.guard, check.db);
      } finally {
        for (const c of list) await c.guard.close();
      }
      return results;
    });
    return { probes, skipped };
  } finally {
    await check.sql.end();
  }
}

/** The whole comparison: costs (interleaved rounds, medians kept), replays, then the probes. */
export async function peerBench(databaseUrl: string, options: PeerBenchOptions = {}): Promise<PeerReport> {
  const seconds = options.seconds ?? DEFAULT_SECONDS;
  const rounds = options.rounds ?? DEFAULT_ROUNDS;
  const callers = options.callers ?? DEFAULT_CALLERS;
  const log = options.log ?? (() => {});
  const startedAt = performance.now();
  const skipped: string[] = [];
  (process.env as Record<string, string>).NODE_ENV ??= 'test'; // JSON log lines, as a server writes them
  const decisionsLogged = true;
  setDecisionListeners(DECISION_LISTENERS); // as tools/bench-core.ts: each decision logged and counted, as in a server
  const stats = createDatabase(databaseUrl, { max: 1 });
  await stats.db.execute(sql`create extension if not exists pg_stat_statements`);
  try {
    const rows = await withRedis(log, skipped, async (redis) => {
      const list = await contenders(databaseUrl, callers, redis);
      try {
        const customer = Object.fromEntries(list.map((c) => [c.protection, randomUUID()])) as Record<
          ProtectionName,
          string
        >;
        const stored = Object.fromEntries(list.map((c) => [c.protection, [] as string[]])) as Record<
          ProtectionName,
          string[]
        >;
        const firstOp = (c: Contender) => () => {
          const key = randomUUID();
          const done = c.guard.order(customer[c.protection], key);
          return done.then(() => stored[c.protection].push(key));
        };
        // Warm every pool, connection and code path.
        for (const c of list) await measure('warm', null, Math.min(1, seconds), callers, firstOp(c));

        const firsts = new Map<
          ProtectionName,
          { row: CoreRow; redisCommands: number | null; storageCalls: number | null }[]
        >();
        for (let round = 0; round < rounds; round++) {
          for (const c of list) {
            let ops = 0;
            const redisBefore = c.redisCommands ? await c.redisCommands() : 0;
            const callsBefore = c.storageCalls?.() ?? 0;
            const row = await measure(c.protection, stats.db, seconds, callers, () => firstOp(c)().then(() => ops++));
            firsts.set(c.protection, [
              ...(firsts.get(c.protection) ?? []),
              {
                row,
                redisCommands: c.redisCommands ? ((await c.redisCommands()) - redisBefore) / ops : null,
                storageCalls: c.storageCalls ? (c.storageCalls() - callsBefore) / ops : null,
              },
            ]);
          }
          log(
            `[peers] round ${round + 1}/${rounds}: ` +
              list
                .map((c) => `${c.protection} ${firsts.get(c.protection)!.at(-1)!.row.opsPerSecond.toFixed(0)}/s`)
                .join(', '),
          );
        }
        const replays = new Map<ProtectionName, CoreRow>();
        for (const c of list) {
          if (c.protection === 'baseline') continue;
          const keys = stored[c.protection];
          replays.set(
            c.protection,
            await measure(`${c.protection} replay`, stats.db, Math.min(2, seconds), callers, (i) =>
              c.guard.order(customer[c.protection], keys[i % keys.length]!),
            ),
          );
        }
        log(
          `[peers] replays: ${[...replays].map(([p, r]) => `${p} ${r.opsPerSecond.toFixed(0)}/s`).join(', ')}; now ` +
            `the probes`,
        );

        const out: PeerRow[] = [];
        for (const c of list) {
          const median = [...firsts.get(c.protection)!].sort((a, b) => a.row.opsPerSecond - b.row.opsPerSecond)[
            Math.floor(rounds / 2)
          ]!;
          out.push({
            protection: c.protection,
            label: PROTECTION_LABELS[c.protection],
            first: median.row,
            replay: replays.get(c.protection) ?? null,
            redisCommands: median.redisCommands,
            storageCalls: median.storageCalls,
            probes: await probe(c.guard, stats.db),
          });
        }
        return out;
      } finally {
        for (const c of list) await c.guard.close();
      }
    });
    return {
      rows,
      skipped,
      seconds,
      rounds,
      callers,
      decisionsLogged,
      elapsedSeconds: (performance.now() - startedAt) / 1000,
    };
  } finally {
    await stats.sql.end();
  }
}

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

function duration(ms: number): string {
  if (ms >= 3_600_000) return `${Math.round(ms / 3_600_000)} h`;
  if (ms >= 60_000) return `${Math.round(ms / 60_000)} min`;
  return `${Math.round(ms / 1000)} s`;
}

/** One plain fact per probe, as the table prints them. */
export function probeFacts(p: ProbeResults): {
  storm: string;
  crash: string;
  lostResponse: string;
  twoCustomers: string;
} {
  const { storm } = p;
  const refused = Object.entries(storm.refused).map(([code, n]) => `${n} refused (${code})`);
  const answers =
    storm.sameAnswer === storm.callers
      ? `all ${storm.callers} got the same answer`
      : storm.distinctAnswers > 1
        ? `${storm.distinctAnswers} different answers`
        : `${storm.sameAnswer} answered`;
  return {
    storm: `${plural(storm.orders, 'order')}; ${[answers, ...refused].join(', ')}`,
    crash: `${plural(p.crash.orders, 'order')}; ${
      p.crash.refusedWith === null
        ? 'retry answered, key not stuck'
        : `retry refused (${p.crash.refusedWith}): ` +
          `stuck${p.crash.stuckForMs === null ? '' : ` until TTL (${duration(p.crash.stuckForMs)})`}`
    }`,
    lostResponse: `${p.lostResponse.identical ? 'identical' : 'differs'} (${plural(p.lostResponse.orders, 'order')})`,
    twoCustomers: p.twoCustomers.secondGotFirstsOrder ? "B got A's order" : `B got its own order`,
  };
}

function added(row: PeerRow, baseline: PeerRow): string {
  if (row.protection === 'baseline') return `${row.first.statements.toFixed(1)} statements (the order itself)`;
  // Rounded to a tenth: a peer adds none, and "-0.0" would only be the noise of counting.
  const pg = Math.round((row.first.statements - baseline.first.statements) * 10) / 10;
  const parts = [`${pg > 0 ? '+' : ''}${pg === 0 ? '0' : pg.toFixed(1)} Postgres statements`];
  if (row.redisCommands !== null) parts.push(`+${row.redisCommands.toFixed(1)} Redis commands`);
  if (row.storageCalls !== null) parts.push(`+${row.storageCalls.toFixed(1)} in-process map calls, no round trip`);
  return parts.join(', ');
}

/** The Markdown table "What protection costs and what it buys", with the lines that explain it. */
export function peerTable(report: PeerReport): string[] {
  const baseline = report.rows.find((r) => r.protection === 'baseline')!;
  const ms = (n: number) => n.toFixed(1);
  return [
    '### What protection costs and what it buys',
    '',
    `The same order placed in one Node process by ${report.callers} concurrent callers (pool of ${report.callers}), ` +
      `median of ${report.rounds} interleaved runs of ${report.seconds} s; ` +
      'then the same probes against each, counted from Postgres and from what each call returned.',
    '',
    '| protection | orders/s | vs baseline | p50 ms | p99 ms | replays/s | added per order | 50-way same-key storm | ' +
      'crash after the order commits, before the answer is stored; retry | lost response; retry | same key, another ' +
      'customer |',
    '| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | --- | --- |',
    ...report.rows.map((r) => {
      const f = probeFacts(r.probes);
      return (
        `| ${r.label} | ${r.first.opsPerSecond.toFixed(0)} | ` +
        `${(r.first.opsPerSecond / baseline.first.opsPerSecond).toFixed(2)}x | ${ms(r.first.p50)} | ` +
        `${ms(r.first.p99)} | ${r.replay ? r.replay.opsPerSecond.toFixed(0) : '-'} | ${added(r, baseline)} | ` +
        `${f.storm} | ${f.crash} | ${f.lostResponse} | ${f.twoCustomers} |`
      );
    }),
    '',
    'The library is configured as its README shows, with its default options: answers kept 24 h, and a duplicate ' +
      'that arrives while the ' +
      'first is in flight is refused (REQUEST_IN_PROGRESS) rather than made to wait (its `inProgressStrategy.wait` ' +
      'option). ' +
      'This project waits for the first and replays its answer' +
      (report.decisionsLogged
        ? ', and logs and counts each decision as a server does.'
        : '; its decisions were not logged in this run.'),
    ...report.skipped.flatMap((s) => ['', s]),
  ];
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // Alone it prints its table; under tools/bench.ts (--json) its last line is the report as JSON,
  // and its progress goes to stderr, since stdout also carries the log line of every decision.
  const flags = parseFlags('tsx tools/bench-peers.ts', {
    seconds: { type: 'number', default: DEFAULT_SECONDS, min: 1, max: 600, help: 'seconds per measured round' },
    json: { type: 'boolean', help: 'print the result as one JSON line (how tools/bench.ts reads it)' },
  });
  const json = flags.json;
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('run through dev/with-db.ts (it provides DATABASE_URL)');
  const seconds = flags.seconds;
  peerBench(url, { seconds, log: (s) => console.error(s) }).then(
    async (report) => {
      await new Promise((resolve) => setTimeout(resolve, 200)); // the last log lines out first
      console.log(json ? JSON.stringify({ peers: report }) : peerTable(report).join('\n'));
      if (!json) console.log(`[peers] done in ${report.elapsedSeconds.toFixed(0)} s`);
      process.exit(0);
    },
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
