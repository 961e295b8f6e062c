/**
 * The scale-out half of `npm run bench` (called by tools/bench.ts):
 *   - protected checkout through 1 instance, and through 2 instances behind nginx;
 *   - the claim and replay statements' own time at the database with 10,000 and 1,000,000 keys;
 *   - the reaper clearing 1,000,000 expired keys while checkouts run, and their p99 meanwhile.
 */
import { randomUUID } from 'node:crypto';
import autocannon from 'autocannon';
import { createDatabase } from '../db/client';
import { reapExpiredKeys } from '../server/idempotency/reaper';
import { startCluster } from './cluster';

const BODY = JSON.stringify({ items: [{ productId: 'travel-mug', quantity: 1 }] });
const SAMPLES = 2_000;

/** Protected checkouts (fresh keys) for `seconds`, or until stopped. */
function checkoutLoad(url: string, cookie: string, seconds: number) {
  let instance: autocannon.Instance | undefined;
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    instance = autocannon(
      {
        url: `${url}/api/trpc/checkout.placeOrder`,
        method: 'POST',
        connections: 20,
        duration: seconds,
        headers: { 'content-type': 'application/json', cookie },
        body: BODY,
        requests: [{ setupRequest: (req: autocannon.Request) => ({ ...req, headers: { ...req.headers, 'idempotency-key': randomUUID() } }) }],
      },
      (err, result) => (err ? reject(err) : resolve(result)),
    );
  });
  return { done, stop: () => instance?.stop() };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Per-statement time in µs (median of SAMPLES), measured at the driver, one connection, no HTTP. */
async function statementTimes(sql: ReturnType<typeof createDatabase>['sql'], existingKeys: string[]) {
  const claim: number[] = [];
  const replay: number[] = [];
  const scope = randomUUID();
  for (let i = 0; i < SAMPLES; i++) {
    await sql
      .begin(async (tx) => {
        const t = performance.now();
        await tx`insert into idempotency_keys (scope, procedure, key, fingerprint, expires_at)
                 select ${scope}, 'checkout.placeOrder', ${randomUUID()}, ${'a'.repeat(64)}, now() + make_interval(secs => 86400)
                 from (select set_config('lock_timeout', '10000ms', true)) as bounded_wait
                 on conflict (scope, procedure, key) do nothing returning id`;
        claim.push((performance.now() - t) * 1000);
        throw new Error('roll back, to keep the table at its size');
      })
      .catch(() => {});
    const key = existingKeys[Math.floor(Math.random() * existingKeys.length)]!;
    const t = performance.now();
    await sql`select * from idempotency_keys where scope = ${'bench'} and procedure = 'checkout.placeOrder' and key = ${key} and expires_at > now() limit 1`;
    replay.push((performance.now() - t) * 1000);
  }
  return { claim: median(claim), replay: median(replay) };
}

async function fill(sql: ReturnType<typeof createDatabase>['sql'], from: number, to: number) {
  await sql`
    insert into idempotency_keys (scope, procedure, key, fingerprint, state, recovery_point, response_status, response_body, completed_at, expires_at)
    select 'bench', 'checkout.placeOrder', 'bench-' || i, md5(i::text) || md5((i + 1)::text), 'completed', 'finished', 200,
           '{"ok":true,"data":{"id":"bench"}}'::json, now(), now() + interval '1 day'
    from generate_series(${from}::int, ${to}::int) as i`;
  await sql`vacuum analyze idempotency_keys`;
}

