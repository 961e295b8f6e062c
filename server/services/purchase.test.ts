/**
 * Exactly one charge per order, through the real Stripe SDK and the simulator over HTTP, on the
 * real Postgres. Faults at every phase boundary; each case ends with one order, one charge (or
 * none) and a clean reconcile.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startAppServer, type AppServer } from '../../dev/app-server';
import { getDatabase } from '../db';
import { getEnv } from '../env.js';
import { clearFaults, planFault } from '../idempotency/faults';
import { runCompleter } from '../jobs/completer';
import { deliverOutbox } from '../jobs/outbox';
import { customerCookie, http, planServerFault, scriptProviderFault, type HttpResult } from '../testing';
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
  const ledger = (await (await fetch(`${sim()}/__sim/ledger`)).json()) as { refunds: { amount: number; payment_intent: string }[] };
  return ledger.refunds.filter((r) => r.payment_intent === paymentIntent);
}
async function ordersOf(customer: string) {
  return sql<{ id: string; status: string; total_cents: number }[]>`select id, status, total_cents from orders where customer_id = ${customer} order by created_at`;
}

afterEach(() => clearFaults());

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
    await sql`update outbox set delivered_at = null where dedupe_key = ${`receipt:${order.id}`}`; // as if the worker died before committing
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
        headers: { authorization: 'Bearer sk_test_probe', 'idempotency-key': k, 'content-type': 'application/x-www-form-urlencoded' },
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
  });
});

describe('purchase: the database connection dropped inside each phase', () => {
  it.each(['order_created', 'charge_attempted', 'charge_recorded'])('in %s: a 500, then the retry ends with one order and one charge', async (step) => {
    const customer = randomUUID();
    const key = randomUUID();
    planFault({ scope: customer, boundary: `inside:${step}`, action: 'drop-db' });
    const failed = await buy(customer, key, 'pm_card_visa');
    expect(failed.status).toBe(500);
    const retried = await buy(customer, key);
    expect(retried.status).toBe(200);
    await expectExactlyOnePaid(customer);
  });
});

describe('purchase: the completer finishes what the client abandoned', () => {
  it('abandoned before the charge was attempted: the order is cancelled and nothing is charged', async () => {
    const customer = randomUUID();
    const key = randomUUID();
    planFault({ scope: customer, boundary: 'inside:charge_attempted', action: 'drop-db' });
    await buy(customer, key, 'pm_card_visa');
    expect(await runCompleter(db, { delaySeconds: 0, customerId: customer })).toMatchObject({ failed: 1 });
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
    expect(await runCompleter(db, { delaySeconds: 0, customerId: customer })).toMatchObject({ finished: 1 });
    await expectExactlyOnePaid(customer);
    const late = await buy(customer, key);
    expect(late.status).toBe(200);
    expect(late.headers.get('idempotent-replayed')).toBe('true');
  });
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
  const PORT = 3212;
  const env = () => ({
    DATABASE_URL: getEnv().DATABASE_URL,
    COOKIE_SECRET: getEnv().COOKIE_SECRET,
    STRIPE_API_BASE: sim(),
    ENABLE_TEST_HOOKS: '1',
    IDEMPOTENCY_LEASE_MS: '1000', // the dead holder's lease lapses quickly
    STRIPE_TIMEOUT_MS: '800', // shorter than the lease, as the server requires
    JOBS_INTERVAL_SECONDS: '0',
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

  it('negative control: with random provider keys, a timeout after the charge and a retry charge twice', async () => {
    server = await startAppServer({ port: PORT, env: { ...env(), UNSAFE_RANDOM_PROVIDER_KEYS: '1' } });
    const customer = randomUUID();
    const key = randomUUID();
    await scriptProviderFault(customer, 'timeout_after_charge');
    expect((await buy(customer, key, 'pm_card_visa', server.url)).status).toBe(503);
    expect((await buy(customer, key, 'pm_card_visa', server.url)).status).toBe(200);
    expect(await chargesOf(customer)).toHaveLength(2);
    const problems = await reconcile(db, { customerId: customer });
    expect(problems.some((p) => p.includes('was charged 2 times'))).toBe(true);
    await server.kill();
  });
});
