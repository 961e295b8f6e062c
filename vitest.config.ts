// Unit and integration tests: `*.test.ts` beside the code they test. They talk to a real Postgres:
// DATABASE_URL when set (npm test sets it), otherwise the embedded test cluster (see dev/vitest-setup.ts).
import path from 'node:path';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    alias: {
      '@': path.resolve(import.meta.dirname),
      // `server-only` throws outside React Server Components; tests import server modules on purpose.
      'server-only': path.resolve(import.meta.dirname, 'node_modules/server-only/empty.js'),
    },
  },
  test: {
    include: ['{server,db,app,dev,tools,examples}/**/*.test.ts'],
    globalSetup: ['dev/vitest-setup.ts'],
    env: {
      ENABLE_TEST_HOOKS: '1', // servers started by the tests accept planned faults (server/idempotency/faults.ts)
      IDEMPOTENCY_REAPER_INTERVAL_SECONDS: '0', // tests run the reaper, completer and outbox themselves
      JOBS_INTERVAL_SECONDS: '0',
      STRIPE_TIMEOUT_MS: '1000', // a provider that hangs is given up on quickly
      IDEMPOTENCY_LEASE_MS: '2000', // a crashed holder's key is taken over after 2 s
    },
    // Logs (one JSON line per idempotency decision) are shown for failing tests only.
    silent: 'passed-only',
    // The JSON report lets .ci/run print one 'N passed, N failed' line for all runners.
    reporters: ['default', ['json', { outputFile: 'test-results/vitest.json' }]],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
