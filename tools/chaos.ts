/**
 * `npm run chaos`: many clients checking out at once against a cluster that keeps breaking, then
 * a checker over everything they saw and everything that was stored.
 *
 *   npm run chaos                                # 10,000 intents, 30% duplicated, concurrency 50
 *   npm run chaos -- --intents 1000              # the short run that `npm test` includes
 *   npm run chaos -- --intents 1000 --unsafe     # negative control: provider keys not derived, so
 *                                                # the checker must find double charges and fail
 *   npm run chaos:failover -- --intents 1000     # on a primary and a synchronous standby: the
 *                                                # primary dies mid-run and the standby is promoted
 *   npm run chaos:failover -- --async            # the same with asynchronous replication: counts
 *                                                # what the failover lost (a report, exit 0)
 *   npm run chaos:ha -- --intents 1000           # on etcd + 3 Postgres under Patroni behind HAProxy:
 *                                                # the leader is killed, frozen, switched over
 *   npm run chaos:ha -- --async                  # the same with synchronous_mode off (a report, exit 0)
 *
 * Clients behave like the real one: one key per intent, the same key on every retry (network
 * errors, timeouts, 5xx, 409 IN_USE with Retry-After), some retries sent to another instance, and
 * 30% of intents sent twice at once (a double-click, or a client retrying while its first request still runs). Every
 * attempt is recorded.
 * Meanwhile: app instances are SIGKILLed and restarted, Postgres is restarted once, and the
 * payment simulator fails 2% of calls with a 500 and times out 2% after charging.
 *
 * Then the completer finishes whatever clients gave up on, and the checker requires: at most one
 * order and one charge per key; identical answers for a key; every successful answer's order
 * exists and is paid; a clean reconcile. Loopback only, bounded in count and time.
 *
 * With --failover (on the replicated pair of `dev/with-db.ts --replicated`), instead of the Postgres
 * restart: the standby falls 2 s behind (the primary's WAL sender is paused, as a slow link would), the
 * primary is SIGKILLed, and the standby is promoted; the app instances find it by themselves (their
 * URL names both hosts). The checker adds: every key and order a client saw acknowledged still
 * exists with that answer, and the provider holds no charge without its order. With synchronous
 * replication a commit waits for the standby, so the lag stalls commits instead of losing them.
 *
 * With --ha (on the Patroni cluster of `dev/with-db.ts --ha`), the clients go through HAProxy, and
 * instead of instance kills and the restart, three events in turn (tools/chaos-ha.ts): the leader
 * killed, the leader frozen past its lease and woken with a client still on it, a planned switchover.
 * The clients keep going until all three are over. The same checker, plus: the woken old leader
 * acknowledged nothing; and per event, how long writes were refused and how many answers were retryable.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createDatabase } from '../db/client';
import { labCustomers } from '../db/schema';
import type { HaState } from '../dev/patroni';
import { restartEmbeddedPostgres } from '../dev/postgres';
import { killPrimary, pauseReplication, promoteStandby, type ReplicatedState, setSynchronous } from '../dev/replicated';
import { statePath } from '../dev/state';
import { signCustomerId } from '../server/customer';
import { getLauncherEnv } from '../server/env.js';
import { runCompleter } from '../server/jobs/completer';
import { settleWaiting } from '../server/jobs/settle';
import { reconcile } from '../server/services/reconcile';
import { parseFlags } from './args';
import {
  freezeLeader,
  type HaEvent,
  killLeader,
  makeAsynchronous,
  refusedWindow,
  startProbe,
  switchLeader,
} from './chaos-ha';
import { startCluster } from './cluster';

const flags = parseFlags('npm run chaos --', {
  intents: { type: 'number', default: 10_000, min: 1, max: 1_000_000, help: 'checkout intents to run' },
  duplicates: { type: 'number', default: 0.3, min: 0, max: 1, help: 'share of intents sent twice at once' },
  concurrency: { type: 'number', default: 50, min: 1, max: 500, help: 'clients at once' },
  minutes: { type: 'number', default: 10, min: 0.1, max: 120, help: 'stop starting intents after this long' },
  unsafe: { type: 'boolean', help: 'negative control: provider keys not derived; the checker must fail' },
  failover: { type: 'boolean', help: 'kill the primary mid-run and promote its standby (npm run chaos:failover)' },
  ha: { type: 'boolean', help: 'on the Patroni cluster: kill, freeze, switch over the leader (npm run chaos:ha)' },
  async: {
    type: 'boolean',
    help: 'with --failover or --ha: asynchronous replication; reports what was lost, exits 0',
  },
});
const INTENTS = flags.intents;
const DUPLICATE_RATE = flags.duplicates;
const CONCURRENCY = flags.concurrency;
const DEADLINE_MS = flags.minutes * 60_000;
const UNSAFE = flags.unsafe;
const HA = flags.ha;
// --ha measures the same losses as --failover: every failover check applies.
const FAILOVER = flags.failover || HA;
const ASYNC = flags.async;
// How far behind the standby falls before the primary dies, and how long a failover manager takes
// to decide the primary is gone and promote the standby.
const STANDBY_LAG_MS = 2_000;
const PROMOTION_DELAY_MS = 1_000;
// What the clients buy through: the shop's checkout, or for the negative control the lab's unsafe
// twin that sends the provider a random key on every call (server/lab/twins.ts).
const PURCHASE = UNSAFE ? 'lab.purchaseWithRandomProviderKeys' : 'checkout.purchase';
const CUSTOMERS = 100;
const PROVIDER_FAULTS = { error_500: 0.02, timeout_after_charge: 0.02 };
const WEBHOOKS = { duplicates: 0.3, maxDelayMs: 2_000 };
// Deliveries still retrying when the clients stop (each spans about 16 s at most) are let land.
const WEBHOOK_SETTLE_MS = 18_000;
// How long a client waits for one attempt's whole answer before it counts as lost.
const ATTEMPT_MS = 15_000;
const PRODUCTS = ['espresso-beans', 'pour-over-kit', 'burr-grinder', 'travel-mug', 'milk-frother'];

const databaseUrl = process.env.DATABASE_URL!;
const sim = process.env.STRIPE_API_BASE!;
if (!databaseUrl || !sim) throw new Error('run through `npm run chaos` (it provides the database and the simulator)');
if (ASYNC && !FAILOVER) {
  console.error('--async is a variant of --failover and --ha: run `npm run chaos:failover -- --async`');
  process.exit(2);
}
const replicatedStateFile = getLauncherEnv().REPLICATED_PG_STATE;
const haStateFile = getLauncherEnv().HA_STATE;
if (HA && !haStateFile) {
  console.error('--ha needs the Patroni cluster: run `npm run chaos:ha` (dev/with-db.ts --ha starts it)');
  process.exit(2);
}
const haState = haStateFile ? (JSON.parse(fs.readFileSync(haStateFile, 'utf8')) as HaState) : undefined;
if (flags.failover && !replicatedStateFile) {
  console.error(
    '--failover needs a primary and a standby: run `npm run chaos:failover` (dev/with-db.ts --replicated starts them)',
  );
  process.exit(2);
}
const replicated = replicatedStateFile
  ? (JSON.parse(fs.readFileSync(replicatedStateFile, 'utf8')) as ReplicatedState & { primaryAdminUrl: string })
  : undefined;
const COOKIE_SECRET = randomBytes(32).toString('hex');
// The app reads these through server/env.js when this process runs the completer and reconcile.
process.env.COOKIE_SECRET = COOKIE_SECRET;
process.env.IDEMPOTENCY_LEASE_MS = '3000';
process.env.STRIPE_TIMEOUT_MS = '2000';

interface Attempt {
  key: string;
  customer: string;
  payload: string;
  target: string;
  start: number;
  end: number;
  status: number; // 0: no answer (connection lost, timeout)
  replayed: boolean;
  body: string;
}

const history: Attempt[] = [];
const stats = {
  instanceKills: 0,
  postgresRestarts: 0,
  failovers: 0,
  gaveUp: 0,
  webhookDeliveries: 0,
  webhookEvents: 0,
};
/**
 * When Postgres was down (restarted by this run) or had no writable server (from the primary's
 * death to the standby's promotion): a webhook answered 500 then is right, and is sent again.
 */
