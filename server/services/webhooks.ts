/**
 * Webhooks from the payment provider: the same exactly-once lesson, on the way in. Stripe delivers
 * each event at least once, sometimes late, in no guaranteed order. So:
 *
 * - once: the event's id is recorded (`webhook_events`) in the same transaction as its effect. A
 *   redelivery finds it and changes nothing; two deliveries racing each other meet on the primary
 *   key, and the second waits for the first, then sees the record.
 * - in any order: every effect moves a record forward only (payment-states.ts), so an event older
 *   than what is recorded changes nothing ("stale"), whenever it arrives.
 * - only with its own money: an event is a pointer to a payment, not proof about an order. Its
 *   metadata says which order (or refund) it is about, and anyone who can make a payment on the
 *   account can write any metadata. So an event moves an order only when the payment it carries is
 *   that order's (paymentOfTheOrder), and a refund only when it is a refund of that order's payment,
 *   for that refund's amount (refundOfTheRow). Anything else is a "mismatch": recorded, changed
 *   nothing, listed by reconcile, answered 2xx (sending it again would not make it match).
 *
 * Handled: payment_intent.succeeded, .processing, .requires_action, .payment_failed (an order of
 * this shop, named by the payment's metadata); refund.created, refund.updated, refund.failed (a
 * refund of this shop, or one made at the provider by someone else, which is recorded). Anything
 * else, and anything about objects this shop did not make (metadata that is not one of our ids, in
 * any format), is recorded as "unrelated".
 *
 * The body is checked before any of this: a signed body that is not a well-formed event is refused
 * with a 400 that names the problem (parseEvent), and nothing is written.
 */

import { and, eq, ne } from 'drizzle-orm';
import { z } from 'zod';
import type { Db, Tx } from '../../db/client';
import { orders, refunds, type WEBHOOK_OUTCOMES, webhookEvents } from '../../db/schema';
import { advanceOrder, advanceRefund, recountRefunded } from './payment-states';

export type WebhookOutcome = (typeof WEBHOOK_OUTCOMES)[number] | 'duplicate';

/** What an event did; `detail` says why, for a mismatch (and for some unrelated events). */
export interface Applied {
  outcome: WebhookOutcome;
  detail?: string;
  /** The order a mismatch named. */
  orderId?: string;
}

// ---------------------------------------------------------------------------------------------
// 1. The shape of an event, checked after its signature.

// Our tables take ids of 1 to 255 characters (webhook_events' check): Stripe's are far shorter, and
// made of letters, digits and underscores. Visible ASCII only: a NUL, say, cannot be stored in a
// Postgres text column at all (a 500, retried for days), and a control character has no place in a log.
const VISIBLE_ASCII = /^[\x21-\x7e]+$/;
const providerId = z.string().min(1).max(255).regex(VISIBLE_ASCII, 'must be visible ASCII characters');
const metadata = z.record(z.string(), z.string()).nullish();

const eventSchema = z.looseObject({
  id: providerId,
  type: z.string().min(1).max(255).regex(VISIBLE_ASCII, 'must be visible ASCII characters'),
  data: z.looseObject({ object: z.looseObject({ id: providerId }) }),
});
const intentSchema = z.looseObject({
  id: providerId,
  amount: z.number().int().nonnegative(),
  // What was taken: 0 until the payment succeeds, then the amount captured, which may be less than
  // `amount` (a payment authorised for the total and captured in part). Stripe always sends it.
  amount_received: z.number().int().nonnegative().optional(),
  // A three-letter ISO code, as Stripe writes them (lower case); it is quoted in a mismatch's detail.
  currency: z.string().regex(/^[a-z]{3}$/i, 'must be a three-letter currency code'),
  metadata,
});
const refundSchema = z.looseObject({
  id: providerId,
  amount: z.number().int().positive(),
  status: z.string().max(64).nullish(),
  payment_intent: z.union([providerId, z.looseObject({ id: providerId })]).nullish(),
  metadata,
});

export type PaymentIntentObject = z.infer<typeof intentSchema>;
export type RefundObject = z.infer<typeof refundSchema>;

