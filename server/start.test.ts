/**
 * A server process starts its background jobs once. `next dev` may evaluate server modules anew
 * (a reload) and Next may call instrumentation's register() more than once; neither may start a
 * second set of jobs, which would double every reaper, completer and outbox pass of that process.
 */
import { afterEach, expect, it, vi } from 'vitest';
import { FLUSH_MS } from './observability/log';

const state = globalThis as unknown as { __serverStarted?: boolean; __jobs?: NodeJS.Timeout[] };

afterEach(() => {
  for (const timer of state.__jobs ?? []) clearInterval(timer);
  delete state.__jobs;
  delete state.__serverStarted;
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
  vi.resetModules();
});

/** Evaluates instrumentation.ts and everything under it anew, as a reload of server code does. */
async function freshRegister() {
  vi.resetModules();
  return (await import('../instrumentation')).register;
}

it(
  'the jobs start once per process: register() twice, and again from server code evaluated anew, start four timers, ' +
    'not eight or twelve',
  async () => {
    vi.stubEnv('NEXT_RUNTIME', 'nodejs');
    vi.stubEnv('JOBS_INTERVAL_SECONDS', '60'); // the completer, the outbox and the settler
    vi.stubEnv('IDEMPOTENCY_REAPER_INTERVAL_SECONDS', '60'); // and the reaper
    const spy = vi.spyOn(globalThis, 'setInterval');
    // The jobs' timers; the log's own flush timer (made once, with the log) is not a job.
    const intervals = { calls: () => spy.mock.calls.filter(([, ms]) => ms !== FLUSH_MS).length };

    const register = await freshRegister();
    await register();
    expect(intervals.calls()).toBe(4); // the probe sees a start
    const first = state.__jobs;
    await register(); // Next calling it again
    await (await freshRegister())(); // a reload: every module evaluated anew, same process

    expect(intervals.calls()).toBe(4);
    expect(state.__jobs).toBe(first);
  },
);
