/**
 * Exactly one charge per order, through the real Stripe SDK and the simulator over HTTP, on the
 * real Postgres. Faults at every phase boundary; each case ends with one order, one charge (or
 * none) and a clean reconcile.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createDatabase } from '../../db/client';
import { runMigrations } from '../../db/migrate';
import { idempotencyKeys } from '../../db/schema';
import { seedCatalog } from '../../db/seed';
import { type AppServer, startAppServer } from '../../dev/app-server';
import { listenerPort } from '../../dev/ports';
import { ensureDatabase } from '../../dev/postgres';
import { getDatabase } from '../db';
import { getEnv } from '../env.js';
import { clearFaults, planFault } from '../idempotency';
import { runCompleter } from '../jobs/completer';
import { deliverOutbox } from '../jobs/outbox';
import { log } from '../observability/log';
import { customerCookie, type HttpResult, http, planServerFault, scriptProviderFault } from '../testing';
import { reconcile } from './reconcile';

const { db, sql } = getDatabase();
const MUG = [{ productId: 'travel-mug', quantity: 2 }]; // 39.90
const sim = () => process.env.STRIPE_API_BASE!;

interface Intent {
  id: string;
  status: string;
  amount: number;
  metadata: Record<string, string>;
}
async function chargesOf(customer: string): Promise<Intent[]> {
  const ledger = (await (await fetch(`${sim()}/__sim/ledger`)).json()) as { payment_intents: Intent[] };
  return ledger.payment_intents.filter((pi) => pi.metadata.customer_id === customer && pi.status === 'succeeded');
}
async function refundsOf(paymentIntent: string): Promise<{ amount: number }[]> {
  const ledger = (await (await fetch(`${sim()}/__sim/ledger`)).json()) as {
    refunds: { amount: number; payment_intent: string }[];
  };
  return ledger.refunds.filter((r) => r.payment_intent === paymentIntent);
}
async function ordersOf(customer: string) {
  return sql<
    { id: string; status: string; total_cents: number }[]
  >`select id, status, total_cents from orders where customer_id = ${customer} order by created_at`;
}

afterEach(() => clearFaults());

/** The calls the provider received for this customer (the simulator logs every one). */
async function providerCalls(customer: string, path: string) {
  const { requests } = (await (await fetch(`${sim()}/__sim/requests`)).json()) as {
    requests: {
      method: string;
      path: string;
      idempotencyKey: string | null;
      replayed: boolean;
      status: number | null;
      metadata: Record<string, string>;
    }[];
  };
  return requests.filter((r) => r.method === 'POST' && r.path === path && r.metadata.customer_id === customer);
}

/** Moves the provider's clock forward (the simulator forgets idempotency keys after 24 hours). */
async function advanceProviderClock(hours: number) {
  await fetch(`${sim()}/__sim/clock`, { method: 'POST', body: JSON.stringify({ advanceSeconds: hours * 3600 }) });
}

function buy(customer: string, key: string, card = 'pm_card_visa', base?: string) {
  const headers = { cookie: customerCookie(customer), 'idempotency-key': key, 'content-type': 'application/json' };
  const body = { items: MUG, paymentMethod: card };
  if (!base) return http('POST', 'checkout.purchase', { headers, body });
  return fetch(`${base}/api/trpc/checkout.purchase`, { method: 'POST', headers, body: JSON.stringify(body) }).then(
    async (r): Promise<HttpResult> => ({ status: r.status, headers: r.headers, body: await r.json() }),
    (): HttpResult => ({ status: 0, headers: new Headers(), body: null }), // the connection died
  );
}

/** One paid order, one charge of its total, nothing left over at the provider. */
async function expectExactlyOnePaid(customer: string) {
  const orders = await ordersOf(customer);
  expect(orders.map((o) => o.status)).toEqual(['paid']);
  const charges = await chargesOf(customer);
  expect(charges).toHaveLength(1);
  expect(charges[0]!.amount).toBe(orders[0]!.total_cents);
  expect(await reconcile(db, { customerId: customer })).toEqual([]);
  return orders[0]!;
}

