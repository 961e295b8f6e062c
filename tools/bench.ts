/**
 * `npm run bench`: what the idempotency keys cost, measured on a production build (`next start`)
 * on the embedded Postgres, with autocannon. Prints a line per phase as it goes, then a table and
 * the targets met or missed, and writes BENCHMARKS.md.
 *
 *   npm run bench                 # everything (about 9 minutes on 2 cores)
 *   npm run bench -- --quick      # baseline, first execution and replay, through HTTP and without it
 *                                 # (a few minutes once built); the last line is
 *                                 # `first/baseline: 0.NN replay/baseline: N.NN nohttp-first/plain: 0.NN`
 *
 * Kinds of request:
 *   bare      a tRPC query with no database work: the framework's ceiling on this machine
 *   baseline  bench.placeOrder: the plain order, the checkout's procedure body with no key and nothing added
 *   lab twin  lab.placeOrderWithoutKey: the lab's unprotected twin (the order, and a check that the caller
 *             is a lab customer); a row of its own, not the baseline
 *   first     checkout.placeOrder with a fresh key each time: claim + order + stored answer
 *   replay    checkout.placeOrder with keys that already completed: answered from the stored result
 * then, in one Node process without HTTP, where each kind's time goes (Node CPU, Postgres time,
 * statements), the same order protected by the libraries people would pick instead, storms of one
 * key against many, and the scale sections (tools/bench-scale.ts).
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import autocannon from 'autocannon';
import { createDatabase } from '../db/client';
import { labCustomers } from '../db/schema';
import { appEnv, ensureProductionBuild, startAppServer } from '../dev/app-server';
import { listenerPort } from '../dev/ports';
import { installDatabase } from '../server/db';
import { parseFlags } from './args';
import { type CoreRow, coreTable, stepsTable } from './bench-core';
import { type PeerReport, peerTable } from './bench-peers';
import { type ReaperFigures, scaleSections } from './bench-scale';

const flags = parseFlags('npm run bench --', {
  quick: {
    type: 'boolean',
    help: 'only baseline, first execution and replay (about a minute once built); BENCHMARKS.md is left as it is',
  },
  seconds: { type: 'number', default: 8, min: 2, max: 120, help: 'seconds per measured kind' },
});

const DURATION_S = flags.seconds;
// Baseline and first executions are measured in alternating rounds and the median round is kept:
// on a 2-core machine shared by server, Postgres and load generator, one run is too noisy to compare.
const ROUNDS = flags.quick ? 3 : 5;
const WARM_S = 4; // of each kind first, not counted: Node's JIT and the server's code paths warm
const CONNECTIONS = 20; // as many as one server's database pool: the pool, not the client, is the limit
const STORMS = 20; // rounds of each storm kind, alternated
const STORM_SIZE = 50;
const BODY = JSON.stringify({ items: [{ productId: 'travel-mug', quantity: 1 }] });
// Issue 25: through HTTP, and without it (the protection alone: ratios to the plain order, and what it
// adds per operation in Node CPU and Postgres time).
const TARGETS = {
  first: 0.95,
  replay: 1.4,
  reaperLoss: 0.1,
  core: { first: 0.8, replay: 2, nodeUs: 250, postgresUs: 300 },
};
const databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl) throw new Error('run through `npm run bench` (it provides DATABASE_URL)');

const PHASES = flags.quick
  ? [
      'the server (a production build; built first if needed)',
      'baseline and first execution, alternating',
      'replay',
      'where the time goes, in one process without HTTP',
    ]
  : [
      'the server (a production build; built first if needed)',
      'bare tRPC query',
      'baseline and first execution, alternating',
      'replay',
      "the lab's unprotected twin",
      'storms: one key against many',
      'statements of one request of each kind',
      'where the time goes, in one process without HTTP, and step by step',
      'the same order protected by other libraries',
      'scale-out, the keys table at 1,000,000 rows, the reaper under load',
    ];
const startedAt = performance.now();
let phaseIndex = 0;
const clock = () => {
  const s = Math.round((performance.now() - startedAt) / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
};
/** One line as each phase starts: how far in, what now, what next. */
function phase(): void {
  const now = PHASES[phaseIndex]!;
  const next = PHASES[phaseIndex + 1];
  phaseIndex++;
  console.log(`[bench ${clock()}] ${phaseIndex}/${PHASES.length} ${now}${next ? ` · next: ${next}` : ''}`);
}
const note = (what: string) => console.log(`[bench ${clock()}]   ${what}`);

