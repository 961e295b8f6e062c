/**
 * Hostile input: 2,000+ generated requests, each with at least one defect (in the key header, the
 * cookie or the body), against the keyed endpoints through the real route handler. Every one must
 * get a 4xx whose message names the problem: no 5xx, no row written, and the server still serves.
 */
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { getDatabase } from './db';
import { customerCookie, http } from './testing';

const { sql } = getDatabase();
const ENDPOINTS = ['checkout.purchase', 'checkout.placeOrder', 'orders.refund'] as const;
const VALID_BODY: Record<(typeof ENDPOINTS)[number], unknown> = {
  'checkout.purchase': { items: [{ productId: 'travel-mug', quantity: 1 }], paymentMethod: 'pm_card_visa' },
  'checkout.placeOrder': { items: [{ productId: 'travel-mug', quantity: 1 }] },
  'orders.refund': { orderId: '00000000-0000-4000-8000-000000000000', amountCents: 100 }, // no such order: a 404, fine
};

type Defect =
  | { where: 'key'; headers: [string, string][] }
  | { where: 'cookie'; cookie: string | null }
  | { where: 'body'; raw: string };

type HeaderList = [string, string][];
const key = (value: string): HeaderList => [['idempotency-key', value]];
const badKeyHeaders: fc.Arbitrary<HeaderList> = fc.oneof(
  fc.constant<HeaderList>([]), // missing
  fc.constant(key('')),
  fc.string({ minLength: 256, maxLength: 600, unit: fc.constantFrom('a', 'b', '-', '7') }).map(key),
  fc.string({ minLength: 1, maxLength: 40, unit: fc.constantFrom('é', 'ü', '€', 'ß', 'ø') }).map(
    (k) => key(Buffer.from(`key-${k}`, 'utf8').toString('latin1')), // raw UTF-8 bytes, as they arrive on the wire
  ),
  fc.constantFrom('\t', '\x01', '\x1f', '\x7f').map((c) => key(`key${c}x`)),
  fc.uuid().map((k): HeaderList => [...key(k), ...key(randomUUID())]), // the header twice
  fc.constant(key('"unterminated')),
);

// Raw bytes as they arrive on the wire (read as latin1, as HTTP headers are), every byte a header may
// carry: all but NUL, CR and LF. Percent signs that start no valid escape included.
const rawBytes = fc
  .uint8Array({ minLength: 1, maxLength: 80 })
  .map((bytes) => Buffer.from(bytes.filter((b) => b !== 0 && b !== 10 && b !== 13)).toString('latin1'));
const badCookie = fc.oneof(
  fc.constant(null), // none: a mutation needs a cookie the client already had
  fc.uuid().map((id) => `customer=${id}.${'A'.repeat(43)}`), // forged signature
  rawBytes.map((junk) => `customer=${junk}`),
  fc.constantFrom('customer=%', 'customer=%E0%A4%A', 'customer=%%%; x=1', 'x=%; customer=%zz'),
);

