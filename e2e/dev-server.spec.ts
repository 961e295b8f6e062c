/**
 * `npm run dev` itself, not the production build the other specs drive: the shop must stay on one
 * page while the background jobs run and the database, the simulator's ledger and the rest of the
 * run-time files are written, because none of them lives where the dev server watches.
 *
 * The conditions are made, not hoped for: jobs every second, expired keys for the reaper to delete,
 * purchases (the simulator writes its ledger, then posts a webhook to the dev server) and raw
 * inserts (Postgres writes its WAL), for 10 s.
 *
 * What counts as a reload: a navigation of the main frame, an HMR message that changes the page
 * (a module update, a server component change, a page reload, ...), a Fast Refresh that follows
 * one, or a "Compiled" line from the dev server. What does not: Next's "building" message alone.
 * Next sends it whenever its bundler spends more than 100 ms on a request, which on a loaded
 * machine happens for ordinary API calls with no file changed anywhere (watched with inotify); the
 * page then prints "[Fast Refresh] rebuilding" and "done" with nothing to apply. Those idle lines
 * are counted and reported as an annotation, not failed on. The detector is itself proved by a
 * positive control: a write the dev server does watch.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, type Page, test } from '@playwright/test';
import postgres from 'postgres';
import { freePort } from '../dev/ports';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CALM_MS = 10_000;
const PRODUCTS = ['travel-mug', 'espresso-beans', 'milk-frother'];

test.describe.configure({ mode: 'serial', timeout: 300_000 });

/** Every file of the project a watcher could see, with its modification time. */
function projectFiles(): Map<string, number> {
  const out = new Map<string, number>();
  const walk = (dir: string) => {
    for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, d.name);
      const rel = path.relative(ROOT, full);
      if (['node_modules', '.next', '.git', 'test-results', 'playwright-report'].includes(rel)) continue;
      if (d.isDirectory()) walk(full);
      else out.set(rel, fs.statSync(full).mtimeMs);
    }
  };
  walk(ROOT);
  return out;
}

interface DevServer {
  url: string;
  databaseUrl: string;
  stateDir: string;
  process: ChildProcess;
  output: () => string;
}

let dev: DevServer;

