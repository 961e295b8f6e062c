/**
 * The Stripe client when one process holds two copies of the SDK, as a production build of this app
 * does (its API route, its webhook route and the jobs started by instrumentation.ts are bundled apart).
 * Each copy must sort errors with a client of its own: with a client made by the other copy, a declined
 * card is not recognised as one, and the checkout answers 500 instead of 402.
 */
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import Stripe from 'stripe';
import { afterEach, expect, it, vi } from 'vitest';
import { stripeProvider } from './payments';

afterEach(() => {
  vi.doUnmock('stripe');
  vi.resetModules();
});

it('a client made first by another copy of the SDK does not turn a declined card into an error', async () => {
  // The CommonJS build of the SDK: the same code, every class a different one from this module's.
  const OtherStripe = createRequire(import.meta.url)('stripe') as typeof Stripe;
  expect(OtherStripe.errors.StripeCardError).not.toBe(Stripe.errors.StripeCardError);
  // Another bundle's copy of this module, on that copy of the SDK, asks the provider first (the settle job
  // at start, say). The cache is emptied first, so that it makes the first client of this process.
  (globalThis as { __stripeClients?: Map<unknown, unknown> }).__stripeClients?.clear();
  vi.resetModules();
  vi.doMock('stripe', () => ({ default: OtherStripe }));
  const otherBundle = await import('./payments');
  expect(await otherBundle.providerIntentsOf(randomUUID())).toEqual([]);

  const customerId = randomUUID();
  const result = await stripeProvider.charge(
    {
      amountCents: 1995,
      currency: 'USD',
      paymentMethod: 'pm_card_chargeDeclined',
      orderId: randomUUID(),
      customerId,
      keyId: randomUUID(),
    },
    { idempotencyKey: randomUUID() },
  );
  expect(result).toMatchObject({ status: 'declined', declineCode: 'generic_decline' });
});
