/**
 * The jobs route, as a deploy without long-lived timers uses it: a production server with
 * ENABLE_JOBS=0, whose abandoned checkouts are finished by a scheduler calling /api/jobs alone.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../../db/client';
import { runMigrations } from '../../db/migrate';
import { seedCatalog } from '../../db/seed';
import { type AppServer, startAppServer } from '../../dev/app-server';
import { listenerPort } from '../../dev/ports';
import { ensureDatabase } from '../../dev/postgres';
import { getDatabase } from '../db';
import { getEnv, parseServerEnv } from '../env.js';
import { customerCookie, scriptProviderFault } from '../testing';
import { mayRunJobs } from './http';
import type { JobsRun } from './run';

const CRON_SECRET = 'cron-secret-for-the-jobs-route-test';
const sim = () => getEnv().STRIPE_API_BASE!;
const bearer = (secret: string) => new Request('http://x/api/jobs', { headers: { authorization: `Bearer ${secret}` } });

describe('who may call the jobs route', () => {
  it('in production: only a caller sending Authorization: Bearer <CRON_SECRET>', () => {
    const env = { NODE_ENV: 'production', CRON_SECRET };
    expect(mayRunJobs(bearer(CRON_SECRET), env)).toBe(true);
    expect(mayRunJobs(bearer(`${CRON_SECRET}x`), env)).toBe(false);
    expect(mayRunJobs(new Request('http://x/api/jobs'), env)).toBe(false);
  });

  it('in production without CRON_SECRET: nobody', () => {
    expect(mayRunJobs(new Request('http://x/api/jobs'), { NODE_ENV: 'production' })).toBe(false);
    expect(mayRunJobs(bearer('anything-at-all-here'), { NODE_ENV: 'production' })).toBe(false);
  });

  it('outside production without CRON_SECRET: anyone (as the metrics)', () => {
    expect(mayRunJobs(new Request('http://x/api/jobs'), { NODE_ENV: 'development' })).toBe(true);
  });

  it('a production server with its timers off and no CRON_SECRET does not start: nothing would run the jobs', () => {
    const production = {
      NODE_ENV: 'production',
      DATABASE_URL: 'postgres://u@127.0.0.1:5432/db',
      STRIPE_API_BASE: 'http://127.0.0.1:12111',
      COOKIE_SECRET: 'x'.repeat(32),
      STRIPE_WEBHOOK_SECRET: 'whsec_theShopsOwnSecret0123',
    };
    expect(() => parseServerEnv({ ...production, ENABLE_JOBS: '0' })).toThrow(/CRON_SECRET: is required in production/);
    expect(parseServerEnv({ ...production, ENABLE_JOBS: '0', CRON_SECRET }).ENABLE_JOBS).toBe(false);
    expect(parseServerEnv(production).ENABLE_JOBS).toBe(true);
  });
});

describe('abandoned checkouts finished through /api/jobs alone, with the timers off', () => {
  // A database of its own: the route runs every job over every key, and must not reach into the keys
  // of the test files running beside this one.
  const name = `${new URL(getEnv().DATABASE_URL).pathname.slice(1).replace(/[^a-z0-9_]/gi, '_')}_jobs`.slice(0, 63);
  const transactionPooler = getEnv().DATABASE_POOL_MODE === 'transaction';
  const { sql: admin } = getDatabase();
  let server: AppServer | undefined;
  let scratch: ReturnType<typeof createDatabase> | undefined;

  beforeAll(async () => {
    const url = await ensureDatabase(getEnv().DATABASE_URL, name, true);
    await runMigrations(url, { transactionPooler });
    await seedCatalog(url);
    scratch = createDatabase(url, { max: 2, transactionPooler });
    server = await startAppServer({
      port: await listenerPort(),
      env: {
        DATABASE_URL: url,
        COOKIE_SECRET: getEnv().COOKIE_SECRET,
        STRIPE_API_BASE: sim(),
        CRON_SECRET,
        ENABLE_JOBS: '0', // the switch under test: without it these timers would finish the checkouts in 1 s
        JOBS_INTERVAL_SECONDS: '1',
        IDEMPOTENCY_REAPER_INTERVAL_SECONDS: '1',
        COMPLETER_DELAY_SECONDS: '0',
        IDEMPOTENCY_LEASE_MS: '1000',
        STRIPE_TIMEOUT_MS: '800',
      },
    });
  });
  afterAll(async () => {
    await server?.kill('SIGKILL');
    await scratch?.sql.end();
    await admin.unsafe(`drop database if exists ${name} with (force)`);
  });

  const jobs = (authorization?: string) =>
    fetch(`${server!.url}/api/jobs`, { headers: authorization ? { authorization } : {} });

  it('two scheduler calls at once finish each checkout once: one order paid, one charge, one receipt', async () => {
    // Three customers each abandon a checkout mid-payment: the provider charged, its answer was lost,
    // and the client never came back.
    const customers = [randomUUID(), randomUUID(), randomUUID()];
    for (const customer of customers) {
      await scriptProviderFault(customer, 'timeout_after_charge');
      const res = await fetch(`${server!.url}/api/trpc/checkout.purchase`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          cookie: customerCookie(customer),
          'idempotency-key': randomUUID(),
        },
        body: JSON.stringify({ items: [{ productId: 'travel-mug', quantity: 1 }], paymentMethod: 'pm_card_visa' }),
      });
      expect(res.status).toBeGreaterThanOrEqual(500); // the answer was lost: retryable, and nobody retries
    }
    const statuses = async () =>
      (
        await scratch!.sql<{ status: string }[]>`
          select status from orders where customer_id in ${scratch!.sql(customers)} order by status`
      ).map((r) => r.status);
    // Leases lapse after 1 s; the timers would have run twice by 3 s. ENABLE_JOBS=0: nothing moved.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(await statuses()).toEqual(['pending_payment', 'pending_payment', 'pending_payment']);

    expect((await jobs()).status).toBe(401);
    expect((await jobs(`Bearer ${CRON_SECRET}-wrong`)).status).toBe(401);
    expect(await statuses()).toEqual(['pending_payment', 'pending_payment', 'pending_payment']);

    // Two cron hits in the same instant: each key is taken over by one of them only.
    const runs = (await Promise.all(
      [jobs(`Bearer ${CRON_SECRET}`), jobs(`Bearer ${CRON_SECRET}`)].map(async (p) => {
        const res = await p;
        expect(res.status).toBe(200);
        return res.json();
      }),
    )) as JobsRun[];
    // Every key was taken over by one call only: nothing was tried, fenced and released by the other.
    const handled = runs.map((r) => r.completer.finished + r.completer.failed + r.completer.released);
    expect(handled[0]! + handled[1]!).toBe(3);
    expect(runs[0]!.completer.finished + runs[1]!.completer.finished).toBe(3);
    expect(runs[0]!.outbox.delivered + runs[1]!.outbox.delivered).toBeLessThanOrEqual(3);
    for (const run of runs) expect(run.ms).toBeLessThan(20_000);
    expect(await statuses()).toEqual(['paid', 'paid', 'paid']);

    // One charge per checkout: the completer finished with the same derived provider key.
    const ledger = (await (await fetch(`${sim()}/__sim/ledger`)).json()) as {
      payment_intents: { status: string; metadata: Record<string, string> }[];
    };
    for (const customer of customers) {
      const charges = ledger.payment_intents.filter(
        (pi) => pi.metadata.customer_id === customer && pi.status === 'succeeded',
      );
      expect(charges).toHaveLength(1);
    }
    // The receipts: staged once per paid order, delivered by a later call if not by these.
    expect((await jobs(`Bearer ${CRON_SECRET}`)).status).toBe(200);
    const [{ n }] = (await scratch!.sql`
      select count(*)::int as n from receipts r join orders o on o.id = r.order_id
      where o.customer_id in ${scratch!.sql(customers)}`) as unknown as [{ n: number }];
    expect(n).toBe(3);
  }, 60_000);
});