test.beforeAll(async () => {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dev-server-spec-'));
  fs.chmodSync(stateDir, 0o755); // as root, the postgres user must enter it
  const [port, pgPort, simPort] = [await freePort(), await freePort(), await freePort()];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_ENV: 'development',
    CHECKOUT_STATE_DIR: stateDir,
    EMBEDDED_PG_PORT: String(pgPort),
    STRIPE_SIM_PORT: String(simPort),
    JOBS_INTERVAL_SECONDS: '1',
    IDEMPOTENCY_REAPER_INTERVAL_SECONDS: '1',
    COMPLETER_DELAY_SECONDS: '0',
    ENABLE_TEST_HOOKS: '',
  };
  delete env.DATABASE_URL; // exactly what `npm run dev` does: its own embedded cluster and simulator
  delete env.STRIPE_API_BASE;
  let output = '';
  const child = spawn('npx', ['tsx', 'dev/with-db.ts', '--', 'next', 'dev', '-p', String(port)], {
    cwd: ROOT,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (b: Buffer) => (output += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (output += b.toString()));
  dev = {
    url: `http://localhost:${port}`,
    databaseUrl: `postgres://postgres:postgres@127.0.0.1:${pgPort}/checkout`,
    stateDir,
    process: child,
    output: () => output,
  };
  await expect
    .poll(
      async () =>
        fetch(`${dev.url}/api/trpc/health.ping`).then(
          (r) => r.status,
          () => 0,
        ),
      { timeout: 180_000, message: `next dev did not answer:\n${output}` },
    )
    .toBe(200);
});

test.afterAll(async () => {
  if (!dev) return;
  // Ctrl-C, as a developer stops it: the command ends, then the launcher stops its Postgres.
  process.kill(-dev.process.pid!, 'SIGINT');
  await new Promise((r) => dev.process.once('exit', r));
  const pidFile = path.join(dev.stateDir, 'postgres-dev', 'postmaster.pid');
  expect(fs.existsSync(pidFile), `the dev Postgres was left running:\n${dev.output().slice(-2000)}`).toBe(false);
  fs.rmSync(dev.stateDir, { recursive: true, force: true });
});

/** HMR messages that change what the page runs or shows. */
const CHANGE_MESSAGES = new Set([
  'addedPage',
  'removedPage',
  'reloadPage',
  'serverComponentChanges',
  'staticParamsChanged',
  'middlewareChanges',
  'clientChanges',
  'serverOnlyChanges',
  'devPagesManifestUpdate',
  'turbopack-message',
]);

/**
 * Counts what a reload loop shows: main-frame navigations, HMR messages that change the page, Fast
 * Refresh runs that applied one, and the dev server's "Compiled" lines; and, apart, the idle
 * "building" messages and the Fast Refresh lines that had nothing to apply.
 */
function watch(page: Page) {
  const seen = {
    navigations: 0,
    changes: 0,
    appliedRefreshes: 0,
    idleRefreshLines: 0,
    builds: 0,
    lastBuildAt: Date.now(),
  };
  const compiledLines = () => (dev.output().match(/Compiled/g) ?? []).length;
  const compiledBefore = compiledLines();
  let changeSinceLastRefresh = false;
  /** What happened and when, for a failure message: the HMR socket's messages and the page's Fast Refresh lines. */
  const events: string[] = [];
  const note = (what: string) => events.push(`${new Date().toISOString().slice(11, 23)} ${what.slice(0, 200)}`);
  page.on('framenavigated', (frame) => {
    if (frame !== page.mainFrame()) return;
    seen.navigations++;
    note(`navigated to ${frame.url()}`);
  });
  page.on('console', (m) => {
    const text = m.text();
    if (!text.includes('[Fast Refresh]')) return;
    seen.lastBuildAt = Date.now();
    note(`console: ${text}`);
    if (!text.includes('[Fast Refresh] done')) return;
    if (changeSinceLastRefresh) seen.appliedRefreshes++;
    else seen.idleRefreshLines++;
    changeSinceLastRefresh = false;
  });
  page.on('websocket', (ws) =>
    ws.on('framereceived', (f) => {
      const payload = String(f.payload);
      let type: string | undefined;
      try {
        type = (JSON.parse(payload) as { type?: string }).type;
      } catch {
        return; // binary frames: React debug chunks, not HMR events
      }
      if (type === 'ping') return;
      note(`hmr: ${payload}`);
      if (type === 'building') {
        seen.builds++;
        seen.lastBuildAt = Date.now();
      }
      if (type && CHANGE_MESSAGES.has(type)) {
        seen.changes++;
        changeSinceLastRefresh = true;
      }
    }),
  );
  return {
    seen,
    events: () => events.join('\n'),
    mark: (what: string) => note(`--- ${what}`),
    compiledSince: () => compiledLines() - compiledBefore,
    /**
     * Waits until the dev server has pushed no "building" (and the page printed no Fast Refresh line)
     * for 5 s: on a cold cache it compiles a few more things in the seconds after the first page load,
     * then stops. A reload loop never stops, and fails here.
     */
    settled: () =>
      expect
        .poll(() => Date.now() - seen.lastBuildAt, {
          timeout: 60_000,
          intervals: [500],
          message: `the dev server kept rebuilding (${seen.builds} builds)`,
        })
        .toBeGreaterThan(5_000),
  };
}

async function openShop(page: Page) {
  await page.goto(dev.url);
  await expect(page.getByTestId('catalog').getByRole('listitem').first()).toBeVisible({ timeout: 120_000 });
}

test(
  'next dev: with the jobs running and everything being written, the shop stays on one page for 10 s, and nothing ' +
    'under the project changes',
  async ({ page }) => {
    const detector = watch(page);
    await openShop(page);
    // Every route the window below uses is compiled once first: a first compile is a real one.
    const sql = postgres(dev.databaseUrl, { max: 2, onnotice: () => {} });
    const cookie = (await fetch(`${dev.url}/api/trpc/catalog.list`)).headers.get('set-cookie')!.split(';')[0]!;
    const purchase = (productId: string) =>
      fetch(`${dev.url}/api/trpc/checkout.purchase`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', cookie, 'idempotency-key': crypto.randomUUID() },
        body: JSON.stringify({ items: [{ productId, quantity: 1 }], paymentMethod: 'pm_card_visa' }),
      });
    expect((await purchase('travel-mug')).status).toBe(200);
    // The purchase's webhook reaches the dev server (its endpoint is registered by the launcher) and
    // compiles that route: wait for it, so that its first compile is not counted as a reload.
    await expect
      .poll(() => dev.output().includes('POST /api/webhooks/stripe'), {
        timeout: 60_000,
        message: 'no webhook reached the dev server',
      })
      .toBe(true);
    await detector.settled();
    const files = projectFiles();
    const before = { ...detector.seen, compiled: detector.compiledSince() };
    detector.mark('the calm window starts');

    // Writes of every kind the app makes at run time, for CALM_MS.
    const until = Date.now() + CALM_MS;
    let purchases = 0;
    while (Date.now() < until) {
      const res = await purchase(PRODUCTS[purchases % PRODUCTS.length]!);
      expect(res.status).toBe(200); // an order and a charge: rows, WAL, the simulator's ledger
      purchases++;
      // Keys already expired: the reaper (every second) deletes them again and again.
      await sql`insert into idempotency_keys (scope, procedure, key, fingerprint, state, response_status,
        response_body, completed_at, expires_at)
              select 'dev-spec', 'dev.spec', gen_random_uuid()::text, repeat('a', 64), 'completed', 200, '{}'::json,
                now(), now() - interval '1 second'
              from generate_series(1, 200)`;
      await page.waitForTimeout(300);
    }
    await sql.end();

    expect(purchases).toBeGreaterThan(5);
    const during = (k: 'navigations' | 'changes' | 'appliedRefreshes' | 'idleRefreshLines' | 'builds') =>
      detector.seen[k] - before[k];
    test.info().annotations.push({
      type: 'idle dev-server messages',
      description:
        `${during('builds')} "building" message(s) and ${during('idleRefreshLines')} Fast Refresh line(s) ` +
        `with nothing to apply in ${CALM_MS / 1000} s`,
    });
    const timeline = `\n${detector.events()}`;
    expect(during('navigations'), `the page navigated by itself:${timeline}`).toBe(0);
    expect(during('changes'), `the dev server pushed a change with no source change:${timeline}`).toBe(0);
    expect(during('appliedRefreshes'), `Fast Refresh applied a change with no source change:${timeline}`).toBe(0);
    expect(detector.compiledSince() - before.compiled, `the dev server recompiled:\n${dev.output().slice(-1500)}`).toBe(
      0,
    );
    await expect(page.getByTestId('catalog').getByRole('listitem').first()).toBeVisible();
    // Nothing the app wrote is in the project: every run-time file is in the state folder.
    const after = projectFiles();
    const changed = [...after].filter(([file, mtime]) => files.get(file) !== mtime).map(([file]) => file);
    expect(changed, 'files under the project changed while the app ran').toEqual([]);
    expect(fs.existsSync(path.join(dev.stateDir, 'stripe-simulator.json'))).toBe(true);
    expect(fs.existsSync(path.join(dev.stateDir, 'postgres-dev', 'PG_VERSION'))).toBe(true);
  },
);

