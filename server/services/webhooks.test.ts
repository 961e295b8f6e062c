/**
 * Webhooks, through the app's handler, with events the payment simulator made and signed: checked
 * signatures, each event applied once however often it comes, and no order or refund ever moved
 * backwards whatever the order of arrival.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signature } from '../../simulator/webhooks';
import { getDatabase } from '../db';
import { getEnv } from '../env.js';
import { metrics } from '../observability/metrics';
import {
  customerCookie,
  deliverWebhook,
  http,
  providerEvents,
  type SignedEvent,
  scriptProviderFault,
} from '../testing';
import { reconcile } from './reconcile';
import { parseEvent } from './webhooks';

const { db, sql } = getDatabase();
const sim = () => getEnv().STRIPE_API_BASE!;
const simConfig = (config: Record<string, unknown>) =>
  fetch(`${sim()}/__sim/config`, { method: 'POST', body: JSON.stringify(config) });

// Payments and refunds that wait settle only when a test says so here, so each test picks the order.
beforeAll(() => simConfig({ settleAfterMs: null }));
afterAll(() => simConfig({ settleAfterMs: 1_000 }));

async function buy(customer: string, card: string) {
  const res = await http('POST', 'checkout.purchase', {
    headers: { cookie: customerCookie(customer), 'idempotency-key': randomUUID() },
    body: { items: [{ productId: 'travel-mug', quantity: 2 }], paymentMethod: card },
  });
  expect(res.status).toBe(200);
  return res.body.result.data as { id: string; status: string };
}
const refund = (customer: string, orderId: string, amountCents: number) =>
  http('POST', 'orders.refund', {
    headers: { cookie: customerCookie(customer), 'idempotency-key': randomUUID() },
    body: { orderId, amountCents },
  });
const settle = (kind: 'payment_intents' | 'refunds', id: string, outcome: 'succeeded' | 'failed') =>
  fetch(`${sim()}/__sim/${kind}/${id}/settle`, { method: 'POST', body: JSON.stringify({ outcome }) });
const orderStatus = async (id: string) =>
  (await sql`select status, refunded_cents from orders where id = ${id}`)[0] as {
    status: string;
    refunded_cents: number;
  };
const recorded = async (eventId: string) => sql`select outcome from webhook_events where id = ${eventId}`;
const paymentIntentOf = async (orderId: string) =>
  (await sql`select payment_intent_id from orders where id = ${orderId}`)[0]!.payment_intent_id as string;
const ofType = (events: SignedEvent[], type: string) => events.filter((e) => e.event.type === type);

/**
 * A customer with an order waiting for 3-D Secure, then settled at the provider: its events, in the order they
 * happened.
 */
async function waitingThenSettled(outcome: 'succeeded' | 'failed') {
  const customer = randomUUID();
  const order = await buy(customer, 'pm_card_authenticationRequired');
  expect(order.status).toBe('payment_processing'); // not paid: the bank has not confirmed
  await settle('payment_intents', await paymentIntentOf(order.id), outcome);
  return { customer, order, events: await providerEvents(customer) };
}

describe('webhook signatures', () => {
  it.each([
    ['no Stripe-Signature header', (e: SignedEvent) => [e.signed.payload, null] as const],
    [
      'signed with another secret',
      (e: SignedEvent) => [e.signed.payload, signature('whsec_not_the_shops_secret', e.signed.payload)] as const,
    ],
    [
      'a tampered body',
      (e: SignedEvent) => [e.signed.payload.replace('"succeeded"', '"processing"'), e.signed.header] as const,
    ],
    [
      'signed 10 minutes ago (outside the 5-minute tolerance)',
      (e: SignedEvent) =>
        [
          e.signed.payload,
          signature(getEnv().STRIPE_WEBHOOK_SECRET, e.signed.payload, Math.floor(Date.now() / 1000) - 600),
        ] as const,
    ],
    [
      'not JSON at all, correctly signed',
      () => ['not json', signature(getEnv().STRIPE_WEBHOOK_SECRET, 'not json')] as const,
    ],
  ])('%s: 400, and nothing changes', async (_name, tamper) => {
    const { order, events } = await waitingThenSettled('succeeded');
    const succeeded = ofType(events, 'payment_intent.succeeded')[0]!;
    const [payload, header] = tamper(succeeded);
    const res = await deliverWebhook(payload, header);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/webhook refused/);
    expect((await orderStatus(order.id)).status).toBe('payment_processing');
    expect(await recorded(succeeded.event.id)).toHaveLength(0);
  });
});

