/**
 * Fault injection, for the tests and the lab only: the one way to make a keyed request stall, fail,
 * lose its database connection or lose its process at a named point of its life. Product code never
 * mentions it; it hangs on the boundary observer (hooks.ts), and it is installed only when
 * ENABLE_TEST_HOOKS=1 (server/start.ts), or by a test or the lab.
 *
 * A fault is planned for one customer (the scope of its keys), at one boundary:
 *   'claimed'          the key was just claimed (one transaction: inside it; phased: committed)
 *   'executed'         one transaction: the procedure ran, its answer is not stored yet
 *   'inside:<step>'    phased: step <step> ran, not committed yet
 *   'after:<step>'     phased: step <step> committed
 *   'stored'           the answer is stored and committed, not sent yet
 * and does one thing there:
 *   delay     waits `ms` (a slow server; a duplicate arrives meanwhile)
 *   fail      throws an unexpected error (a bug, a crash of the handler)
 *   drop-db   cuts the open transaction's connection, as a network failure or a Postgres restart would
 *   kill      SIGKILLs this process (test servers only: never inside vitest or `next dev`)
 *   vanish    a crash, played inside one process: the open transaction's connection is cut, and
 *             the request stops there (ProcessGone): no release, no answer stored, no cleanup. What a
 *             dead holder leaves is left; its client gets no answer it can use.
 * Provider faults are scripted at the payment simulator instead (simulator/stripe.ts).
 */
import { sql } from 'drizzle-orm';
import { type BoundaryEvent, observeBoundaries, ProcessGone } from './hooks';

export const FAULT_ACTIONS = ['delay', 'fail', 'drop-db', 'kill', 'vanish'] as const;
export type FaultAction = (typeof FAULT_ACTIONS)[number];

export interface FaultPlan {
  /** The customer whose requests it applies to. */
  scope: string;
  /** Only requests to this procedure (e.g. 'checkout.purchase'); any when left out. */
  procedure?: string;
  boundary: string;
  action: FaultAction;
  /** For `delay`: how long. */
  ms?: number;
  /** How many matching requests it applies to (default 1). */
  times?: number;
}

// A delay longer than this is a mistake in a test, not a slow server.
const MAX_DELAY_MS = 60_000;

const state = globalThis as unknown as { __faults?: { plans: FaultPlan[]; allowKill: boolean; installed: boolean } };
state.__faults ??= { plans: [], allowKill: false, installed: false };
const faults = state.__faults;

/** Hooks the observer in. `allowKill`: this is a disposable test server that `kill` may end. */
export function installFaultInjection(options: { allowKill: boolean }): void {
  faults.allowKill = options.allowKill;
  if (faults.installed) return;
  faults.installed = true;
  observeBoundaries(onBoundary);
}

/** Plans a fault; installs the observer if nothing has yet (in-process tests, the lab). */
export function planFault(plan: FaultPlan): void {
  if (!FAULT_ACTIONS.includes(plan.action)) throw new Error(`unknown fault action '${String(plan.action)}'`);
  if (plan.action === 'kill' && !faults.allowKill)
    throw new Error("fault 'kill' is only for disposable test servers; use 'vanish' here");
  if (!faults.installed) installFaultInjection({ allowKill: false });
  faults.plans.push({ times: 1, ...plan });
}

/** Drops the plans of one customer, or all of them. */
export function clearFaults(scope?: string): void {
  faults.plans = scope ? faults.plans.filter((p) => p.scope !== scope) : [];
}

async function onBoundary(event: BoundaryEvent): Promise<void> {
  const i = faults.plans.findIndex(
    (p) =>
      p.scope === event.scope && p.boundary === event.boundary && (!p.procedure || p.procedure === event.procedure),
  );
  if (i < 0) return;
  const plan = faults.plans[i]!;
  plan.times = (plan.times ?? 1) - 1;
  if (plan.times <= 0) faults.plans.splice(i, 1);

  switch (plan.action) {
    case 'delay':
      await new Promise((r) => setTimeout(r, Math.min(plan.ms ?? 1000, MAX_DELAY_MS)));
      return;
    case 'fail':
      throw new Error(`fault injected: failure at ${event.boundary}`);
    case 'drop-db':
      await cutConnection(event);
      return;
    case 'kill':
      process.kill(process.pid, 'SIGKILL');
      return;
    case 'vanish':
      await cutConnection(event);
      throw new ProcessGone(event.boundary);
  }
}

/**
 * Ends the open transaction's connection as a network failure or a Postgres restart would: its
 * backend is terminated (by itself: the statement that asks for it is the last one it runs), so
 * Postgres rolls the transaction back, and the request goes on into a dead connection.
 */
async function cutConnection(event: BoundaryEvent): Promise<void> {
  if (!event.tx) return;
  // its own end: an error, expected
  await event.tx.execute(sql`select pg_terminate_backend(pg_backend_pid())`).catch(() => {});
}
