/**
 * What the protection itself costs, without HTTP: the same order placed in one Node process by 20
 * concurrent callers on a pool of 20, unprotected (one transaction) and through the keyed layer
 * (first executions, then replays). For each kind: operations per second, Node CPU per operation
 * (`process.cpuUsage`), and Postgres time per operation and statements per operation
 * (`pg_stat_statements`, which the embedded cluster preloads).
 *
 * Run by tools/bench.ts in a process of its own; alone: `npx tsx dev/with-db.ts --test -- tsx tools/bench-core.ts`.
 */
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { sql } from 'drizzle-orm';
import { createDatabase, type Db } from '../db/client';
import {
  claimStatement,
  completeKeyStatement,
  fingerprint,
  pipelinedTransaction,
  runIdempotent,
  setDecisionListeners,
} from '../server/idempotency';
import { placeOrder } from '../server/services/orders';
import { DECISION_LISTENERS } from '../server/start';
import { parseFlags } from './args';

export interface CoreRow {
  kind: string;
  opsPerSecond: number;
  /** Node CPU (user + system) per operation, microseconds. */
  cpuUs: number;
  /** Postgres execution time per operation (pg_stat_statements), microseconds. */
  dbUs: number;
  /** Statements per operation (as pg_stat_statements counts them). */
  statements: number;
  /** Latency of one operation, milliseconds. */
  p50: number;
  p99: number;
  /** Each statement's calls and Postgres time per operation (with `--statements`). */
  breakdown?: StatementShare[];
}

export const INPUT = { items: [{ productId: 'travel-mug', quantity: 1 }] };
const OPTIONS = { ttlMs: 86_400_000, waitMs: 10_000 };

/** One keyed order, as the tRPC middleware makes it (without tRPC). */
export function keyedOrder(db: Db, customer: string, key: string) {
  return runIdempotent({
    db,
    scope: customer,
    procedure: 'checkout.placeOrder',
    rawInput: INPUT,
    headers: new Headers({ 'idempotency-key': key }),
    resHeaders: new Headers(),
    options: OPTIONS,
    execute: async (tx, keyId) => ({
      ok: true as const,
      data: await placeOrder(tx, customer, INPUT, { idempotencyKeyId: keyId }),
    }),
    replay: (data: unknown) => ({ ok: true as const, data }),
  });
}

/** One statement's share of an operation (pg_stat_statements), for the breakdown. */
export interface StatementShare {
  query: string;
  callsPerOp: number;
  usPerOp: number;
}

/**
 * Every statement run since the last reset, per operation, costliest first. Nested statements (the
 * foreign-key checks Postgres runs inside an INSERT) show only when the connections track them
 * (`pg_stat_statements.track = all`, which `--statements` sets).
 */
export async function statementBreakdown(db: Db, ops: number): Promise<StatementShare[]> {
  const rows = await db.execute<{ query: string; calls: number; ms: number }>(sql`
    select query, calls::float8 as calls, total_exec_time::float8 as ms
    from pg_stat_statements where query not ilike '%pg_stat_statements%' order by total_exec_time desc`);
  return [...rows]
    .map((r) => ({
      query: r.query.replace(/\s+/g, ' ').trim(),
      callsPerOp: r.calls / ops,
      usPerOp: (r.ms * 1000) / ops,
    }))
    .filter((r) => r.callsPerOp >= 0.05);
}

export async function statementStats(db: Db): Promise<{ calls: number; ms: number }> {
  const [row] = await db.execute<{ calls: number; ms: number }>(sql`
    select coalesce(sum(calls), 0)::float8 as calls, coalesce(sum(total_exec_time), 0)::float8 as ms
    from pg_stat_statements where query not ilike '%pg_stat_statements%'`);
  return row!;
}

/** The round with the median rate. */
const median = (rows: CoreRow[]) =>
  [...rows].sort((a, b) => a.opsPerSecond - b.opsPerSecond)[Math.floor(rows.length / 2)]!;

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;

/**
 * Runs `op` from `callers` concurrent loops for `seconds`, and measures what each operation cost.
 * `stats` is a separate connection that reads pg_stat_statements (null: Postgres not measured).
 */