describe('each event is applied once', () => {
  it('a 3-D Secure payment settles later by webhook; its redelivery is acknowledged and changes nothing', async () => {
    const { customer, order, events } = await waitingThenSettled('succeeded');
    const succeeded = ofType(events, 'payment_intent.succeeded')[0]!;
    const first = await deliverWebhook(succeeded.signed.payload, succeeded.signed.header);
    expect(first.status).toBe(200);
    expect(first.body.outcome).toBe('applied');
    expect((await orderStatus(order.id)).status).toBe('paid');
    // paid: its receipt
    expect(await sql`select 1 from outbox where dedupe_key = ${`receipt:${order.id}`}`).toHaveLength(1);
    const again = await deliverWebhook(succeeded.signed.payload, succeeded.signed.header);
    expect(again.status).toBe(200);
    expect(again.body.outcome).toBe('duplicate');
    expect(await recorded(succeeded.event.id)).toEqual([{ outcome: 'applied' }]);
    expect(await reconcile(db, { customerId: customer })).toEqual([]);
  });

  it('20 concurrent deliveries of one event: applied once, 19 duplicates', async () => {
    const { order, events } = await waitingThenSettled('succeeded');
    const succeeded = ofType(events, 'payment_intent.succeeded')[0]!;
    const results = await Promise.all(
      Array.from({ length: 20 }, () => deliverWebhook(succeeded.signed.payload, succeeded.signed.header)),
    );
    expect(results.map((r) => r.status)).toEqual(Array(20).fill(200));
    const outcomes = results.map((r) => r.body.outcome).sort();
    expect(outcomes.filter((o) => o === 'applied')).toHaveLength(1);
    expect(outcomes.filter((o) => o === 'duplicate')).toHaveLength(19);
    expect((await orderStatus(order.id)).status).toBe('paid');
  });

  it('a refund that fails after it was requested gives the amount back, once', async () => {
    const customer = randomUUID();
    const order = await buy(customer, 'pm_card_visa');
    await scriptProviderFault(customer, 'refund_fails_later', { path: '/v1/refunds' });
    const asked = await refund(customer, order.id, 1500);
    expect(asked.status).toBe(200);
    expect(asked.body.result.data.status).toBe('pending');
    expect((await orderStatus(order.id)).refunded_cents).toBe(1500); // reserved while the provider decides
    const [pending] = await sql`select id, provider_refund_id from refunds where order_id = ${order.id}`;
    await settle('refunds', pending!.provider_refund_id, 'failed');
    const failed = ofType(await providerEvents(customer), 'refund.failed')[0]!;
    for (let i = 0; i < 3; i++)
      expect((await deliverWebhook(failed.signed.payload, failed.signed.header)).status).toBe(200);
    expect((await orderStatus(order.id)).refunded_cents).toBe(0); // given back once, not three times
    expect((await sql`select status from refunds where id = ${pending!.id}`)[0]!.status).toBe('failed');
    expect(await reconcile(db, { customerId: customer })).toEqual([]);
  });

  it(
    "negative control: the lab's handler without the event record, on a redelivered refund.failed, gives the amount " +
      'back twice',
    async () => {
      const { applyRefundFailedWithoutRecord } = await import('../lab/twins');
      const customer = randomUUID();
      const order = await buy(customer, 'pm_card_visa'); // 3990
      for (const amount of [1000, 1000]) expect((await refund(customer, order.id, amount)).status).toBe(200);
      await scriptProviderFault(customer, 'refund_fails_later', { path: '/v1/refunds' });
      expect((await refund(customer, order.id, 1000)).status).toBe(200);
      const [pending] =
        await sql`select provider_refund_id from refunds where order_id = ${order.id} and status = 'pending'`;
      await settle('refunds', pending!.provider_refund_id, 'failed');
      const failed = ofType(await providerEvents(customer), 'refund.failed')[0]!;
      await applyRefundFailedWithoutRecord(db, JSON.parse(failed.signed.payload));
      await applyRefundFailedWithoutRecord(db, JSON.parse(failed.signed.payload));
      // 2000 were refunded: the redelivery gave 1000 back again
      expect((await orderStatus(order.id)).refunded_cents).toBe(1000);
    },
  );

  it(
    "negative control: the lab's handler that records event ids but is not forward-only applies one failure, told " +
      'as refund.updated and refund.failed, twice',
    async () => {
      const { applyRefundEventNotForwardOnly } = await import('../lab/twins');
      const customer = randomUUID();
      const order = await buy(customer, 'pm_card_visa'); // 3990
      for (const amount of [1000, 1000]) expect((await refund(customer, order.id, amount)).status).toBe(200);
      await scriptProviderFault(customer, 'refund_fails_later', { path: '/v1/refunds' });
      expect((await refund(customer, order.id, 1000)).status).toBe(200);
      const [pending] =
        await sql`select provider_refund_id from refunds where order_id = ${order.id} and status = 'pending'`;
      await settle('refunds', pending!.provider_refund_id, 'failed');
      const events = await providerEvents(customer);
      const told = [
        ...ofType(events, 'refund.updated').filter((e) => JSON.parse(e.signed.payload).data.object.status === 'failed'),
        ...ofType(events, 'refund.failed'),
      ];
      expect(told).toHaveLength(2); // one failure, two event ids
      for (const e of told)
        expect(await applyRefundEventNotForwardOnly(db, JSON.parse(e.signed.payload))).toBe('applied');
      // a redelivery of one id is caught by the record
      expect(await applyRefundEventNotForwardOnly(db, JSON.parse(told[1]!.signed.payload))).toBe('duplicate');
      // 2000 were refunded: the second telling gave 1000 back again
      expect((await orderStatus(order.id)).refunded_cents).toBe(1000);
    },
  );
});