const postgresDown: { from: number; to: number }[] = [];
/** When the primary was SIGKILLed (--failover), or the first event of --ha. */
let failoverAt: number | undefined;
/** The events of --ha, as they happened (tools/chaos-ha.ts). */
const haEvents: HaEvent[] = [];
/** Why the events of --ha stopped short, if they did. */
let haError: string | undefined;
/** Time under load before each event of --ha and after the last: each window is measured with traffic on. */
const HA_EVENT_SPACING_MS = 5_000;
/** Per event of --ha: its write-refused window and the retryable answers clients got meanwhile. */
let haReport: [string, string | number][] = [];
/** What the failover cost, counted by the checker (see failoverFindings). */
let failoverReport: [string, string | number][] = [];
/**
 * How long after a restart a server may still fail on a connection Postgres ended: postgres.js
 * reports the end on that connection's next use, seen here up to 12 s after a restart.
 */
const RECONNECT_GRACE_MS = 15_000;
const rand = (n: number) => Math.floor(Math.random() * n);

async function main() {
  const started = Date.now();
  const out = statePath('chaos'); // the history of every attempt, and each instance's log
  fs.mkdirSync(out, { recursive: true });
  if (replicated && ASYNC) {
    await setSynchronous(replicated.primaryAdminUrl, false);
    console.log('[chaos] replication is asynchronous for this run: a commit does not wait for the standby');
  }
  let probe: ReturnType<typeof startProbe> | undefined;
  if (haState) {
    if (ASYNC) {
      await makeAsynchronous(haState);
      console.log('[chaos] Patroni synchronous_mode is off for this run: a commit does not wait for a standby');
    }
    // The probe's table (tools/chaos-ha.ts): one row per write, in the test database only.
    const { sql } = createDatabase(databaseUrl, { max: 1 });
    await sql`create table if not exists chaos_probe
      (id bigserial primary key, note text, at timestamptz default now())`;
    await sql.end();
    probe = startProbe(databaseUrl);
  }
  const cluster = await startCluster({
    logDir: out,
    instances: 2,
    env: {
      DATABASE_URL: databaseUrl,
      STRIPE_API_BASE: sim,
      COOKIE_SECRET,
      STRIPE_TIMEOUT_MS: '2000',
      IDEMPOTENCY_LEASE_MS: '3000',
      IDEMPOTENCY_WAIT_MS: '5000',
      JOBS_INTERVAL_SECONDS: '0', // the completer runs at the end, here, where the checker sees it
      ...(UNSAFE ? { ENABLE_LAB: '1' } : {}),
    },
  });
  running = cluster;
  const targets = [cluster.url, ...cluster.ports.map((p) => `http://127.0.0.1:${p}`)];
  const customers: string[] = Array.from({ length: CUSTOMERS }, () => randomUUID());
  if (UNSAFE) {
    // The negative control buys through the lab's twin with random provider keys, which runs only
    // for the lab's own customers.
    const { db, sql } = createDatabase(databaseUrl, { max: 1 });
    await db.insert(labCustomers).values(customers.map((id) => ({ id })));
    await sql.end();
  }
  await setProviderFaults(PROVIDER_FAULTS);
  // Webhooks as Stripe sends them at their worst: to the load balancer, a third of them twice, each
  // up to 2 s late (so they overtake one another), while instances die under them.
  const webhookUrl = `${cluster.url}/api/webhooks/stripe`;
  await fetch(`${sim}/__sim/webhooks`, { method: 'POST', body: JSON.stringify({ url: webhookUrl }) });
  await simConfig({ faultRates: PROVIDER_FAULTS, settleAfterMs: 500, webhooks: WEBHOOKS });

  let done = 0;
  let stopFaults = false;
  let haDone = !haState;
  const faults = (async () => {
    if (haState) {
      // The three events in turn, each once the cluster has recovered from the one before.
      try {
        const log = (line: string) => console.log(line);
        for (const event of ['kill', 'freeze', 'switchover'] as const) {
          await sleep(HA_EVENT_SPACING_MS);
          const e =
            event === 'kill'
              ? await killLeader(haState, log)
              : event === 'freeze'
                ? await freezeLeader(haState, new URL(databaseUrl).pathname.slice(1), log)
                : await switchLeader(haState, log);
          haEvents.push(e);
          failoverAt ??= e.at;
          stats.failovers++;
        }
        await sleep(HA_EVENT_SPACING_MS); // the last event's window closes under load too
      } catch (err) {
        haError = err instanceof Error ? err.message : String(err);
        console.error(`[chaos:ha] ${haError}`);
      }
      haDone = true;
      return;
    }
    let restarted = false;
    while (!stopFaults) {
      await sleep(3000 + rand(4000));
      if (stopFaults) break;
      if (!restarted && done > INTENTS * 0.4) {
        restarted = true;
        if (FAILOVER && replicated) {
          await failover(replicated);
          continue;
        }
        const { EMBEDDED_PG_DATA, EMBEDDED_PG_BIN } = getLauncherEnv();
        if (EMBEDDED_PG_DATA && EMBEDDED_PG_BIN) {
          console.log('[chaos] restarting Postgres');
          const from = Date.now();
          restartEmbeddedPostgres({ dataDir: EMBEDDED_PG_DATA, binDir: EMBEDDED_PG_BIN });
          postgresDown.push({ from, to: Date.now() });
          stats.postgresRestarts++;
          console.log('[chaos] Postgres is back');
        } else console.log('[chaos] DATABASE_URL is not the embedded test cluster: Postgres restart skipped');
        continue;
      }
      const victim = rand(cluster.instances.length);
      await cluster.crash(victim, 300 + rand(700));
      stats.instanceKills++;
      console.log(`[chaos] killed and restarted instance ${victim}`);
    }
  })();

  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      // With --ha the clients keep buying until the three events are over, however many intents that is.
      while ((next < INTENTS || !haDone) && Date.now() - started < DEADLINE_MS) {
        next++;
        await intent(targets, customers[rand(CUSTOMERS)]!, started);
        done++;
        if (done % Math.max(100, INTENTS / 10) === 0)
          console.log(`[chaos] ${done}/${INTENTS} intents, ${history.length} attempts`);
      }
    }),
  );
  stopFaults = true;
  await faults;
  if (probe) haReport = haWindows(await probe.stop());
  await setProviderFaults({});
  // Let the webhooks in flight land (their retries span about 16 s) before the instances stop.
  await sleep(WEBHOOK_SETTLE_MS);
  await fetch(`${sim}/__sim/webhooks`, { method: 'DELETE', body: JSON.stringify({ url: webhookUrl }) });
  await simConfig({ faultRates: {}, settleAfterMs: 1_000, webhooks: { duplicates: 0, maxDelayMs: 0 } });
  await cluster.stop();
  running = undefined;

  // Finish what clients gave up on, as the completer would after its delay.
  const { db, sql } = createDatabase(databaseUrl, { max: 4 });
  for (let round = 0; round < 30; round++) {
    const [{ n }] = (await sql`select count(*)::int as n from idempotency_keys where state = 'started' and scope in
        ${sql(customers)}`) as unknown as [{ n: number }];
    if (n === 0) break;
    await runCompleter(db, { delaySeconds: 0, backoffBaseSeconds: 0 });
    await sleep(1000); // leases of killed holders lapse after 3 s
  }
  // Payments whose webhook never got through (an instance died under every retry): asked of the provider.
  await settleWaiting(db, { olderThanSeconds: 0, customerIds: customers });

  const violations = await check(db, sql, customers);
  const [{ orders, paid }] = (await sql`
    select count(*)::int as orders, count(*) filter (where status = 'paid')::int as paid
    from orders where customer_id in ${sql(customers)}`) as unknown as [{ orders: number; paid: number }];
  const ledger = (await (await fetch(`${sim}/__sim/ledger`)).json()) as {
    payment_intents: { status: string; metadata: Record<string, string> }[];
  };
  const mine = new Set(customers);
  const charges = ledger.payment_intents.filter(
    (pi) => pi.status === 'succeeded' && mine.has(pi.metadata.customer_id ?? ''),
  ).length;
  await sql.end();

  const keys = new Set(history.map((a) => a.key)).size;
  const summary: [string, string | number][] = [
    ['intents', keys],
    ['attempts', history.length],
    ['replays (Idempotent-Replayed)', history.filter((a) => a.replayed).length],
    [
      '409 IN_USE (waited past the bound)',
      history.filter((a) => a.status === 409 && a.body.includes('IDEMPOTENCY_KEY_IN_USE')).length,
    ],
    ['503 provider unavailable', history.filter((a) => a.status === 503).length],
    ['no answer (connection lost)', history.filter((a) => a.status === 0).length],
    ['intents a client gave up on', stats.gaveUp],
    ['faults: instances killed', stats.instanceKills],
    ['faults: Postgres restarts', stats.postgresRestarts],
    ...(HA
      ? ([
          [
            'faults: Patroni events (leader killed, frozen, switched over)',
            `${haEvents.length} of 3 (${ASYNC ? 'synchronous_mode off' : 'synchronous_mode strict'})`,
          ],
          ...haReport,
        ] as [string, string | number][])
      : FAILOVER
        ? ([
            [
              'faults: failovers (primary SIGKILLed, standby promoted)',
              `${stats.failovers} (${ASYNC ? 'asynchronous' : 'synchronous'} replication)`,
            ],
          ] as [string, string | number][])
        : []),
    [
      'faults: provider rates',
      `500 ${PROVIDER_FAULTS.error_500 * 100}%, timeout after charge ${PROVIDER_FAULTS.timeout_after_charge * 100}%`,
    ],
    ['webhook events / deliveries (duplicated, reordered)', `${stats.webhookEvents} / ${stats.webhookDeliveries}`],
    ['orders', orders],
    ['paid orders', paid],
    ['charges', charges],
    ...failoverReport,
    ['violations', violations.length],
    ['seconds', ((Date.now() - started) / 1000).toFixed(0)],
  ];
  console.log('\n| chaos run | |\n| --- | ---: |');
  for (const [k, v] of summary) console.log(`| ${k} | ${v} |`);
  for (const v of violations.slice(0, 50)) console.log(`VIOLATION ${v}`);
  fs.writeFileSync(path.join(out, 'history.jsonl'), history.map((a) => JSON.stringify(a)).join('\n'));
  console.log(
    `[chaos] history of every attempt: ${path.join(out, 'history.jsonl')}; instance logs: ` +
      `${path.join(out, 'instance-*.log')}`,
  );
  if (ASYNC) {
    // The asynchronous run is a measurement of what that setting risks, not a pass/fail check.
    console.log(
      `[chaos] asynchronous replication: ${violations.length} violations found and reported above (not a failure of ` +
        `this run)`,
    );
    process.exit(0);
  }
  process.exit(violations.length === 0 ? 0 : 1);
}

