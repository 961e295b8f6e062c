/**
 * What a server process does once when it starts (called from instrumentation.ts, which Next runs
 * once per server process): check the environment, install the log and metrics of the idempotency
 * layer's decisions, then start the background jobs, and the fault injection when a test asked for it. A reload of
 * server code in development does not run it again.
 */
import { getEnv } from './env.js';
import { type DecisionEvent, installFaultInjection, setDecisionListeners } from './idempotency';
import { startBackgroundJobs } from './jobs/schedule';
import { log } from './observability/log';
import { countDecision } from './observability/metrics';

/** Each decision of the idempotency layer: a log line (never the key itself) and its metrics. */
const logDecision = ({ decision, ...fields }: DecisionEvent) =>
  log().info({ ...fields, decision }, `idempotency ${decision}`);

/** What a server process does with each decision (the benchmark installs the same). */
export const DECISION_LISTENERS = [logDecision, countDecision];

const state = globalThis as unknown as { __serverStarted?: boolean };

export function startServerProcess(): void {
  if (state.__serverStarted) return;
  state.__serverStarted = true;
  const env = getEnv();
  setDecisionListeners(DECISION_LISTENERS);
  // A test server may be killed on purpose by a planned fault; `next dev` and production never.
  if (env.ENABLE_TEST_HOOKS) installFaultInjection({ allowKill: env.NODE_ENV !== 'development' });
  startBackgroundJobs();
}
