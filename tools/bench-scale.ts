/**
 * The scale-out half of `npm run bench` (called by tools/bench.ts):
 *   - protected checkout through 1 instance, and through 2 instances behind nginx;
 *   - the claim and replay statements' own time at the database with 10,000 and 1,000,000 keys;
 *   - the reaper on 1,000,000 expired keys while checkouts run: none, paced, unpaced, second by second.
 */
import { randomUUID } from 'node:crypto';
import autocannon from 'autocannon';
import { createDatabase, type Db } from '../db/client';
import {
  claimStatement,
  completeKeyStatement,
  REAP_BATCH_SIZE,
  REAP_REST_FACTOR,
  reapExpiredKeys,
} from '../server/idempotency';
import { startCluster } from './cluster';

const BODY = JSON.stringify({ items: [{ productId: 'travel-mug', quantity: 1 }] });
const SAMPLES = 2_000;
// The load runs this long before the first window: its first seconds are slower (connections, JIT).
const RAMP_S = 4;

/** Protected checkouts (fresh keys) for `seconds`, or until stopped, counting responses per second. */
function checkoutLoad(url: string, cookie: string, seconds: number) {
  let instance: autocannon.Instance | undefined;
  const perSecond: number[] = [];
  const started = performance.now();
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    instance = autocannon(
      {
        url: `${url}/api/trpc/checkout.placeOrder`,
        method: 'POST',
        connections: 20,
        duration: seconds,
        headers: { 'content-type': 'application/json', cookie },
        body: BODY,
        requests: [
          {
            setupRequest: (req: autocannon.Request) => ({
              ...req,
              headers: { ...req.headers, 'idempotency-key': randomUUID() },
            }),
          },
        ],
      },
      (err, result) => (err ? reject(err) : resolve(result)),
    );
    instance.on('response', () => {
      const second = Math.floor((performance.now() - started) / 1000);
      while (perSecond.length <= second) perSecond.push(0);
      perSecond[second]!++;
    });
  });
  return { done, stop: () => instance?.stop(), perSecond };
}

