/**
 * Starting a lab run and reading it back. A run plays in the background of the server process that
 * started it; the page polls `lab.run` for its timeline, key rows, provider ledger and verdict.
 */
import { eq } from 'drizzle-orm';
import type { Db } from '../../db/client';
import { labRuns } from '../../db/schema';
import type { InProcessHandlers } from '../context';
import { getEnv } from '../env.js';
import { providerIntentsOf } from '../services/payments';
import { keyRowsOf } from './keys';
import { scenarioById, type Variant } from './scenarios';
import { type Counts, LabSession, newLabCustomers, type TimelineEntry, type Verdict } from './session';
import { twins } from './twins';

export async function startRun(
  db: Db,
  scenarioId: string,
  variant: Variant,
  handlers: InProcessHandlers,
): Promise<string> {
  const scenario = scenarioById(scenarioId);
  if (!scenario) throw new Error(`no lab scenario '${scenarioId}'`);
  const customers = await newLabCustomers(db, scenario.customers ?? 1);
  const [run] = await db
    .insert(labRuns)
    .values({ scenario: scenarioId, variant, customers })
    .returning({ id: labRuns.id });
  const session = new LabSession(db, run!.id, customers, handlers);
  void (async () => {
    try {
      const played = (await scenario.play(session, variant)) ?? {};
      const checks = played.checks ?? [];
      // Counted from the records once the run is over: Postgres for orders, the provider for charges.
      const counted: Counts = { ...played.counts };
      if (scenario.counts.includes('orders') || scenario.counts.includes('charges'))
        Object.assign(counted, await session.counts());
      if (scenario.counts.includes('quantity'))
        counted.quantity = await twins.cartQuantity(db, customers[0]!, 'travel-mug');
      if (scenario.counts.includes('refunded')) counted.refunded = (await session.refundedCents()) / 100;
      if (scenario.counts.includes('waiting') || scenario.counts.includes('paid')) {
        const statuses = await session.orderStatuses();
        counted.waiting = statuses.filter((s) => s === 'pending_payment').length;
        counted.paid = statuses.filter((s) => s === 'paid').length;
      }
      const counts = Object.fromEntries(scenario.counts.map((c) => [c, counted[c]])) as Counts;
      const { choice: expectedChoice, ...expected } = scenario.expected;
      const choice =
        scenario.choice && expectedChoice !== undefined
          ? { actual: played.choice ?? '', expected: expectedChoice }
          : undefined;
      const ok =
        scenario.counts.every((c) => counts[c] === expected[c]) &&
        checks.every((c) => c.ok) &&
        (!choice || choice.actual === choice.expected);
      const verdict: Verdict = { counts, expected, ...(choice ? { choice } : {}), checks, ok };
      await session.finish(verdict);
    } catch (err) {
      await session.finish(null, (err as Error).message);
    }
  })();
  return run!.id;
}

/** A run as the page shows it: its timeline, the key rows and provider ledger of its customers, its verdict. */
export async function readRun(db: Db, runId: string) {
  const [run] = await db.select().from(labRuns).where(eq(labRuns.id, runId));
  if (!run) return null;
  const keys = (await keyRowsOf(db, run.customers)).map((k) => ({
    customer: run.customers.indexOf(k.scope) === 1 ? 'B' : 'A',
    procedure: k.procedure,
    key: `${k.key.slice(0, 8)}…`,
    state: k.state,
    recoveryPoint: k.recoveryPoint,
    leaseToken: k.leaseToken,
    lockedUntil: k.lockedUntil?.toISOString() ?? null,
    fingerprint: k.fingerprint.slice(0, 10),
    expiresAt: k.expiresAt.toISOString(),
    responseStatus: k.responseStatus,
  }));
  const ledger = [];
  if (getEnv().STRIPE_API_BASE || getEnv().STRIPE_SECRET_KEY) {
    for (const [i, customer] of run.customers.entries()) {
      for (const pi of await providerIntentsOf(customer)) {
        ledger.push({
          customer: i === 1 ? 'B' : 'A',
          id: pi.id,
          amount: pi.amount,
          status: pi.status,
          order: (pi.metadata.order_id ?? '').slice(0, 8),
          keyRow: (pi.metadata.idempotency_key_id ?? '').slice(0, 8),
        });
      }
    }
  }
  return {
    id: run.id,
    scenario: run.scenario,
    variant: run.variant,
    status: run.status,
    timeline: run.timeline as TimelineEntry[],
    verdict: run.verdict as Verdict | null,
    keys,
    ledger,
  };
}