describe('purchase: the happy path', () => {
  it('charges once, marks the order paid, stages one receipt, and a replay charges nothing more', async () => {
    const customer = randomUUID();
    const key = randomUUID();
    const first = await buy(customer, key);
    expect(first.status).toBe(200);
    expect(first.body.result.data.status).toBe('paid');
    const again = await buy(customer, key);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body).toEqual(first.body);
    const order = await expectExactlyOnePaid(customer);

    await deliverOutbox(db);
    // as if the worker died before committing
    await sql`update outbox set delivered_at = null where dedupe_key = ${`receipt:${order.id}`}`;
    await deliverOutbox(db);
    const receipts = await sql`select body from receipts where order_id = ${order.id}`;
    expect(receipts).toHaveLength(1); // delivered at least once, received once
    expect(receipts[0]!.body).toContain('Total: 39.90 USD');
  });

  it('the provider gets a key derived from our key row, never the client key', async () => {
    const customer = randomUUID();
    const key = randomUUID();
    await buy(customer, key);
    const [row] = await sql`select id from idempotency_keys where scope = ${customer}`;
    const [pi] = await chargesOf(customer);
    expect(pi!.metadata.idempotency_key_id).toBe(row!.id);
    // The simulator remembers keys: the derived one answers with the same intent; the client's is unknown to it.
    const probe = (k: string) =>
      fetch(`${sim()}/v1/payment_intents`, {
        method: 'POST',
        headers: {
          authorization: 'Bearer sk_test_probe',
          'idempotency-key': k,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: 'amount=50&currency=usd&payment_method=pm_card_visa&confirm=true',
      });
    expect((await probe(key)).headers.get('idempotent-replayed')).toBeNull();
    expect((await probe(`${row!.id}:charge`)).status).toBe(400); // known key, other parameters: idempotency_error
  });
});

describe('purchase: declines are answers', () => {
  it('a decline is a stored, replayed 402; another card is a new key and one paid order', async () => {
    const customer = randomUUID();
    const key = randomUUID();
    const declined = await buy(customer, key, 'pm_card_chargeDeclinedInsufficientFunds');
    expect(declined.status).toBe(402);
    expect(declined.body.error.data.errorCode).toBe('PAYMENT_DECLINED');
    expect(declined.body.error.message).toContain('insufficient funds');
    const replay = await buy(customer, key, 'pm_card_chargeDeclinedInsufficientFunds');
    expect(replay.status).toBe(402);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect((await ordersOf(customer)).map((o) => o.status)).toEqual(['payment_failed']);
    expect(await chargesOf(customer)).toHaveLength(0);

    const paid = await buy(customer, randomUUID(), 'pm_card_visa');
    expect(paid.status).toBe(200);
    expect((await ordersOf(customer)).map((o) => o.status)).toEqual(['payment_failed', 'paid']);
    expect(await chargesOf(customer)).toHaveLength(1);
    expect(await reconcile(db, { customerId: customer })).toEqual([]);
  });
});

describe('purchase: provider faults release the key for a retry with the same key', () => {
  it.each([
    ['a provider 500 before charging', 'error_500'],
    ['a 429 (rate limited)', 'rate_limit'],
    ['a timeout after a successful charge', 'timeout_after_charge'],
    // The Stripe SDK itself retries once, with the same key, when a connection closes under it; a
    // second reset in a row is what reaches the app.
    ['two connection resets after a successful charge', 'reset_after_charge'],
  ])('%s: 503 PROVIDER_UNAVAILABLE, then the retry ends with one order and one charge', async (_name, fault) => {
    const customer = randomUUID();
    const key = randomUUID();
    await scriptProviderFault(customer, fault, { times: fault === 'reset_after_charge' ? 2 : 1 });
    const failed = await buy(customer, key, 'pm_card_visa');
    expect(failed.status).toBe(503);
    expect(failed.body.error.data.errorCode).toBe('PROVIDER_UNAVAILABLE');
    expect(failed.body.error.message).toMatch(/retry with the same Idempotency-Key/);
    const retried = await buy(customer, key);
    expect(retried.status).toBe(200);
    await expectExactlyOnePaid(customer);
    // What reached the provider: every charge call carried the same derived key, and after the
    // first one that did the work, the provider answered from its record instead of charging.
    const calls = await providerCalls(customer, '/v1/payment_intents');
    expect(new Set(calls.map((c) => c.idempotencyKey)).size).toBe(1);
    const worked = calls.filter((c) => !c.replayed && c.status !== 500 && c.status !== 429);
    expect(worked).toHaveLength(1);
  });
});