const PAYMENT_STATUS: Record<string, 'paid' | 'payment_processing' | 'payment_failed'> = {
  'payment_intent.succeeded': 'paid',
  'payment_intent.processing': 'payment_processing',
  'payment_intent.requires_action': 'payment_processing',
  'payment_intent.payment_failed': 'payment_failed',
};
const REFUND_EVENTS = new Set(['refund.created', 'refund.updated', 'refund.failed']);

/** A well-formed event: the kinds this shop acts on have their object checked too. */
export type WebhookEvent =
  | { id: string; type: string; kind: 'payment'; to: (typeof PAYMENT_STATUS)[string]; object: PaymentIntentObject }
  | { id: string; type: string; kind: 'refund'; object: RefundObject }
  | { id: string; type: string; kind: 'other'; object: { id: string } };

const issuesOf = (error: z.ZodError, prefix: string) =>
  error.issues
    .slice(0, 3)
    .map((i) => `${[prefix, ...i.path.map(String)].filter(Boolean).join('.') || 'the body'}: ${i.message}`)
    .join('; ');

/** The verified body as an event, or what is wrong with it (for the 400). */
export function parseEvent(body: unknown): { ok: true; event: WebhookEvent } | { ok: false; problem: string } {
  const base = eventSchema.safeParse(body);
  if (!base.success) return { ok: false, problem: `not a well-formed event: ${issuesOf(base.error, '')}` };
  const { id, type } = base.data;
  const to = PAYMENT_STATUS[type];
  const schema = to ? intentSchema : REFUND_EVENTS.has(type) ? refundSchema : undefined;
  if (!schema) return { ok: true, event: { id, type, kind: 'other', object: base.data.data.object } };
  const object = schema.safeParse(base.data.data.object);
  if (!object.success)
    return { ok: false, problem: `not a well-formed ${type} event: ${issuesOf(object.error, 'data.object')}` };
  return to
    ? { ok: true, event: { id, type, kind: 'payment', to, object: object.data as PaymentIntentObject } }
    : { ok: true, event: { id, type, kind: 'refund', object: object.data as RefundObject } };
}

// ---------------------------------------------------------------------------------------------
// 2. Whose payment it is.

// Our orders and refunds have ids from gen_random_uuid(), always in this form. Metadata in any other
// form (`ORD-1234`, another integration's or a dashboard payment's) names nothing of ours, and never
// reaches a uuid column (Postgres would refuse it: a 500, retried by the provider for days).
const OUR_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const isOurId = (value: string | undefined): value is string => value !== undefined && OUR_ID.test(value);

/** The columns of an order that decide whether a payment is its own. */
export interface OrderToMatch {
  id: string;
  customerId: string;
  totalCents: number;
  currency: string;
  paymentIntentId: string | null;
  idempotencyKeyId: string | null;
}

/** The columns of a refund of ours that decide whether a provider refund is that one. */
export interface RefundToMatch {
  id: string;
  amountCents: number;
  providerRefundId: string | null;
  /** Its order's payment. */
  paymentIntentId: string | null;
}

/** The checks, as a parameter of applyEvent (the tests' negative control takes them away). */
export interface Matching {
  /** Undefined when the payment is the order's; otherwise what differs. */
  payment(tx: Tx, order: OrderToMatch, intent: PaymentIntentObject): Promise<string | undefined>;
  /** Undefined when the provider's refund is this refund of ours; otherwise what differs. */
  refund(tx: Tx, row: RefundToMatch, refund: RefundObject): Promise<string | undefined>;
}

const intentOf = (refund: RefundObject) =>
  typeof refund.payment_intent === 'string' ? refund.payment_intent : refund.payment_intent?.id;

/**
 * A payment is the order's when its id is the one the order recorded. An order with none recorded
 * yet (the webhook overtook the checkout's own answer) takes a payment made for it, and only that:
 * made with the order's idempotency key row and for its customer (the checkout puts both in the
 * metadata), and no other order's payment already. Either way its amount and currency are the
 * order's, and money it has taken (`amount_received`) is the order's whole total: a payment recorded
 * by an event that carried no money yet (its requires_action) could otherwise change its amount or
 * currency before it is confirmed, or be captured for less than it was authorised for (it keeps
 * `amount` and says what came in `amount_received`). Ours are made for the total and captured whole.
 */
