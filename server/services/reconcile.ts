/**
 * Reconciliation: the provider's ledger against our orders. Every mismatch is a line of text;
 * none means every charge has its paid order and every paid order has exactly its one charge.
 *
 * Checked: at most one successful charge per order; every successful charge belongs to a paid
 * (possibly refunded) order with the same amount; every paid order has its charge; an order waiting
 * for the provider (payment_processing) waits for a payment the provider has not settled either; the
 * provider's succeeded refunds of a charge add up to the order's; a refund pending here is pending
 * there too; no checkout the completer gave up on is left unseen; no outbox message was set aside;
 * no webhook event named an order of ours with a payment or refund that was not that order's (a
 * "mismatch", recorded and ignored by server/services/webhooks.ts).
 * A mismatch of the waiting kinds means a webhook was missed: the settle job (server/jobs/settle.ts)
 * catches up by asking the provider.
 */
import { and, eq, inArray, isNotNull, sql } from 'drizzle-orm';
import type { DbOrTx } from '../../db/client';
import { orders, outbox, refunds, webhookEvents } from '../../db/schema';
import { keyStatesOf } from '../idempotency';
import { listProviderLedger } from './payments';

/** One mismatch, and the customer it is about (null: nobody's, an outbox message set aside). */
export interface Mismatch {
  customerId: string | null;
  text: string;
}

/** `customerIds` limits the check to those customers (tests share one provider ledger). */
export async function reconcile(
  db: DbOrTx,
  options: { customerId?: string; customerIds?: string[] } = {},
): Promise<string[]> {
  return (await reconcileMismatches(db, options)).map((m) => m.text);
}

/**
 * What `npm run reconcile` prints: the shop's mismatches, one a line; the lab's (its unsafe twins do
 * damage on purpose, to its own customers) counted in one line, or listed under their own heading with
 * `includeLab`. Only the shop's make it exit 1.
 */
export function reconcileReport(
  mismatches: Mismatch[],
  labCustomers: ReadonlySet<string>,
  options: { includeLab?: boolean } = {},
): { lines: string[]; exitCode: 0 | 1 } {
  const isLab = (m: Mismatch) => m.customerId !== null && labCustomers.has(m.customerId);
  const shop = mismatches.filter((m) => !isLab(m));
  const lab = mismatches.filter(isLab);
  const lines = shop.map((m) => `MISMATCH ${m.text}`);
  if (lab.length > 0 && options.includeLab) {
    lines.push(`[reconcile] ${lab.length} mismatch(es) of the lab's customers, made by its unsafe twins on purpose:`);
    lines.push(...lab.map((m) => `LAB ${m.text}`));
  } else if (lab.length > 0) {
    lines.push(
      `[reconcile] ${lab.length} mismatches from the lab's unsafe twins, not listed; --include-lab lists them`,
    );
  }
  lines.push(
    shop.length === 0
      ? '[reconcile] clean: every charge has its order, every paid order its one charge'
      : `[reconcile] ${shop.length} mismatch(es)`,
  );
  return { lines, exitCode: shop.length === 0 ? 0 : 1 };
}