describe('purchase: the derived provider key is what stops a second charge', () => {
  it(
    "negative control: the lab's twin with random provider keys, after a timeout and a retry, charges " + 'twice',
    async () => {
      const { purchaseWith, providerWithRandomKeys } = await import('../lab/twins');
      const customer = randomUUID();
      const key = randomUUID();
      const request = () => ({
        db,
        customerId: customer,
        procedure: 'lab.purchaseWithRandomProviderKeys',
        headers: new Headers({ 'idempotency-key': key }),
        resHeaders: new Headers(),
      });
      await scriptProviderFault(customer, 'timeout_after_charge');
      await expect(
        purchaseWith(providerWithRandomKeys, request(), { items: MUG, paymentMethod: 'pm_card_visa' }),
      ).rejects.toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
      await purchaseWith(providerWithRandomKeys, request(), { items: MUG, paymentMethod: 'pm_card_visa' });
      expect(await chargesOf(customer)).toHaveLength(2);
      const problems = await reconcile(db, { customerId: customer });
      expect(problems.some((p) => p.includes('was charged 2 times') || p.includes('has no paid order recorded'))).toBe(
        true,
      );
    },
  );
});

describe('purchase: provider errors that are final end the flow, stored, never looping', () => {
  it(
    'a charge the provider refuses for good: a stored 409 PAYMENT_REFUSED_BY_PROVIDER, the order failed, nothing ' +
      'charged, the key completed',
    async () => {
      const customer = randomUUID();
      const key = randomUUID();
      await scriptProviderFault(customer, 'auth_error');
      const refused = await buy(customer, key);
      expect(refused.status).toBe(409);
      expect(refused.body.error.data.errorCode).toBe('PAYMENT_REFUSED_BY_PROVIDER');
      const replay = await buy(customer, key);
      expect(replay.headers.get('idempotent-replayed')).toBe('true');
      expect(replay.body.error.data.errorCode).toBe('PAYMENT_REFUSED_BY_PROVIDER');
      expect((await ordersOf(customer)).map((o) => o.status)).toEqual(['payment_failed']);
      expect(await chargesOf(customer)).toHaveLength(0);
      const [row] = await sql`select state from idempotency_keys where scope = ${customer}`;
      expect(row!.state).toBe('completed'); // nothing left for the completer to loop on
      expect(await runCompleter(db, { delaySeconds: 0, customerId: customer, backoffBaseSeconds: 0 })).toEqual({
        finished: 0,
        failed: 0,
        released: 0,
        gaveUp: 0,
      });
      expect(await reconcile(db, { customerId: customer })).toEqual([]);
    },
  );
});

describe('purchase: a resume after the provider forgot our key looks the payment up first', () => {
  async function chargedButUnrecorded(customer: string, key: string) {
    await scriptProviderFault(customer, 'timeout_after_charge');
    expect((await buy(customer, key)).status).toBe(503); // charged, the answer lost, the key released
    // A day and more passes: the provider forgets the key, and our key row is that old too.
    await advanceProviderClock(25);
    await sql`update idempotency_keys set created_at = created_at - interval '25 hours', expires_at = now() +
      interval '1 hour' where scope = ${customer}`;
  }

  it('resumed 25 hours later: it finds the charge by its metadata and records it; one payment intent', async () => {
    const customer = randomUUID();
    const key = randomUUID();
    await chargedButUnrecorded(customer, key);
    const resumed = await buy(customer, key);
    expect(resumed.status).toBe(200);
    await expectExactlyOnePaid(customer);
    // The resume searched and found the first charge: the provider was never asked to charge again.
    expect(await providerCalls(customer, '/v1/payment_intents')).toHaveLength(1);
  });

  it('negative control: the same resume without the lookup makes a second payment intent', async () => {
    const { purchaseWith, providerWithoutLookup } = await import('../lab/twins');
    const customer = randomUUID();
    const key = randomUUID();
    await chargedButUnrecorded(customer, key);
    const request = {
      db,
      customerId: customer,
      procedure: 'checkout.purchase',
      headers: new Headers({ 'idempotency-key': key }),
      resHeaders: new Headers(),
    };
    const resumed = (await purchaseWith(providerWithoutLookup, request, {
      items: MUG,
      paymentMethod: 'pm_card_visa',
    })) as { status: string };
    expect(resumed.status).toBe('paid');
    expect(await chargesOf(customer)).toHaveLength(2);
  });
});

