/**
 * Buying with a card, and refunding: flows with a call to the payment provider in the middle,
 * written as steps (server/idempotency/phased.ts). Each database step commits on its own and is
 * never run twice for one key; the provider calls between them carry keys derived from the key
 * row, so repeating one after a crash or a timeout returns the first result.
 *
 *   purchase: order_created -> charge_attempted -> (provider charge) -> charge_recorded + answer
 *   refund:   refund_reserved -> (provider refund) -> refund_recorded + answer
 *
 * The last step and the answer commit together (`steps.complete`, `steps.fail`): once the outcome
 * is recorded, every retry replays it and nothing calls the provider again. The recovery points
 * tell the completer what is safe: before `charge_attempted` no charge can exist, so an abandoned
 * checkout is cancelled; after it, a charge may exist, so the flow is finished with the same
 * provider key (which finds the charge, or makes the one the customer asked for). A flow resumed
 * after the provider may have forgotten its key looks the payment up by metadata first.
 */
import { and, eq, sql } from 'drizzle-orm';
import { z } from 'zod';
import type { Tx } from '../../db/client';
import { orders, refunds } from '../../db/schema';
import { TEST_CARDS } from '../../shared/shop-rules';
import { AppError } from '../errors';
import type { Steps as KeySteps } from '../idempotency';
import { getOrder, type OrderView, placeOrder, placeOrderInput } from './orders';
import { advanceOrder, advanceRefund } from './payment-states';
import {
  type ChargeResult,
  LOOK_UP_AFTER_MS,
  type PaymentProvider,
  ProviderRefusal,
  type RefundResult,
  stripeProvider,
} from './payments';

/** The steps of a keyed flow, in the shop's transactions. */
type Steps = KeySteps<Tx>;

export const purchaseInput = z.strictObject({
  items: placeOrderInput.shape.items,
  paymentMethod: z.enum(Object.keys(TEST_CARDS) as [keyof typeof TEST_CARDS], {
    error: `must be one of the test cards: ${Object.keys(TEST_CARDS).join(', ')}`,
  }),
});
export type PurchaseInput = z.infer<typeof purchaseInput>;

export const refundInput = z.strictObject({
  orderId: z.uuid('must be an order id (a UUID)'),
  amountCents: z
    .number({ error: 'must be a number' })
    .int('must be a whole number of cents')
    .positive('must be more than 0'),
});
export type RefundInput = z.infer<typeof refundInput>;

/** Whether a resume may come after the provider forgot the key of a call made before it. */
const mayBeForgotten = (steps: Steps) => Date.now() - steps.claimedAt.getTime() > LOOK_UP_AFTER_MS;

export async function purchase(
  steps: Steps,
  customerId: string,
  input: PurchaseInput,
  provider: PaymentProvider = stripeProvider,
): Promise<OrderView> {
  // A checkout the completer cancelled stays cancelled, whoever comes back for it.
  if ('cancelled' in steps.progress) throw new AppError('CHECKOUT_ABANDONED');
  const order = await steps.step('order_created', (tx) =>
    placeOrder(tx, customerId, input, { status: 'pending_payment', idempotencyKeyId: steps.keyId }),
  );

  // Recorded before the call: from here on a charge may exist, whatever happens next.
  const attemptedBefore = 'charge_attempted' in steps.progress;
  await steps.step('charge_attempted', async () => true);
  let result: ChargeResult;
  try {
    const found = attemptedBefore && mayBeForgotten(steps) ? await provider.findCharge(steps.keyId) : null;
    result =
      found ??
      (await provider.charge(
        {
          amountCents: order.totalCents,
          currency: order.currency,
          paymentMethod: input.paymentMethod,
          orderId: order.id,
          customerId,
          keyId: steps.keyId,
        },
        { idempotencyKey: steps.providerKey('charge') },
      ));
  } catch (err) {
    if (!(err instanceof ProviderRefusal)) throw err;
    return steps.fail(
      'charge_recorded',
      new AppError('PAYMENT_REFUSED_BY_PROVIDER', { detail: `(${err.providerCode}: ${err.message})` }),
      async (tx) => {
        await advanceOrder(tx, order.id, 'payment_failed');
      },
    );
  }

  if (result.status === 'declined') {
    return steps.fail(
      'charge_recorded',
      new AppError('PAYMENT_DECLINED', { detail: `(${result.message})` }),
      async (tx) => {
        await advanceOrder(tx, order.id, 'payment_failed', result.paymentIntentId);
      },
    );
  }

  // Paid, or not yet (processing, or waiting for the customer's bank): the answer is the order as it
  // stands. A webhook moves a waiting order on (server/services/webhooks.ts); advanceOrder never moves
  // one back, so a webhook that came first is not undone here.
  return steps.complete('charge_recorded', async (tx) => {
    await advanceOrder(
      tx,
      order.id,
      result.status === 'succeeded' ? 'paid' : 'payment_processing',
      result.paymentIntentId,
    );
    return getOrder(tx, customerId, order.id);
  });
}

