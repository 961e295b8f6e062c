/**
 * Background jobs inside each server process, started with the process (server/start.ts): the key
 * reaper, the completer and the outbox worker. A restarted instance that receives no traffic still
 * finishes abandoned checkouts. Every job is safe to run in several processes at once (SKIP
 * LOCKED, leases), so scaling out needs no leader election. ENABLE_JOBS=0 turns the timers off, for
 * deploys where a scheduler calls the jobs route instead (server/jobs/run.ts).
 */
import { getDatabase } from '../db';
import { getEnv } from '../env.js';
import { reapExpiredKeys } from '../idempotency';
import { log } from '../observability/log';
import { runCompleter } from './completer';
import { deliverOutbox } from './outbox';
import { settleWaiting } from './settle';

const state = globalThis as unknown as { __jobs?: NodeJS.Timeout[] };

function every(seconds: number, name: string, job: () => Promise<unknown>): NodeJS.Timeout {
  let running = false;
  // Jitter spreads the runs of several processes started at the same moment.
  const timer = setInterval(
    () => {
      if (running) return;
      running = true;
      job()
        .catch((err: unknown) => log().error({ err, job: name }, `background job ${name} failed; it will run again`))
        .finally(() => (running = false));
    },
    seconds * 1000 * (0.8 + Math.random() * 0.4),
  );
  timer.unref(); // never keeps a process alive on its own
  return timer;
}

export function startBackgroundJobs(): void {
  if (state.__jobs) return;
  const env = getEnv();
  const { db } = getDatabase();
  state.__jobs = [];
  if (!env.ENABLE_JOBS) {
    // A scheduler outside the process drives them through /api/jobs (server/jobs/run.ts).
    log().info({ jobs: 0 }, 'background jobs off (ENABLE_JOBS=0): call /api/jobs on a schedule');
    return;
  }
  if (env.IDEMPOTENCY_REAPER_INTERVAL_SECONDS > 0) {
    state.__jobs.push(every(env.IDEMPOTENCY_REAPER_INTERVAL_SECONDS, 'reaper', () => reapExpiredKeys(db)));
  }
  if (env.JOBS_INTERVAL_SECONDS > 0) {
    state.__jobs.push(every(env.JOBS_INTERVAL_SECONDS, 'completer', () => runCompleter(db)));
    state.__jobs.push(every(env.JOBS_INTERVAL_SECONDS, 'outbox', () => deliverOutbox(db)));
    state.__jobs.push(every(env.JOBS_INTERVAL_SECONDS, 'settle', () => settleWaiting(db)));
  }
  // One line per server process: a second one in the same process would mean the jobs run twice.
  const n = state.__jobs.length;
  log().info({ jobs: n }, n > 0 ? `background jobs started (${n})` : 'background jobs off (their intervals are 0)');
}
