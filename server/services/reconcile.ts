/**
 * Reconciliation: the provider's ledger against our orders. Every mismatch is a line of text;
 * none means every charge has its paid order and every paid order has exactly its one charge.
 *
 * Checked: at most one successful charge per order; every successful charge belongs to a paid
 * (possibly refunded) order with the same amount; every paid order has its charge; the provider's
 * refunds of a charge add up to the order's succeeded refunds; no refund is left half-done; no
 * checkout the completer gave up on is left unseen; no outbox message was set aside.
 */
import { and, eq, inArray, isNotNull, sql } from 'drizzle-orm';
import type { DbOrTx } from '../../db/client';
import { idempotencyKeys, orders, outbox, refunds } from '../../db/schema';
import { listProviderLedger } from './payments';

/** `customerIds` limits the check to those customers (tests share one provider ledger). */
export async function reconcile(db: DbOrTx, options: { customerId?: string; customerIds?: string[] } = {}): Promise<string[]> {
  const { intents, refunds: providerRefunds } = await listProviderLedger();
  const scope = options.customerIds ?? (options.customerId ? [options.customerId] : undefined);
  const wanted = scope ? new Set(scope) : undefined;
  const mine = (metadata: Record<string, string> | null | undefined) => !wanted || wanted.has(metadata?.customer_id ?? '');
  const charged = intents.filter((pi) => pi.status === 'succeeded' && mine(pi.metadata));
  const problems: string[] = [];

  const byOrder = new Map<string, string[]>();
  for (const pi of charged) byOrder.set(pi.metadata.order_id ?? '?', [...(byOrder.get(pi.metadata.order_id ?? '?') ?? []), pi.id]);
  for (const [orderId, ids] of byOrder) if (ids.length > 1) problems.push(`order ${orderId} was charged ${ids.length} times (${ids.join(', ')})`);

  const inScope = scope ? inArray(orders.customerId, scope) : undefined;
  const ourOrders = await db.select().from(orders).where(and(isNotNull(orders.paymentIntentId), inScope));
  const paidOrders = await db.select().from(orders).where(and(eq(orders.status, 'paid'), inScope));
  const byIntent = new Map(ourOrders.map((o) => [o.paymentIntentId!, o]));

  for (const pi of charged) {
    const order = byIntent.get(pi.id);
    if (!order) problems.push(`charge ${pi.id} (${pi.amount} ${pi.currency}) for order ${pi.metadata.order_id ?? '?'} has no paid order recorded`);
    else if (order.status !== 'paid') problems.push(`charge ${pi.id} belongs to order ${order.id}, which is ${order.status}`);
    else if (order.totalCents !== pi.amount_received) problems.push(`order ${order.id} totals ${order.totalCents} but charge ${pi.id} took ${pi.amount_received}`);
  }
  const chargedIds = new Set(charged.map((pi) => pi.id));
  for (const o of paidOrders) {
    if (!o.paymentIntentId || !chargedIds.has(o.paymentIntentId)) problems.push(`paid order ${o.id} has no successful charge at the provider`);
  }

  const refundedAtProvider = new Map<string, number>();
  for (const r of providerRefunds) {
    const pi = typeof r.payment_intent === 'string' ? r.payment_intent : r.payment_intent?.id;
    if (pi && byIntent.has(pi)) refundedAtProvider.set(pi, (refundedAtProvider.get(pi) ?? 0) + r.amount);
  }
  const orderIds = ourOrders.map((o) => o.id);
  const ourRefunds = orderIds.length ? await db.select().from(refunds).where(inArray(refunds.orderId, orderIds)) : [];
  for (const o of ourOrders) {
    const succeeded = ourRefunds.filter((r) => r.orderId === o.id && r.status === 'succeeded').reduce((s, r) => s + r.amountCents, 0);
    const atProvider = refundedAtProvider.get(o.paymentIntentId!) ?? 0;
    if (succeeded !== atProvider) problems.push(`order ${o.id}: ${succeeded} cents refunded here, ${atProvider} at the provider`);
    const pending = ourRefunds.filter((r) => r.orderId === o.id && r.status === 'pending');
    if (pending.length) problems.push(`order ${o.id}: ${pending.length} refund(s) still pending`);
  }

  // A pending order whose key has an answer was given up on (any other answer moves the order on);
  // one whose key is gone has outlived every retry.
  const stuck = await db
    .select({ id: orders.id, keyState: idempotencyKeys.state })
    .from(orders)
    .leftJoin(idempotencyKeys, eq(idempotencyKeys.id, orders.idempotencyKeyId))
    .where(and(eq(orders.status, 'pending_payment'), inScope));
  for (const o of stuck) {
    if (o.keyState === 'completed') problems.push(`order ${o.id} is pending_payment and its checkout was given up: needs attention`);
    else if (o.keyState === null) problems.push(`order ${o.id} is pending_payment and its key has expired: needs attention`);
  }

  if (!scope) {
    const dead = await db
      .select({ dedupeKey: outbox.dedupeKey, topic: outbox.topic, attempts: outbox.attempts, lastError: outbox.lastError })
      .from(outbox)
      .where(sql`${outbox.deadAt} is not null`);
    for (const m of dead) problems.push(`outbox message ${m.dedupeKey} (${m.topic}) was set aside after ${m.attempts} failures: ${m.lastError}`);
  }
  return problems;
}
