/**
 * Runs the real app as a separate process: a production build under `next start`. The crash tests
 * kill it with SIGKILL, the browser tests and the benchmark drive it over HTTP.
 *
 *   tsx dev/app-server.ts --port 3100   # build if stale, then serve (Playwright's webServer, on a free port)
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const nextBin = path.join(root, 'node_modules', '.bin', 'next');
const SOURCES = [
  'app',
  'server',
  'db',
  'shared',
  'instrumentation.ts',
  'next.config.mjs',
  'package-lock.json',
  'tsconfig.json',
];

function newestSourceMtime(entry: string): number {
  const full = path.join(root, entry);
  if (!fs.existsSync(full)) return 0;
  const stat = fs.statSync(full);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = 0;
  for (const name of fs.readdirSync(full)) {
    // Tests are not part of the build: adding or editing one never forces a rebuild.
    if (name === 'node_modules' || name.startsWith('.') || /\.(test|spec)\.tsx?$/.test(name)) continue;
    newest = Math.max(newest, newestSourceMtime(path.join(entry, name)));
  }
  return newest;
}

/** Runs `next build` unless a build newer than every source file already exists. */
export function ensureProductionBuild(): void {
  const buildId = path.join(root, '.next', 'BUILD_ID');
  const built = fs.existsSync(buildId) ? fs.statSync(buildId).mtimeMs : 0;
  if (built > Math.max(...SOURCES.map(newestSourceMtime))) return;
  console.log('[app-server] building the app (next build)…');
  const r = spawnSync(nextBin, ['build'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) throw new Error(`next build failed (exit ${r.status})`);
}

export interface AppServer {
  url: string;
  process: ChildProcess;
  /** Kills the server; SIGKILL gives it no chance to clean up, as a crash would. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** The environment every app process gets: tests and tools add to it. */
export function appEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const hooks = (extra.ENABLE_TEST_HOOKS ?? process.env.ENABLE_TEST_HOOKS) === '1';
  return {
    ...process.env,
    // The production build either way. A server that accepts planned faults runs as NODE_ENV=test:
    // production refuses them (server/env.js).
    NODE_ENV: hooks ? 'test' : 'production',
    COOKIE_SECRET: process.env.COOKIE_SECRET ?? 'local-test-cookie-secret-at-least-32-chars',
    ...extra,
  };
}

/**
 * Starts `next start` on the port and resolves once it answers. With `logFile`, the server's log
 * lines (stdout and stderr) are appended there; otherwise its stdout is dropped. With
 * `ready: 'listening'` it resolves once the port accepts a connection, without sending the server
 * any request (a test of what a process does with no traffic at all).
 */
export async function startAppServer(options: {
  port: number;
  env?: Record<string, string>;
  logFile?: string;
  ready?: 'answering' | 'listening';
}): Promise<AppServer> {
  const url = `http://127.0.0.1:${options.port}`;
  // A server left over from an interrupted run (or anything else on the port) would answer in our
  // place: refuse to start instead.
  if (await accepts(options.port))
    throw new Error(`port ${options.port} is already in use (a server left over from an earlier run?)`);
  const log = options.logFile ? fs.openSync(options.logFile, 'a') : undefined;
  const child = spawn(nextBin, ['start', '-p', String(options.port), '-H', '127.0.0.1'], {
    cwd: root,
    env: appEnv(options.env),
    stdio: ['ignore', log ?? 'ignore', 'pipe'],
    detached: true, // its own process group, so a kill reaches next's worker too
  });
  if (log !== undefined) fs.closeSync(log); // the child has its own copy
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    if (options.logFile) fs.appendFileSync(options.logFile, chunk);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const stop = (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid!, signal);
      } catch {}
    }
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`next start exited (${child.exitCode}): ${stderr}`);
    if (options.ready === 'listening') {
      if (await accepts(options.port)) break;
    } else {
      try {
        const res = await fetch(`${url}/api/trpc/health.ping`);
        if (res.ok) break;
      } catch {}
    }
    if (Date.now() > deadline) {
      stop('SIGKILL'); // never leave a half-started server holding the port and running its jobs
      await exited;
      throw new Error(
        `next start did not ${options.ready === 'listening' ? 'listen' : 'answer'} on ${url} within 60 s: ${stderr}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    process: child,
    kill: async (signal = 'SIGTERM') => {
      stop(signal);
      await exited;
    },
  };
}

/** Whether something accepts a TCP connection on the loopback port (no bytes are sent). */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

// CLI: build if needed, then serve in the foreground (used as Playwright's webServer command).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const port = Number(process.argv[process.argv.indexOf('--port') + 1]);
  if (!Number.isInteger(port)) throw new Error('usage: tsx dev/app-server.ts --port <port>');
  ensureProductionBuild();
  const child = spawn(nextBin, ['start', '-p', String(port), '-H', '127.0.0.1'], {
    cwd: root,
    env: appEnv(),
    stdio: 'inherit',
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
  child.on('exit', (code) => process.exit(code ?? 1));
}
