/**
 * The reaper: deletes expired idempotency keys in small batches, so the table holds about one
 * retention period of keys and each delete holds its locks for milliseconds.
 *
 * It runs on a timer inside every server process (server/jobs/schedule.ts) and on demand as
 * `npm run db:reap` (tools/reap.ts). Several reapers at once are fine: each batch skips rows another
 * reaper has locked.
 */
import type { DbOrTx } from '../../db/client';
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