/**
 * The failover: the standby falls behind, the primary dies (SIGKILL, every process), and after the
 * time a failover manager would take, the standby is promoted. Nothing is told to the app.
 */
async function failover(state: ReplicatedState) {
  console.log(`[chaos] failover: the standby falls behind for ${STANDBY_LAG_MS / 1000} s`);
  pauseReplication(state); // never resumed: the primary dies with what it did not send
  await sleep(STANDBY_LAG_MS);
  const from = Date.now();
  failoverAt = from;
  killPrimary(state);
  console.log('[chaos] failover: primary SIGKILLed');
  await sleep(PROMOTION_DELAY_MS);
  promoteStandby(state);
  postgresDown.push({ from, to: Date.now() });
  stats.failovers++;
  console.log(
    `[chaos] failover: standby promoted, ${((Date.now() - from) / 1000).toFixed(1)} s after the primary died`,
  );
}

/**
 * Per event of --ha: how long writes through HAProxy were refused (from the probe), and how many
 * answers clients got meanwhile that told them to retry (no answer, 5xx, 409 IN_USE). The window also
 * excuses a webhook answered 500 then, as a Postgres restart does.
 */
function haWindows(probes: { at: number; end: number; ok: boolean }[]): [string, string | number][] {
  const lines: [string, string | number][] = [];
  haEvents.forEach((e, i) => {
    // A kill starts with the standbys starved for 2 s: commits stall from then on.
    const from = e.kind === 'kill' ? e.at - 2_500 : e.at;
    const until = haEvents[i + 1]?.at ?? Date.now();
    const w = refusedWindow(probes, from, until);
    if (w) postgresDown.push(w);
    const retryable = w
      ? history.filter(
          (a) =>
            a.end >= w.from &&
            a.end <= w.to + 1_000 &&
            (a.status === 0 || a.status >= 500 || (a.status === 409 && a.body.includes('IDEMPOTENCY_KEY_IN_USE'))),
        ).length
      : 0;
    const promoted = e.promotedAt ? `${((e.promotedAt - e.at) / 1000).toFixed(1)} s` : 'never';
    lines.push([
      `ha ${e.kind} (${e.from} -> ${e.to ?? '?'}): new leader after / writes refused for / retryable answers`,
      `${promoted} / ${w ? `${((w.to - w.from) / 1000).toFixed(1)} s` : '0 s'} / ${retryable}`,
    ]);
    if (e.kind === 'freeze')
      lines.push(['ha freeze: the woken old leader, a write from a client on it', e.zombieWriteOutcome!]);
  });
  return lines;
}