describe('purchase: a cancelled checkout stays cancelled', () => {
  it(
    'the completer cancelled it and failed before storing its answer: a returning client is told, and never ' +
      'charged',
    async () => {
      const customer = randomUUID();
      const key = randomUUID();
      planFault({ scope: customer, boundary: 'inside:charge_attempted', action: 'drop-db' });
      expect((await buy(customer, key)).status).toBe(500); // abandoned before any charge
      // the completer dies right after cancelling
      planFault({ scope: customer, boundary: 'after:cancelled', action: 'fail' });
      await runCompleter(db, { delaySeconds: 0, customerId: customer, backoffBaseSeconds: 0 });
      expect((await ordersOf(customer)).map((o) => o.status)).toEqual(['cancelled']);

      const late = await buy(customer, key);
      expect(late.status).toBe(409);
      expect(late.body.error.data.errorCode).toBe('CHECKOUT_ABANDONED');
      expect(await chargesOf(customer)).toHaveLength(0);
      expect((await ordersOf(customer)).map((o) => o.status)).toEqual(['cancelled']);
    },
  );

  it('an order only moves along allowed transitions, enforced in SQL: cancelled never becomes paid', async () => {
    const customer = randomUUID();
    planFault({ scope: customer, boundary: 'inside:charge_attempted', action: 'drop-db' });
    await buy(customer, randomUUID());
    await runCompleter(db, { delaySeconds: 0, customerId: customer, backoffBaseSeconds: 0 });
    const [order] = await ordersOf(customer);
    expect(order!.status).toBe('cancelled');
    await expect(sql`update orders set status = 'paid' where id = ${order!.id}`).rejects.toMatchObject({
      code: '23514',
    });
    await expect(sql`update orders set status = 'pending_payment' where id = ${order!.id}`).rejects.toMatchObject({
      code: '23514',
    });
  });
});

describe('purchase: the database connection dropped inside each phase', () => {
  it.each(['order_created', 'charge_attempted', 'charge_recorded'])(
    'in %s: a 500, then the retry ends with one order and one charge',
    async (step) => {
      const customer = randomUUID();
      const key = randomUUID();
      planFault({ scope: customer, boundary: `inside:${step}`, action: 'drop-db' });
      const failed = await buy(customer, key, 'pm_card_visa');
      expect(failed.status).toBe(500);
      const retried = await buy(customer, key);
      expect(retried.status).toBe(200);
      await expectExactlyOnePaid(customer);
    },
  );
});

describe('purchase: the completer finishes what the client abandoned', () => {
  it('abandoned before the charge was attempted: the order is cancelled and nothing is charged', async () => {
    const customer = randomUUID();
    const key = randomUUID();
    planFault({ scope: customer, boundary: 'inside:charge_attempted', action: 'drop-db' });
    await buy(customer, key, 'pm_card_visa');
    expect(await runCompleter(db, { delaySeconds: 0, customerId: customer, backoffBaseSeconds: 0 })).toMatchObject({
      failed: 1,
      gaveUp: 0,
    });
    expect((await ordersOf(customer)).map((o) => o.status)).toEqual(['cancelled']);
    expect(await chargesOf(customer)).toHaveLength(0);
    const late = await buy(customer, key); // the client comes back after all: it learns what happened
    expect(late.status).toBe(409);
    expect(late.body.error.data.errorCode).toBe('CHECKOUT_ABANDONED');
    expect(await reconcile(db, { customerId: customer })).toEqual([]);
  });

  it('abandoned after a charge whose answer was lost: the order is paid with that one charge', async () => {
    const customer = randomUUID();
    const key = randomUUID();
    await scriptProviderFault(customer, 'timeout_after_charge');
    await buy(customer, key, 'pm_card_visa');
    expect(await chargesOf(customer)).toHaveLength(1); // money taken, order still pending
    expect((await ordersOf(customer)).map((o) => o.status)).toEqual(['pending_payment']);
    expect(await runCompleter(db, { delaySeconds: 0, customerId: customer, backoffBaseSeconds: 0 })).toMatchObject({
      finished: 1,
    });
    await expectExactlyOnePaid(customer);
    const late = await buy(customer, key);
    expect(late.status).toBe(200);
    expect(late.headers.get('idempotent-replayed')).toBe('true');
  });
});