export const paymentOfTheOrder: Matching['payment'] = async (tx, order, intent) => {
  if (order.paymentIntentId && intent.id !== order.paymentIntentId)
    return `payment ${intent.id} is not order ${order.id}'s (${order.paymentIntentId})`;
  const differs: string[] = [];
  if (intent.amount !== order.totalCents) differs.push(`amount ${intent.amount}, the order's ${order.totalCents}`);
  const received = intent.amount_received ?? 0;
  if (received !== 0 && received !== order.totalCents)
    differs.push(`received ${received}, the order's ${order.totalCents}`);
  if (intent.currency.toLowerCase() !== order.currency.toLowerCase())
    differs.push(`currency ${intent.currency}, the order's ${order.currency}`);
  if (!order.paymentIntentId) {
    const meta = intent.metadata ?? {};
    if (!order.idempotencyKeyId || meta.idempotency_key_id !== order.idempotencyKeyId)
      differs.push('made with another idempotency key');
    if (meta.customer_id !== order.customerId) differs.push('made for another customer');
    if (differs.length === 0) {
      const [other] = await tx.select({ id: orders.id }).from(orders).where(eq(orders.paymentIntentId, intent.id));
      if (other) differs.push(`it is order ${other.id}'s payment`);
    }
  }
  return differs.length ? `payment ${intent.id} for order ${order.id}: ${differs.join('; ')}` : undefined;
};

/** A provider refund is ours when it refunds our order's payment, for our refund's amount. */
export const refundOfTheRow: Matching['refund'] = async (tx, row, refund) => {
  const differs: string[] = [];
  const paymentIntentId = intentOf(refund);
  if (!row.paymentIntentId || paymentIntentId !== row.paymentIntentId)
    differs.push(`it refunds payment ${paymentIntentId ?? 'none'}, not the order's (${row.paymentIntentId ?? 'none'})`);
  if (refund.amount !== row.amountCents) differs.push(`amount ${refund.amount}, ours ${row.amountCents}`);
  if (row.providerRefundId && row.providerRefundId !== refund.id)
    differs.push(`ours is provider refund ${row.providerRefundId}`);
  if (differs.length === 0 && !row.providerRefundId) {
    const [other] = await tx
      .select({ id: refunds.id })
      .from(refunds)
      .where(and(eq(refunds.providerRefundId, refund.id), ne(refunds.id, row.id)));
    if (other) differs.push(`it is refund ${other.id}'s`);
  }
  return differs.length ? `refund ${refund.id} for refund ${row.id}: ${differs.join('; ')}` : undefined;
};

const MATCHING: Matching = { payment: paymentOfTheOrder, refund: refundOfTheRow };

// ---------------------------------------------------------------------------------------------
// 3. Applying it, once.

const DETAIL_MAX = 1_000; // webhook_events_detail_length

/**
 * Applies one verified, well-formed event, once. `matching` is for the tests' negative control
 * only: every caller in the app uses the default. (The lab's unsafe twin without the record is in
 * server/lab/twins.ts.)
 */
export async function applyEvent(db: Db, event: WebhookEvent, matching: Matching = MATCHING): Promise<Applied> {
  return db.transaction(async (tx) => {
    // The claim, as for idempotency keys: one atomic insert; a copy of this event finds it taken.
    const [claimed] = await tx
      .insert(webhookEvents)
      .values({ id: event.id, type: event.type, objectId: event.object.id, outcome: 'unrelated' })
      .onConflictDoNothing()
      .returning({ id: webhookEvents.id });
    if (!claimed) return { outcome: 'duplicate' };
    const result = await effect(tx, event, matching);
    if (result.outcome !== 'unrelated' || result.detail)
      await tx
        .update(webhookEvents)
        .set({ outcome: result.outcome, orderId: result.orderId, detail: result.detail?.slice(0, DETAIL_MAX) })
        .where(eq(webhookEvents.id, event.id));
    return result;
  });
}

type Result = Applied & { outcome: Exclude<WebhookOutcome, 'duplicate'> };
const moved = (yes: boolean): Result => ({ outcome: yes ? 'applied' : 'stale' });