export async function scaleSections(options: { databaseUrl: string; env: Record<string, string>; singleUrl: string; cookie: string; seconds: number }): Promise<string[]> {
  const lines: string[] = [];

  // 1 instance vs 2 behind nginx: the same protected checkout load.
  const one = await checkoutLoad(options.singleUrl, options.cookie, options.seconds).done;
  const cluster = await startCluster({ instances: 2, basePort: 3311, lbPort: 8311, env: options.env });
  const two = await checkoutLoad(cluster.url, options.cookie, options.seconds).done;
  await cluster.stop();
  lines.push(
    '## Scale-out: protected checkout through 1 instance and through 2 behind nginx',
    '',
    '| setup | requests/s | p50 ms | p99 ms | non-2xx |',
    '| --- | ---: | ---: | ---: | ---: |',
    `| 1 instance | ${one.requests.average.toFixed(0)} | ${one.latency.p50} | ${one.latency.p99} | ${one.non2xx + one.errors} |`,
    `| 2 instances + nginx | ${two.requests.average.toFixed(0)} | ${two.latency.p50} | ${two.latency.p99} | ${two.non2xx + two.errors} |`,
    '',
    'Both instances, nginx, Postgres and the load generator share the same 2 cores, so a second instance adds',
    'capacity only where one instance left the CPU idle; on a machine per instance the second would add its own.',
    '',
  );

  // The keys table at 10,000 and at 1,000,000 rows.
  const { sql, db } = createDatabase(options.databaseUrl, { max: 2 });
  try {
    await sql`delete from idempotency_keys where scope = 'bench'`;
    await fill(sql, 1, 10_000);
    const sample = (n: number) => Array.from({ length: 500 }, () => `bench-${1 + Math.floor(Math.random() * n)}`);
    const small = await statementTimes(sql, sample(10_000));
    const started = performance.now();
    for (let from = 10_001; from <= 1_000_000; from += 110_000) await fill(sql, from, Math.min(from + 109_999, 1_000_000));
    const fillSeconds = (performance.now() - started) / 1000;
    const large = await statementTimes(sql, sample(1_000_000));
    lines.push(
      '## The keys table at 10,000 and 1,000,000 rows',
      '',
      `Each statement timed on its own at the driver (one connection, no HTTP), median of ${SAMPLES}.`,
      '',
      '| statement | 10,000 keys µs | 1,000,000 keys µs | ratio (target at most 1.2x) |',
      '| --- | ---: | ---: | ---: |',
      `| claim (INSERT … ON CONFLICT, rolled back) | ${small.claim.toFixed(0)} | ${large.claim.toFixed(0)} | ${(large.claim / small.claim).toFixed(2)}x |`,
      `| replay lookup (SELECT by scope, procedure, key) | ${small.replay.toFixed(0)} | ${large.replay.toFixed(0)} | ${(large.replay / small.replay).toFixed(2)}x |`,
      '',
      `(Filling the table to 1,000,000 rows took ${fillSeconds.toFixed(0)} s.)`,
      '',
    );

    // The reaper on 1,000,000 expired keys while checkouts continue.
    const quiet = await checkoutLoad(options.singleUrl, options.cookie, options.seconds).done;
    await sql`update idempotency_keys set expires_at = now() - interval '1 hour' where scope = 'bench'`;
    const load = checkoutLoad(options.singleUrl, options.cookie, 120);
    const t = performance.now();
    const deleted = await reapExpiredKeys(db);
    const reapSeconds = (performance.now() - t) / 1000;
    load.stop();
    const during = await load.done;
    lines.push(
      '## The reaper on 1,000,000 expired keys while checkouts continue',
      '',
      `The reaper deleted ${deleted.toLocaleString('en-US')} keys in ${reapSeconds.toFixed(1)} s (batches of 1,000) while protected checkouts ran.`,
      '',
      '| checkouts | requests/s | p50 ms | p99 ms |',
      '| --- | ---: | ---: | ---: |',
      `| without the reaper | ${quiet.requests.average.toFixed(0)} | ${quiet.latency.p50} | ${quiet.latency.p99} |`,
      `| while it reaps | ${during.requests.average.toFixed(0)} | ${during.latency.p50} | ${during.latency.p99} |`,
      '',
    );
  } finally {
    await sql`delete from idempotency_keys where scope = 'bench'`;
    await sql.end();
  }
  return lines;
}