/**
 * After a failover: what clients were told and the database no longer has, and what the provider
 * charged for orders the database no longer has. Every acknowledged answer (200 or 402) must still
 * be the key's stored answer, its order must exist, and every charge must have its order; with
 * synchronous replication each of these is a violation. `charged twice` counts client intents with
 * two successful charges: a lost key row, claimed again by a retry, gets a new id, so the provider
 * key derived from it is new too, and the provider cannot tell the retry from a new payment.
 */
async function failoverFindings(sql: ReturnType<typeof createDatabase>['sql'], customers: string[]): Promise<string[]> {
  const findings: string[] = [];
  const byKey = new Map<string, Attempt[]>();
  for (const a of history) byKey.set(a.key, [...(byKey.get(a.key) ?? []), a]);
  const keyRows = await sql`
    select key, id, response_status, response_body::text as body from idempotency_keys
    where scope in ${sql(customers)} and procedure = ${PURCHASE}`;
  const rowByKey = new Map(keyRows.map((r) => [r.key as string, r]));
  const orderRows = await sql`
    select o.id, k.key from orders o left join idempotency_keys k on k.id = o.idempotency_key_id
    where o.customer_id in ${sql(customers)}`;
  const orderIds = new Set(orderRows.map((r) => r.id as string));
  const keyOfOrder = new Map<string, string>(
    orderRows.filter((r) => r.key).map((r) => [r.id as string, r.key as string]),
  );
  const orderIdOf = (body: string) => (JSON.parse(body) as { result: { data: { id: string } } }).result.data.id;
  let ackKeys = 0;
  let keysLost = 0;
  let keysRerun = 0;
  let ordersLost = 0;
  for (const [key, attempts] of byKey) {
    const ack = attempts.find((a) => a.status === 200 || a.status === 402);
    if (!ack) continue;
    ackKeys++;
    const ackOrder = ack.status === 200 ? orderIdOf(ack.body) : undefined;
    for (const a of attempts) {
      const id = a.status === 200 ? orderIdOf(a.body) : undefined;
      if (id && !keyOfOrder.has(id)) keyOfOrder.set(id, key); // orders the database lost, known from the answers
    }
    const row = rowByKey.get(key);
    if (!row || row.response_status === null) {
      keysLost++;
      findings.push(`key ${key}: acknowledged (${ack.status}), and its key row or its answer is gone`);
    } else if (ackOrder && !String(row.body).includes(ackOrder)) {
      keysRerun++;
      findings.push(
        `key ${key}: acknowledged with order ${ackOrder}, and now stores another answer (the key was lost and run ` +
          `again)`,
      );
    }
    if (ackOrder && !orderIds.has(ackOrder)) {
      ordersLost++;
      findings.push(`key ${key}: acknowledged order ${ackOrder} is gone`);
    }
  }
  const ledger = (await (await fetch(`${sim}/__sim/ledger`)).json()) as {
    payment_intents: { id: string; status: string; metadata: Record<string, string> }[];
  };
  const mine = new Set(customers);
  const charges = ledger.payment_intents.filter(
    (pi) => pi.status === 'succeeded' && mine.has(pi.metadata.customer_id ?? ''),
  );
  let orphanCharges = 0;
  const chargesPerIntent = new Map<string, number>();
  for (const pi of charges) {
    const orderId = pi.metadata.order_id ?? '';
    if (!orderIds.has(orderId)) {
      orphanCharges++;
      findings.push(`charge ${pi.id}: its order ${orderId} does not exist`);
    }
    const key = keyOfOrder.get(orderId);
    if (key) chargesPerIntent.set(key, (chargesPerIntent.get(key) ?? 0) + 1);
  }
  const chargedTwice = [...chargesPerIntent.values()].filter((n) => n > 1).length;
  // Intents acknowledged before the failover whose key row survived but lost later steps: resumed
  // afterwards (by a retry or the completer), their charge call carried the same derived key, and
  // the provider answered it with the first charge instead of charging again.
  const { requests } = (await (await fetch(`${sim}/__sim/requests`)).json()) as {
    requests: { at: number; path: string; idempotencyKey: string | null; replayed: boolean }[];
  };
  const replayedAfter = new Set(
    requests
      .filter((r) => r.replayed && r.path === '/v1/payment_intents' && r.at >= (failoverAt ?? Infinity))
      .map((r) => r.idempotencyKey),
  );
  let protectedRetries = 0;
  for (const [key, attempts] of byKey) {
    const ackedBefore = attempts.some((a) => (a.status === 200 || a.status === 402) && a.end < (failoverAt ?? 0));
    const row = rowByKey.get(key);
    if (ackedBefore && row && replayedAfter.has(`${row.id as string}:charge`)) protectedRetries++;
  }
  for (const [key, n] of chargesPerIntent) if (n > 1) findings.push(`key ${key}: one intent, ${n} charges`);
  failoverReport = [
    ['failover: acknowledged intents (200 or 402)', ackKeys],
    ['failover: acknowledged keys lost (row or answer gone)', keysLost],
    ['failover: acknowledged keys run again with another answer', keysRerun],
    ['failover: acknowledged orders lost', ordersLost],
    ['failover: charges without their order', orphanCharges],
    [
      'failover: acknowledged intents charged again after it, answered by the provider with the first charge (same ' +
        'derived key)',
      protectedRetries,
    ],
    ['failover: intents charged twice (derived provider key did not protect)', chargedTwice],
  ];
  return findings;
}

