import { randomUUID } from 'node:crypto';
import { TRPCError } from '@trpc/server';
import { describe, expect, it } from 'vitest';
import { catalog } from '../../db/seed';
import { getEnv } from '../env.js';
import { clientMessage } from '../errors';
import {
  callerFor,
  countOrders,
  customerCookie,
  deliverWebhook,
  http,
  providerEvents,
  scriptProviderFault,
} from '../testing';

/** Places an order the way a client must: with a fresh Idempotency-Key. */
function placeOrder(customerId: string, input: unknown) {
  return callerFor(customerId, { 'idempotency-key': randomUUID() }).caller.checkout.placeOrder(input as never);
}

/** Runs `fn`, expects it to throw a TRPCError, and returns it. */
async function rejection(fn: () => Promise<unknown>): Promise<TRPCError> {
  const err = await fn().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TRPCError);
  return err as TRPCError;
}

describe('catalog.list', () => {
  it('lists every seeded product with an integer price in cents and a currency', async () => {
    const products = await callerFor().caller.catalog.list();
    expect(products.map((p) => p.id).sort()).toEqual(catalog.map((p) => p.id).sort());
    for (const p of products) {
      expect(Number.isInteger(p.priceCents)).toBe(true);
      expect(p.currency).toMatch(/^[A-Z]{3}$/);
    }
  });
});

describe('checkout.placeOrder: prices come from the catalog', () => {
  it('computes line totals and the order total from catalog prices', async () => {
    const { caller, customerId } = callerFor();
    const order = await placeOrder(customerId, {
      items: [
        { productId: 'espresso-beans', quantity: 3 },
        { productId: 'travel-mug', quantity: 1 },
      ],
    });
    // 3 × 24.00 + 1 × 19.95, from db/seed.ts
    expect(order.totalCents).toBe(3 * 2400 + 1995);
    expect(order.currency).toBe('USD');
    expect(order.items).toEqual([
      { productId: 'espresso-beans', name: 'Espresso beans', quantity: 3, unitPriceCents: 2400, lineTotalCents: 7200 },
      { productId: 'travel-mug', name: 'Travel mug', quantity: 1, unitPriceCents: 1995, lineTotalCents: 1995 },
    ]);
    expect(await countOrders(customerId)).toBe(1);
    // What was stored is what was answered (the order page also gets the order's refunds: none here).
    expect(await caller.orders.byId({ orderId: order.id })).toEqual({ ...order, refunds: [] });
  });

  it('refuses a price sent by the client instead of using it', async () => {
    const customerId = randomUUID();
    const err = await rejection(() =>
      placeOrder(customerId, { items: [{ productId: 'burr-grinder', quantity: 1, priceCents: 1 }] }),
    );
    expect(err.code).toBe('BAD_REQUEST');
    expect(clientMessage(err)).toContain('priceCents');
    expect(await countOrders(customerId)).toBe(0);
  });
});

describe('checkout.placeOrder: bad input is a 400 naming the field, and writes nothing', () => {
  const cases: [string, unknown, string][] = [
    ['an empty cart', { items: [] }, 'items: the cart is empty'],
    ['quantity 0', { items: [{ productId: 'travel-mug', quantity: 0 }] }, 'items[0].quantity: must be from 1 to 99'],
    [
      'quantity 100',
      { items: [{ productId: 'travel-mug', quantity: 100 }] },
      'items[0].quantity: must be from 1 to 99',
    ],
    [
      'a negative quantity',
      { items: [{ productId: 'travel-mug', quantity: -2 }] },
      'items[0].quantity: must be from 1 to 99',
    ],
    [
      'a fractional quantity',
      { items: [{ productId: 'travel-mug', quantity: 1.5 }] },
      'items[0].quantity: must be a whole number',
    ],
    [
      'a quantity that is a string',
      { items: [{ productId: 'travel-mug', quantity: '2' }] },
      'items[0].quantity: must be a number',
    ],
    [
      'an unknown product',
      {
        items: [
          { productId: 'travel-mug', quantity: 1 },
          { productId: 'tea', quantity: 1 },
        ],
      },
      "items[1].productId: No product with this id is in the catalog. ('tea')",
    ],
    [
      'the same product twice',
      {
        items: [
          { productId: 'travel-mug', quantity: 1 },
          { productId: 'travel-mug', quantity: 2 },
        ],
      },
      "items[1].productId: 'travel-mug' is listed twice",
    ],
    ['no items field', {}, 'items: must be a list'],
    [
      'a sold-out product',
      { items: [{ productId: 'cold-brew-tower', quantity: 1 }] },
      'items[0].productId: This product is sold out',
    ],
  ];
  it.each(cases)('%s', async (name, input, message) => {
    const customerId = randomUUID();
    const err = await rejection(() => placeOrder(customerId, input));
    expect(err.code).toBe(name === 'a sold-out product' ? 'CONFLICT' : 'BAD_REQUEST');
    expect(clientMessage(err)).toContain(message);
    expect(await countOrders(customerId)).toBe(0);
  });
});