interface Row {
  kind: string;
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  /** The server process's CPU per request (user + system, from /proc), microseconds. */
  serverCpuUs?: number;
  /** Postgres execution time per request (pg_stat_statements), microseconds. */
  dbUs?: number;
  statements?: number;
}

/** CPU time the server process has used so far, microseconds (Linux: /proc/<pid>/stat). */
function processCpuUs(pid: number | undefined): number | undefined {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) / 100) * 1e6; // utime + stime, in ticks of 10 ms
  } catch {
    return undefined;
  }
}

let serverPid: number | undefined;
/** Every round's requests/s, shown under the table: the spread says how far to trust one ratio. */
let rounds: { baseline: number[]; first: number[] } = { baseline: [], first: [] };
let stats: ReturnType<typeof createDatabase> | undefined;

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function cannon(
  kind: string,
  url: string,
  options: { method: 'GET' | 'POST'; cookie: string; key?: () => string },
): Promise<Row> {
  if (stats) await stats.sql`select pg_stat_statements_reset()`;
  const cpuBefore = processCpuUs(serverPid);
  const result = await autocannon({
    url,
    method: options.method,
    connections: CONNECTIONS,
    duration: DURATION_S,
    headers: { 'content-type': 'application/json', cookie: options.cookie },
    body: options.method === 'POST' ? BODY : undefined,
    requests: [
      {
        setupRequest: (req: autocannon.Request) =>
          options.key ? { ...req, headers: { ...req.headers, 'idempotency-key': options.key() } } : req,
      },
    ],
  });
  const cpuAfter = processCpuUs(serverPid);
  const requests = result.requests.total;
  const [pg] = stats
    ? await stats.sql<{ ms: number }[]>`
        select coalesce(sum(total_exec_time), 0)::float8 as ms
        from pg_stat_statements where query not ilike '%pg_stat_statements%'`
    : [];
  const row: Row = {
    kind,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx + result.errors,
    serverCpuUs: cpuBefore !== undefined && cpuAfter !== undefined ? (cpuAfter - cpuBefore) / requests : undefined,
    dbUs: pg ? (pg.ms * 1000) / requests : undefined,
  };
  note(
    `${kind}: ${row.rps.toFixed(0)} requests/s, p99 ${row.p99} ms, server CPU ${row.serverCpuUs?.toFixed(0) ?? '?'} ` +
      `µs and Postgres ${row.dbUs?.toFixed(0) ?? '?'} µs per request`,
  );
  return row;
}

async function warm(url: string, cookie: string, keyed: boolean): Promise<void> {
  await autocannon({
    url,
    method: 'POST',
    connections: CONNECTIONS,
    duration: WARM_S,
    headers: { 'content-type': 'application/json', cookie },
    body: BODY,
    requests: [
      {
        setupRequest: (req: autocannon.Request) =>
          keyed ? { ...req, headers: { ...req.headers, 'idempotency-key': randomUUID() } } : req,
      },
    ],
  });
}

async function storm(base: string, cookie: string, sameKey: boolean): Promise<number> {
  const shared = randomUUID();
  const started = performance.now();
  const responses = await Promise.all(
    Array.from({ length: STORM_SIZE }, () =>
      fetch(`${base}/api/trpc/checkout.placeOrder`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', cookie, 'idempotency-key': sameKey ? shared : randomUUID() },
        body: BODY,
      }),
    ),
  );
  const elapsed = performance.now() - started;
  if (responses.some((r) => r.status !== 200))
    throw new Error(`a storm request failed: ${responses.map((r) => r.status).join(',')}`);
  return elapsed;
}

/** Sends one request of each kind in-process, counting the statements the driver sends to Postgres. */
async function countStatements(cookie: string): Promise<Record<string, number>> {
  const log: string[] = [];
  installDatabase(createDatabase(databaseUrl!, { max: 1, onQuery: (q) => log.push(q.trim()) }));
  const { handleApiRequest } = await import('../server/http');
  const call = async (path: string, key?: string) => {
    const headers = new Headers({ 'content-type': 'application/json', cookie });
    if (key) headers.set('idempotency-key', key);
    const method = path === 'health.ping' ? 'GET' : 'POST';
    const req = new Request(`http://localhost/api/trpc/${path}`, {
      method,
      headers,
      body: method === 'POST' ? BODY : undefined,
    });
    const res = await handleApiRequest(req);
    if (res.status !== 200) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  };
  await call('bench.placeOrder'); // warm: connection setup queries are not a request's
  const counts: Record<string, number> = {};
  const measure = async (kind: string, fn: () => Promise<void>) => {
    log.length = 0;
    await fn();
    counts[kind] = log.length;
    note(`${kind}: ${log.map((q) => q.replace(/\s+/g, ' ').slice(0, 40)).join(' | ') || 'no statement'}`);
  };
  const key = randomUUID();
  await measure('bare', () => call('health.ping'));
  await measure('baseline', () => call('bench.placeOrder'));
  await measure('lab twin', () => call('lab.placeOrderWithoutKey'));
  await measure('first', () => call('checkout.placeOrder', key));
  await measure('replay', () => call('checkout.placeOrder', key));
  return counts;
}

