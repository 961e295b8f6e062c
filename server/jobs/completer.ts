/**
 * The shop's completer: the idempotency layer's completer (server/idempotency/completer.ts) with the
 * shop's two phased flows registered, and its outcomes counted and logged. For a key whose client
 * never came back:
 *
 *   checkout.purchase before `charge_attempted`: no charge can exist -> the order is cancelled;
 *   checkout.purchase after it: a charge may exist -> the flow is finished with the same derived
 *                               provider key, which returns that charge (or makes the one asked for);
 *   orders.refund: the customer asked for the refund -> it is finished the same way.
 *
 * After its last try it stores CHECKOUT_GAVE_UP or REFUND_GAVE_UP and leaves the order or refund as it
 * is, for `npm run reconcile` to list. It never takes money without an order or marks an order paid
 * without its charge.
 */
import type { Db } from '../../db/client';
import { getEnv, idempotencyOptions } from '../env.js';
import { AppError } from '../errors';
import { createCompleter } from '../idempotency';
import { log } from '../observability/log';
import { metrics } from '../observability/metrics';
import {
  cancelAbandonedPurchase,
  type PurchaseInput,
  purchase,
  type RefundInput,
  refundOrder,
} from '../services/purchase';

function shopCompleter(db: Db) {
  return createCompleter<Db>({
    db,
    options: idempotencyOptions,
    flows: {
      'checkout.purchase': {
        finish: (steps, key) =>
          'charge_attempted' in steps.progress
            ? purchase(steps, key.scope, key.requestInput as PurchaseInput)
            : cancelAbandonedPurchase(steps),
        gaveUp: () => new AppError('CHECKOUT_GAVE_UP'),
      },
      'orders.refund': {
        finish: (steps, key) => refundOrder(steps, key.scope, key.requestInput as RefundInput),
        gaveUp: () => new AppError('REFUND_GAVE_UP'),
      },
    },
    onOutcome: ({ outcome, procedure, keyTag, tries }) => {
      if (outcome === 'takeover' || outcome === 'gave_up') metrics().completer.inc({ outcome });
      if (outcome === 'gave_up') {
        log().warn(
          { procedure, keyTag, tries },
          'completer gave up on a key: npm run reconcile lists what needs a person',
        );
      }
    },
  });
}

export interface CompleterOptions {
  /** Only keys older than this (default COMPLETER_DELAY_SECONDS): their client had its chance. */
  delaySeconds?: number;
  /** Only this customer's keys (tests). */
  customerId?: string;
  maxRuns?: number;
  /** The spacing between tries of one key; 0 in tests that run the completer several times at once. */
  backoffBaseSeconds?: number;
  /** Stops taking keys once aborted (the jobs route's time budget, server/jobs/run.ts). */
  signal?: AbortSignal;
}

/** One pass of the completer over the shop's abandoned keys. */
export function runCompleter(db: Db, options: CompleterOptions = {}) {
  return shopCompleter(db).run({
    delaySeconds: options.delaySeconds ?? getEnv().COMPLETER_DELAY_SECONDS,
    scope: options.customerId,
    maxRuns: options.maxRuns,
    backoffBaseSeconds: options.backoffBaseSeconds,
    signal: options.signal,
  });
}
