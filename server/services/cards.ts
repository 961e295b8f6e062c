/**
 * The payment methods the shop offers: Stripe's test cards, which Stripe (in test mode) and the
 * simulator both understand. Plain data, shared by the server and the checkout page.
 */
export const TEST_CARDS = {
  pm_card_visa: 'Visa ending 4242 (succeeds)',
  pm_card_chargeDeclined: 'Visa ending 0002 (declined)',
  pm_card_chargeDeclinedInsufficientFunds: 'Visa ending 9995 (insufficient funds)',
} as const;
export type TestCard = keyof typeof TEST_CARDS;
