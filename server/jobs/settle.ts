/**
 * The settle job: for payments and refunds still waiting for the provider after a while, it asks the
 * provider where they stand and moves them on, as the webhook would have. Webhooks are delivered at
 * least once, but "at least once" assumes the shop is up to receive them, and a shop may have been
 * down for longer than the provider keeps retrying. Forward only (payment-states.ts), so whichever
 * of the webhook and this job comes first, the other changes nothing.
 */
import { and, eq, inArray, isNotNull, lt, sql } from 'drizzle-orm';
import type { Db } from '../../db/client';
import { orders, refunds } from '../../db/schema';
import { log } from '../observability/log';
import { advanceOrder, advanceRefund } from '../services/payment-states';
import { paymentStatus, refundStatus } from '../services/payments';

// A minute: a webhook normally arrives within seconds, so by then one was probably missed. Asking
// sooner would only duplicate the webhook's work; asking much later would leave customers waiting.
export const SETTLE_AFTER_SECONDS = 60;
// Records per run: each costs one provider call.
const BATCH = 50;

export async function settleWaiting(
  db: Db,
  options: { olderThanSeconds?: number; signal?: AbortSignal; customerIds?: string[] } = {},
) {
  const age = sql`now() - make_interval(secs => ${options.olderThanSeconds ?? SETTLE_AFTER_SECONDS})`;
  // Only some customers' records (the lab's run, a test), or everyone's.
  const theirs = options.customerIds ? inArray(orders.customerId, options.customerIds) : undefined;
  // `unanswered`: records the provider could not tell about (it does not know the payment, or the call
  // failed). Each is logged and left as it is; one such record must not stop the others being settled.
  const outcome = { orders: 0, refunds: 0, unanswered: 0 };
  const ask = async <T>(what: Record<string, string>, call: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await call();
    } catch (err) {
      outcome.unanswered++;
      log().warn({ ...what, err }, 'settle: the provider could not say where this stands; left as it is');
      return undefined;
    }
  };
  const waitingOrders = await db
    .select({ id: orders.id, paymentIntentId: orders.paymentIntentId })
    .from(orders)
    .where(
      and(
        eq(orders.status, 'payment_processing'),
        isNotNull(orders.paymentIntentId),
        lt(orders.createdAt, age),
        theirs,
      ),
    )
    .limit(BATCH);
  for (const o of waitingOrders) {
    if (options.signal?.aborted) return outcome; // one provider call each: stop at the caller's budget
    const now = await ask({ orderId: o.id }, () => paymentStatus(o.paymentIntentId!));
    if (!now) continue;
    const to = now.status === 'succeeded' ? 'paid' : now.status === 'declined' ? 'payment_failed' : null;
    if (to && (await db.transaction((tx) => advanceOrder(tx, o.id, to, o.paymentIntentId)))) outcome.orders++;
  }
  const waitingRefunds = await db
    .select({ id: refunds.id, providerRefundId: refunds.providerRefundId })
    .from(refunds)
    .where(
      and(
        eq(refunds.status, 'pending'),
        isNotNull(refunds.providerRefundId),
        lt(refunds.createdAt, age),
        options.customerIds
          ? inArray(
              refunds.orderId,
              db.select({ id: orders.id }).from(orders).where(inArray(orders.customerId, options.customerIds)),
            )
          : undefined,
      ),
    )
    .limit(BATCH);
  for (const r of waitingRefunds) {
    if (options.signal?.aborted) return outcome;
    const status = (await ask({ refundId: r.id }, () => refundStatus(r.providerRefundId!)))?.status;
    if (status === undefined || status === 'pending') continue;
    if (await db.transaction((tx) => advanceRefund(tx, r.id, status))) outcome.refunds++;
  }
  return outcome;
}