async function main() {
  phase();
  ensureProductionBuild();
  const env = appEnv({
    DATABASE_URL: databaseUrl!,
    ENABLE_LAB: '1',
    ENABLE_BENCH_BASELINE: '1',
    IDEMPOTENCY_REAPER_INTERVAL_SECONDS: '0',
  });
  const server = await startAppServer({ port: await listenerPort(), env: env as Record<string, string> });
  serverPid = server.process.pid;
  const base = server.url;
  const cookie = (await fetch(`${base}/api/trpc/health.ping`)).headers.get('set-cookie')!.split(';')[0]!;
  // The lab's twin (a row of its own) runs only for the lab's own customers.
  const setup = createDatabase(databaseUrl!, { max: 1 });
  await setup.db.insert(labCustomers).values({ id: cookie.slice('customer='.length).split('.')[0]! });
  await setup.sql.end();
  // Postgres time per request, from pg_stat_statements (the embedded cluster preloads it).
  stats = createDatabase(databaseUrl!, { max: 1 });
  await stats.sql`create extension if not exists pg_stat_statements`.catch(() => {
    note('pg_stat_statements is not loaded in this Postgres: no Postgres time per request');
    stats = undefined;
  });
  process.env.COOKIE_SECRET = env.COOKIE_SECRET; // the in-process count signs with the same secret
  process.env.ENABLE_BENCH_BASELINE = '1'; // and calls the plain order too

  try {
    note(`${DURATION_S} s per kind, ${CONNECTIONS} connections`);
    const rows: Row[] = [];
    if (!flags.quick) {
      phase();
      rows.push(await cannon('bare', `${base}/api/trpc/health.ping`, { method: 'GET', cookie }));
    }
    phase();
    const completed: string[] = [];
    const baselines: Row[] = [];
    const firsts: Row[] = [];
    // A short round of each first, not counted: the server's code paths compiled and its pool warm.
    await warm(`${base}/api/trpc/bench.placeOrder`, cookie, false);
    await warm(`${base}/api/trpc/checkout.placeOrder`, cookie, true);
    for (let round = 0; round < ROUNDS; round++) {
      baselines.push(await cannon('baseline', `${base}/api/trpc/bench.placeOrder`, { method: 'POST', cookie }));
      const fresh = () => {
        const k = randomUUID();
        completed.push(k);
        return k;
      };
      firsts.push(
        await cannon('first', `${base}/api/trpc/checkout.placeOrder`, { method: 'POST', cookie, key: fresh }),
      );
    }
    const median = (runs: Row[]) => [...runs].sort((a, b) => a.rps - b.rps)[Math.floor(runs.length / 2)]!;
    rows.push(median(baselines), median(firsts));
    rounds = { baseline: baselines.map((r) => r.rps), first: firsts.map((r) => r.rps) };
    phase();
    let i = 0;
    rows.push(
      await cannon('replay', `${base}/api/trpc/checkout.placeOrder`, {
        method: 'POST',
        cookie,
        key: () => completed[i++ % completed.length]!,
      }),
    );
    const ratio = (kind: string) =>
      rows.find((r) => r.kind === kind)!.rps / rows.find((r) => r.kind === 'baseline')!.rps;

    const runCore = async () =>
      (
        (await childJson('tools/bench-core.ts', ['--seconds', String(Math.min(DURATION_S, 5))])) as {
          rows: CoreRow[];
        }
      ).rows;
    if (flags.quick) {
      phase();
      const core = await runCore();
      console.log(`\n${table(rows).join('\n')}\n\n${coreTable(core).join('\n')}\n\n${coreTargets(core).join('\n')}\n`);
      console.log(finalLine(ratio('first'), ratio('replay'), core));
      return;
    }

    phase();
    rows.push(await cannon('lab twin', `${base}/api/trpc/lab.placeOrderWithoutKey`, { method: 'POST', cookie }));
    phase();
    const same: number[] = [];
    const different: number[] = [];
    for (let round = 0; round < STORMS; round++) {
      same.push(await storm(base, cookie, true));
      different.push(await storm(base, cookie, false));
    }
    phase();
    const counts = await countStatements(cookie);
    for (const row of rows) row.statements = counts[row.kind];
    phase();
    const core = await runCore();
    const steps = (
      (await childJson('tools/bench-core.ts', ['--steps', '--seconds', String(Math.min(DURATION_S, 4))])) as {
        rows: CoreRow[];
      }
    ).rows;
    phase();
    const peers = await peerSection();
    phase();
    const scale = await scaleSections({
      databaseUrl: databaseUrl!,
      env: env as Record<string, string>,
      singleUrl: base,
      cookie,
      seconds: DURATION_S,
      progress: note,
    });
    report(rows, { same, different }, core, steps, peers, scale);
  } finally {
    await stats?.sql.end();
    await server.kill();
  }
}

