/**
 * The benchmark's baseline (`bench.placeOrder`): off unless the benchmark's server asks for it, and then
 * exactly the checkout's order without a key (nothing stored about keys, a second call a second order).
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { getDatabase } from '../db';
import { getEnv } from '../env.js';
import { countOrders, customerCookie, http } from '../testing';

const { sql } = getDatabase();
const MUG = { items: [{ productId: 'travel-mug', quantity: 1 }] };
const place = (customer: string) =>
  http('POST', 'bench.placeOrder', { headers: { cookie: customerCookie(customer) }, body: MUG });
const env = getEnv() as { ENABLE_BENCH_BASELINE: boolean };

afterEach(() => {
  env.ENABLE_BENCH_BASELINE = false;
});

describe('bench.placeOrder', () => {
  it('is off unless ENABLE_BENCH_BASELINE is set: 404 BENCH_BASELINE_DISABLED, no order', async () => {
    const customer = randomUUID();
    const res = await place(customer);
    expect(res.status).toBe(404);
    expect(res.body.error.data.errorCode).toBe('BENCH_BASELINE_DISABLED');
    expect(await countOrders(customer)).toBe(0);
  });

  it('on, it is the plain order: no key needed or stored, and each call places an order', async () => {
    env.ENABLE_BENCH_BASELINE = true;
    const customer = randomUUID();
    const first = await place(customer);
    const second = await place(customer);
    expect(first.status).toBe(200);
    expect(second.status).toBe(200);
    expect(first.body.result.data.totalCents).toBeGreaterThan(0);
    expect(await countOrders(customer)).toBe(2);
    const [keys] = await sql`select count(*)::int as n from idempotency_keys where scope = ${customer}`;
    expect(keys!.n).toBe(0);
  });
});
