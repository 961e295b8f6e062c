/**
 * Webhooks from the payment provider: the same exactly-once lesson, on the way in. Stripe delivers
 * each event at least once, sometimes late, in no guaranteed order. So:
 *
 * - once: the event's id is recorded (`webhook_events`) in the same transaction as its effect. A
 *   redelivery finds it and changes nothing; two deliveries racing each other meet on the primary
 *   key, and the second waits for the first, then sees the record.
 * - in any order: every effect moves a record forward only (payment-states.ts), so an event older
 *   than what is recorded changes nothing ("stale"), whenever it arrives.
 *
 * Handled: payment_intent.succeeded, .processing, .requires_action, .payment_failed (an order of
 * this shop, found by the payment's metadata); refund.created, refund.updated, refund.failed (a
 * refund of this shop, or one made at the provider by someone else, which is recorded). Anything
 * else, and anything about objects this shop did not make, is recorded as "unrelated".
 */

import { and, eq, sql } from 'drizzle-orm';
import type Stripe from 'stripe';
import type { Db, Tx } from '../../db/client';
import { orders, refunds, webhookEvents } from '../../db/schema';
import { advanceOrder, advanceRefund } from './payment-states';

export type WebhookOutcome = 'applied' | 'stale' | 'unrelated' | 'duplicate';

const PAYMENT_STATUS: Record<string, 'paid' | 'payment_processing' | 'payment_failed'> = {
  'payment_intent.succeeded': 'paid',
  'payment_intent.processing': 'payment_processing',
  'payment_intent.requires_action': 'payment_processing',
  'payment_intent.payment_failed': 'payment_failed',
};

/** Applies one verified event, once. (The lab's unsafe twin, without the record, is in server/lab/twins.ts.) */
export async function applyEvent(db: Db, event: Stripe.Event): Promise<WebhookOutcome> {
  const object = event.data.object as { id: string };
  return db.transaction(async (tx) => {
    // The claim, as for idempotency keys: one atomic insert; a copy of this event finds it taken.
    const [claimed] = await tx
      .insert(webhookEvents)
      .values({ id: event.id, type: event.type, objectId: object.id, outcome: 'unrelated' })
      .onConflictDoNothing()
      .returning({ id: webhookEvents.id });
    if (!claimed) return 'duplicate';
    const outcome = await effect(tx, event);
    if (outcome !== 'unrelated') await tx.update(webhookEvents).set({ outcome }).where(eq(webhookEvents.id, event.id));
    return outcome;
  });
}

async function effect(tx: Tx, event: Stripe.Event): Promise<Exclude<WebhookOutcome, 'duplicate'>> {
  const to = PAYMENT_STATUS[event.type];
  if (to) {
    const intent = event.data.object as Stripe.PaymentIntent;
    const orderId = intent.metadata?.order_id;
    if (!orderId) return 'unrelated';
    const [order] = await tx.select({ id: orders.id }).from(orders).where(eq(orders.id, orderId));
    if (!order) return 'unrelated';
    return (await advanceOrder(tx, order.id, to, intent.id)) ? 'applied' : 'stale';
  }
  if (event.type === 'refund.created' || event.type === 'refund.updated' || event.type === 'refund.failed') {
    return refundEffect(tx, event.data.object as Stripe.Refund);
  }
  return 'unrelated';
}

async function refundEffect(tx: Tx, refund: Stripe.Refund): Promise<'applied' | 'stale' | 'unrelated'> {
  const status =
    refund.status === 'succeeded'
      ? 'succeeded'
      : refund.status === 'failed' || refund.status === 'canceled'
        ? 'failed'
        : 'pending';
  const ours = refund.metadata?.refund_id;
  if (ours) {
    const [row] = await tx.select({ id: refunds.id }).from(refunds).where(eq(refunds.id, ours));
    if (!row) return 'unrelated';
    if (status === 'pending') return 'stale'; // we reserved it before calling: pending is known already
    return (await advanceRefund(tx, row.id, status, refund.id)) ? 'applied' : 'stale';
  }
  // A refund someone made at the provider (its dashboard, say), of a payment of ours: record it, so
  // that what may still be refunded, and reconcile, know of it.
  const paymentIntentId = typeof refund.payment_intent === 'string' ? refund.payment_intent : refund.payment_intent?.id;
  if (!paymentIntentId) return 'unrelated';
  const [order] = await tx.select({ id: orders.id }).from(orders).where(eq(orders.paymentIntentId, paymentIntentId));
  if (!order) return 'unrelated';
  const [known] = await tx.select({ id: refunds.id }).from(refunds).where(eq(refunds.providerRefundId, refund.id));
  if (known) return status === 'pending' ? 'stale' : (await advanceRefund(tx, known.id, status)) ? 'applied' : 'stale';
  if (status === 'failed') return 'stale'; // a refund we never saw, already failed: nothing to record
  // Two events of this one refund may race: the unique provider id lets one of them record it.
  const [inserted] = await tx
    .insert(refunds)
    .values({ orderId: order.id, amountCents: refund.amount, status, providerRefundId: refund.id })
    .onConflictDoNothing()
    .returning({ id: refunds.id });
  if (!inserted) return 'stale';
  await tx
    .update(orders)
    .set({ refundedCents: sql`least(${orders.totalCents}, ${orders.refundedCents} + ${refund.amount})` })
    .where(and(eq(orders.id, order.id)));
  return 'applied';
}
