/**
 * The one place an order's payment status and a refund's status change, forward only. Facts about a
 * payment reach the shop in any order (the checkout's own answer, webhooks delivered late or twice,
 * the settle job asking the provider): each moves the record only from a state that comes before
 * the one it reports, and is a no-op otherwise. So a late "processing" after "paid" changes nothing,
 * whatever the arrival order. A trigger refuses any backward move in SQL as well.
 *
 *   order:  pending_payment -> payment_processing -> paid | payment_failed     (and pending_payment -> cancelled)
 *   refund: pending -> succeeded -> failed, or pending -> failed
 */
import { and, eq, inArray, sql } from 'drizzle-orm';
import type { Tx } from '../../db/client';
import { orders, outbox, refunds } from '../../db/schema';
import { getOrderById } from './orders';

type OrderStatus = 'payment_processing' | 'paid' | 'payment_failed' | 'cancelled';

/** The states each status may be reached from. */
const ORDER_BEFORE: Record<OrderStatus, ('pending_payment' | 'payment_processing')[]> = {
  payment_processing: ['pending_payment'],
  paid: ['pending_payment', 'payment_processing'],
  payment_failed: ['pending_payment', 'payment_processing'],
  cancelled: ['pending_payment'],
};

/**
 * Moves the order to `to` if it is in a state before it; returns whether it moved. The payment intent
 * is recorded the first time one is known. Reaching `paid` stages the receipt in the same
 * transaction: it exists if and only if the payment is recorded.
 */
export async function advanceOrder(
  tx: Tx,
  orderId: string,
  to: OrderStatus,
  paymentIntentId?: string | null,
): Promise<boolean> {
  const moved = await tx
    .update(orders)
    .set({
      status: to,
      ...(paymentIntentId ? { paymentIntentId: sql`coalesce(${orders.paymentIntentId}, ${paymentIntentId})` } : {}),
    })
    .where(and(eq(orders.id, orderId), inArray(orders.status, ORDER_BEFORE[to])))
    .returning({ id: orders.id, customerId: orders.customerId });
  if (moved.length === 0) return false;
  if (to === 'paid') {
    const paid = await getOrderById(tx, orderId);
    await tx
      .insert(outbox)
      .values({ topic: 'receipt', dedupeKey: `receipt:${orderId}`, payload: paid })
      .onConflictDoNothing();
  }
  return true;
}

/**
 * Moves a refund forward; returns whether it moved. A refund that fails gives its amount back to
 * what the order may still refund, in the same statement's transaction.
 */
export async function advanceRefund(
  tx: Tx,
  refundId: string,
  to: 'succeeded' | 'failed',
  providerRefundId?: string | null,
): Promise<boolean> {
  const before: ('pending' | 'succeeded')[] = to === 'succeeded' ? ['pending'] : ['pending', 'succeeded'];
  const [moved] = await tx
    .update(refunds)
    .set({
      status: to,
      ...(providerRefundId
        ? { providerRefundId: sql`coalesce(${refunds.providerRefundId}, ${providerRefundId})` }
        : {}),
    })
    .where(and(eq(refunds.id, refundId), inArray(refunds.status, before)))
    .returning({ orderId: refunds.orderId, amountCents: refunds.amountCents });
  if (!moved) return false;
  if (to === 'failed') await recountRefunded(tx, moved.orderId);
  return true;
}

/**
 * Sets what an order counts as refunded to the sum of its refunds that have not failed, at most its
 * total. Recounted, not added to or taken from: a refund made at the provider beside ours (its
 * dashboard) can be recorded while one of ours is reserved, their sum above the total; the count is
 * then held at the total, and taking a failed refund's amount from that held count would go below
 * what is still live, or below zero (a refused write, a 500 the provider retries for days).
 */
export async function recountRefunded(tx: Tx, orderId: string): Promise<void> {
  // Locked first, in a statement of its own: the recount, a new statement, then sees every refund
  // committed before the lock was granted (a reservation that held the order meanwhile, say). The
  // lock an UPDATE takes, not FOR UPDATE: a transaction that has just inserted a refund holds a key
  // share on its order (the foreign key), and two of them asking FOR UPDATE would wait for each other.
  await tx.select({ id: orders.id }).from(orders).where(eq(orders.id, orderId)).for('no key update');
  const live = sql`(select coalesce(sum(${refunds.amountCents}), 0) from ${refunds}
    where ${refunds.orderId} = ${orderId} and ${refunds.status} <> 'failed')`;
  await tx
    .update(orders)
    .set({ refundedCents: sql`least(${orders.totalCents}, ${live})` })
    .where(eq(orders.id, orderId));
}
