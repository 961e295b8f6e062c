/**
 * The reaper: deletes expired idempotency keys in small batches, so the table holds about one
 * retention period of keys and each delete holds its locks for milliseconds.
 *
 * It runs on a timer inside every server process (server/jobs/schedule.ts) and on demand as
 * `npm run db:reap` (tools/reap.ts). Several reapers at once are fine: each batch skips rows another
 * reaper has locked.
 *
 * Paced: the background reaper rests between batches, nine times as long as the last batch took, so
 * it uses at most about a tenth of one connection's time and leaves the CPU to checkouts (on the
 * 2-core benchmark machine an unpaced reaper cost checkouts about a quarter of their throughput;
 * BENCHMARKS.md has both). Paced, it still deletes a few thousand keys a second there, far more than
 * a shop creates, so it keeps up; `npm run db:reap` runs unpaced.
 */
import type { KeyDatabaseOrTransaction } from './db';
import { reapExpiredBatch } from './store';

// 1,000 rows per transaction: a batch deletes in a few milliseconds, so checkouts touching the
// same index pages never wait long behind it.
export const REAP_BATCH_SIZE = 1_000;
/** Rest after each batch, as a multiple of that batch's duration (9: busy at most 10% of the time). */
export const REAP_REST_FACTOR = 9;

export interface ReapOptions {
  batchSize?: number;
  /** Rest after each batch for this many times its duration; 0 runs batches back to back. */
  restFactor?: number;
  /** Stops between batches once aborted (the benchmark's window ends, the process shuts down). */
  signal?: AbortSignal;
  /** Called after each batch with the total so far. */
  onBatch?: (total: number) => void;
}

/** Deletes every key expired by now, batch by batch. Returns how many were deleted. */
export async function reapExpiredKeys(db: KeyDatabaseOrTransaction, options: ReapOptions = {}): Promise<number> {
  const batchSize = options.batchSize ?? REAP_BATCH_SIZE;
  const restFactor = options.restFactor ?? REAP_REST_FACTOR;
  let total = 0;
  while (!options.signal?.aborted) {
    const started = performance.now();
    const n = await reapExpiredBatch(db, batchSize);
    total += n;
    options.onBatch?.(total);
    if (n < batchSize) break;
    const rest = (performance.now() - started) * restFactor;
    if (rest > 0) await new Promise((resolve) => setTimeout(resolve, rest));
  }
  return total;
}
