/**
 * The reaper: deletes expired idempotency keys in small batches, so the table holds about one
 * retention period of keys and each delete holds its locks for milliseconds.
 *
 * It runs on a timer inside every server process (started with the first keyed request) and on
 * demand as `npm run db:reap`. Several reapers at once are fine: each batch skips rows another
 * reaper has locked.
 */
import { createDatabase, getDatabase, type DbOrTx } from '../../db/client';
import { getEnv } from '../env.js';
import { reapExpiredBatch } from './store';

// 1,000 rows per transaction: a batch deletes in a few milliseconds, so checkouts touching the
// same index pages never wait long behind it.
export const REAP_BATCH_SIZE = 1_000;

/** Deletes every key expired by now, batch by batch. Returns how many were deleted. */
export async function reapExpiredKeys(db: DbOrTx, batchSize = REAP_BATCH_SIZE): Promise<number> {
  let total = 0;
  for (;;) {
    const n = await reapExpiredBatch(db, batchSize);
    total += n;
    if (n < batchSize) return total;
  }
}

const state = globalThis as unknown as { __idempotencyReaper?: NodeJS.Timeout };

/** Starts this process's reaper timer once (a no-op after the first call, or when turned off). */
export function ensureReaperScheduled(): void {
  if (state.__idempotencyReaper) return;
  const seconds = getEnv().IDEMPOTENCY_REAPER_INTERVAL_SECONDS;
  if (seconds === 0) return;
  // Jitter spreads the runs of several server processes started at the same moment.
  const interval = seconds * 1000 * (0.8 + Math.random() * 0.4);
  state.__idempotencyReaper = setInterval(() => {
    reapExpiredKeys(getDatabase().db).then(
      (n) => n > 0 && console.info(JSON.stringify({ msg: 'idempotency reaper', deleted: n })),
      (err: unknown) => console.error('[reaper] failed; will try again next interval', err),
    );
  }, interval);
  state.__idempotencyReaper.unref(); // never keeps a process alive on its own
}

/** `npm run db:reap`: one full pass, then exit. */
export async function main(): Promise<void> {
  const { db, sql } = createDatabase(getEnv().DATABASE_URL, { max: 1 });
  const started = Date.now();
  try {
    const n = await reapExpiredKeys(db);
    console.log(`[reaper] deleted ${n} expired idempotency key(s) in ${Date.now() - started} ms`);
  } finally {
    await sql.end();
  }
}