/** Every mismatch, with the customer it is about. */
export async function reconcileMismatches(
  db: DbOrTx,
  options: { customerId?: string; customerIds?: string[] } = {},
): Promise<Mismatch[]> {
  const { intents, refunds: providerRefunds } = await listProviderLedger();
  const scope = options.customerIds ?? (options.customerId ? [options.customerId] : undefined);
  const wanted = scope ? new Set(scope) : undefined;
  const mine = (metadata: Record<string, string> | null | undefined) =>
    !wanted || wanted.has(metadata?.customer_id ?? '');
  const charged = intents.filter((pi) => pi.status === 'succeeded' && mine(pi.metadata));
  const problems: Mismatch[] = [];
  const about = (customerId: string | null | undefined, text: string) =>
    problems.push({ customerId: customerId ?? null, text });

  const byOrder = new Map<string, string[]>();
  const customerOfOrder = new Map<string, string | undefined>();
  for (const pi of charged) {
    byOrder.set(pi.metadata.order_id ?? '?', [...(byOrder.get(pi.metadata.order_id ?? '?') ?? []), pi.id]);
    customerOfOrder.set(pi.metadata.order_id ?? '?', pi.metadata.customer_id);
  }
  for (const [orderId, ids] of byOrder)
    if (ids.length > 1)
      about(customerOfOrder.get(orderId), `order ${orderId} was charged ${ids.length} times (${ids.join(', ')})`);

  const inScope = scope ? inArray(orders.customerId, scope) : undefined;
  const ourOrders = await db
    .select()
    .from(orders)
    .where(and(isNotNull(orders.paymentIntentId), inScope));
  const paidOrders = await db
    .select()
    .from(orders)
    .where(and(eq(orders.status, 'paid'), inScope));
  const byIntent = new Map(ourOrders.map((o) => [o.paymentIntentId!, o]));

  for (const pi of charged) {
    const order = byIntent.get(pi.id);
    if (!order)
      about(
        pi.metadata.customer_id,
        `charge ${pi.id} (${pi.amount} ${pi.currency}) for order ${pi.metadata.order_id ?? '?'} has no paid order ` +
          `recorded`,
      );
    else if (order.status === 'payment_processing')
      about(
        order.customerId,
        `order ${order.id} is payment_processing here, but its charge ${pi.id} succeeded (a webhook was missed)`,
      );
    else if (order.status !== 'paid')
      about(order.customerId, `charge ${pi.id} belongs to order ${order.id}, which is ${order.status}`);
    else if (order.totalCents !== pi.amount_received)
      about(
        order.customerId,
        `order ${order.id} totals ${order.totalCents} but charge ${pi.id} took ${pi.amount_received}`,
      );
  }
  const intentById = new Map(intents.map((pi) => [pi.id, pi]));
  for (const o of ourOrders) {
    const pi = intentById.get(o.paymentIntentId!);
    const providerWaits = pi?.status === 'processing' || pi?.status === 'requires_action';
    if (o.status === 'payment_processing' && pi && !providerWaits && pi.status !== 'succeeded') {
      about(
        o.customerId,
        `order ${o.id} is payment_processing here, but its payment is ${pi.status} at the provider (a webhook was ` +
          `missed)`,
      );
    }
    if (o.status === 'paid' && providerWaits)
      about(o.customerId, `order ${o.id} is paid here, but its payment is still ${pi!.status} at the provider`);
  }
  const chargedIds = new Set(charged.map((pi) => pi.id));
  for (const o of paidOrders) {
    if (!o.paymentIntentId || !chargedIds.has(o.paymentIntentId))
      about(o.customerId, `paid order ${o.id} has no successful charge at the provider`);
  }

  const refundedAtProvider = new Map<string, number>();
  const providerRefundStatus = new Map(providerRefunds.map((r) => [r.id, r.status]));
  for (const r of providerRefunds) {
    const pi = typeof r.payment_intent === 'string' ? r.payment_intent : r.payment_intent?.id;
    if (pi && byIntent.has(pi) && r.status === 'succeeded')
      refundedAtProvider.set(pi, (refundedAtProvider.get(pi) ?? 0) + r.amount);
  }
  const orderIds = ourOrders.map((o) => o.id);
  const ourRefunds = orderIds.length ? await db.select().from(refunds).where(inArray(refunds.orderId, orderIds)) : [];
  for (const o of ourOrders) {
    const succeeded = ourRefunds
      .filter((r) => r.orderId === o.id && r.status === 'succeeded')
      .reduce((s, r) => s + r.amountCents, 0);
    const atProvider = refundedAtProvider.get(o.paymentIntentId!) ?? 0;
    if (succeeded !== atProvider)
      about(o.customerId, `order ${o.id}: ${succeeded} cents refunded here, ${atProvider} at the provider`);
    // Pending here is fine while the provider has it pending too; anything else is a missed webhook
    // (or a refund whose provider call never ended: the completer finishes those).
    for (const r of ourRefunds.filter((x) => x.orderId === o.id && x.status === 'pending')) {
      const there = r.providerRefundId ? providerRefundStatus.get(r.providerRefundId) : undefined;
      if (there !== 'pending')
        about(o.customerId, `order ${o.id}: refund ${r.id} is pending here, ${there ?? 'unknown'} at the provider`);
    }
  }

  // A pending order whose key has an answer was given up on (any other answer moves the order on);
  // one whose key is gone has outlived every retry.
  const stuck = await db
    .select({ id: orders.id, keyId: orders.idempotencyKeyId, customerId: orders.customerId })
    .from(orders)
    .where(and(eq(orders.status, 'pending_payment'), inScope));
  const keyStates = await keyStatesOf(
    db,
    stuck.flatMap((o) => (o.keyId ? [o.keyId] : [])),
  );
  // Read again after the keys: a checkout that finished in between (the order paid and its key
  // answered, in one commit) shows its key completed but was read pending above. An order still
  // pending now, after its key was read completed, was really given up on.
  const stillPending = new Set(
    stuck.length
      ? (
          await db
            .select({ id: orders.id })
            .from(orders)
            .where(
              and(
                inArray(
                  orders.id,
                  stuck.map((o) => o.id),
                ),
                eq(orders.status, 'pending_payment'),
              ),
            )
        ).map((o) => o.id)
      : [],
  );
  for (const o of stuck.filter((x) => stillPending.has(x.id))) {
    const keyState = (o.keyId && keyStates.get(o.keyId)) ?? null;
    if (keyState === 'completed')
      about(o.customerId, `order ${o.id} is pending_payment and its checkout was given up: needs attention`);
    else if (keyState === null)
      about(o.customerId, `order ${o.id} is pending_payment and its key has expired: needs attention`);
  }

  // Events that named an order of ours but carried someone else's payment (or refund): they changed
  // nothing, and say who tried what.
  const mismatches = await db
    .select({
      id: webhookEvents.id,
      type: webhookEvents.type,
      orderId: webhookEvents.orderId,
      detail: webhookEvents.detail,
      customerId: orders.customerId,
    })
    .from(webhookEvents)
    .leftJoin(orders, eq(orders.id, webhookEvents.orderId))
    .where(and(eq(webhookEvents.outcome, 'mismatch'), inScope))
    .orderBy(webhookEvents.receivedAt);
  for (const m of mismatches)
    about(
      m.customerId,
      `webhook event ${m.id} (${m.type}) named order ${m.orderId ?? '?'} and changed nothing: ${m.detail}`,
    );

  if (!scope) {
    const dead = await db
      .select({
        dedupeKey: outbox.dedupeKey,
        topic: outbox.topic,
        attempts: outbox.attempts,
        lastError: outbox.lastError,
      })
      .from(outbox)
      .where(sql`${outbox.deadAt} is not null`);
    for (const m of dead)
      about(
        null,
        `outbox message ${m.dedupeKey} (${m.topic}) was set aside after ${m.attempts} failures: ${m.lastError}`,
      );
  }
  return problems;
}
