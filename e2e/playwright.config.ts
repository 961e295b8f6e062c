/**
 * Playwright: a real Chromium against a production build of the app on a real Postgres.
 * Run through `npm run test:e2e` (or `npm test`), which provides DATABASE_URL.
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, defineConfig } from '@playwright/test';
import { freePort } from '../dev/ports';

// The app's port: E2E_PORT when set, else a free loopback port the kernel picks, once per run. Playwright
// evaluates this file again in every worker process; the workers inherit the runner's environment, so
// the port chosen first is the one they all use (as e2e/demo.config.ts does for its folder). Never a
// fixed port: any program may hold one.
process.env.E2E_PORT ||= String(await freePort());
const PORT = Number(process.env.E2E_PORT);
if (!Number.isInteger(PORT) || PORT < 1 || PORT > 65535)
  throw new Error(`E2E_PORT must be a port number (1 to 65535), not '${process.env.E2E_PORT}'`);
const databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl) {
  throw new Error(
    'DATABASE_URL is not set: run the browser tests with `npm run test:e2e` (it starts the test database).',
  );
}

/** Debian's Chromium when installed, else Playwright's own browser; otherwise say what to install. */
function chromiumPath(): string | undefined {
  if (fs.existsSync('/usr/bin/chromium')) return '/usr/bin/chromium';
  if (fs.existsSync(chromium.executablePath())) return undefined; // Playwright's default
  throw new Error(
    'No Chromium found. Install one of:\n' +
      '  Debian/Ubuntu: sudo apt-get install chromium   (used from /usr/bin/chromium)\n' +
      '  elsewhere:     npx playwright install chromium',
  );
}

export default defineConfig({
  testDir: '.',
  outputDir: '../test-results/playwright', // artifacts: traces, screenshots
  forbidOnly: !!process.env.CI,
  retries: 0,
  workers: 2,
  timeout: 60_000,
  expect: { timeout: 15_000 },
  reporter: [
    ['list'],
    ['html', { outputFolder: '../playwright-report', open: 'never' }],
    ['json', { outputFile: '../test-results/playwright.json' }],
  ],
  use: {
    baseURL: `http://127.0.0.1:${PORT}`,
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: chromiumPath(),
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    },
  },
  globalSetup: './global-setup.ts',
  webServer: {
    // Builds only when the sources are newer than the last build (the crash test may have built it).
    command: `npx tsx dev/app-server.ts --port ${PORT}`,
    url: `http://127.0.0.1:${PORT}/api/trpc/health.ping`,
    timeout: 300_000,
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    reuseExistingServer: false,
    stdout: 'ignore',
    stderr: 'pipe',
    env: {
      DATABASE_URL: databaseUrl,
      STRIPE_API_BASE: process.env.STRIPE_API_BASE ?? '',
      COOKIE_SECRET: 'e2e-cookie-secret-at-least-32-characters-long',
      ENABLE_TEST_HOOKS: '1', // planned faults (a slow server on demand): server/idempotency/faults.ts
      IDEMPOTENCY_REAPER_INTERVAL_SECONDS: '0',
    },
  },
});