describe('reconcile while checkouts finish', () => {
  it(
    'a checkout that ends between the read of its order and the read of its key is not reported as given ' + 'up',
    async () => {
      const customer = randomUUID();
      planFault({ scope: customer, boundary: 'inside:charge_attempted', action: 'drop-db' });
      await buy(customer, randomUUID());
      const [order] = await ordersOf(customer);
      expect(order!.status).toBe('pending_payment'); // its key still started: a checkout at work
      // The checkout ends (here: refused) in one commit, order and key together, exactly while
      // reconcile is between reading the pending orders and reading their keys.
      let committed = false;
      const finish = () =>
        sql
          .begin(async (tx) => {
            await tx`update orders set status = 'payment_failed' where id = ${order!.id}`;
            await tx`update idempotency_keys set state = 'completed', recovery_point = 'finished', response_status =
              402,
                   response_body = '{"ok":false}', completed_at = now(), locked_until = null where scope = ${customer}`;
          })
          .then(() => (committed = true));
      let finished = false;
      const racing = new Proxy(db, {
        get(target, prop, receiver) {
          const value = Reflect.get(target, prop, receiver);
          if (prop !== 'select') return value;
          return (...args: unknown[]) => {
            const builder = (value as (...a: unknown[]) => { from: (t: unknown) => unknown }).apply(target, args);
            const from = builder.from.bind(builder);
            builder.from = (table: unknown) => {
              const query = from(table);
              if (table !== idempotencyKeys || finished) return query;
              finished = true;
              // Postgres runs the key read only when it is awaited: let the checkout commit first.
              const run = (query as PromiseLike<unknown>).then.bind(query);
              // biome-ignore lint/suspicious/noThenProperty: the test delays exactly this query's execution
              (query as { then: unknown }).then = (ok: (v: unknown) => unknown, fail: (e: unknown) => unknown) =>
                finish().then(() => run(ok, fail), fail);
              return query;
            };
            return builder;
          };
        },
      });
      expect(await reconcile(racing, { customerId: customer })).toEqual([]);
      expect(committed).toBe(true); // the race was really run: the checkout ended between the two reads
      expect(await reconcile(db, { customerId: customer })).toEqual([]);
    },
  );
});

describe('the completer gives up instead of looping', () => {
  it(
    'a provider that keeps failing: after the last attempt the key gets a stored answer, the order stays for ' +
      'reconcile to list',
    async () => {
      const customer = randomUUID();
      const key = randomUUID();
      await scriptProviderFault(customer, 'error_500', { times: 100 });
      expect((await buy(customer, key)).status).toBe(503);
      const warnings = vi.spyOn(log(), 'warn');
      let outcome = { finished: 0, failed: 0, released: 0, gaveUp: 0 };
      let warned: unknown[][] = [];
      try {
        for (let run = 0; run < 5 && outcome.gaveUp === 0; run++)
          outcome = await runCompleter(db, {
            delaySeconds: 0,
            customerId: customer,
            maxRuns: 3,
            backoffBaseSeconds: 0,
          });
      } finally {
        warned = [...warnings.mock.calls]; // restoring clears them
        warnings.mockRestore();
      }
      expect(outcome.gaveUp).toBe(1);
      // An operator hears of it: one warning that names the procedure and the way to find the order.
      const gaveUp = warned.filter(([, message]) => String(message).startsWith('completer gave up'));
      expect(gaveUp).toHaveLength(1);
      expect(gaveUp[0]![0]).toMatchObject({ procedure: 'checkout.purchase', tries: 3 });
      expect(gaveUp[0]![1]).toContain('npm run reconcile');
      const [row] =
        await sql`select state, response_status, response_body from idempotency_keys where scope = ${customer}`;
      expect(row!.state).toBe('completed');
      expect(row!.response_body.error.errorCode).toBe('CHECKOUT_GAVE_UP');
      const late = await buy(customer, key);
      expect(late.headers.get('idempotent-replayed')).toBe('true');
      expect(late.body.error.data.errorCode).toBe('CHECKOUT_GAVE_UP');
      // Nothing more runs on its own; reconcile lists the order as needing a person.
      expect(
        await runCompleter(db, { delaySeconds: 0, customerId: customer, maxRuns: 3, backoffBaseSeconds: 0 }),
      ).toEqual({ finished: 0, failed: 0, released: 0, gaveUp: 0 });
      const [order] = await ordersOf(customer);
      expect(await reconcile(db, { customerId: customer })).toEqual([
        `order ${order!.id} is pending_payment and its checkout was given up: needs attention`,
      ]);
      // A day later the reaper deletes the answered key (only this one here: other files' keys are theirs).
      await sql`delete from idempotency_keys where scope = ${customer}`;
      expect(await reconcile(db, { customerId: customer })).toEqual([
        `order ${order!.id} is pending_payment and its key has expired: needs attention`,
      ]);
      await fetch(`${sim()}/__sim/faults`, { method: 'DELETE' });
    },
  );
});