async function effect(tx: Tx, event: WebhookEvent, matching: Matching): Promise<Result> {
  if (event.kind === 'refund') return refundEffect(tx, event.object, matching);
  if (event.kind !== 'payment') return { outcome: 'unrelated' };
  const intent = event.object;
  const named = intent.metadata?.order_id;
  if (named === undefined) return { outcome: 'unrelated' };
  if (!isOurId(named)) return { outcome: 'unrelated', detail: 'metadata.order_id is not one of our order ids' };
  // Locked: the check and the move see the same row (a checkout recording its payment waits, or we do).
  const [order] = await tx
    .select({
      id: orders.id,
      customerId: orders.customerId,
      totalCents: orders.totalCents,
      currency: orders.currency,
      paymentIntentId: orders.paymentIntentId,
      idempotencyKeyId: orders.idempotencyKeyId,
    })
    .from(orders)
    .where(eq(orders.id, named))
    .for('update');
  if (!order) return { outcome: 'unrelated', detail: 'metadata.order_id names no order of ours' };
  const differs = await matching.payment(tx, order, intent);
  if (differs) return { outcome: 'mismatch', orderId: order.id, detail: differs };
  return moved(await advanceOrder(tx, order.id, event.to, intent.id));
}

async function refundEffect(tx: Tx, refund: RefundObject, matching: Matching): Promise<Result> {
  const status =
    refund.status === 'succeeded'
      ? 'succeeded'
      : refund.status === 'failed' || refund.status === 'canceled'
        ? 'failed'
        : 'pending';
  const ours = refund.metadata?.refund_id;
  if (ours !== undefined) {
    if (!isOurId(ours)) return { outcome: 'unrelated', detail: 'metadata.refund_id is not one of our refund ids' };
    const [row] = await tx
      .select({
        id: refunds.id,
        orderId: refunds.orderId,
        amountCents: refunds.amountCents,
        providerRefundId: refunds.providerRefundId,
        paymentIntentId: orders.paymentIntentId,
      })
      .from(refunds)
      .innerJoin(orders, eq(orders.id, refunds.orderId))
      .where(eq(refunds.id, ours))
      .for('update', { of: refunds });
    if (!row) return { outcome: 'unrelated', detail: 'metadata.refund_id names no refund of ours' };
    const differs = await matching.refund(tx, row, refund);
    if (differs) return { outcome: 'mismatch', orderId: row.orderId, detail: differs };
    if (status === 'pending') return { outcome: 'stale' }; // we reserved it before calling: pending is known already
    return moved(await advanceRefund(tx, row.id, status, refund.id));
  }
  // A refund someone made at the provider (its dashboard, say), of a payment of ours: record it, so
  // that what may still be refunded, and reconcile, know of it. The payment's id finds the order.
  const paymentIntentId = intentOf(refund);
  if (!paymentIntentId) return { outcome: 'unrelated' };
  const [order] = await tx
    .select({ id: orders.id, totalCents: orders.totalCents })
    .from(orders)
    .where(eq(orders.paymentIntentId, paymentIntentId));
  if (!order) return { outcome: 'unrelated' };
  // A refund of this payment can never be larger than it (our payments are for the order's total).
  if (refund.amount > order.totalCents)
    return {
      outcome: 'mismatch',
      orderId: order.id,
      detail: `refund ${refund.id} of ${refund.amount} is more than order ${order.id}'s payment (${order.totalCents})`,
    };
  const [known] = await tx
    .select({
      id: refunds.id,
      orderId: refunds.orderId,
      amountCents: refunds.amountCents,
      providerRefundId: refunds.providerRefundId,
    })
    .from(refunds)
    .where(eq(refunds.providerRefundId, refund.id));
  if (known) {
    const differs =
      known.orderId === order.id
        ? await matching.refund(tx, { ...known, paymentIntentId }, refund)
        : `refund ${refund.id} is recorded for order ${known.orderId}, not this payment's order ${order.id}`;
    if (differs) return { outcome: 'mismatch', orderId: order.id, detail: differs };
    return status === 'pending' ? { outcome: 'stale' } : moved(await advanceRefund(tx, known.id, status));
  }
  if (status === 'failed') return { outcome: 'stale' }; // a refund we never saw, already failed: nothing to record
  // Two events of this one refund may race: the unique provider id lets one of them record it.
  const [inserted] = await tx
    .insert(refunds)
    .values({ orderId: order.id, amountCents: refund.amount, status, providerRefundId: refund.id })
    .onConflictDoNothing()
    .returning({ id: refunds.id });
  if (!inserted) return { outcome: 'stale' };
  await recountRefunded(tx, order.id);
  return { outcome: 'applied' };
}
