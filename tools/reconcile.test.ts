/**
 * `npm run reconcile` and the lab: the damage the lab's unsafe twins do to their own customers is
 * counted in one line, listed only when asked, and never makes reconcile fail; the shop's own
 * mismatches are listed and do.
 */
import { randomUUID } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { labCustomers, labRuns, orders } from '../db/schema';
import { getDatabase } from '../server/db';
import { handleApiRequest, handleStripeWebhook } from '../server/http';
import { readRun, startRun } from '../server/lab/runs';
import { reconcileMismatches, reconcileReport } from '../server/services/reconcile';

const { db } = getDatabase();

/** Plays the provider-timeout twin (one order, two charges) and returns its customer. */
async function labDamage(): Promise<string> {
  const runId = await startRun(db, 'provider-timeout', 'unsafe', {
    api: handleApiRequest,
    webhook: handleStripeWebhook,
  });
  for (let i = 0; i < 200; i++) {
    const run = await readRun(db, runId);
    if (run && run.status !== 'running') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const [run] = await db.select({ customers: labRuns.customers }).from(labRuns).where(eq(labRuns.id, runId));
  return run!.customers[0]!;
}

/** A paid order of a shop customer with no charge at the provider: a real mismatch. */
async function shopDamage(): Promise<string> {
  const customer = randomUUID();
  await db.insert(orders).values({ customerId: customer, status: 'paid', totalCents: 1290, currency: 'usd' });
  return customer;
}

const labIds = async () => new Set((await db.select({ id: labCustomers.id }).from(labCustomers)).map((r) => r.id));

describe('reconcile knows the lab', () => {
  it("the lab twins' mismatches: one line, not listed, exit 0; --include-lab lists them, still exit 0", async () => {
    const lab = await labDamage();
    const mismatches = await reconcileMismatches(db, { customerIds: [lab] });
    expect(mismatches.length).toBeGreaterThan(0);
    expect(mismatches.every((m) => m.customerId === lab)).toBe(true);

    const quiet = reconcileReport(mismatches, await labIds());
    expect(quiet.exitCode).toBe(0);
    expect(quiet.lines).toEqual([
      `[reconcile] ${mismatches.length} mismatches from the lab's unsafe twins, not listed; --include-lab lists them`,
      '[reconcile] clean: every charge has its order, every paid order its one charge',
    ]);

    const listed = reconcileReport(mismatches, await labIds(), { includeLab: true });
    expect(listed.exitCode).toBe(0);
    expect(listed.lines.filter((l) => l.startsWith('LAB '))).toHaveLength(mismatches.length);
    expect(listed.lines.some((l) => l.startsWith('MISMATCH '))).toBe(false);
  });

  it("a shop customer's mismatch is listed and fails reconcile, beside the lab's", async () => {
    const [lab, shop] = [await labDamage(), await shopDamage()];
    const mismatches = await reconcileMismatches(db, { customerIds: [lab, shop] });
    const report = reconcileReport(mismatches, await labIds());
    expect(report.exitCode).toBe(1);
    const listed = report.lines.filter((l) => l.startsWith('MISMATCH '));
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatch(/^MISMATCH paid order .* has no successful charge at the provider$/);
    expect(report.lines).toContain('[reconcile] 1 mismatch(es)');
  });
});