export async function measure(
  kind: string,
  stats: Db | null,
  seconds: number,
  callers: number,
  op: (i: number) => Promise<unknown>,
  withBreakdown = false,
): Promise<CoreRow> {
  if (stats) await stats.execute(sql`select pg_stat_statements_reset()`);
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const until = started + seconds * 1000;
  const latencies: number[] = [];
  let done = 0;
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (performance.now() < until) {
        const t = performance.now();
        await op(done++);
        latencies.push(performance.now() - t);
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const pg = stats ? await statementStats(stats) : { ms: 0, calls: 0 };
  const breakdown = stats && withBreakdown ? await statementBreakdown(stats, done) : undefined;
  latencies.sort((a, b) => a - b);
  return {
    breakdown,
    kind,
    opsPerSecond: done / elapsed,
    cpuUs: (cpu.user + cpu.system) / done,
    dbUs: (pg.ms * 1000) / done,
    statements: pg.calls / done,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}

export async function coreBench(
  databaseUrl: string,
  options: { seconds: number; rounds: number; callers?: number; log?: (s: string) => void; statements?: boolean },
): Promise<CoreRow[]> {
  const callers = options.callers ?? 20;
  const log = options.log ?? (() => {});
  const by = options.statements ?? false;
  // With the breakdown, the pool's sessions also count what Postgres runs inside a statement (the
  // foreign-key checks), so each row's total includes them: its statements/op is then higher.
  const connection = by ? { 'pg_stat_statements.track': 'all' } : undefined;
  const { db, sql: client } = createDatabase(databaseUrl, { max: callers, connection });
  const stats = createDatabase(databaseUrl, { max: 1 });
  await stats.db.execute(sql`create extension if not exists pg_stat_statements`);
  const customer = randomUUID();
  const completed: string[] = [];
  // JSON log lines, as a server writes them (not development's pretty ones)
  (process.env as Record<string, string>).NODE_ENV ??= 'test';
  setDecisionListeners(DECISION_LISTENERS); // each decision logged and counted, as in a server
  try {
    // Warm every connection of the pool and every prepared statement.
    await measure('warm', stats.db, 1, callers, () => db.transaction((tx) => placeOrder(tx, customer, INPUT)));
    await measure('warm', stats.db, 1, callers, () => keyedOrder(db, customer, randomUUID()));
    const baselines: CoreRow[] = [];
    const firsts: CoreRow[] = [];
    for (let round = 0; round < options.rounds; round++) {
      baselines.push(
        await measure(
          'baseline',
          stats.db,
          options.seconds,
          callers,
          () => db.transaction((tx) => placeOrder(tx, customer, INPUT)),
          by,
        ),
      );
      firsts.push(
        await measure(
          'first',
          stats.db,
          options.seconds,
          callers,
          () => {
            const key = randomUUID();
            completed.push(key);
            return keyedOrder(db, customer, key);
          },
          by,
        ),
      );
      log(
        `[bench] in-process round ${round + 1}/${options.rounds}: baseline ` +
          `${baselines.at(-1)!.opsPerSecond.toFixed(0)}/s, first ${firsts.at(-1)!.opsPerSecond.toFixed(0)}/s`,
      );
    }
    const replay = await measure(
      'replay',
      stats.db,
      options.seconds,
      callers,
      (i) => keyedOrder(db, customer, completed[i % completed.length]!),
      by,
    );
    return [median(baselines), median(firsts), replay];
  } finally {
    await client.end();
    await stats.sql.end();
  }
}

/**
 * A first execution built up one part at a time, each step the one before plus one part of the
 * protection, so that the difference between two rows is what that part costs. The last step is a
 * first execution as `keyedOrder` makes it.
 */
export function costSteps(db: Db, customer: string) {
  const procedure = 'checkout.placeOrder';
  const fp = fingerprint(procedure, INPUT);
  const plain = () => db.transaction((tx) => placeOrder(tx, customer, INPUT));
  // The claim travels with BEGIN; a new key is always free, so the order follows at once.
  const claimOnly = () =>
    pipelinedTransaction(db, claimStatement({ scope: customer, procedure, key: randomUUID() }), async (tx) => {
      await placeOrder(tx, customer, INPUT);
      return { commit: null };
    });
  // ...and the key row, with the answer, travels with COMMIT; the order points at it.
  const withKeyRow = () => {
    const k = { scope: customer, procedure, key: randomUUID() };
    const id = randomUUID();
    return pipelinedTransaction(db, claimStatement(k), async (tx) => {
      const order = await placeOrder(tx, customer, INPUT, { idempotencyKeyId: id });
      const answer = `{"ok":true,"data":${JSON.stringify(order)}}`;
      return { commit: null, last: completeKeyStatement(id, k, fp, OPTIONS.ttlMs, 200, answer) };
    });
  };
  const keyed = () => keyedOrder(db, customer, randomUUID());
  return [
    { kind: 'the plain order', op: plain, listeners: false },
    { kind: '+ the claim, sent with BEGIN', op: claimOnly, listeners: false },
    { kind: '+ the key row and its answer, sent with COMMIT', op: withKeyRow, listeners: false },
    { kind: "+ the layer's request handling (no decision listeners)", op: keyed, listeners: false },
    { kind: '+ the decision listeners (log line, metrics): a first execution', op: keyed, listeners: true },
  ];
}

/** Each step of `costSteps`, measured in interleaved rounds; the median round of each. */
export async function stepsBench(
  databaseUrl: string,
  options: { seconds: number; rounds: number; callers?: number; log?: (s: string) => void },
): Promise<CoreRow[]> {
  const callers = options.callers ?? 20;
  const { db, sql: client } = createDatabase(databaseUrl, { max: callers });
  const stats = createDatabase(databaseUrl, { max: 1 });
  await stats.db.execute(sql`create extension if not exists pg_stat_statements`);
  (process.env as Record<string, string>).NODE_ENV ??= 'test';
  const steps = costSteps(db, randomUUID());
  const listen = (on: boolean) => setDecisionListeners(on ? DECISION_LISTENERS : []);
  try {
    for (const step of steps) {
      listen(step.listeners);
      await measure('warm', null, 1, callers, step.op);
    }
    const runs = steps.map(() => [] as CoreRow[]);
    for (let round = 0; round < options.rounds; round++) {
      for (const [i, step] of steps.entries()) {
        listen(step.listeners);
        runs[i]!.push(await measure(step.kind, stats.db, options.seconds, callers, step.op));
      }
      options.log?.(`[bench] steps round ${round + 1}/${options.rounds}`);
    }
    return runs.map(median);
  } finally {
    setDecisionListeners(DECISION_LISTENERS);
    await client.end();
    await stats.sql.end();
  }
}

/** The steps as a table: each row against the plain order and against the step before it. */
export function stepsTable(rows: CoreRow[]): string[] {
  const plain = rows[0]!;
  return [
    '| step | operations/s | vs plain | Node CPU µs/op (added by the step) | Postgres µs/op (added) | statements/op |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map((r, i) => {
      const before = rows[i - 1];
      const added = (now: number, then: number | undefined) =>
        then === undefined ? '' : ` (${now - then >= 0 ? '+' : ''}${(now - then).toFixed(0)})`;
      return (
        `| ${r.kind} | ${r.opsPerSecond.toFixed(0)} | ${(r.opsPerSecond / plain.opsPerSecond).toFixed(2)}x | ` +
        `${r.cpuUs.toFixed(0)}${added(r.cpuUs, before?.cpuUs)} | ` +
        `${r.dbUs.toFixed(0)}${added(r.dbUs, before?.dbUs)} | ${r.statements.toFixed(1)} |`
      );
    }),
  ];
}

