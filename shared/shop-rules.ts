/**
 * Rules of the shop that the browser and the server both need: one definition, browser-safe (no
 * Node, no database). The server enforces them; the pages use them to guide the customer.
 */

/** At most 99 of one product per order: the form, the input schema and a CHECK in SQL agree. */
export const MAX_QUANTITY = 99;
/** A cart with more distinct products than the catalog could ever hold is not a real cart. */
export const MAX_LINES = 50;

/**
 * The payment methods the shop offers: Stripe's test cards, which Stripe (in test mode) and the
 * simulator both understand. Nothing real is ever charged.
 */
export const TEST_CARDS = {
  pm_card_visa: 'Visa ending 4242 (succeeds)',
  pm_card_chargeDeclined: 'Visa ending 0002 (declined)',
  pm_card_chargeDeclinedInsufficientFunds: 'Visa ending 9995 (insufficient funds)',
  // Paid later: the provider answers "requires_action" (the customer confirms with their bank), and
  // settles by webhook once they have.
  pm_card_authenticationRequired: 'Visa ending 3184 (asks for 3-D Secure, paid a moment later)',
  // The simulator's own: "processing", then settled by webhook (as a bank debit would be).
  pm_card_processing: 'Simulator only: processing, paid a moment later',
} as const;
export type TestCard = keyof typeof TEST_CARDS;
