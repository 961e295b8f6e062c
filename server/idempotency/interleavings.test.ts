/**
 * Property-based: random keys, payloads, arrival times and in-flight durations, fired concurrently.
 * Whatever the interleaving, per key: at most one order; every answer that is not a 422 is the same
 * answer; a request whose payload differs from the one that ran gets 422 and never runs.
 */
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { getDatabase } from '../../db/client';
import { customerCookie, http } from '../testing';

const { sql } = getDatabase();
const PAYLOADS = [
  { items: [{ productId: 'travel-mug', quantity: 1 }] },
  { items: [{ productId: 'espresso-beans', quantity: 2 }] },
  { items: [{ productId: 'cold-brew-tower', quantity: 1 }] }, // sold out: a stored business failure
];

const request = fc.record({
  key: fc.integer({ min: 0, max: 3 }),
  payload: fc.integer({ min: 0, max: PAYLOADS.length - 1 }),
  startAfterMs: fc.integer({ min: 0, max: 40 }),
  holdMs: fc.constantFrom(0, 0, 20, 80), // how long a request that runs stays in flight
});

describe('random interleavings of keyed requests', () => {
  it('one order per key that answered success, identical answers, mismatched payloads never run', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(request, { minLength: 2, maxLength: 25 }), async (requests) => {
        const customer = randomUUID();
        const keys = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
        const answers = await Promise.all(
          requests.map(async (r) => {
            await new Promise((resolve) => setTimeout(resolve, r.startAfterMs));
            const res = await http('POST', 'checkout.placeOrder', {
              headers: {
                cookie: customerCookie(customer),
                'idempotency-key': keys[r.key]!,
                'x-test-delay-ms': String(r.holdMs),
              },
              body: PAYLOADS[r.payload],
            });
            // A stack trace (sent outside production only) is where a replayed error differs.
            if (res.body?.error?.data) delete res.body.error.data.stack;
            return { ...r, status: res.status, body: JSON.stringify(res.body) };
          }),
        );

        for (let k = 0; k < keys.length; k++) {
          const forKey = answers.filter((a) => a.key === k);
          if (forKey.length === 0) continue;
          const [row] = await sql`select id, fingerprint, response_status from idempotency_keys where scope = ${customer} and key = ${keys[k]!}`;
          const orders = await sql`select id from orders where customer_id = ${customer} and idempotency_key_id = ${row?.id ?? null}`;
          expect(orders.length).toBeLessThanOrEqual(1);

          const answered = forKey.filter((a) => a.status !== 422);
          // Every non-422 answer is one and the same answer, and came from the stored payload.
          expect(new Set(answered.map((a) => `${a.status} ${a.body}`)), JSON.stringify(answered, null, 1)).toHaveProperty("size", 1);
          expect(new Set(answered.map((a) => a.payload)).size).toBeLessThanOrEqual(1);
          const winner = answered[0];
          if (winner) {
            expect(row).toBeDefined();
            expect(row!.response_status).toBe(winner.status);
            expect(orders.length).toBe(winner.status === 200 ? 1 : 0);
            // Requests with another payload were refused, never run.
            for (const a of forKey.filter((x) => x.payload !== winner.payload)) expect(a.status).toBe(422);
          }
        }
      }),
      { numRuns: 25 },
    );
  });
});
