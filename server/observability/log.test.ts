/**
 * The server's log as operators read it: JSON lines with time, level, process id and instance
 * outside development, and lines for people under `npm run dev`. Each case runs in a process of
 * its own, because the log is made once per process.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../dev/state';
import { FLUSH_MS } from './log';

/**
 * Logs one line in a fresh process with this environment; returns what it printed. By default the
 * process exits right after the line: a write still queued must be flushed on the way out. `end`
 * replaces that exit.
 */
function logOnce(env: Record<string, string>, end = 'process.exit(0);'): string {
  const line = "log().info({ orderTag: 'o-1' }, 'order placed');";
  const script = `import { log } from './server/observability/log'; ${line} ${end}`;
  const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, DATABASE_URL: 'postgres://u@127.0.0.1:1/db', STRIPE_API_BASE: 'http://127.0.0.1:1', ...env },
    encoding: 'utf8',
    timeout: 30_000, // a child that hangs fails this test instead of blocking the worker
  });
  if (!end.includes('SIGKILL')) expect(result.status, result.stderr).toBe(0);
  else expect(result.signal, result.stderr).toBe('SIGKILL');
  return result.stdout;
}

describe('the log', () => {
  it(
    'outside development: one JSON line with the time, the level, the process id and the instance name, written by ' +
      'the time the process exits (the writes are asynchronous)',
    () => {
      const out = logOnce({ NODE_ENV: 'test', INSTANCE_NAME: 'shop-a', LOG_LEVEL: 'info' });
      const lines = out.trim().split('\n');
      expect(lines).toHaveLength(1);
      const line = JSON.parse(lines[0]!) as Record<string, unknown>;
      expect(line).toMatchObject({ level: 30, instance: 'shop-a', orderTag: 'o-1', msg: 'order placed' });
      expect(line.pid).toEqual(expect.any(Number));
      expect(new Date(line.time as string).toISOString()).toBe(line.time); // ISO time, not epoch milliseconds
    },
  );

  it(
    'lines are batched, yet a line reaches stdout within the flush interval: a process killed outright ' +
      'later still wrote it',
    () => {
      // No exit hook runs under SIGKILL: only the periodic flush can have written the line.
      const kill = `setTimeout(() => process.kill(process.pid, 'SIGKILL'), ${FLUSH_MS * 4});`;
      const out = logOnce({ NODE_ENV: 'test', LOG_LEVEL: 'info' }, kill);
      expect(out.trim().split('\n')).toHaveLength(1);
      expect(JSON.parse(out)).toMatchObject({ msg: 'order placed' });
    },
  );

  it('under npm run dev: a line for people, with the time and the level in words, not JSON', () => {
    const out = logOnce({ NODE_ENV: 'development', INSTANCE_NAME: 'shop-a', LOG_LEVEL: 'info', NO_COLOR: '1' });
    expect(() => JSON.parse(out.trim())).toThrow();
    expect(out).toMatch(/^\[\d{2}:\d{2}:\d{2}\.\d{3}\] INFO.*order placed/m);
    expect(out).toContain('orderTag: "o-1"');
  });

  it('below LOG_LEVEL, nothing is written', () => {
    expect(logOnce({ NODE_ENV: 'test', LOG_LEVEL: 'warn' })).toBe('');
  });
});
