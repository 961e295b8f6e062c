/**
 * `npm run reconcile`: compares the payment provider's charges and refunds with the orders.
 * Prints every mismatch of the shop and exits 1 if there is one; prints a one-line all-clear otherwise.
 * The lab's customers (whose unsafe twins charge twice on purpose) are counted in one line and never
 * make it exit 1; `--include-lab` lists their mismatches under a heading of their own.
 */

import { labCustomers } from '../db/schema';
import { getDatabase } from '../server/db';
import { reconcileMismatches, reconcileReport } from '../server/services/reconcile';
import { parseFlags } from './args';

const flags = parseFlags('npm run reconcile --', {
  'include-lab': { type: 'boolean', help: "also list the mismatches of the lab's customers (its unsafe twins)" },
});
const { db, sql } = getDatabase();
try {
  const mismatches = await reconcileMismatches(db);
  const lab = new Set((await db.select({ id: labCustomers.id }).from(labCustomers)).map((r) => r.id));
  const { lines, exitCode } = reconcileReport(mismatches, lab, { includeLab: flags['include-lab'] });
  for (const line of lines) console.log(line);
  process.exitCode = exitCode;
} finally {
  await sql.end();
}