describe('refunds', () => {
  async function paidOrder(customer: string): Promise<string> {
    const res = await buy(customer, randomUUID());
    return res.body.result.data.id;
  }
  const refund = (customer: string, key: string, orderId: string, amountCents: number) =>
    http('POST', 'orders.refund', {
      headers: { cookie: customerCookie(customer), 'idempotency-key': key },
      body: { orderId, amountCents },
    });

  it('partly, then the rest; more than what was paid is rejected with a clear error', async () => {
    const customer = randomUUID();
    const orderId = await paidOrder(customer);
    expect((await refund(customer, randomUUID(), orderId, 1000)).status).toBe(200);
    const over = await refund(customer, randomUUID(), orderId, 5000);
    expect(over.status).toBe(400);
    expect(over.body.error.data.errorCode).toBe('REFUND_EXCEEDS_PAYMENT');
    expect(over.body.error.message).toContain('at most 2990 cents');
    const rest = await refund(customer, randomUUID(), orderId, 2990);
    expect(rest.body.result.data.refundedCents).toBe(3990);
    const [pi] = await chargesOf(customer);
    expect((await refundsOf(pi!.id)).map((r) => r.amount)).toEqual([1000, 2990]);
    expect(await reconcile(db, { customerId: customer })).toEqual([]);
  });

  it(
    'a refund the provider refuses for good (the charge was refunded outside the app): a stored 409, the ' +
      'reservation undone',
    async () => {
      const customer = randomUUID();
      const orderId = await paidOrder(customer);
      const [pi] = await chargesOf(customer);
      // Someone refunds the whole charge in the provider's dashboard; the app does not know.
      const outside = await fetch(`${sim()}/v1/refunds`, {
        method: 'POST',
        headers: { authorization: 'Bearer sk_test_dashboard', 'content-type': 'application/x-www-form-urlencoded' },
        body: `payment_intent=${pi!.id}&amount=3990`,
      });
      expect(outside.status).toBe(200);

      const key = randomUUID();
      const refused = await refund(customer, key, orderId, 3990);
      expect(refused.status).toBe(409);
      expect(refused.body.error.data.errorCode).toBe('REFUND_REFUSED_BY_PROVIDER');
      const replay = await refund(customer, key, orderId, 3990);
      expect(replay.headers.get('idempotent-replayed')).toBe('true');
      const [order] = await sql`select refunded_cents from orders where id = ${orderId}`;
      expect(order!.refunded_cents).toBe(0); // the reservation was given back
      expect((await sql`select status from refunds where order_id = ${orderId}`).map((r) => r.status)).toEqual([
        'failed',
      ]);
      const [row] = await sql`select state from idempotency_keys where scope = ${customer} and key = ${key}`;
      expect(row!.state).toBe('completed');
      // What reconcile says is the truth: one refund the app never asked for, nothing pending.
      expect(await reconcile(db, { customerId: customer })).toEqual([
        `order ${orderId}: 0 cents refunded here, 3990 at the provider`,
      ]);
    },
  );

  it(
    '20 refunds of one order at once, each with its own key: all 20 go through, exactly the total, once ' + 'each',
    async () => {
      const customer = randomUUID();
      const orderId = await paidOrder(customer); // 3990
      const parts = Array.from({ length: 20 }, (_, i) => (i < 10 ? 200 : 199)); // 3990 in 20 parts
      const results = await Promise.all(parts.map((amount) => refund(customer, randomUUID(), orderId, amount)));
      expect(results.map((r) => r.status)).toEqual(Array(20).fill(200));
      const [order] = await sql`select refunded_cents from orders where id = ${orderId}`;
      expect(order!.refunded_cents).toBe(3990);
      const [pi] = await chargesOf(customer);
      const atProvider = await refundsOf(pi!.id);
      expect(atProvider).toHaveLength(20);
      expect(atProvider.reduce((sum, r) => sum + r.amount, 0)).toBe(3990);
      expect(await reconcile(db, { customerId: customer })).toEqual([]);
    },
  );

  it(
    'two refunds of 60% at once: one goes through, the other is refused as too large; the provider refunds ' + 'once',
    async () => {
      const customer = randomUUID();
      const orderId = await paidOrder(customer); // 3990
      const [a, b] = await Promise.all([
        refund(customer, randomUUID(), orderId, 2394),
        refund(customer, randomUUID(), orderId, 2394),
      ]);
      expect([a!.status, b!.status].sort()).toEqual([200, 400]);
      expect([a, b].find((r) => r!.status === 400)!.body.error.data.errorCode).toBe('REFUND_EXCEEDS_PAYMENT');
      const [pi] = await chargesOf(customer);
      expect((await refundsOf(pi!.id)).map((r) => r.amount)).toEqual([2394]);
      expect(await reconcile(db, { customerId: customer })).toEqual([]);
    },
  );

  it('a refund retried after a lost response refunds once', async () => {
    const customer = randomUUID();
    const orderId = await paidOrder(customer);
    const key = randomUUID();
    await scriptProviderFault(customer, 'timeout_after_charge', { path: '/v1/refunds' });
    const lost = await refund(customer, key, orderId, 1500);
    expect(lost.status).toBe(503);
    const retried = await refund(customer, key, orderId, 1500);
    expect(retried.status).toBe(200);
    expect(retried.body.result.data.refundedCents).toBe(1500);
    const [pi] = await chargesOf(customer);
    expect(await refundsOf(pi!.id)).toHaveLength(1);
    expect(await reconcile(db, { customerId: customer })).toEqual([]);
  });
});

