/**
 * Hooks that let tests widen race windows, e.g. keep a checkout in flight for 2 s so that a
 * duplicate arrives while it runs, or so that the process can be killed while it holds a key.
 * Inert unless ENABLE_TEST_HOOKS=1 (never set in production).
 */
import { getEnv } from './env.js';

export const TEST_DELAY_HEADER = 'x-test-delay-ms';
export const TEST_FAIL_HEADER = 'x-test-fail-after-write';
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