/** One checkout intent: one key; sometimes a second client sends it at the same time. */
async function intent(targets: string[], customer: string, started: number) {
  const key = randomUUID();
  const items = [...PRODUCTS]
    .sort(() => Math.random() - 0.5)
    .slice(0, 1 + rand(3))
    .map((productId) => ({ productId, quantity: 1 + rand(3) }));
  const card = Math.random();
  // Mostly cards that pay at once; some declined; some paid later, by webhook (3-D Secure, processing).
  const paymentMethod =
    card < 0.05
      ? 'pm_card_chargeDeclined'
      : card < 0.1
        ? 'pm_card_authenticationRequired'
        : card < 0.13
          ? 'pm_card_processing'
          : 'pm_card_visa';
  const payload = JSON.stringify({ items, paymentMethod });
  const clients = [client(targets, customer, key, payload, started)];
  if (Math.random() < DUPLICATE_RATE)
    clients.push(sleep(rand(200)).then(() => client(targets, customer, key, payload, started)));
  await Promise.all(clients);
}

/** A client's retry loop, like app/components/use-idempotent-mutation.ts. */
async function client(targets: string[], customer: string, key: string, payload: string, started: number) {
  const cookie = `customer=${signCustomerId(customer, COOKIE_SECRET)}`;
  let target = targets[0]!;
  for (let attempt = 1; attempt <= 12; attempt++) {
    const a: Attempt = {
      key,
      customer,
      payload,
      target,
      start: Date.now(),
      end: 0,
      status: 0,
      replayed: false,
      body: '',
    };
    let retryAfterMs = 0;
    // One attempt, its answer read to the end, within ATTEMPT_MS, whatever the connection does: the
    // abort stops the request, and the race ends the attempt even if a read ignores the abort (a run
    // once stalled with every client waiting while instances died under them).
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new Error(`no complete answer within ${ATTEMPT_MS} ms`)), ATTEMPT_MS);
    const given = new Promise<never>((_, reject) =>
      abort.signal.addEventListener('abort', () => reject(abort.signal.reason)),
    );
    given.catch(() => {});
    try {
      // What an attempt that lost the race reads later is dropped: the attempt already counts as lost.
      const answer = await Promise.race([
        given,
        (async () => {
          const res = await fetch(`${target}/api/trpc/${PURCHASE}`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', cookie, 'idempotency-key': key },
            body: payload,
            signal: abort.signal,
          });
          return { res, body: await res.text() };
        })(),
      ]);
      a.status = answer.res.status;
      a.replayed = answer.res.headers.get('idempotent-replayed') === 'true';
      a.body = answer.body;
      retryAfterMs = Math.min(5_000, Number(answer.res.headers.get('retry-after') ?? 0) * 1000 || 0);
    } catch {
      a.status = 0;
    } finally {
      clearTimeout(timer);
    }
    a.end = Date.now();
    history.push(a);
    const retryable =
      a.status === 0 || a.status >= 500 || (a.status === 409 && a.body.includes('IDEMPOTENCY_KEY_IN_USE'));
    if (!retryable) return;
    if (Date.now() - started > DEADLINE_MS) break;
    if (Math.random() < 0.5) target = targets[rand(targets.length)]!; // some retries go to another instance
    await sleep(Math.max(retryAfterMs, Math.min(2000, 100 * 2 ** attempt) * (0.5 + Math.random() / 2)));
  }
  stats.gaveUp++;
}