describe('when no webhook comes', () => {
  it('the settle job asks the provider, and moves a waiting payment and a pending refund on', async () => {
    const { settleWaiting } = await import('../jobs/settle');
    const { customer, order } = await waitingThenSettled('succeeded'); // settled at the provider; no webhook delivered
    expect((await orderStatus(order.id)).status).toBe('payment_processing');
    await settleWaiting(db, { olderThanSeconds: 0, customerIds: [customer] });
    expect((await orderStatus(order.id)).status).toBe('paid');

    await scriptProviderFault(customer, 'refund_fails_later', { path: '/v1/refunds' });
    expect((await refund(customer, order.id, 1000)).status).toBe(200);
    const [row] = await sql`select id, provider_refund_id from refunds where order_id = ${order.id}`;
    await settle('refunds', row!.provider_refund_id, 'failed');
    await settleWaiting(db, { olderThanSeconds: 0, customerIds: [customer] });
    expect((await sql`select status from refunds where id = ${row!.id}`)[0]!.status).toBe('failed');
    expect((await orderStatus(order.id)).refunded_cents).toBe(0);
    expect(await reconcile(db, { customerId: customer })).toEqual([]);
  });

  it('a payment the provider does not know is logged and left as it is, and the others are still settled', async () => {
    const { settleWaiting } = await import('../jobs/settle');
    // A waiting order whose recorded payment the provider has never heard of (recorded from an event about
    // someone else's payment, or a provider account that was changed), then an ordinary one behind it.
    const unknown = await waitingThenSettled('succeeded');
    await sql`update orders set payment_intent_id = ${`pi_${randomUUID().slice(0, 8)}`} where id = ${unknown.order.id}`;
    const known = await waitingThenSettled('succeeded');
    const outcome = await settleWaiting(db, { olderThanSeconds: 0, customerIds: [unknown.customer, known.customer] });
    expect(outcome).toEqual({ orders: 1, refunds: 0, unanswered: 1 });
    expect((await orderStatus(known.order.id)).status).toBe('paid');
    expect((await orderStatus(unknown.order.id)).status).toBe('payment_processing');
  });
});

describe('events out of order never move a record backwards', () => {
  // Each pair: an earlier event, and a later one of the same object; delivered later first.
  it.each([
    ['payment_intent.requires_action', 'payment_intent.succeeded', 'succeeded', 'paid'],
    ['payment_intent.requires_action', 'payment_intent.payment_failed', 'failed', 'payment_failed'],
  ])('%s after %s: the order stays where the later one put it', async (earlier, later, outcome, status) => {
    const { order, events } = await waitingThenSettled(outcome as 'succeeded' | 'failed');
    const late = ofType(events, later)[0]!;
    const early = ofType(events, earlier)[0]!;
    expect((await deliverWebhook(late.signed.payload, late.signed.header)).body.outcome).toBe('applied');
    expect((await deliverWebhook(early.signed.payload, early.signed.header)).body.outcome).toBe('stale');
    expect((await orderStatus(order.id)).status).toBe(status);
  });

  it('payment_intent.processing after payment_intent.succeeded: stays paid', async () => {
    const customer = randomUUID();
    const order = await buy(customer, 'pm_card_processing');
    await settle('payment_intents', await paymentIntentOf(order.id), 'succeeded');
    const events = await providerEvents(customer);
    const [processing, succeeded] = [
      ofType(events, 'payment_intent.processing')[0]!,
      ofType(events, 'payment_intent.succeeded')[0]!,
    ];
    await deliverWebhook(succeeded.signed.payload, succeeded.signed.header);
    expect((await deliverWebhook(processing.signed.payload, processing.signed.header)).body.outcome).toBe('stale');
    expect((await orderStatus(order.id)).status).toBe('paid');
  });

  it.each([
    ['refund.created (pending)', 'refund.updated (succeeded)', 'refund_pending', 'succeeded'],
    ['refund.created (pending)', 'refund.failed', 'refund_fails_later', 'failed'],
  ])('%s after %s: the refund stays where the later one put it', async (_earlier, _later, fault, final) => {
    const customer = randomUUID();
    const order = await buy(customer, 'pm_card_visa');
    await scriptProviderFault(customer, fault, { path: '/v1/refunds' });
    expect((await refund(customer, order.id, 1000)).status).toBe(200);
    const [row] = await sql`select id, provider_refund_id from refunds where order_id = ${order.id}`;
    await settle('refunds', row!.provider_refund_id, final as 'succeeded' | 'failed');
    const events = await providerEvents(customer);
    const early = ofType(events, 'refund.created')[0]!;
    const late = ofType(events, final === 'succeeded' ? 'refund.updated' : 'refund.failed')[0]!;
    expect((await deliverWebhook(late.signed.payload, late.signed.header)).body.outcome).toBe('applied');
    expect((await deliverWebhook(early.signed.payload, early.signed.header)).body.outcome).toBe('stale');
    expect((await sql`select status from refunds where id = ${row!.id}`)[0]!.status).toBe(final);
    expect((await orderStatus(order.id)).refunded_cents).toBe(final === 'succeeded' ? 1000 : 0);
  });

  it(
    'refund.updated (succeeded) after refund.failed (it failed after succeeding): stays failed, given back ' + 'once',
    async () => {
      const customer = randomUUID();
      const order = await buy(customer, 'pm_card_visa');
      await scriptProviderFault(customer, 'refund_pending', { path: '/v1/refunds' });
      expect((await refund(customer, order.id, 1000)).status).toBe(200);
      const [row] = await sql`select id, provider_refund_id from refunds where order_id = ${order.id}`;
      await settle('refunds', row!.provider_refund_id, 'succeeded');
      await settle('refunds', row!.provider_refund_id, 'failed');
      const events = await providerEvents(customer);
      const [succeeded, failed] = [ofType(events, 'refund.updated')[0]!, ofType(events, 'refund.failed')[0]!];
      expect((await deliverWebhook(failed.signed.payload, failed.signed.header)).body.outcome).toBe('applied');
      expect((await deliverWebhook(succeeded.signed.payload, succeeded.signed.header)).body.outcome).toBe('stale');
      expect((await sql`select status from refunds where id = ${row!.id}`)[0]!.status).toBe('failed');
      expect((await orderStatus(order.id)).refunded_cents).toBe(0);
    },
  );

  it('an order never goes back in SQL either: paid to payment_processing is refused by the database', async () => {
    const { order, events } = await waitingThenSettled('succeeded');
    const succeeded = ofType(events, 'payment_intent.succeeded')[0]!;
    await deliverWebhook(succeeded.signed.payload, succeeded.signed.header);
    await expect(sql`update orders set status = 'payment_processing' where id = ${order.id}`).rejects.toMatchObject({
      code: '23514',
    });
  });
});

