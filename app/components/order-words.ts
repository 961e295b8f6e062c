/**
 * What a customer reads for an order's payment and for a refund: words, never the stored status names
 * (`payment_processing` means nothing to a person). One place, so the history and the order page agree.
 */
import { formatMoney } from './money';

const PAYMENT_WORDS: Record<string, string> = {
  placed: 'Placed without payment', // checkout.placeOrder: an order with no card involved
  pending_payment: 'Payment in progress', // the checkout has not finished yet
  payment_processing: 'Waiting for the bank', // 3-D Secure, or a payment that settles later
  paid: 'Paid',
  payment_failed: 'Payment failed',
  cancelled: 'Cancelled', // abandoned before any charge: nothing was charged
};

export function paymentWords(status: string): string {
  return PAYMENT_WORDS[status] ?? status;
}

export const REFUND_WORDS: Record<'pending' | 'succeeded' | 'failed', string> = {
  pending: 'Pending', // accepted by the provider, not confirmed yet
  succeeded: 'Refunded',
  failed: 'Refused', // by the provider or the bank: the amount can be refunded again
};

/**
 * What came back on an order, in one line: "$5.00 refunded, $2.00 pending". `refundedCents` holds
 * pending refunds too (they are reserved), so the confirmed part is the difference.
 */
export function refundSummary(order: { refundedCents: number; pendingRefundCents: number; currency: string }): string {
  const confirmed = order.refundedCents - order.pendingRefundCents;
  const parts = [
    confirmed > 0 ? `${formatMoney(confirmed, order.currency)} refunded` : '',
    order.pendingRefundCents > 0 ? `${formatMoney(order.pendingRefundCents, order.currency)} pending` : '',
  ].filter(Boolean);
  return parts.join(', ') || 'None';
}
