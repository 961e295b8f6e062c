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
import {
  customerCookie,
  deliverWebhook,
  http,
  providerEvents,
  type SignedEvent,
  scriptProviderFault,
} from '../testing';
import { reconcile } from './reconcile';

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
    await settleWaiting(db, { olderThanSeconds: 0 });
    expect((await orderStatus(order.id)).status).toBe('paid');

    await scriptProviderFault(customer, 'refund_fails_later', { path: '/v1/refunds' });
    expect((await refund(customer, order.id, 1000)).status).toBe(200);
    const [row] = await sql`select id, provider_refund_id from refunds where order_id = ${order.id}`;
    await settle('refunds', row!.provider_refund_id, 'failed');
    await settleWaiting(db, { olderThanSeconds: 0 });
    expect((await sql`select status from refunds where id = ${row!.id}`)[0]!.status).toBe('failed');
    expect((await orderStatus(order.id)).refunded_cents).toBe(0);
    expect(await reconcile(db, { customerId: customer })).toEqual([]);
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
