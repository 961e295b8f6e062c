/**
 * Unsafe twins: small, deliberately broken versions of the safe flows, each without exactly one
 * safeguard. They live only here, for the lab and for the tests' negative controls, so that a
 * reader can see each safeguard fail when it is taken away. Nothing on a production path uses them.
 */
import { randomUUID } from 'node:crypto';
import { getTRPCErrorFromUnknown } from '@trpc/server';
import type { Db } from '../../db/client';
import { idempotencyOptions } from '../env.js';
import { runPhased } from '../idempotency/phased';
import type { Execution } from '../idempotency/request';
import { stripeProvider, type PaymentProvider } from '../services/payments';
import { purchase, type PurchaseInput } from '../services/purchase';

/** The Stripe provider without the lookup a late resume makes before charging again. */
export const providerWithoutLookup: PaymentProvider = { ...stripeProvider, findCharge: async () => null, findRefund: async () => null };

/** The Stripe provider sending a fresh random key on every call instead of the derived one. */
export const providerWithRandomKeys: PaymentProvider = {
  ...stripeProvider,
  charge: (input) => stripeProvider.charge(input, { idempotencyKey: randomUUID() }),
  refund: (input) => stripeProvider.refund(input, { idempotencyKey: randomUUID() }),
};

/** Runs `checkout.purchase` for a customer and key, through the real phased runner, with another provider. */
async function purchaseWith(provider: PaymentProvider, db: Db, customerId: string, key: string, input: PurchaseInput): Promise<Execution> {
  return runPhased<Execution>({
    db,
    scope: customerId,
    procedure: 'checkout.purchase',
    rawInput: input,
    headers: new Headers({ 'idempotency-key': key }),
    resHeaders: new Headers(),
    options: idempotencyOptions(),
    execute: async (steps) => {
      try {
        return { ok: true, data: await purchase(steps, customerId, input, provider) };
      } catch (err) {
        return { ok: false, error: getTRPCErrorFromUnknown(err) };
      }
    },
    replay: (data) => ({ ok: true, data }),
  });
}

export const lab = {
  resumePurchaseWithoutLookup: (db: Db, customerId: string, key: string, input: PurchaseInput) => purchaseWith(providerWithoutLookup, db, customerId, key, input),
  purchaseWithRandomProviderKeys: (db: Db, customerId: string, key: string, input: PurchaseInput) => purchaseWith(providerWithRandomKeys, db, customerId, key, input),
};