export function coreTable(rows: CoreRow[]): string[] {
  const baseline = rows.find((r) => r.kind === 'baseline')!;
  return [
    '| kind | operations/s | vs baseline | Node CPU µs/op | Postgres µs/op | statements/op |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.kind} | ${r.opsPerSecond.toFixed(0)} | ${(r.opsPerSecond / baseline.opsPerSecond).toFixed(2)}x | ` +
        `${r.cpuUs.toFixed(0)} | ${r.dbUs.toFixed(0)} | ${r.statements.toFixed(1)} |`,
    ),
  ];
}

/** Each kind's statements: calls and Postgres µs per operation (pg_stat_statements). */
export function breakdownTable(rows: CoreRow[]): string[] {
  return [
    '| kind | statement | calls/op | Postgres µs/op |',
    '| --- | --- | ---: | ---: |',
    ...rows.flatMap((r) =>
      (r.breakdown ?? []).map(
        (s) =>
          `| ${r.kind} | \`${s.query.slice(0, 90).replaceAll('|', '\\|')}\` | ${s.callsPerOp.toFixed(2)} | ` +
          `${s.usPerOp.toFixed(0)} |`,
      ),
    ),
  ];
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // Alone it prints its table; under tools/bench.ts (--json) its last line is the rows as JSON, and
  // its progress goes to stderr, since stdout also carries the log line of every decision it makes.
  const flags = parseFlags('tsx tools/bench-core.ts', {
    seconds: { type: 'number', default: 5, min: 1, max: 600, help: 'seconds per measured round' },
    json: { type: 'boolean', help: 'print the result as one JSON line (how tools/bench.ts reads it)' },
    statements: { type: 'boolean', help: 'also each statement of each kind: calls and Postgres µs per operation' },
    steps: { type: 'boolean', help: 'instead, a first execution built up one part at a time (what each part costs)' },
  });
  const json = flags.json;
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('run through dev/with-db.ts (it provides DATABASE_URL)');
  const seconds = flags.seconds;
  const log = (line: string) => console.error(line);
  const run = flags.steps
    ? stepsBench(url, { seconds, rounds: 3, log }).then((rows) => ({ rows, table: stepsTable(rows) }))
    : coreBench(url, { seconds, rounds: 3, log, statements: flags.statements }).then((rows) => ({
        rows,
        table: [...coreTable(rows), ...(flags.statements ? ['', ...breakdownTable(rows)] : [])],
      }));
  run.then(
    async ({ rows, table }) => {
      await new Promise((resolve) => setTimeout(resolve, 200)); // the last log lines out first
      console.log(json ? JSON.stringify({ rows }) : table.join('\n'));
      process.exit(0);
    },
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
