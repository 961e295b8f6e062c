import { randomUUID } from 'node:crypto';
import { TRPCError } from '@trpc/server';
import { describe, expect, it } from 'vitest';
import { catalog } from '../../db/seed';
import { clientMessage } from '../errors';
import { callerFor, countOrders } from '../testing';

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
    // What was stored is what was answered.
    expect(await caller.orders.byId({ orderId: order.id })).toEqual(order);
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