async function check(
  db: ReturnType<typeof createDatabase>['db'],
  sql: ReturnType<typeof createDatabase>['sql'],
  customers: string[],
): Promise<string[]> {
  const violations: string[] = [];
  const dupOrders = await sql`
    select idempotency_key_id, count(*)::int as n from orders
    where customer_id in ${sql(customers)} and idempotency_key_id is not null
    group by 1 having count(*) > 1`;
  for (const d of dupOrders) violations.push(`key row ${d.idempotency_key_id} has ${d.n} orders`);

  const byKey = new Map<string, Attempt[]>();
  for (const a of history) byKey.set(a.key, [...(byKey.get(a.key) ?? []), a]);
  const paidIds = new Set(
    (await sql`select id from orders where customer_id in ${sql(customers)} and status = 'paid'`).map(
      (r) => r.id as string,
    ),
  );
  for (const [key, attempts] of byKey) {
    const answers = attempts.filter((a) => a.status === 200 || a.status === 402);
    if (new Set(answers.map((a) => `${a.status} ${a.body.replace(/,"stack":"[^"]*"/, '')}`)).size > 1)
      violations.push(`key ${key}: different answers`);
    for (const a of attempts) {
      if (
        a.status >= 400 &&
        a.status < 500 &&
        a.status !== 402 &&
        !(a.status === 409 && a.body.includes('IDEMPOTENCY_KEY_IN_USE'))
      ) {
        violations.push(`key ${key}: unexpected ${a.status} ${a.body.slice(0, 160)}`);
      }
    }
    const ok = answers.find((a) => a.status === 200);
    if (ok) {
      const id = (JSON.parse(ok.body) as { result: { data: { id: string } } }).result.data.id;
      if (!paidIds.has(id)) violations.push(`key ${key}: answered with order ${id}, which is not a paid order`);
    }
  }
  for (const p of await reconcile(db, { customerIds: customers })) violations.push(`reconcile: ${p}`);
  if (HA && haEvents.length < 3)
    violations.push(`only ${haEvents.length} of the 3 events happened: ${haError ?? 'the run ended before them'}`);
  for (const e of haEvents)
    if (e.zombieWriteAcknowledged)
      violations.push(`freeze: the old leader ${e.from}, woken, acknowledged a write after ${e.to} took over`);
  if (FAILOVER)
    violations.push(
      ...(stats.failovers === 0 ? ['no failover happened: the run ended before it was due'] : []),
      ...(await failoverFindings(sql, customers)),
    );

  // Webhooks: each event applied once (its id recorded once, whatever the copies), and none ever
  // refused by the app: a 4xx would be a signature bug; a 500 while Postgres was up, a record moved
  // backwards (the database refuses that). A 500 while Postgres restarted is the right answer: the
  // provider sends the event again. 502 and no answer are the killed instances.
  const { events, deliveries } = (await (await fetch(`${sim}/__sim/events`)).json()) as {
    events: { event: { id: string; data: { object: { metadata?: Record<string, string> } } } }[];
    deliveries: { eventId: string; status: number | null; at: number }[];
  };
  const whileDown = (at: number) => postgresDown.some((w) => at >= w.from && at <= w.to + RECONNECT_GRACE_MS);
  const mine = new Set(customers);
  const ours = new Set(
    events.filter((e) => mine.has(e.event.data.object.metadata?.customer_id ?? '')).map((e) => e.event.id),
  );
  const received = new Map<string, string[]>();
  const refused = new Set<string>();
  const sinceRestart = (at: number) => {
    const last = postgresDown.filter((w) => w.to <= at).at(-1);
    return last ? ` (${((at - last.to) / 1000).toFixed(1)} s after Postgres came back)` : '';
  };
  for (const d of deliveries) {
    if (!ours.has(d.eventId)) continue;
    received.set(d.eventId, [
      ...(received.get(d.eventId) ?? []),
      `${d.status ?? 'no answer'}${d.status === 500 ? sinceRestart(d.at) : ''}`,
    ]);
    if (d.status !== null && ((d.status >= 400 && d.status < 500) || (d.status === 500 && !whileDown(d.at))))
      refused.add(d.eventId);
  }
  const recorded = ours.size ? await sql`select id from webhook_events where id in ${sql([...ours])}` : [];
  const recordedIds = new Set(recorded.map((r) => r.id as string));
  for (const [id, statuses] of received) {
    if (refused.has(id)) violations.push(`webhook ${id}: answered ${statuses.join(', ')}`);
    if (statuses.some((st) => st.startsWith('2')) && !recordedIds.has(id))
      violations.push(`webhook ${id}: acknowledged but never recorded`);
  }
  stats.webhookDeliveries = [...received.values()].reduce((n, st) => n + st.length, 0);
  stats.webhookEvents = ours.size;
  return violations;
}

async function setProviderFaults(faultRates: Record<string, number>) {
  await simConfig({ faultRates, settleAfterMs: 500, webhooks: WEBHOOKS });
}

async function simConfig(config: Record<string, unknown>) {
  await fetch(`${sim}/__sim/config`, { method: 'POST', body: JSON.stringify(config) });
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

/** The app instances while they run: stopped on the way out, whatever ends the run. */
let running: Awaited<ReturnType<typeof startCluster>> | undefined;
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => void (running?.stop() ?? Promise.resolve()).finally(() => process.exit(130)));

main().catch(async (err: unknown) => {
  console.error(err);
  await running?.stop();
  process.exit(1);
});