/** The completer's way out for a checkout abandoned before any charge: cancel, charge nothing. */
export async function cancelAbandonedPurchase(steps: Steps): Promise<never> {
  const created = steps.progress.order_created as { id: string } | undefined;
  return steps.fail('cancelled', new AppError('CHECKOUT_ABANDONED'), async (tx) => {
    if (created) await advanceOrder(tx, created.id, 'cancelled');
  });
}

export interface RefundView {
  refundId: string;
  orderId: string;
  amountCents: number;
  refundedCents: number;
  /** pending until the provider confirms it; succeeded; or failed (the amount is given back). */
  status: 'pending' | 'succeeded' | 'failed';
}

export async function refundOrder(
  steps: Steps,
  customerId: string,
  input: RefundInput,
  provider: PaymentProvider = stripeProvider,
): Promise<RefundView> {
  const reservedBefore = 'refund_reserved' in steps.progress;
  const reserved = await steps.step('refund_reserved', async (tx) => {
    const [order] = await tx
      .select()
      .from(orders)
      .where(and(eq(orders.id, input.orderId), eq(orders.customerId, customerId)))
      .for('update'); // two refunds of one order reserve one after the other
    if (!order) throw new AppError('ORDER_NOT_FOUND', { field: 'orderId' });
    if (order.status !== 'paid' || !order.paymentIntentId)
      throw new AppError('ORDER_NOT_REFUNDABLE', { field: 'orderId', detail: `(it is ${order.status})` });
    const left = order.totalCents - order.refundedCents;
    if (input.amountCents > left)
      throw new AppError('REFUND_EXCEEDS_PAYMENT', { field: 'amountCents', detail: `(at most ${left} cents)` });
    const [row] = await tx.insert(refunds).values({ orderId: order.id, amountCents: input.amountCents }).returning();
    await tx
      .update(orders)
      .set({ refundedCents: sql`${orders.refundedCents} + ${input.amountCents}` })
      .where(eq(orders.id, order.id));
    return { refundId: row!.id, paymentIntentId: order.paymentIntentId };
  });

  let result: RefundResult;
  try {
    const found =
      reservedBefore && mayBeForgotten(steps)
        ? await provider.findRefund(reserved.paymentIntentId, reserved.refundId)
        : null;
    result =
      found ??
      (await provider.refund(
        {
          paymentIntentId: reserved.paymentIntentId,
          amountCents: input.amountCents,
          refundId: reserved.refundId,
          orderId: input.orderId,
          customerId,
        },
        { idempotencyKey: steps.providerKey('refund') },
      ));
  } catch (err) {
    if (!(err instanceof ProviderRefusal)) throw err;
    // Nothing was refunded: the reservation is given back in the transaction that stores the answer.
    return steps.fail(
      'refund_recorded',
      new AppError('REFUND_REFUSED_BY_PROVIDER', { detail: `(${err.providerCode}: ${err.message})` }),
      async (tx) => {
        await advanceRefund(tx, reserved.refundId, 'failed');
      },
    );
  }

  // A refund the provider has only accepted stays pending (and reserved) until it says succeeded or
  // failed, by webhook or when the settle job asks.
  return steps.complete('refund_recorded', async (tx): Promise<RefundView> => {
    await tx
      .update(refunds)
      .set({ providerRefundId: result.providerRefundId })
      .where(eq(refunds.id, reserved.refundId));
    if (result.status !== 'pending') await advanceRefund(tx, reserved.refundId, result.status, result.providerRefundId);
    const [order] = await tx
      .select({ refundedCents: orders.refundedCents })
      .from(orders)
      .where(eq(orders.id, input.orderId));
    const [row] = await tx.select({ status: refunds.status }).from(refunds).where(eq(refunds.id, reserved.refundId));
    return {
      refundId: reserved.refundId,
      orderId: input.orderId,
      amountCents: input.amountCents,
      refundedCents: order!.refundedCents,
      status: row!.status,
    };
  });
}