describe("a refund the provider holds (the lab's webhook-twice scenario)", () => {
  it(
    'stays pending while others settle; settled with deliver: false, its event is made and sent to no ' + 'endpoint',
    async () => {
      const received: string[] = [];
      const endpoint = createServer((req, res) => {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString()));
        req.on('end', () => {
          received.push((JSON.parse(body) as { type: string }).type);
          res.end('{}');
        });
      });
      await new Promise<void>((r) => endpoint.listen(0, '127.0.0.1', r));
      const url = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}/hook`;
      await fetch(`${sim()}/__sim/webhooks`, { method: 'POST', body: JSON.stringify({ url }) });
      await simConfig({ settleAfterMs: 50 });
      try {
        const customer = randomUUID();
        const order = await buy(customer, 'pm_card_visa');
        await scriptProviderFault(customer, 'refund_held', { path: '/v1/refunds' });
        expect((await refund(customer, order.id, 1000)).status).toBe(200);
        await new Promise((r) => setTimeout(r, 400)); // ample time for a refund that settles after 50 ms
        const [row] = await sql`select provider_refund_id, status from refunds where order_id = ${order.id}`;
        expect(row!.status).toBe('pending');
        expect(ofType(await providerEvents(customer), 'refund.failed')).toHaveLength(0);
        expect(received).toContain('refund.created'); // the endpoint does get what is sent

        const settled = await fetch(`${sim()}/__sim/refunds/${row!.provider_refund_id}/settle`, {
          method: 'POST',
          body: JSON.stringify({ outcome: 'failed', deliver: false }),
        });
        expect(settled.status).toBe(200);
        expect(ofType(await providerEvents(customer), 'refund.failed')).toHaveLength(1);
        await new Promise((r) => setTimeout(r, 400));
        expect(received).not.toContain('refund.failed');
        const refused = await fetch(`${sim()}/__sim/refunds/${row!.provider_refund_id}/settle`, {
          method: 'POST',
          body: JSON.stringify({ outcome: 'failed', deliver: 'no' }),
        });
        expect(refused.status).toBe(400);
      } finally {
        await fetch(`${sim()}/__sim/webhooks`, { method: 'DELETE', body: JSON.stringify({ url }) });
        await simConfig({ settleAfterMs: null });
        endpoint.close();
      }
    },
  );
});

// ---------------------------------------------------------------------------------------------
// Events signed with the shop's secret (as anyone holding it, or another integration on the same
// account, can send): each must be that order's payment to move it, ours to be looked at at all, and
// well formed to be read.

const secret = () => getEnv().STRIPE_WEBHOOK_SECRET;
const signedBody = (body: unknown) => {
  const payload = JSON.stringify(body);
  return { payload, header: signature(secret(), payload) };
};
const deliverSigned = (body: unknown) => {
  const { payload, header } = signedBody(body);
  return deliverWebhook(payload, header);
};
/** A provider event with its object changed as `change` says, under a new event id. */
const altered = (e: SignedEvent, change: (object: Record<string, unknown>) => void) => {
  const event = JSON.parse(e.signed.payload) as { id: string; data: { object: Record<string, unknown> } };
  change(event.data.object);
  return { ...event, id: `evt_${randomUUID().replaceAll('-', '')}` };
};
const invented = (type: string, object: Record<string, unknown>) => ({
  id: `evt_${randomUUID().replaceAll('-', '')}`,
  object: 'event',
  type,
  created: Math.floor(Date.now() / 1000),
  data: { object },
});
const webhookCount = async (type: string, outcome: string) =>
  (await metrics().webhooks.get()).values.find((v) => v.labels.type === type && v.labels.outcome === outcome)?.value ??
  0;
const receiptOf = (orderId: string) => sql`select 1 from outbox where dedupe_key = ${`receipt:${orderId}`}`;
const orderRow = async (id: string) =>
  (await sql`select status, payment_intent_id, refunded_cents from orders where id = ${id}`)[0];
const succeededEventOf = async (customer: string) =>
  ofType(await providerEvents(customer), 'payment_intent.succeeded')[0]!;

/** Customer B's order, waiting for 3-D Secure at the provider: its payment recorded, not paid. */
async function waitingOrder() {
  const customer = randomUUID();
  const order = await buy(customer, 'pm_card_authenticationRequired');
  expect(order.status).toBe('payment_processing');
  return { customer, order, paymentIntentId: await paymentIntentOf(order.id) };
}

/** An order whose charge succeeded at the provider but whose answer was lost: no payment recorded yet. */
async function orderWithoutPayment() {
  const customer = randomUUID();
  await scriptProviderFault(customer, 'reset_after_charge', { times: 2 });
  const res = await http('POST', 'checkout.purchase', {
    headers: { cookie: customerCookie(customer), 'idempotency-key': randomUUID() },
    body: { items: [{ productId: 'travel-mug', quantity: 1 }], paymentMethod: 'pm_card_visa' },
  });
  expect(res.status).toBe(503);
  const [order] = await sql`select id, status, payment_intent_id from orders where customer_id = ${customer}`;
  expect(order).toMatchObject({ status: 'pending_payment', payment_intent_id: null });
  return { customer, orderId: order!.id as string };
}

describe("an event moves an order only with that order's payment", () => {
  it(
    "customer A's succeeded payment with metadata naming B's waiting order: mismatch, 200, B unchanged, logged " +
      "for reconcile; B's own payment_failed later still applies",
    async () => {
      const a = randomUUID();
      await buy(a, 'pm_card_visa');
      const b = await waitingOrder();
      const before = await webhookCount('payment_intent.succeeded', 'mismatch');
      const forged = altered(await succeededEventOf(a), (pi) => {
        (pi.metadata as Record<string, string>).order_id = b.order.id;
      });
      const res = await deliverSigned(forged);
      expect(res.status).toBe(200);
      expect(res.body.outcome).toBe('mismatch');
      expect(await orderRow(b.order.id)).toMatchObject({
        status: 'payment_processing',
        payment_intent_id: b.paymentIntentId,
      });
      expect(await receiptOf(b.order.id)).toHaveLength(0);
      expect(await sql`select outcome, order_id from webhook_events where id = ${forged.id}`).toEqual([
        { outcome: 'mismatch', order_id: b.order.id },
      ]);
      expect(await webhookCount('payment_intent.succeeded', 'mismatch')).toBe(before + 1);
      const problems = await reconcile(db, { customerId: b.customer });
      expect(problems).toEqual([expect.stringContaining(`webhook event ${forged.id}`)]);
      expect(problems[0]).toContain(`not order ${b.order.id}'s`);

      // B's real payment fails at the bank: its event is B's, and moves B's order.
      await settle('payment_intents', b.paymentIntentId, 'failed');
      const failed = ofType(await providerEvents(b.customer), 'payment_intent.payment_failed')[0]!;
      expect((await deliverWebhook(failed.signed.payload, failed.signed.header)).body.outcome).toBe('applied');
      expect((await orderRow(b.order.id))!.status).toBe('payment_failed');
    },
  );

  it(
    "negative control: with the check switched off (the lab's twin trusting metadata), the same event marks B's " +
      'order paid while its payment still waits at the provider',
    async () => {
      const { applyEventTrustingMetadata } = await import('../lab/twins');
      const a = randomUUID();
      await buy(a, 'pm_card_visa');
      const b = await waitingOrder();
      const forged = altered(await succeededEventOf(a), (pi) => {
        (pi.metadata as Record<string, string>).order_id = b.order.id;
      });
      const parsed = parseEvent(forged);
      if (!parsed.ok) throw new Error(parsed.problem);
      expect((await applyEventTrustingMetadata(db, parsed.event)).outcome).toBe('applied');
      expect((await orderRow(b.order.id))!.status).toBe('paid');
      expect(await receiptOf(b.order.id)).toHaveLength(1); // a receipt for money that never came
      const problems = await reconcile(db, { customerId: b.customer });
      expect(problems).toContain(
        `order ${b.order.id} is paid here, but its payment is still requires_action at the provider`,
      );
    },
  );

  it('an invented payment of 50 cents naming a waiting order: mismatch, the order waits on', async () => {
    const b = await waitingOrder();
    const res = await deliverSigned(
      invented('payment_intent.succeeded', {
        id: `pi_${randomUUID().replaceAll('-', '')}`,
        object: 'payment_intent',
        amount: 50,
        currency: 'usd',
        status: 'succeeded',
        metadata: { order_id: b.order.id },
      }),
    );
    expect(res.status).toBe(200);
    expect(res.body.outcome).toBe('mismatch');
    expect((await orderRow(b.order.id))!.status).toBe('payment_processing');
    expect(await receiptOf(b.order.id)).toHaveLength(0);
  });

  it(
    "an order with no payment recorded yet: another customer's payment naming it is a mismatch (was a 500 from " +
      'the unique index), an invented one too; its own payment, made with its key, pays it',
    async () => {
      const a = randomUUID();
      await buy(a, 'pm_card_visa');
      const c = await orderWithoutPayment();
      const forged = altered(await succeededEventOf(a), (pi) => {
        (pi.metadata as Record<string, string>).order_id = c.orderId;
      });
      const res = await deliverSigned(forged);
      expect(res.status).toBe(200);
      expect(res.body.outcome).toBe('mismatch');
      expect(res.body.detail).toMatch(/another idempotency key/);
      const small = await deliverSigned(
        invented('payment_intent.succeeded', {
          id: `pi_${randomUUID().replaceAll('-', '')}`,
          amount: 50,
          currency: 'usd',
          status: 'succeeded',
          metadata: { order_id: c.orderId },
        }),
      );
      expect(small.body.outcome).toBe('mismatch');
      expect(small.body.detail).toMatch(/amount 50/);
      expect(await orderRow(c.orderId)).toMatchObject({ status: 'pending_payment', payment_intent_id: null });

      // The webhook of its own charge overtakes the checkout's lost answer: amount, currency, key and
      // customer are the order's, so it pays it and records the payment.
      const own = await succeededEventOf(c.customer);
      expect((await deliverWebhook(own.signed.payload, own.signed.header)).body.outcome).toBe('applied');
      expect(await orderRow(c.orderId)).toMatchObject({ status: 'paid', payment_intent_id: own.event.data.object.id });
    },
  );

  it('a refund event moves only a refund of that payment, for that amount', async () => {
    const a = randomUUID();
    await buy(a, 'pm_card_visa');
    const customer = randomUUID();
    const order = await buy(customer, 'pm_card_visa');
    await scriptProviderFault(customer, 'refund_held', { path: '/v1/refunds' });
    expect((await refund(customer, order.id, 1000)).status).toBe(200);
    const [row] = await sql`select id, provider_refund_id from refunds where order_id = ${order.id}`;
    const created = ofType(await providerEvents(customer), 'refund.created')[0]!;
    const succeededAs = (change: (r: Record<string, unknown>) => void) =>
      altered(created, (r) => {
        r.status = 'succeeded';
        change(r);
      });
    const otherPayment = succeededAs((r) => {
      r.id = `re_${randomUUID().replaceAll('-', '')}`;
      r.payment_intent = 'pi_not_this_orders';
    });
    const otherAmount = succeededAs((r) => {
      r.amount = 3990;
    });
    for (const event of [otherPayment, otherAmount]) {
      const res = await deliverSigned(event);
      expect(res.status).toBe(200);
      expect(res.body.outcome).toBe('mismatch');
    }
    expect((await sql`select status from refunds where id = ${row!.id}`)[0]!.status).toBe('pending');
    expect((await orderRow(order.id))!.refunded_cents).toBe(1000);
    // Its own, settled: applied.
    await settle('refunds', row!.provider_refund_id, 'succeeded');
    const own = ofType(await providerEvents(customer), 'refund.updated')[0]!;
    expect((await deliverWebhook(own.signed.payload, own.signed.header)).body.outcome).toBe('applied');
    expect((await sql`select status from refunds where id = ${row!.id}`)[0]!.status).toBe('succeeded');
  });
});