function table(rows: Row[]): string[] {
  const baseline = rows.find((r) => r.kind === 'baseline')!;
  return [
    '| kind | requests/s | p50 ms | p99 ms | vs baseline | server CPU µs/request | Postgres µs/request | SQL ' +
      'statements | non-2xx |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.kind} | ${r.rps.toFixed(0)} | ${r.p50} | ${r.p99} | ${(r.rps / baseline.rps).toFixed(2)}x | ` +
        `${r.serverCpuUs?.toFixed(0) ?? '-'} | ${r.dbUs?.toFixed(0) ?? '-'} | ${r.statements ?? '-'} | ${r.non2xx} |`,
    ),
  ];
}

/**
 * Runs a part of the benchmark in a Node process of its own and returns the JSON of its last line.
 * Its stdout also carries a log line for every decision (as a server's does), so it is read, not
 * shown; its progress comes through on stderr.
 */
function childJson(script: string, args: string[]): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, '--json', ...args], {
      env: process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let last = '';
    let tail = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (tail + chunk).split('\n');
      tail = lines.pop()!;
      for (const line of lines) if (line.startsWith('{"rows"') || line.startsWith('{"peers"')) last = line;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      for (const line of chunk.split('\n')) if (line.trim()) note(line.replace(/^\[bench\]\s*/, ''));
    });
    child.on('exit', (code) => {
      if (tail.startsWith('{"rows"') || tail.startsWith('{"peers"')) last = tail;
      if (code === 0 && last) resolve(JSON.parse(last));
      else reject(new Error(`${script} exited with ${code}`));
    });
  });
}

/** The same order protected by the libraries people would pick instead, and what each buys (tools/bench-peers.ts). */
async function peerSection(): Promise<string[]> {
  const { peers } = (await childJson('tools/bench-peers.ts', ['--seconds', String(Math.min(DURATION_S, 3))])) as {
    peers: PeerReport;
  };
  return [...peerTable(peers), ''];
}

