/**
 * Hooks that let tests widen race windows, e.g. keep a checkout in flight for 2 s so that a
 * duplicate arrives while it runs, or so that the process can be killed while it holds a key.
 * Inert unless ENABLE_TEST_HOOKS=1 (never set in production).
 */
import { sql } from 'drizzle-orm';
import { getDatabase } from '../db/client';
import { getEnv } from './env.js';
import type { StepHooks } from './idempotency/phases';

export const TEST_DELAY_HEADER = 'x-test-delay-ms';
export const TEST_FAIL_HEADER = 'x-test-fail-after-write';
export const TEST_CRASH_HEADER = 'x-test-crash-after-step';
export const TEST_CRASH_IN_STEP_HEADER = 'x-test-crash-in-step';
export const TEST_DROP_DB_HEADER = 'x-test-drop-db-in-step';
export const TEST_PROVIDER_FAULT_HEADER = 'x-test-provider-fault';
const MAX_TEST_DELAY_MS = 30_000;

/** Sleeps for the `x-test-delay-ms` header's value, when test hooks are on. */
export async function testDelay(headers: Headers): Promise<void> {
  if (!getEnv().ENABLE_TEST_HOOKS) return;
  const ms = Math.min(Number(headers.get(TEST_DELAY_HEADER)) || 0, MAX_TEST_DELAY_MS);
  if (ms > 0) await new Promise((r) => setTimeout(r, ms));
}

/**
 * Throws an ordinary Error (a stand-in for a bug or a dropped connection) after the procedure has
 * written, when the `x-test-fail-after-write` header is set: proves the writes roll back with the key.
 */
export function testFailAfterWrite(headers: Headers): void {
  if (getEnv().ENABLE_TEST_HOOKS && headers.get(TEST_FAIL_HEADER)) throw new Error('test hook: failure after write');
}

/** A fault for the payment simulator to inject into this request's provider call (`Sim-Fault`). */
export function testProviderFault(headers: Headers): string | null {
  return getEnv().ENABLE_TEST_HOOKS ? headers.get(TEST_PROVIDER_FAULT_HEADER) : null;
}

/**
 * Faults at the phase boundaries of a phased procedure:
 * - `x-test-crash-after-step: <name>`  the server process dies (SIGKILL) right after step `name`
 *                                      committed, as in a crash;
 * - `x-test-crash-in-step: <name>`     it dies inside step `name`, before the step commits (for
 *                                      the last step: after the provider call, before it is recorded);
 * - `x-test-drop-db-in-step: <name>`   the database connection of step `name` is cut before it
 *                                      commits, as when the network or Postgres drops it.
 */
export function testStepHooks(headers: Headers): StepHooks | undefined {
  if (!getEnv().ENABLE_TEST_HOOKS) return undefined;
  const crashAt = headers.get(TEST_CRASH_HEADER);
  const crashIn = headers.get(TEST_CRASH_IN_STEP_HEADER);
  const dropAt = headers.get(TEST_DROP_DB_HEADER);
  if (!crashAt && !crashIn && !dropAt) return undefined;
  return {
    async inStep(name, tx) {
      if (name === crashIn) process.kill(process.pid, 'SIGKILL');
      if (name === dropAt) {
        // Cut this transaction's connection from outside, as a network failure or a Postgres
        // restart would, then let the step carry on into the dead connection.
        const [me] = await tx.execute<{ pid: number }>(sql`select pg_backend_pid() as pid`);
        await getDatabase().sql`select pg_terminate_backend(${me!.pid})`;
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async afterStep(name) {
      if (name === crashAt) process.kill(process.pid, 'SIGKILL');
    },
  };
}
