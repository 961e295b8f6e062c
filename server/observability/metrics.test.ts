/** Metrics and logs: every decision moves its counter, and the scrape shows each family. */
import { randomUUID } from 'node:crypto';
import { sql as q } from 'drizzle-orm';
import { afterAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../../db/client';
import { getDatabase } from '../db';
import { parseServerEnv } from '../env.js';
import { countKeysInFlight, DECISIONS, onDecision } from '../idempotency';
import { customerCookie, http } from '../testing';
import { authorized, countDecision, handleMetrics, metrics } from './metrics';

const { sql } = getDatabase();
const stop = onDecision(countDecision);
afterAll(() => stop());

async function count(procedure: string, decision: string): Promise<number> {
  const { values } = await metrics().decisions.get();
  return values.find((v) => v.labels.procedure === procedure && v.labels.decision === decision)?.value ?? 0;
}

describe('metrics', () => {
  it('every decision the layer can make moves its counter, and its duration is observed', async () => {
    // The layer's own tests make each decision happen (server/idempotency/idempotency.test.ts); here,
    // each decision event reaches the counter under its own label.
    const procedure = `metrics.${randomUUID().slice(0, 8)}`;
    for (const decision of DECISIONS) countDecision({ decision, procedure, scope: 'metrics-test', ms: 12 });
    for (const d of DECISIONS)
      expect(await count(procedure, d), `idempotency_decisions_total{decision="${d}"}`).toBe(1);
    const { values } = await metrics().latency.get();
    const observed = values.filter(
      (v) => v.metricName === 'idempotency_request_duration_seconds_count' && v.labels.procedure === procedure,
    );
    expect(observed.map((v) => v.labels.decision).sort()).toEqual([...DECISIONS].sort());
  });

  it('a real replay of the shop reaches the counter', async () => {
    const customer = randomUUID();
    const key = randomUUID();
    const before = await count('checkout.placeOrder', 'replayed');
    const send = () =>
      http('POST', 'checkout.placeOrder', {
        headers: { cookie: customerCookie(customer), 'idempotency-key': key },
        body: { items: [{ productId: 'travel-mug', quantity: 1 }] },
      });
    expect((await send()).status).toBe(200);
    expect((await send()).headers.get('idempotent-replayed')).toBe('true');
    expect(await count('checkout.placeOrder', 'replayed')).toBe(before + 1);
  });

  it('GET /api/metrics answers in the Prometheus format, with every family', async () => {
    const res = await handleMetrics(new Request('http://localhost/api/metrics'));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    const text = await res.text();
    for (const family of [
      'idempotency_decisions_total',
      'idempotency_request_duration_seconds_bucket',
      'idempotency_keys_in_flight',
      'completer_runs_total',
      'outbox_backlog',
      'outbox_delivery_attempts_total',
      'webhook_events_total',
      'process_cpu_user_seconds_total',
    ]) {
      expect(text, family).toContain(family);
    }
    expect(text).toMatch(/idempotency_decisions_total\{procedure="checkout.placeOrder",decision="replayed"\} [1-9]/);
  });

  it(
    'the in-flight count is the started keys only: three started and two answered keys add exactly ' + 'three',
    async () => {
      // One snapshot (repeatable read): other files' keys come and go meanwhile, unseen here. On a
      // connection of its own without the app's per-transaction settings (behind PgBouncer they are a
      // transaction's first statement, and the isolation level must come before any).
      const own = createDatabase(process.env.DATABASE_URL!, {
        max: 1,
        transactionPooler: process.env.DATABASE_POOL_MODE === 'transaction',
      });
      let added: number | undefined;
      const undo = new Error('undo');
      await own.db
        .transaction(
          async (tx) => {
            const before = await countKeysInFlight(tx);
            const scope = randomUUID();
            await tx.execute(q`insert into idempotency_keys (scope, procedure, key, fingerprint, expires_at)
                             select ${scope}, 'metrics.test', 'k' || i, repeat('f', 64), now() + interval '1 hour'
                               from generate_series(1, 5) as i`);
            await tx.execute(q`update idempotency_keys set state = 'completed', recovery_point = 'finished',
              response_status = 200, response_body = '{}', completed_at = now()
                             where scope = ${scope} and key in ('k4', 'k5')`);
            added = (await countKeysInFlight(tx)) - before;
            throw undo; // nothing is kept
          },
          { isolationLevel: 'repeatable read' },
        )
        .catch((err: unknown) => {
          if (err !== undo) throw err;
        })
        .finally(() => own.sql.end());
      expect(added).toBe(3);
    },
  );

  it('the idempotency_keys_in_flight gauge is wired to that count: three started keys show in it', async () => {
    const scope = randomUUID();
    await sql`insert into idempotency_keys (scope, procedure, key, fingerprint, expires_at)
              select ${scope}, 'metrics.test', 'k' || i, repeat('f', 64), now() + interval '1 hour' from
                generate_series(1, 3) as i`; // state: started
    try {
      const { values } = await metrics().keysInFlight.get();
      expect(values[0]!.value).toBeGreaterThanOrEqual(3); // other test files may hold keys of their own meanwhile
    } finally {
      await sql`delete from idempotency_keys where scope = ${scope}`;
    }
  });

  it('in production, metrics need a token: ENABLE_METRICS=1 alone is refused at start', () => {
    const base = {
      DATABASE_URL: 'postgres://u@127.0.0.1/db',
      STRIPE_API_BASE: 'http://127.0.0.1:1',
      NODE_ENV: 'production',
      COOKIE_SECRET: 'x'.repeat(32),
      STRIPE_WEBHOOK_SECRET: 'whsec_production_secret',
    };
    expect(() => parseServerEnv({ ...base, ENABLE_METRICS: '1' })).toThrow(/METRICS_TOKEN: is required in production/);
    expect(parseServerEnv({ ...base }).ENABLE_METRICS).toBe(false);
    expect(parseServerEnv({ ...base, ENABLE_METRICS: '1', METRICS_TOKEN: 't'.repeat(20) }).ENABLE_METRICS).toBe(true);
  });

  it('with a token, a scrape without it or with another is refused', () => {
    const token = 'a-long-enough-metrics-token';
    const ask = (auth?: string) =>
      new Request('http://localhost/api/metrics', { headers: auth ? { authorization: auth } : {} });
    expect(authorized(ask(), token)).toBe(false);
    expect(authorized(ask('Bearer wrong-token-of-some-length'), token)).toBe(false);
    expect(authorized(ask(`Bearer ${token}`), token)).toBe(true);
  });
});