function report(
  rows: Row[],
  storms: { same: number[]; different: number[] },
  core: CoreRow[],
  steps: CoreRow[],
  peers: string[],
  scale: { lines: string[]; reaper: ReaperFigures },
) {
  const baseline = rows.find((r) => r.kind === 'baseline')!;
  const first = rows.find((r) => r.kind === 'first')!;
  const replay = rows.find((r) => r.kind === 'replay')!;
  const ms = (v: number) => v.toFixed(0);
  const stormTable = [
    `| ${STORM_SIZE} concurrent requests | median ms | p90 ms | max ms |`,
    '| --- | ---: | ---: | ---: |',
    `| one key (1 runs, ${STORM_SIZE - 1} wait and replay) | ${ms(percentile(storms.same, 50))} | ` +
      `${ms(percentile(storms.same, 90))} | ${ms(Math.max(...storms.same))} |`,
    `| ${STORM_SIZE} different keys (${STORM_SIZE} run) | ${ms(percentile(storms.different, 50))} | ` +
      `${ms(percentile(storms.different, 90))} | ${ms(Math.max(...storms.different))} |`,
  ];
  const { reaper } = scale;
  const met = (ok: boolean) => (ok ? 'met' : 'MISSED');
  const firstRatio = first.rps / baseline.rps;
  const replayRatio = replay.rps / baseline.rps;
  const reaperLoss = 1 - reaper.paced / reaper.quiet;
  const targets = [
    `- first execution vs baseline: ${firstRatio.toFixed(2)}x (target at least ${TARGETS.first.toFixed(2)}x): ` +
      `${met(firstRatio >= TARGETS.first)}`,
    `- replay vs baseline: ${replayRatio.toFixed(2)}x (target at least ${TARGETS.replay.toFixed(2)}x): ` +
      `${met(replayRatio >= TARGETS.replay)}`,
    `- checkouts while the paced reaper runs: ${(reaper.paced / reaper.quiet).toFixed(2)}x their rate without it, ` +
      `${reaperLoss > 0 ? `a loss of ${(reaperLoss * 100).toFixed(0)}%` : 'no loss'} (target: a loss of at most ` +
      `${TARGETS.reaperLoss * 100}%): ${met(reaperLoss <= TARGETS.reaperLoss)}`,
    `- same-key storm median vs ${STORM_SIZE} different keys: ${ms(percentile(storms.same, 50))} vs ` +
      `${ms(percentile(storms.different, 50))} ms (target: no later): ` +
      `${met(percentile(storms.same, 50) <= percentile(storms.different, 50))}`,
    ...coreTargets(core),
  ];
  const machine =
    `${os.cpus()[0]?.model.trim()} × ${os.cpus().length} cores, ` +
    `${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`;
  const chartMax = Math.ceil((Math.max(...rows.map((r) => r.rps)) * 1.1) / 50) * 50;
  const text = [
    '# Benchmarks',
    '',
    'Generated by `npm run bench` (tools/bench.ts): a production build (`next start`, one process, pool of 20)',
    `on the embedded Postgres 17, autocannon with ${CONNECTIONS} connections for ${DURATION_S} s per kind, all on ` +
      `one machine.`,
    `Baseline and first executions: the median of ${ROUNDS} alternating rounds, after ${WARM_S} s of each not counted.`,
    '',
    `Machine: ${machine}. Run at ${new Date().toISOString()}.`,
    '',
    '## Targets',
    '',
    ...targets,
    '',
    '## Protected checkout against the unprotected baseline',
    '',
    ...table(rows),
    '',
    '```mermaid',
    'xychart-beta',
    '  title "Requests per second by kind (the baseline is the unprotected order)"',
    `  x-axis [${rows.map((r) => `"${r.kind}"`).join(', ')}]`,
    `  y-axis "requests/s" 0 --> ${chartMax}`,
    `  bar [${rows.map((r) => r.rps.toFixed(0)).join(', ')}]`,
    '```',
    '',
    `Every round, in requests/s: baseline ${rounds.baseline.map((v) => v.toFixed(0)).join(', ')}; first execution ` +
      `${rounds.first.map((v) => v.toFixed(0)).join(', ')}. On`,
    'this shared 2-core machine one round can move by a tenth either way, and the ratio with it: run the benchmark',
    'more than once before trusting a difference of a few points.',
    '',
    'SQL statements are counted at the driver for one request of each kind on a warm connection (BEGIN, COMMIT',
    "and ROLLBACK count). The baseline is the plain order: the checkout's procedure body (`placeOrder` in one",
    'transaction) behind an unkeyed procedure with nothing added (`bench.placeOrder`, on only for the benchmark).',
    "The lab's unprotected twin is a row of its own: it also checks that the caller is a lab customer.",
    '',
    '## Where the time goes, without HTTP',
    '',
    'The same order called in one Node process by 20 concurrent callers on a pool of 20: no framework, no HTTP, so',
    'the difference between the rows is the protection alone. Node CPU from `process.cpuUsage`, Postgres time and',
    'statements from `pg_stat_statements` (which counts BEGIN and COMMIT as statements too).',
    '',
    ...coreTable(core),
    '',
    '### Step by step',
    '',
    'A first execution built up one part at a time (`tsx tools/bench-core.ts --steps`): each row is the one above',
    'plus one part of the protection, measured in the same interleaved rounds (median of 3), so the difference',
    'between two rows is what that part costs. Statements as `pg_stat_statements` counts them: the last COMMIT',
    "also runs the deferred check of the order's reference to its key row, which it counts as one.",
    '',
    ...stepsTable(steps),
    '',
    'How these rows moved as the protection was made cheaper, and what was measured and left as it is:',
    '[docs/reference/costs.md](docs/reference/costs.md).',
    '',
    ...peers,
    '## Same-key storms',
    '',
    ...stormTable,
    '',
    ...scale.lines,
    '## Reading the numbers',
    '',
    ...readingTheNumbers(rows),
    '',
  ].join('\n');
  console.log(`\n${text}`);
  fs.writeFileSync(new URL('../BENCHMARKS.md', import.meta.url), text);
  console.log(`[bench ${clock()}] done; written to BENCHMARKS.md`);
  console.log(finalLine(firstRatio, replayRatio, core));
}

