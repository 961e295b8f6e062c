/**
 * `npm run reconcile`: compares the payment provider's charges and refunds with the orders.
 * Prints every mismatch and exits 1 if there is one; prints a one-line all-clear otherwise.
 */
import { getDatabase } from '../server/db';
import { reconcile } from '../server/services/reconcile';

const { db, sql } = getDatabase();
try {
  const problems = await reconcile(db);
  for (const p of problems) console.log(`MISMATCH ${p}`);
  console.log(
    problems.length === 0
      ? '[reconcile] clean: every charge has its order, every paid order its one charge'
      : `[reconcile] ${problems.length} mismatch(es)`,
  );
  process.exitCode = problems.length === 0 ? 0 : 1;
} finally {
  await sql.end();
}