describe('signed events about nothing of ours are unrelated: 200, and only the event is recorded', () => {
  it.each([
    ['a payment whose metadata.order_id is ORD-1234', 'payment_intent.succeeded', { order_id: 'ORD-1234' }],
    ['a payment naming a UUID that is no order of ours', 'payment_intent.succeeded', { order_id: randomUUID() }],
    ['a failed payment naming an order id with a quote', 'payment_intent.payment_failed', { order_id: "x'; --" }],
    ['a refund whose metadata.refund_id is RF-77', 'refund.updated', { refund_id: 'RF-77' }],
    ['a refund naming a UUID that is no refund of ours', 'refund.failed', { refund_id: randomUUID() }],
  ])('%s', async (_name, type, meta) => {
    const objectId = `${type.startsWith('refund') ? 're' : 'pi'}_${randomUUID().replaceAll('-', '')}`;
    const event = invented(type, {
      id: objectId,
      amount: 1250,
      currency: 'usd',
      status: type === 'refund.failed' ? 'failed' : 'succeeded',
      payment_intent: 'pi_of_someone_else',
      metadata: meta,
    });
    const res = await deliverSigned(event);
    expect(res.status).toBe(200);
    expect(res.body.outcome).toBe('unrelated');
    expect(await recorded(event.id)).toEqual([{ outcome: 'unrelated' }]);
    expect(await sql`select 1 from refunds where provider_refund_id = ${objectId}`).toHaveLength(0);
    expect(await sql`select 1 from orders where payment_intent_id = ${objectId}`).toHaveLength(0);
  });
});