/** The last line of every run: through HTTP, first and replay against the plain order; without it, first. */
function finalLine(first: number, replay: number, core: CoreRow[]): string {
  const plain = core.find((r) => r.kind === 'baseline')!;
  const coreFirst = core.find((r) => r.kind === 'first')!;
  return (
    `first/baseline: ${first.toFixed(2)} replay/baseline: ${replay.toFixed(2)} ` +
    `nohttp-first/plain: ${(coreFirst.opsPerSecond / plain.opsPerSecond).toFixed(2)}`
  );
}

/** Without HTTP, against the plain order: first and replay ratios, and what a first execution adds. */
function coreTargets(core: CoreRow[]): string[] {
  const [plain, first, replay] = ['baseline', 'first', 'replay'].map((k) => core.find((r) => r.kind === k)!);
  const t = TARGETS.core;
  const met = (ok: boolean) => (ok ? 'met' : 'MISSED');
  const f = first!.opsPerSecond / plain!.opsPerSecond;
  const r = replay!.opsPerSecond / plain!.opsPerSecond;
  const node = first!.cpuUs - plain!.cpuUs;
  const pg = first!.dbUs - plain!.dbUs;
  return [
    `- without HTTP, first execution vs the plain order: ${f.toFixed(2)}x (target at least ${t.first.toFixed(2)}x): ` +
      `${met(f >= t.first)}`,
    `- without HTTP, replay vs the plain order: ${r.toFixed(2)}x (target at least ${t.replay.toFixed(2)}x): ` +
      `${met(r >= t.replay)}`,
    `- without HTTP, Node CPU a first execution adds: ${node.toFixed(0)} µs (target at most ${t.nodeUs} µs): ` +
      `${met(node <= t.nodeUs)}`,
    `- without HTTP, Postgres time a first execution adds: ${pg.toFixed(0)} µs (target at most ${t.postgresUs} µs): ` +
      `${met(pg <= t.postgresUs)}`,
  ];
}

/** The explanation under the tables, with this run's own figures in it. */
function readingTheNumbers(rows: Row[]): string[] {
  const kind = (k: string) => rows.find((r) => r.kind === k)!;
  const [baseline, first, replay] = [kind('baseline'), kind('first'), kind('replay')];
  const us = (v: number | undefined) => (v === undefined ? '?' : `${v.toFixed(0)} µs`);
  return [
    "A first execution makes as many writes to Postgres's socket as the plain order: the claim travels in the same",
    'packet as BEGIN, and the key row with its answer in the same packet as COMMIT (postgres.js pipelines queries',
    'issued together on one connection; `pipelinedTransaction` in server/idempotency/db.ts, whose test counts the',
    'writes). Both are prepared statements of fixed text: unprepared, postgres.js sends a statement with parameters',
    'in two steps and holds back whatever follows it.',
    '',
    'The claim is one statement: a transaction-scoped advisory lock on a hash of the key, tried, and a read of the',
    "key's row. The row is written once, at the end, with its answer: one INSERT, no UPDATE, no dead row left for",
    'vacuum. A duplicate that finds the key held waits on the lock, then reads the answer; a replay is the claim',
    'between BEGIN and ROLLBACK and writes nothing (its transaction never gets a transaction id; a test checks). The',
    "order's reference to its key is checked at COMMIT (the key row comes after the order).",
    '',
    `What a first execution still pays shows in the columns above: server CPU ${us(first.serverCpuUs)} against ` +
      `${us(baseline.serverCpuUs)},`,
    `Postgres ${us(first.dbUs)} per request against ${us(baseline.dbUs)}: the claim, the key row's insert (its three`,
    "indexes, and the rules its domains and its one CHECK hold), and the check of the order's reference to it.",
    '',
    `A replay (${us(replay.serverCpuUs)} of server CPU, ${us(replay.dbUs)} of Postgres) skips the procedure entirely.`,
    'The libraries compared above are faster because they keep the key outside the database that holds the order;',
    'their own rows of the table say what that costs when a process dies between the two.',
  ];
}

main().then(
  () => process.exit(0), // the in-process pool would otherwise keep the process alive
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