describe('a server process killed at each phase boundary', () => {
  let server: AppServer | undefined;
  let PORT = 0; // a free port, chosen before the first start (dev/ports.ts)
  const env = () => ({
    DATABASE_URL: getEnv().DATABASE_URL,
    COOKIE_SECRET: getEnv().COOKIE_SECRET,
    STRIPE_API_BASE: sim(),
    ENABLE_TEST_HOOKS: '1',
    IDEMPOTENCY_LEASE_MS: '1000', // the dead holder's lease lapses quickly
    STRIPE_TIMEOUT_MS: '800', // shorter than the lease, as the server requires
    JOBS_INTERVAL_SECONDS: '0',
  });
  beforeAll(async () => {
    PORT = await listenerPort();
  });
  afterAll(() => server?.kill('SIGKILL'));

  it.each([
    ['after order_created', 'after:order_created'],
    ['after charge_attempted, before the provider call', 'after:charge_attempted'],
    ['after the charge, before it is recorded', 'inside:charge_recorded'],
    ['after charge_recorded, before the answer is stored', 'after:charge_recorded'],
  ])('SIGKILL %s: after a restart the retry ends with one order and one charge', async (_name, boundary) => {
    server = await startAppServer({ port: PORT, env: env() });
    const customer = randomUUID();
    const key = randomUUID();
    await planServerFault(server.url, { scope: customer, boundary, action: 'kill' });
    const died = await buy(customer, key, 'pm_card_visa', server.url);
    expect(died.status).toBe(0); // no answer: the process died
    await server.kill('SIGKILL');
    server = await startAppServer({ port: PORT, env: env() });
    let retried = await buy(customer, key, 'pm_card_visa', server.url);
    for (let i = 0; retried.status === 409 && i < 20; i++) {
      await new Promise((r) => setTimeout(r, Number(retried.headers.get('retry-after') ?? 1) * 250));
      retried = await buy(customer, key, 'pm_card_visa', server.url); // as the client does, honouring Retry-After
    }
    expect(retried.status).toBe(200);
    await expectExactlyOnePaid(customer);
    await server.kill();
  });
});

