/**
 * Orders and refunds move forward only, and the database itself holds that rule, whoever writes
 * (db/migrations/0006_payment_states.sql). Every pair of statuses is tried, not only the ones a
 * late webhook can produce: the allowed moves are listed here, as the flow in the README draws
 * them, and every other move must be refused with a check violation.
 */
import { randomUUID } from 'node:crypto';
import type postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { createDatabase } from './client';

const pooled = process.env.DATABASE_POOL_MODE === 'transaction';
const { sql } = createDatabase(process.env.DATABASE_URL!, { max: 2, transactionPooler: pooled });
afterAll(() => sql.end());

const ORDER_STATUSES = [
  'placed',
  'pending_payment',
  'payment_processing',
  'paid',
  'payment_failed',
  'cancelled',
] as const;
const ORDER_MOVES: Record<string, string[]> = {
  pending_payment: ['payment_processing', 'paid', 'payment_failed', 'cancelled'],
  payment_processing: ['paid', 'payment_failed'],
};
const REFUND_STATUSES = ['pending', 'succeeded', 'failed'] as const;
const REFUND_MOVES: Record<string, string[]> = { pending: ['succeeded', 'failed'], succeeded: ['failed'] };

const pairs = <S extends string>(statuses: readonly S[]) =>
  statuses.flatMap((from) => statuses.filter((to) => to !== from).map((to) => [from, to] as const));

/** Tries the move in a transaction that is always rolled back; true when the database allowed it. */
async function tryMove(run: (tx: postgres.TransactionSql) => Promise<unknown>): Promise<boolean> {
  let allowed = false;
  const undo = new Error('undo');
  await sql
    .begin(async (tx) => {
      try {
        await run(tx);
        allowed = true;
      } catch (err) {
        // Only the triggers' own refusal counts, not some other check constraint.
        if ((err as { code?: string }).code !== '23514' || !/cannot move from/.test((err as Error).message)) throw err;
      }
      throw undo;
    })
    .catch((err: unknown) => {
      if (err !== undo) throw err;
    });
  return allowed;
}

describe('forward only, in the database', () => {
  it.each(pairs(ORDER_STATUSES))('an order from %s to %s', async (from, to) => {
    const allowed = await tryMove(async (tx) => {
      const [order] =
        await tx`insert into orders (customer_id, status, total_cents, currency) values (${randomUUID()}, ${from},
          1000, 'usd') returning id`;
      await tx`update orders set status = ${to} where id = ${order!.id}`;
    });
    expect(allowed).toBe(ORDER_MOVES[from]?.includes(to) ?? false);
  });

  it.each(pairs(REFUND_STATUSES))('a refund from %s to %s', async (from, to) => {
    const allowed = await tryMove(async (tx) => {
      const [order] =
        await tx`insert into orders (customer_id, status, total_cents, currency) values (${randomUUID()}, 'paid',
          1000, 'usd') returning id`;
      const [refund] =
        await tx`insert into refunds (order_id, amount_cents, status) values (${order!.id}, 500, ${from}) returning id`;
      await tx`update refunds set status = ${to} where id = ${refund!.id}`;
    });
    expect(allowed).toBe(REFUND_MOVES[from]?.includes(to) ?? false);
  });
});