test(
  'positive control: a file the dev server does watch (an .env file) changing makes this detector see a ' + 'refresh',
  async ({ page }) => {
    const probe = path.join(ROOT, '.env.development.local');
    const yours = fs.existsSync(probe) ? fs.readFileSync(probe) : undefined; // put back as it was at the end
    const detector = watch(page);
    await openShop(page);
    await detector.settled();
    const before = { ...detector.seen };
    try {
      for (let i = 0; i < 4; i++) {
        fs.writeFileSync(
          probe,
          `${yours ?? ''}\n# written by e2e/dev-server.spec.ts, removed at its end\nCHECKOUT_DEV_PROBE=${i}\n`,
        );
        await page.waitForTimeout(1_000);
      }
    } finally {
      if (yours) fs.writeFileSync(probe, yours);
      else fs.rmSync(probe, { force: true });
    }
    // What the calm test fails on, seen here: a navigation or a change pushed to the page.
    await expect
      .poll(() => detector.seen.navigations - before.navigations + detector.seen.changes - before.changes, {
        timeout: 15_000,
        message: `no reload seen:\n${detector.events()}`,
      })
      .toBeGreaterThan(0);
  },
);

test(
  'the dev server process started its background jobs once, through everything above (an env reload ' + 'included)',
  async () => {
    // server/jobs/schedule.ts logs one line when it starts the jobs; a second would mean they run twice.
    const starts = dev.output().match(/background jobs started/g) ?? [];
    expect(starts, `the dev server's output:\n${dev.output().slice(-3000)}`).toHaveLength(1);
  },
);