export interface ReaperFigures {
  /** Checkout requests/s with no reaper, with the paced one, with the unpaced one. */
  quiet: number;
  paced: number;
  unpaced: number;
  perSecond: number[];
  window: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * What the key's own statements cost in µs (median of SAMPLES), at the driver, one connection, no HTTP,
 * prepared as the request path sends them: for a new key, the claim (the lock and the read) and the
 * finished row's insert (what a first execution adds); for a key that exists, the claim, which finds the
 * row (what a replay pays). Both rolled back, to keep the table at its size.
 */
async function statementTimes(sql: ReturnType<typeof createDatabase>['sql'], existingKeys: string[]) {
  const fresh: number[] = [];
  const existing: number[] = [];
  const time = async (into: number[], key: string, insert: boolean) => {
    const k = { scope: 'bench', procedure: 'checkout.placeOrder', key };
    const claim = claimStatement(k);
    await sql
      .begin(async (tx) => {
        const t = performance.now();
        await tx.unsafe(claim.text, claim.values as never[], { prepare: true });
        if (insert) {
          const last = completeKeyStatement(randomUUID(), k, 'a'.repeat(64), 86_400_000, 200, '{"ok":true,"data":1}');
          await tx.unsafe(last.text, last.values as never[], { prepare: true });
        }
        into.push((performance.now() - t) * 1000);
        throw new Error('roll back, to keep the table at its size');
      })
      .catch(() => {});
  };
  for (let i = 0; i < SAMPLES; i++) {
    await time(fresh, randomUUID(), true);
    await time(existing, existingKeys[Math.floor(Math.random() * existingKeys.length)]!, false);
  }
  return { claim: median(fresh), replay: median(existing) };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Reaps until the signal, at the given pace; returns how many keys it deleted. */
async function reapUntil(db: Db, restFactor: number, signal: AbortSignal): Promise<number> {
  let total = 0;
  while (!signal.aborted) {
    total += await reapExpiredKeys(db, { restFactor, signal });
    if (!signal.aborted) await sleep(100); // all reaped: nothing more will expire in this window
  }
  return total;
}

async function fill(sql: ReturnType<typeof createDatabase>['sql'], from: number, to: number) {
  await sql`
    insert into idempotency_keys (scope, procedure, key, fingerprint, state, recovery_point, response_status,
      response_body, completed_at, expires_at)
    select 'bench', 'checkout.placeOrder', 'bench-' || i, md5(i::text) || md5((i + 1)::text), 'completed', 'finished',
      200,
           '{"ok":true,"data":{"id":"bench"}}'::json, now(), now() + interval '1 day'
    from generate_series(${from}::int, ${to}::int) as i`;
  await sql`vacuum analyze idempotency_keys`;
}

export async function scaleSections(options: {
  databaseUrl: string;
  env: Record<string, string>;
  singleUrl: string;
  cookie: string;
  seconds: number;
  /** Told when each part starts. */
  progress?: (what: string) => void;
}): Promise<{ lines: string[]; reaper: ReaperFigures }> {
  const lines: string[] = [];
  const progress = options.progress;
  let reaper: ReaperFigures | undefined;
  progress?.('scale-out: 1 instance, then 2 behind nginx');

  // 1 instance vs 2 behind nginx: the same protected checkout load.
  const one = await checkoutLoad(options.singleUrl, options.cookie, options.seconds).done;
  const cluster = await startCluster({ instances: 2, env: options.env });
  const two = await checkoutLoad(cluster.url, options.cookie, options.seconds).done;
  await cluster.stop();
  lines.push(
    '## Scale-out: protected checkout through 1 instance and through 2 behind nginx',
    '',
    '| setup | requests/s | p50 ms | p99 ms | non-2xx |',
    '| --- | ---: | ---: | ---: | ---: |',
    `| 1 instance | ${one.requests.average.toFixed(0)} | ${one.latency.p50} | ${one.latency.p99} | ` +
      `${one.non2xx + one.errors} |`,
    `| 2 instances + nginx | ${two.requests.average.toFixed(0)} | ${two.latency.p50} | ${two.latency.p99} | ` +
      `${two.non2xx + two.errors} |`,
    '',
    'Both instances, nginx, Postgres and the load generator share the same 2 cores, so a second instance adds',
    'capacity only where one instance left the CPU idle; on a machine per instance the second would add its own.',
    '',
  );

  // The keys table at 10,000 and at 1,000,000 rows.
  progress?.('the keys table at 10,000 and 1,000,000 rows (filling it takes about a minute)');
  const { sql, db } = createDatabase(options.databaseUrl, { max: 2 });
  try {
    await sql`delete from idempotency_keys where scope = 'bench'`;
    await fill(sql, 1, 10_000);
    const sample = (n: number) => Array.from({ length: 500 }, () => `bench-${1 + Math.floor(Math.random() * n)}`);
    const small = await statementTimes(sql, sample(10_000));
    const started = performance.now();
    for (let from = 10_001; from <= 1_000_000; from += 110_000)
      await fill(sql, from, Math.min(from + 109_999, 1_000_000));
    const fillSeconds = (performance.now() - started) / 1000;
    const large = await statementTimes(sql, sample(1_000_000));
    lines.push(
      '## The keys table at 10,000 and 1,000,000 rows',
      '',
      `Each statement timed on its own at the driver (one connection, no HTTP), median of ${SAMPLES}.`,
      '',
      '| statement | 10,000 keys µs | 1,000,000 keys µs | ratio (target at most 1.2x) |',
      '| --- | ---: | ---: | ---: |',
      `| claim and finished row of a new key (a first execution) | ${small.claim.toFixed(0)} | ` +
        `${large.claim.toFixed(0)} | ${(large.claim / small.claim).toFixed(2)}x |`,
      `| claim of a key that exists (a replay: the row read) | ${small.replay.toFixed(0)} | ` +
        `${large.replay.toFixed(0)} | ${(large.replay / small.replay).toFixed(2)}x |`,
      '',
      `(Filling the table to 1,000,000 rows took ${fillSeconds.toFixed(0)} s.)`,
      '',
    );

    // The reaper on 1,000,000 expired keys while checkouts continue: a quiet window, then the paced
    // reaper (as the servers run it), then the same reaper unpaced, in one continuous load.
    progress?.('the reaper under load: quiet, paced, unpaced');
    await sql`update idempotency_keys set expires_at = now() - interval '1 hour' where scope = 'bench'`;
    const window = Math.max(12, options.seconds);
    const load = checkoutLoad(options.singleUrl, options.cookie, RAMP_S + 3 * window);
    const zones: { name: string; deleted: number }[] = [];
    const reapFor = async (name: string, restFactor: number) => {
      const stop = new AbortController();
      const timer = setTimeout(() => stop.abort(), window * 1000);
      zones.push({ name, deleted: await reapUntil(db, restFactor, stop.signal) });
      clearTimeout(timer);
    };
    await sleep((RAMP_S + window) * 1000);
    await reapFor('paced (as the servers run it)', REAP_REST_FACTOR);
    await reapFor('unpaced (back to back)', 0);
    const result = await load.done;
    const perSecond = load.perSecond.slice(RAMP_S, RAMP_S + 3 * window);
    // Each zone's mean, leaving out its first and last second (the switch between zones).
    const zoneMean = (z: number) => {
      const xs = perSecond.slice(z * window + 1, (z + 1) * window - 1);
      return xs.reduce((a, b) => a + b, 0) / xs.length;
    };
    const quiet = zoneMean(0);
    reaper = {
      quiet,
      paced: zoneMean(1),
      unpaced: zoneMean(2),
      perSecond,
      window,
    };
    lines.push(
      '## The reaper on 1,000,000 expired keys while checkouts continue',
      '',
      `One load of protected checkouts for ${RAMP_S + 3 * window} s: ${RAMP_S} s to warm up (not counted), ${window} ` +
        `s with no reaper, then ${window} s with the reaper as`,
      `the servers run it (paced: it rests ${REAP_REST_FACTOR} times as long as each batch of ` +
        `${REAP_BATCH_SIZE.toLocaleString('en-US')} took), then ${window} s with the same`,
      "reaper running batches back to back. Each window's mean leaves out its first and last second.",
      '',
      '| checkouts | requests/s | vs no reaper | keys deleted | keys deleted/s |',
      '| --- | ---: | ---: | ---: | ---: |',
      `| no reaper | ${quiet.toFixed(0)} | 1.00x | 0 | 0 |`,
      ...zones.map(
        (z, i) =>
          `| reaper ${z.name} | ${zoneMean(i + 1).toFixed(0)} | ${(zoneMean(i + 1) / quiet).toFixed(2)}x | ` +
          `${z.deleted.toLocaleString('en-US')} | ${(z.deleted / window).toFixed(0)} |`,
      ),
      '',
      `Over the whole load: p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms.`,
      '',
      '```mermaid',
      'xychart-beta',
      '  title "Checkout requests per second: no reaper, paced reaper, unpaced reaper"',
      `  x-axis "second" [${perSecond.map((_, i) => i + 1).join(', ')}]`,
      `  y-axis "requests/s" 0 --> ${Math.ceil((Math.max(...perSecond) * 1.1) / 10) * 10}`,
      `  line [${perSecond.join(', ')}]`,
      '```',
      '',
    );
  } finally {
    await sql`delete from idempotency_keys where scope = 'bench'`;
    await sql.end();
  }
  return { lines, reaper: reaper! };
}
