/** Security properties of the keys, the cookie, what is stored and what is logged. */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { getDatabase } from './db';
import { getEnv } from './env.js';
import { customerCookie, http } from './testing';

const { sql } = getDatabase();
const PURCHASE = { items: [{ productId: 'espresso-beans', quantity: 1 }], paymentMethod: 'pm_card_visa' };
const buy = (cookie: string, key: string) =>
  http('POST', 'checkout.purchase', { headers: { cookie, 'idempotency-key': key }, body: PURCHASE });

afterEach(() => vi.restoreAllMocks());

describe('security', () => {
  it("customer B sending customer A's key never receives A's order", async () => {
    const alice = randomUUID();
    const bob = randomUUID();
    const key = randomUUID();
    const hers = await buy(customerCookie(alice), key);
    const his = await buy(customerCookie(bob), key);
    expect(his.status).toBe(200);
    expect(his.headers.get('idempotent-replayed')).toBeNull();
    expect(JSON.stringify(his.body)).not.toContain(hers.body.result.data.id);
    const [owner] = await sql`select customer_id from orders where id = ${his.body.result.data.id}`;
    expect(owner!.customer_id).toBe(bob);
  });

  it('a forged or tampered customer cookie is rejected, and never acts as that customer', async () => {
    const victim = randomUUID();
    const genuine = customerCookie(victim);
    const [, signature] = genuine.split('.');
    const forgedSignature = `customer=${victim}.${'x'.repeat(43)}`;
    const otherIdSameSignature = `customer=${randomUUID()}.${signature}`;
    for (const cookie of [forgedSignature, otherIdSameSignature, `customer=${victim}`]) {
      const res = await buy(cookie, randomUUID());
      expect(res.status).toBe(401);
      expect(res.body.error.data.errorCode).toBe('CUSTOMER_COOKIE_INVALID');
    }
    expect(await sql`select 1 from orders where customer_id = ${victim}`).toHaveLength(0);
  });

  it('stored results and logs hold no card data and no secrets', async () => {
    const lines: string[] = [];
    vi.spyOn(console, 'info').mockImplementation((line: unknown) => void lines.push(String(line)));
    const customer = randomUUID();
    const cookie = customerCookie(customer);
    const key = randomUUID();
    await buy(cookie, key);
    await buy(cookie, key);
    const rows = await sql`select * from idempotency_keys where scope = ${customer}`;
    const logs = lines.join('\n');
    const stored = JSON.stringify(rows) + logs;
    const secrets = [getEnv().COOKIE_SECRET, getEnv().STRIPE_SECRET_KEY, cookie.split('.')[1]!];
    for (const secret of secrets) expect(stored).not.toContain(secret);
    expect(stored).not.toMatch(/\b\d{13,19}\b/); // nothing shaped like a card number
    expect(logs).not.toContain(key); // the key is stored (it is the lookup) but logged only as a one-way tag
    expect(lines.length).toBeGreaterThan(0); // the logs were looked at
  });

  // That a replay never sends a Set-Cookie of the first answer is proved where a procedure really sets
  // one: server/idempotency/idempotency.test.ts ("a replay sends none of the first answer's own headers").
});