describe('a signed body that is not a well-formed event: 400 naming the problem, nothing written', () => {
  const longId = `evt_${'x'.repeat(296)}`;
  it.each([
    ['null', null, /the body/],
    ['an array', [], /the body/],
    ['an empty object', {}, /id/],
    ['an event without data', { id: 'evt_nodata_1', type: 'payment_intent.succeeded' }, /data/],
    ['an event whose object has no id', invented('payment_intent.succeeded', { amount: 5 }), /data\.object\.id/],
    ['an event without an id', { ...invented('charge.succeeded', { id: 'ch_1' }), id: undefined }, /id/],
    ['an id of 300 characters', { ...invented('charge.succeeded', { id: 'ch_1' }), id: longId }, /id/],
    [
      'a payment event without an amount',
      invented('payment_intent.succeeded', { id: 'pi_no_amount', currency: 'usd', metadata: {} }),
      /data\.object\.amount/,
    ],
    [
      'a refund event whose amount is a string',
      invented('refund.updated', { id: 're_string_amount', amount: '100', metadata: {} }),
      /data\.object\.amount/,
    ],
  ])('%s', async (_name, body, names) => {
    const res = await deliverSigned(body);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/webhook refused: not a well-formed/);
    expect(res.body.error).toMatch(names);
    const id = (body as { id?: unknown } | null)?.id;
    if (typeof id === 'string') expect(await recorded(id)).toHaveLength(0);
  });
});