describe('orders: each customer sees only their own', () => {
  it("history lists the customer's orders, newest first, and none of another customer's", async () => {
    const alice = callerFor();
    const bob = callerFor();
    const first = await placeOrder(alice.customerId, { items: [{ productId: 'travel-mug', quantity: 1 }] });
    const second = await placeOrder(alice.customerId, { items: [{ productId: 'milk-frother', quantity: 2 }] });
    const bobs = await placeOrder(bob.customerId, { items: [{ productId: 'burr-grinder', quantity: 1 }] });

    expect((await alice.caller.orders.history()).map((o) => o.id)).toEqual([second.id, first.id]);
    expect((await bob.caller.orders.history()).map((o) => o.id)).toEqual([bobs.id]);
    expect(await callerFor(randomUUID()).caller.orders.history()).toEqual([]);
  });

  it("another customer's order id is not found, rather than shown", async () => {
    const order = await placeOrder(randomUUID(), { items: [{ productId: 'travel-mug', quantity: 1 }] });
    const err = await rejection(() => callerFor().caller.orders.byId({ orderId: order.id }));
    expect(err.code).toBe('NOT_FOUND');
  });
});

describe('orders: what the customer reads about payments and refunds', () => {
  const send = (customer: string, path: string, body: unknown) =>
    http('POST', path, { headers: { cookie: customerCookie(customer), 'idempotency-key': randomUUID() }, body });

  it(
    'byId lists each refund with its state, oldest first; history says how much of the refunded amount is still ' +
      'pending',
    async () => {
      const { caller, customerId } = callerFor();
      const bought = await send(customerId, 'checkout.purchase', {
        items: [{ productId: 'travel-mug', quantity: 2 }],
        paymentMethod: 'pm_card_visa',
      });
      const order = bought.body.result.data as { id: string; status: string };
      expect(order.status).toBe('paid');
      const refund = async (amountCents: number, status: number) => {
        const res = await send(customerId, 'orders.refund', { orderId: order.id, amountCents });
        expect(res.status).toBe(status);
      };
      await refund(500, 200); // refunded at once
      await scriptProviderFault(customerId, 'refund_held', { path: '/v1/refunds' });
      await refund(700, 200); // accepted by the provider, not settled: pending
      await scriptProviderFault(customerId, 'auth_error', { path: '/v1/refunds' });
      await refund(300, 409); // refused for good: given back

      const detail = await caller.orders.byId({ orderId: order.id });
      expect(detail.refunds.map((r) => [r.amountCents, r.status])).toEqual([
        [500, 'succeeded'],
        [700, 'pending'],
        [300, 'failed'],
      ]);
      expect(detail.refundedCents).toBe(1200); // what went back, and what is on its way
      for (const r of detail.refunds) expect(Date.parse(r.createdAt)).toBeGreaterThan(0);

      const [row] = await caller.orders.history();
      expect(row).toMatchObject({ id: order.id, status: 'paid', refundedCents: 1200, pendingRefundCents: 700 });
      // Another customer's history says nothing of these refunds, and their byId does not find the order.
      const other = callerFor();
      expect(await other.caller.orders.history()).toEqual([]);
      expect((await rejection(() => other.caller.orders.byId({ orderId: order.id }))).code).toBe('NOT_FOUND');

      // The bank confirms the held refund and the provider's event says so: nothing is left pending (and no
      // later run's settle job finds this refund waiting).
      const atProvider = (await providerEvents(customerId)).find(
        (e) => e.event.type === 'refund.created' && e.event.data.object.status === 'pending',
      )!.event.data.object.id;
      const settled = await fetch(`${getEnv().STRIPE_API_BASE}/__sim/refunds/${atProvider}/settle`, {
        method: 'POST',
        body: JSON.stringify({ outcome: 'succeeded', deliver: false }),
      });
      expect(settled.status).toBe(200);
      const event = (await providerEvents(customerId)).find((e) => e.event.type === 'refund.updated')!;
      expect((await deliverWebhook(event.signed.payload, event.signed.header)).status).toBe(200);
      expect((await caller.orders.byId({ orderId: order.id })).refunds.map((r) => r.status)).toEqual([
        'succeeded',
        'succeeded',
        'failed',
      ]);
      expect((await caller.orders.history())[0]!.pendingRefundCents).toBe(0);
    },
  );

  it('an order with no refund has none listed and nothing pending', async () => {
    const { caller, customerId } = callerFor();
    const order = await placeOrder(customerId, { items: [{ productId: 'travel-mug', quantity: 1 }] });
    expect((await caller.orders.byId({ orderId: order.id })).refunds).toEqual([]);
    expect(await caller.orders.history()).toEqual([{ ...order, pendingRefundCents: 0 }]);
  });
});
