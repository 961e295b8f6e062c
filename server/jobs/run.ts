/**
 * Every background job, once, within a time budget: what the jobs route (app/api/jobs/route.ts) runs
 * for a scheduler outside the process (Vercel Cron, a crontab with curl, a Kubernetes CronJob), where
 * a deploy has no long-lived process for the timers of schedule.ts.
 *
 * Two calls at once do each piece of work once, because every job already takes its work row by row
 * with a claim only one caller can win: the completer takes a key over by bumping its fencing token,
 * the settle job moves an order only from the state it read (forward only), the outbox worker and the
 * reaper take their rows FOR UPDATE SKIP LOCKED. No lock around the whole run is needed, and none is
 * taken: a second scheduler hit in the same second simply finds less to do (run.test.ts proves it).
 *
 * The budget bounds a call: once it is spent, no job starts another unit of work (a key, an order, a
 * batch); the unit in hand finishes, so a call answers within the budget plus one provider call
 * (STRIPE_TIMEOUT_MS). What is left waits for the next call.
 */
import type { Db } from '../../db/client';
import { getEnv } from '../env.js';
import { reapExpiredKeys } from '../idempotency';
import { log } from '../observability/log';
import { runCompleter } from './completer';
import { deliverOutbox } from './outbox';
import { settleWaiting } from './settle';

// 8 s: inside the 10 s a serverless function gets by default on the smallest plans, with room for
// one provider call to finish after it; a cron that fires every minute drains a backlog of hundreds
// of keys in a few calls.
export const JOBS_BUDGET_MS = 8_000;

export interface JobsRun {
  completer: { finished: number; failed: number; released: number; gaveUp: number };
  settle: { orders: number; refunds: number };
  outbox: { delivered: number; failed: number; dead: number };
  reaper: { deleted: number };
  /** Whether the budget ran out before every job had found nothing more to do. */
  budgetSpent: boolean;
  ms: number;
}

export interface RunJobsOptions {
  budgetMs?: number;
  /** Only keys older than this (default COMPLETER_DELAY_SECONDS); tests pass 0. */
  completerDelaySeconds?: number;
  /** Only payments waiting longer than this (default: the settle job's own delay); tests pass 0. */
  settleAfterSeconds?: number;
  /** Spacing between the completer's tries of one key (tests pass 0). */
  backoffBaseSeconds?: number;
}

/** Runs the completer, the settle job, the outbox worker and the reaper once each, in that order. */
export async function runJobsOnce(db: Db, options: RunJobsOptions = {}): Promise<JobsRun> {
  const started = Date.now();
  const signal = AbortSignal.timeout(options.budgetMs ?? JOBS_BUDGET_MS);
  // Customers first: abandoned checkouts, then payments waiting for a webhook, then receipts, then cleanup.
  const completer = await runCompleter(db, {
    delaySeconds: options.completerDelaySeconds ?? getEnv().COMPLETER_DELAY_SECONDS,
    backoffBaseSeconds: options.backoffBaseSeconds,
    signal,
  });
  const settle = await settleWaiting(db, { olderThanSeconds: options.settleAfterSeconds, signal });
  const outbox = await deliverOutbox(db, { signal });
  const deleted = signal.aborted ? 0 : await reapExpiredKeys(db, { restFactor: 0, signal });
  const run = { completer, settle, outbox, reaper: { deleted }, budgetSpent: signal.aborted, ms: Date.now() - started };
  log().info(run, 'jobs run by request');
  return run;
}