describe('money that is not the order’s, found after the fix', () => {
  it(
    'an order with no payment recorded: a payment made with its key for its full amount but captured for 50 cents ' +
      '(amount 1995, amount_received 50) is a mismatch, directly or after its requires_action recorded it; so is ' +
      'that recorded payment confirmed in another currency',
    async () => {
      const c = await orderWithoutPayment();
      const own = await succeededEventOf(c.customer);
      const partial = (type: string, received: number, id: string) => {
        const event = altered(own, (pi) => {
          pi.id = id;
          pi.amount_received = received;
        });
        return { ...event, type };
      };
      const direct = await deliverSigned(partial('payment_intent.succeeded', 50, `pi_${randomUUID().slice(0, 8)}`));
      expect(direct.status).toBe(200);
      expect(direct.body.outcome).toBe('mismatch');
      expect(direct.body.detail).toMatch(/received 50/);
      // Recorded first by an event that carries no money yet, then captured for 50 cents.
      const laterId = `pi_${randomUUID().slice(0, 8)}`;
      await deliverSigned(partial('payment_intent.requires_action', 0, laterId));
      const captured = await deliverSigned(partial('payment_intent.succeeded', 50, laterId));
      expect(captured.body.outcome).toBe('mismatch');
      expect(captured.body.detail).toMatch(/received 50, the order's 1995/);
      expect(await orderRow(c.orderId)).toMatchObject({ status: 'payment_processing', payment_intent_id: laterId });
      // The same recorded payment, its currency changed before it was confirmed: 1995 of another currency.
      const otherCurrency = { ...partial('payment_intent.succeeded', 1995, laterId) };
      otherCurrency.data.object.currency = 'idr';
      const cheaper = await deliverSigned(otherCurrency);
      expect(cheaper.body.outcome).toBe('mismatch');
      expect(cheaper.body.detail).toMatch(/currency idr/);
      expect((await orderRow(c.orderId))!.status).toBe('payment_processing');
      expect(await receiptOf(c.orderId)).toHaveLength(0);
    },
  );
});

describe('a refund made at the provider beside ours: what may still be refunded stays the sum of the live ones', () => {
  it(
    'ours of 1000 pending, a dashboard refund of the whole 3990 (recorded as 3990, the most there is), then both ' +
      'fail: 200 each time (was a 500 from the check on refunded_cents), and nothing is left counted',
    async () => {
      const customer = randomUUID();
      const order = await buy(customer, 'pm_card_visa'); // 3990
      await scriptProviderFault(customer, 'refund_held', { path: '/v1/refunds' });
      expect((await refund(customer, order.id, 1000)).status).toBe(200);
      const [ours] = await sql`select id, provider_refund_id from refunds where order_id = ${order.id}`;
      const dashboard = (type: string, status: string, id: string) =>
        invented(type, {
          id,
          object: 'refund',
          amount: 3990,
          currency: 'usd',
          status,
          payment_intent: { id: paymentIntentOfOrder },
          metadata: {},
        });
      const paymentIntentOfOrder = await paymentIntentOf(order.id);
      const dashboardId = `re_${randomUUID().replaceAll('-', '')}`;
      const created = await deliverSigned(dashboard('refund.created', 'pending', dashboardId));
      expect(created.body.outcome).toBe('applied');
      expect((await orderRow(order.id))!.refunded_cents).toBe(3990);
      const failedAtProvider = await deliverSigned(dashboard('refund.failed', 'failed', dashboardId));
      expect(failedAtProvider.status).toBe(200);
      expect((await orderRow(order.id))!.refunded_cents).toBe(1000); // ours is still on its way
      await settle('refunds', ours!.provider_refund_id, 'failed');
      const oursFailed = ofType(await providerEvents(customer), 'refund.failed')[0]!;
      const res = await deliverWebhook(oursFailed.signed.payload, oursFailed.signed.header);
      expect(res.status).toBe(200);
      expect(res.body.outcome).toBe('applied');
      expect((await orderRow(order.id))!.refunded_cents).toBe(0);
    },
  );

  it('ten dashboard refunds of one order delivered at once: each 200, all ten counted (no deadlock)', async () => {
    const customer = randomUUID();
    const order = await buy(customer, 'pm_card_visa'); // 3990
    const paymentIntentId = await paymentIntentOf(order.id);
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        deliverSigned(
          invented('refund.created', {
            id: `re_${randomUUID().replaceAll('-', '')}`,
            amount: 100,
            currency: 'usd',
            status: 'succeeded',
            payment_intent: paymentIntentId,
            metadata: {},
          }),
        ),
      ),
    );
    expect(results.map((r) => [r.status, r.body.outcome])).toEqual(Array(10).fill([200, 'applied']));
    expect((await orderRow(order.id))!.refunded_cents).toBe(1000);
  });

  it('a dashboard refund larger than the order (3,000,000,000 cents) is a mismatch, not a 500', async () => {
    const customer = randomUUID();
    const order = await buy(customer, 'pm_card_visa');
    const res = await deliverSigned(
      invented('refund.created', {
        id: `re_${randomUUID().replaceAll('-', '')}`,
        amount: 3_000_000_000,
        currency: 'usd',
        status: 'succeeded',
        payment_intent: await paymentIntentOf(order.id),
        metadata: {},
      }),
    );
    expect(res.status).toBe(200);
    expect(res.body.outcome).toBe('mismatch');
    expect(await orderRow(order.id)).toMatchObject({ status: 'paid', refunded_cents: 0 });
    expect(await sql`select 1 from refunds where order_id = ${order.id}`).toHaveLength(0);
  });
});