describe('a restarted instance that receives no request at all', () => {
  // A database of its own: this server runs its jobs (completer, outbox, settler) every second, and
  // they must not reach into the keys and messages of the test files running beside this one.
  let PORT = 0; // a free port, chosen before the first start (dev/ports.ts)
  // Named after this run's database, so a run that was interrupted before dropping it is cleaned
  // up by the next run of the same suite (and two suites on one server never share it).
  const name = `${new URL(getEnv().DATABASE_URL).pathname.slice(1).replace(/[^a-z0-9_]/gi, '_')}_restart`.slice(0, 63);
  const transactionPooler = getEnv().DATABASE_POOL_MODE === 'transaction';
  let server: AppServer | undefined;
  let scratch: ReturnType<typeof createDatabase> | undefined;
  afterAll(async () => {
    await server?.kill('SIGKILL');
    await scratch?.sql.end();
    await sql.unsafe(`drop database if exists ${name} with (force)`);
  });

  it(
    'finishes a checkout abandoned after the charge on its own: its jobs start with the process, not with a ' +
      'request',
    async () => {
      const url = await ensureDatabase(getEnv().DATABASE_URL, name, true); // dropped first if a run left it
      await runMigrations(url, { transactionPooler });
      await seedCatalog(url);
      scratch = createDatabase(url, { max: 2, transactionPooler });
      const env = {
        DATABASE_URL: url,
        COOKIE_SECRET: getEnv().COOKIE_SECRET,
        STRIPE_API_BASE: sim(),
        ENABLE_TEST_HOOKS: '1',
        IDEMPOTENCY_LEASE_MS: '1000',
        STRIPE_TIMEOUT_MS: '800',
        JOBS_INTERVAL_SECONDS: '0',
      };
      const ordersHere = (customer: string) =>
        scratch!.sql<
          { status: string; total_cents: number }[]
        >`select status, total_cents from orders where customer_id = ${customer}`;

      // The process dies after the provider charged and before the charge is recorded.
      PORT = await listenerPort();
      server = await startAppServer({ port: PORT, env });
      const customer = randomUUID();
      const key = randomUUID();
      await planServerFault(server.url, { scope: customer, boundary: 'inside:charge_recorded', action: 'kill' });
      expect((await buy(customer, key, 'pm_card_visa', server.url)).status).toBe(0);
      await server.kill('SIGKILL');
      expect((await ordersHere(customer)).map((o) => o.status)).toEqual(['pending_payment']);
      expect(await chargesOf(customer)).toHaveLength(1); // money taken, nothing here records it yet

      // The client never comes back, and nobody else sends this instance anything: the test waits for
      // its port to accept a connection, not for an answer.
      server = await startAppServer({
        port: PORT,
        env: { ...env, JOBS_INTERVAL_SECONDS: '1', COMPLETER_DELAY_SECONDS: '0' },
        ready: 'listening',
      });
      await expect
        .poll(async () => (await ordersHere(customer)).map((o) => o.status), {
          timeout: 30_000,
          message: 'the restarted instance did not finish the checkout',
        })
        .toEqual(['paid']);
      const [row] = await scratch.sql`select state, response_status from idempotency_keys where scope = ${customer}`;
      expect(row).toMatchObject({ state: 'completed', response_status: 200 });
      const charges = await chargesOf(customer);
      expect(charges).toHaveLength(1); // finished with the same derived key: that one charge, not a second
      expect(charges[0]!.amount).toBe((await ordersHere(customer))[0]!.total_cents);
      expect(await reconcile(scratch.db, { customerId: customer })).toEqual([]);

      // If the client does come back, it gets the answer the completer stored.
      const late = await buy(customer, key, 'pm_card_visa', server.url);
      expect(late.status).toBe(200);
      expect(late.headers.get('idempotent-replayed')).toBe('true');
    },
  );
});