const number = fc.oneof(
  fc.integer({ min: -1000, max: 0 }),
  fc.integer({ min: 100, max: 1e9 }),
  fc.double({ noInteger: true, noNaN: true }),
  fc.constant(Number.MAX_SAFE_INTEGER + 2),
);
const line = fc.record({
  productId: fc.string({ maxLength: 70 }),
  quantity: fc.oneof(number, fc.string(), fc.constant(null)),
});
const badBody = fc.oneof(
  fc.string({ maxLength: 50 }).filter((s) => {
    try {
      JSON.parse(s);
      return false;
    } catch {
      return true;
    }
  }), // not JSON
  fc
    .oneof(fc.string(), fc.integer(), fc.constant(null), fc.constant([]), fc.constant(true))
    .map((v) => JSON.stringify(v)), // wrong type
  fc.constant(
    JSON.stringify({ items: Array.from({ length: 5_000 }, (_, i) => ({ productId: `p${i}`, quantity: 1 })) }),
  ), // huge array
  number.map((q) =>
    JSON.stringify({ items: [{ productId: 'travel-mug', quantity: q }], paymentMethod: 'pm_card_visa' }),
  ),
  fc
    .string({ minLength: 1, maxLength: 64 })
    .filter(
      (p) =>
        !['travel-mug', 'espresso-beans', 'pour-over-kit', 'burr-grinder', 'milk-frother', 'cold-brew-tower'].includes(
          p,
        ),
    )
    // unknown product
    .map((p) => JSON.stringify({ items: [{ productId: p, quantity: 1 }], paymentMethod: 'pm_card_visa' })),
  fc.integer({ min: 0, max: 10_000 }).map((price) =>
    JSON.stringify({
      items: [{ productId: 'travel-mug', quantity: 1, priceCents: price }],
      totalCents: price,
      paymentMethod: 'pm_card_visa',
    }),
  ), // client prices
  fc.array(line, { minLength: 1, maxLength: 5 }).map((items) =>
    JSON.stringify({
      items: items.map((l) => ({
        ...l,
        quantity:
          typeof l.quantity === 'number' && Number.isInteger(l.quantity) && l.quantity >= 1 && l.quantity <= 99
            ? 0
            : l.quantity,
      })),
      paymentMethod: 'pm_card_visa',
    }),
  ),
  fc
    .string({ maxLength: 30 })
    // unknown card
    .map((pm) => JSON.stringify({ items: [{ productId: 'travel-mug', quantity: 1 }], paymentMethod: `x${pm}` })),
  fc.constant(JSON.stringify({ orderId: 'not-a-uuid', amountCents: -5 })),
);

const defect: fc.Arbitrary<Defect> = fc.oneof(
  badKeyHeaders.map((headers) => ({ where: 'key' as const, headers })),
  badCookie.map((cookie) => ({ where: 'cookie' as const, cookie })),
  badBody.map((raw) => ({ where: 'body' as const, raw })),
);

describe('hostile input', () => {
  it('2,000 defective requests: each a 4xx naming the problem, no 5xx, no row written, server still up', async () => {
    const customer = randomUUID();
    const cookie = customerCookie(customer);
    const statuses = new Map<number, number>();
    const samples = fc.sample(fc.tuple(fc.constantFrom(...ENDPOINTS), defect), { numRuns: 2_000, seed: 20261128 });

    for (const [endpoint, d] of samples) {
      const headers: [string, string][] = [['content-type', 'application/json']];
      if (d.where !== 'cookie') headers.push(['cookie', cookie]);
      else if (d.cookie !== null) headers.push(['cookie', d.cookie]);
      if (d.where === 'key') headers.push(...d.headers);
      else headers.push(['idempotency-key', randomUUID()]);
      const rawBody = d.where === 'body' ? d.raw : JSON.stringify(VALID_BODY[endpoint]);

      const res = await http('POST', endpoint, { headers, rawBody });
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      const context =
        `${endpoint} ${JSON.stringify(d).slice(0, 200)} -> ${res.status} ` +
        `${JSON.stringify(res.body).slice(0, 300)}`;
      expect(res.status >= 400 && res.status < 500, context).toBe(true);
      const message: string = res.body?.error?.message ?? '';
      expect(message.length, context).toBeGreaterThan(10); // a sentence, not a bare code
    }

    console.log('[fuzz] statuses:', Object.fromEntries(statuses));
    expect(samples.length).toBeGreaterThanOrEqual(2_000);
    const [rows] = await sql<{ orders: number; keys: number }[]>`
      select (select count(*)::int from orders where customer_id = ${customer}) as orders,
             (select count(*)::int from idempotency_keys where scope = ${customer}) as keys`;
    expect(rows).toEqual({ orders: 0, keys: 0 });

    // Still serving: the same customer can buy.
    const ok = await http('POST', 'checkout.purchase', {
      headers: { cookie, 'idempotency-key': randomUUID() },
      body: VALID_BODY['checkout.purchase'],
    });
    expect(ok.status).toBe(200);
  });
});
