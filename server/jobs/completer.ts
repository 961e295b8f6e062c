/**
 * The completer: finishes phased keys whose client never came back (closed the tab mid-payment,
 * lost the network for good). It finds keys still `started`, older than COMPLETER_DELAY_SECONDS,
 * whose lease has lapsed; takes each over (fencing out any late holder); and drives it to an end:
 *
 *   checkout.purchase before `charge_attempted`: no charge can exist -> the order is cancelled;
 *   checkout.purchase after it: a charge may exist -> the flow is finished with the same derived
 *                               provider key, which returns that charge (or makes the one asked for);
 *   orders.refund: the customer asked for the refund -> it is finished the same way.
 *
 * A provider still failing leaves the key released; the next try comes later each time, and after
 * MAX_RUNS tries the completer gives up: it stores a final answer (CHECKOUT_GAVE_UP, REFUND_GAVE_UP),
 * logs it, and leaves the order or refund as it is for `npm run reconcile` to list. It never loops
 * forever, and never takes money without an order or marks an order paid without its charge.
 */
import { getTRPCErrorFromUnknown } from '@trpc/server';
import type { Db } from '../../db/client';
import type { IdempotencyKey } from '../../db/schema';
import { getEnv, idempotencyOptions } from '../env.js';
import { AppError, type ErrorCode } from '../errors';
import { type Decision, reportDecision } from '../idempotency/hooks';
import { keyTag } from '../idempotency/key';
import { drive, type Steps } from '../idempotency/phased';
import type { Execution } from '../idempotency/request';
import { findAbandoned, takeOver } from '../idempotency/store';
import { log } from '../observability/log';
import { metrics } from '../observability/metrics';
import {
  cancelAbandonedPurchase,
  type PurchaseInput,
  purchase,
  type RefundInput,
  refundOrder,
} from '../services/purchase';

/** How each phased procedure is finished without its client, and what giving up on it answers. */
const flows: Record<string, { finish: (steps: Steps, row: IdempotencyKey) => Promise<unknown>; gaveUp: ErrorCode }> = {
  'checkout.purchase': {
    finish: (steps, row) =>
      'charge_attempted' in steps.progress
        ? purchase(steps, row.scope, row.requestInput as PurchaseInput)
        : cancelAbandonedPurchase(steps),
    gaveUp: 'CHECKOUT_GAVE_UP',
  },
  'orders.refund': {
    finish: (steps, row) => refundOrder(steps, row.scope, row.requestInput as RefundInput),
    gaveUp: 'REFUND_GAVE_UP',
  },
};

// Keys per run: enough to clear any backlog in a few runs, small enough to finish quickly.
const BATCH = 50;
// Tries before giving up, spaced 15 s x (2^n - 1) apart (capped at an hour): 12 tries span about
// 9 hours, long enough to ride out a provider outage, short enough that a person hears of it the same day.
export const MAX_RUNS = 12;
export const BACKOFF_BASE_SECONDS = 15;

export interface CompleterOptions {
  /** Only keys older than this (default COMPLETER_DELAY_SECONDS): their client had its chance. */
  delaySeconds?: number;
  /** Only this customer's keys (tests). */
  customerId?: string;
  maxRuns?: number;
  /** The spacing between tries of one key; 0 in tests that run the completer several times at once. */
  backoffBaseSeconds?: number;
}

export async function runCompleter(db: Db, options: CompleterOptions = {}) {
  const delay = options.delaySeconds ?? getEnv().COMPLETER_DELAY_SECONDS;
  const maxRuns = options.maxRuns ?? MAX_RUNS;
  const phaseOptions = { ...idempotencyOptions(), waitMs: 0 };
  const stuck = await findAbandoned(db, {
    procedures: Object.keys(flows),
    olderThanSeconds: delay,
    limit: BATCH,
    scope: options.customerId,
    backoffBaseSeconds: options.backoffBaseSeconds ?? BACKOFF_BASE_SECONDS,
  });

  const outcome = { finished: 0, failed: 0, released: 0, gaveUp: 0 };
  for (const id of stuck) {
    const row = await takeOver(db, id, phaseOptions.leaseMs, { byCompleter: true });
    if (!row) continue; // a client retry took it first
    metrics().completer.inc({ outcome: 'takeover' });
    const flow = flows[row.procedure]!;
    const decide = (decision: Decision, extra: Record<string, unknown> = {}) =>
      reportDecision({
        decision,
        procedure: row.procedure,
        scope: row.scope,
        keyTag: keyTag(row.key),
        by: 'completer',
        ...extra,
      });
    const givingUp = row.completerRuns > maxRuns;
    decide('resumed', { recoveryPoint: row.recoveryPoint, completerRun: row.completerRuns, givingUp });
    const result = await drive<Execution>(
      db,
      { row, token: row.leaseToken },
      phaseOptions,
      async (steps) => {
        try {
          if (givingUp) return await steps.fail('gave_up', new AppError(flow.gaveUp), async () => {});
          return { ok: true, data: await flow.finish(steps, row) };
        } catch (err) {
          return { ok: false, error: getTRPCErrorFromUnknown(err) };
        }
      },
      decide,
    ).catch((err: unknown) => ({ ok: false as const, error: getTRPCErrorFromUnknown(err) }));
    if (givingUp) {
      outcome.gaveUp++;
      metrics().completer.inc({ outcome: 'gave_up' });
      log().warn(
        { procedure: row.procedure, keyTag: keyTag(row.key), tries: maxRuns },
        'completer gave up on a key: npm run reconcile lists what needs a person',
      );
    } else if (result.ok) outcome.finished++;
    else if (result.error.code === 'SERVICE_UNAVAILABLE' || result.error.code === 'INTERNAL_SERVER_ERROR')
      outcome.released++;
    else outcome.failed++;
  }
  return outcome;
}
