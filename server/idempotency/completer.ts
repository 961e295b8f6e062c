/**
 * The completer: finishes phased keys whose client never came back (a closed tab mid-payment, a
 * network lost for good). It finds keys still `started`, older than a delay, whose lease has lapsed;
 * takes each over (bumping the fencing token, so a late holder writes nothing); and drives it to an
 * end through the flow the app registered for its procedure, with the same steps the request had:
 * steps already committed return their saved results, the rest run now.
 *
 * A flow that fails for a reason that may pass (the outside service down) leaves the key released;
 * the next try comes later each time (base x (2^tries - 1) seconds after its lease ended, at most an
 * hour), and after `maxRuns` tries the completer gives up: it stores the flow's `gaveUp` answer, so
 * a client coming back is told, and reports it. It never loops forever.
 *
 * Run it on a schedule (a timer in each server process, or a cron hitting a route): several at once
 * are fine, since a takeover succeeds for one of them only.
 */
import { getTRPCErrorFromUnknown, type TRPCError } from '@trpc/server';
import type { KeyDatabase, TransactionOf } from './db';
import { type Decision, reportDecision } from './hooks';
import { keyTag } from './key';
import { drive, type Steps } from './phased';
import type { Execution } from './request';
import type { IdempotencyKey } from './schema';
import { findAbandoned, takeOver } from './store';
import type { IdempotencyOptions } from './trpc';

/** A key the completer holds now: its row as the request left it (scope, input, progress). */
export type AbandonedKey = Pick<
  IdempotencyKey,
  'id' | 'scope' | 'procedure' | 'requestInput' | 'recoveryPoint' | 'progress' | 'completerRuns' | 'createdAt'
>;

/** How the completer finishes one phased procedure without its client. */
export interface CompleterFlow<TDb extends KeyDatabase> {
  /**
   * Drives the key to its end with `steps`, as the procedure would (it may call the procedure's own
   * function with `key.requestInput` and `key.scope`), or ends it another way (cancel what was
   * started). Throwing a stored failure (a 4xx) stores it as the answer; anything else releases the key.
   */
  finish: (steps: Steps<TransactionOf<TDb>>, key: AbandonedKey) => Promise<unknown>;
  /** The answer stored when the completer gives up on a key: a 4xx that tells a returning client. */
  gaveUp: () => TRPCError;
}

/** What happened to each key a run looked at. */
export type CompleterOutcome = 'takeover' | 'finished' | 'failed' | 'released' | 'gave_up';

export interface CompleterConfig<TDb extends KeyDatabase> {
  db: TDb;
  /** The flows, by procedure path: only these procedures' keys are completed. */
  flows: Record<string, CompleterFlow<TDb>>;
  options: () => IdempotencyOptions;
  /** Called for each key: a takeover, then how it ended (for metrics and logs); `tries`: those made before. */
  onOutcome?: (event: { outcome: CompleterOutcome; procedure: string; keyTag: string; tries: number }) => void;
}

export interface CompleterRun {
  /** Only keys older than this: their client had its chance. */
  delaySeconds: number;
  /** Only this scope's keys (tests). */
  scope?: string;
  /** Tries before giving up (default 12). */
  maxRuns?: number;
  /** Spacing between tries of one key (default 15 s); 0 in tests that run the completer back to back. */
  backoffBaseSeconds?: number;
  /** Keys per run (default 50). */
  batch?: number;
  /** Once aborted, no further key is taken over (a run called by a scheduler has a time budget). */
  signal?: AbortSignal;
}

// Tries before giving up, spaced 15 s x (2^n - 1) apart (capped at an hour): 12 tries span about
// 9 hours, long enough to ride out an outage of the outside service, short enough that a person hears
// of it the same day.
export const COMPLETER_MAX_RUNS = 12;
export const COMPLETER_BACKOFF_BASE_SECONDS = 15;
// Keys per run: enough to clear a backlog in a few runs, small enough to finish quickly.
const COMPLETER_BATCH = 50;

export function createCompleter<TDb extends KeyDatabase>(config: CompleterConfig<TDb>) {
  const { db, flows } = config;

  /** One pass over the abandoned keys; returns how each ended. */
  async function run(options: CompleterRun) {
    const maxRuns = options.maxRuns ?? COMPLETER_MAX_RUNS;
    // The completer never waits on a live holder: a key in use is someone else's right now.
    const phaseOptions = { ...config.options(), waitMs: 0 };
    const abandoned = await findAbandoned(db, {
      procedures: Object.keys(flows),
      olderThanSeconds: options.delaySeconds,
      limit: options.batch ?? COMPLETER_BATCH,
      scope: options.scope,
      backoffBaseSeconds: options.backoffBaseSeconds ?? COMPLETER_BACKOFF_BASE_SECONDS,
    });
    const outcome = { finished: 0, failed: 0, released: 0, gaveUp: 0 };
    for (const id of abandoned) {
      if (options.signal?.aborted) break; // the rest waits for the next run
      const row = await takeOver(db, id, phaseOptions.leaseMs, { byCompleter: true });
      if (!row) continue; // a client retry took it first
      const flow = flows[row.procedure]!;
      const tag = keyTag(row.key);
      const report = (o: CompleterOutcome) =>
        config.onOutcome?.({ outcome: o, procedure: row.procedure, keyTag: tag, tries: row.completerRuns - 1 });
      report('takeover');
      const decide = (decision: Decision, extra: Record<string, unknown> = {}) =>
        reportDecision({
          decision,
          procedure: row.procedure,
          scope: row.scope,
          keyTag: tag,
          by: 'completer',
          ...extra,
        });
      const givingUp = row.completerRuns > maxRuns;
      decide('resumed', { recoveryPoint: row.recoveryPoint, completerRun: row.completerRuns, givingUp });
      const result = await drive<TDb, Execution>(
        db,
        { row, token: row.leaseToken },
        phaseOptions,
        async (steps) => {
          try {
            if (givingUp) return await steps.fail('gave_up', flow.gaveUp(), async () => {});
            return { ok: true, data: await flow.finish(steps, row) };
          } catch (err) {
            return { ok: false, error: getTRPCErrorFromUnknown(err) };
          }
        },
        decide,
      ).catch((err: unknown) => ({ ok: false as const, error: getTRPCErrorFromUnknown(err) }));
      if (givingUp) {
        outcome.gaveUp++;
        report('gave_up');
      } else if (result.ok) {
        outcome.finished++;
        report('finished');
      } else if (result.error.code === 'SERVICE_UNAVAILABLE' || result.error.code === 'INTERNAL_SERVER_ERROR') {
        outcome.released++;
        report('released');
      } else {
        outcome.failed++;
        report('failed');
      }
    }
    return outcome;
  }

  return { run };
}
