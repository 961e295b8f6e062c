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
 * A provider still failing leaves the key released, for the next run. Never money taken without
 * an order, never a paid order without a charge.
 */
import { getTRPCErrorFromUnknown } from '@trpc/server';
import type { Db } from '../../db/client';
import { idempotencyOptions, getEnv } from '../env.js';
import { reportDecision, type Decision } from '../idempotency/hooks';
import { keyTag } from '../idempotency/key';
import { drive, type Steps } from '../idempotency/phased';
import type { Execution } from '../idempotency/request';
import { findAbandoned, takeOver } from '../idempotency/store';
import type { IdempotencyKey } from '../../db/schema';
import { cancelAbandonedPurchase, purchase, refundOrder, type PurchaseInput, type RefundInput } from '../services/purchase';

/** How each phased procedure is finished without its client. */
const flows: Record<string, (steps: Steps, row: IdempotencyKey) => Promise<unknown>> = {
  'checkout.purchase': (steps, row) =>
    'charge_attempted' in steps.progress
      ? purchase(steps, row.scope, row.requestInput as PurchaseInput)
      : cancelAbandonedPurchase(steps),
  'orders.refund': (steps, row) => refundOrder(steps, row.scope, row.requestInput as RefundInput),
};

// Keys per run: enough to clear any backlog in a few runs, small enough to finish quickly.
const BATCH = 50;

export async function runCompleter(db: Db, options: { delaySeconds?: number; customerId?: string } = {}) {
  const delay = options.delaySeconds ?? getEnv().COMPLETER_DELAY_SECONDS;
  const phaseOptions = { ...idempotencyOptions(), waitMs: 0 };
  const stuck = await findAbandoned(db, { procedures: Object.keys(flows), olderThanSeconds: delay, limit: BATCH, scope: options.customerId });

  const outcome = { finished: 0, failed: 0, released: 0 };
  for (const id of stuck) {
    const row = await takeOver(db, id, phaseOptions.leaseMs);
    if (!row) continue; // a client retry took it first
    const log = (decision: Decision, extra: Record<string, unknown> = {}) =>
      reportDecision({ decision, procedure: row.procedure, scope: row.scope, keyTag: keyTag(row.key), by: 'completer', ...extra });
    log('resumed', { recoveryPoint: row.recoveryPoint });
    const result = await drive<Execution>(
      db,
      { row, token: row.leaseToken },
      phaseOptions,
      async (steps) => {
        try {
          return { ok: true, data: await flows[row.procedure]!(steps, row) };
        } catch (err) {
          return { ok: false, error: getTRPCErrorFromUnknown(err) };
        }
      },
      log,
    ).catch((err: unknown) => ({ ok: false as const, error: getTRPCErrorFromUnknown(err) }));
    if (result.ok) outcome.finished++;
    else if (result.error.code === 'SERVICE_UNAVAILABLE' || result.error.code === 'INTERNAL_SERVER_ERROR') outcome.released++;
    else outcome.failed++;
  }
  return outcome;
}