describe('ids the database cannot store', () => {
  it.each([
    ['an event id with a NUL character', (e: ReturnType<typeof invented>) => ({ ...e, id: 'evt_a\u0000b' })],
    ['a type with a NUL character', (e: ReturnType<typeof invented>) => ({ ...e, type: 'charge.\u0000' })],
    [
      'an object id with a NUL character',
      (e: ReturnType<typeof invented>) => ({ ...e, data: { object: { id: 'ch_\u0000' } } }),
    ],
  ])('%s: 400 (was a 500 from Postgres), nothing written', async (_name, change) => {
    const body = change(invented('charge.succeeded', { id: 'ch_1' }));
    const res = await deliverSigned(body);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/webhook refused: not a well-formed event: .*must be visible ASCII characters/);
    // (A row with a NUL in its id could not exist at all.)
    if (!body.id.includes('\u0000')) expect(await recorded(body.id)).toHaveLength(0);
  });

  it('a payment whose currency holds a NUL character (quoted in a mismatch): 400, nothing written', async () => {
    const c = await orderWithoutPayment();
    const own = await succeededEventOf(c.customer);
    const event = altered(own, (pi) => {
      pi.id = `pi_${randomUUID().slice(0, 8)}`;
      pi.currency = 'u\u0000d';
    });
    const res = await deliverSigned(event);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/data\.object\.currency: must be a three-letter currency code/);
    expect(await recorded(event.id)).toHaveLength(0);
    expect((await orderRow(c.orderId))!.status).toBe('pending_payment');
  });
});
