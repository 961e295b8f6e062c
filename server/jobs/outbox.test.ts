/** The outbox worker: at least once, deduplicated at the receiver, and never blocked by a poison message. */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { getDatabase } from '../db';
import { customerCookie, http } from '../testing';
import { deliverOutbox, MAX_ATTEMPTS } from './outbox';

const { db, sql } = getDatabase();

async function paidOrder(customer: string): Promise<string> {
  const res = await http('POST', 'checkout.purchase', {
    headers: { cookie: customerCookie(customer), 'idempotency-key': randomUUID() },
    body: { items: [{ productId: 'milk-frother', quantity: 1 }], paymentMethod: 'pm_card_visa' },
  });
  expect(res.status).toBe(200);
  return res.body.result.data.id;
}

describe('outbox', () => {
  it(
    'a poison message at the head of the queue fails alone, is retried later, and is set aside after too many ' +
      'failures',
    async () => {
      const orderId = await paidOrder(randomUUID());
      // Two messages that can never be delivered, due before the receipt: a receipt for an order that
      // does not exist (a foreign key refuses it) and a topic nobody handles.
      const poison = [`poison:${randomUUID()}`, `poison:${randomUUID()}`];
      const noSuchOrder = JSON.stringify({ id: randomUUID(), items: [], totalCents: 1, currency: 'USD' });
      await sql`insert into outbox (topic, dedupe_key, payload, next_attempt_at) values
      ('receipt', ${poison[0]!}, ${noSuchOrder}::json, now() - interval '1 hour'),
      ('carrier-pigeon', ${poison[1]!}, '{}'::json, now() - interval '1 hour')`;

      const first = await deliverOutbox(db);
      expect(first.failed).toBeGreaterThanOrEqual(2);
      // delivered despite the poison ahead
      expect(await sql`select 1 from receipts where order_id = ${orderId}`).toHaveLength(1);
      const after =
        await sql`select attempts, next_attempt_at > now() as later, last_error, dead_at from outbox where dedupe_key
        in ${sql(poison)} order by dedupe_key`;
      expect(after.map((m) => m.attempts)).toEqual([1, 1]);
      expect(after.every((m) => m.later && m.dead_at === null)).toBe(true);
      expect(after.map((m) => m.last_error).join(' ')).toMatch(/no handler for outbox topic 'carrier-pigeon'/);

      // Not due yet: the next run does not take them again.
      await deliverOutbox(db);
      expect(
        (await sql`select attempts from outbox where dedupe_key in ${sql(poison)}`).map((m) => m.attempts),
      ).toEqual([1, 1]);

      // Make them due again and again: after MAX_ATTEMPTS they are set aside.
      for (let i = 1; i < MAX_ATTEMPTS; i++) {
        await sql`update outbox set next_attempt_at = now() where dedupe_key in ${sql(poison)}`;
        await deliverOutbox(db);
      }
      const dead = await sql`select attempts, dead_at from outbox where dedupe_key in ${sql(poison)}`;
      expect(dead.every((m) => m.attempts === MAX_ATTEMPTS && m.dead_at !== null)).toBe(true);
      await sql`update outbox set next_attempt_at = now() where dedupe_key in ${sql(poison)}`;
      await deliverOutbox(db);
      expect(
        (await sql`select attempts from outbox where dedupe_key in ${sql(poison)}`).map((m) => m.attempts),
      ).toEqual([MAX_ATTEMPTS, MAX_ATTEMPTS]);
    },
  );
});
