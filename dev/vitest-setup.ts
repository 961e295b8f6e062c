/**
 * Vitest global setup: makes sure the tests have a real, migrated, seeded Postgres.
 * Under `npm test` DATABASE_URL and STRIPE_API_BASE are already set; a bare `npx vitest` gets the
 * embedded test cluster and a payment simulator of its own.
 * Test workers are started after this runs, so they inherit DATABASE_URL.
 *
 * Nothing here may touch the process's exit status: vitest sets it from the test results.
 */
import { ensureProductionBuild } from './app-server';
import { DatabaseStartError } from './postgres';
import { prepareDatabase } from './with-db';

export default async function setup() {
  // The crash tests run the production build as a separate process. Built here, once, before the
  // test files run in parallel (two `next build`s at once would trip over each other).
  ensureProductionBuild();
  const database = await prepareDatabase({ test: true }).catch((err: unknown) => {
    // The message is the whole story: a failed start, or a bad variable (DATABASE_POOLER=pgbuoncer).
    if (err instanceof DatabaseStartError || (err instanceof Error && err.message.startsWith('Invalid environment')))
      err.stack = err.message;
    throw err;
  });
  process.env.DATABASE_URL = database.url;
  if (database.stripeApiBase) process.env.STRIPE_API_BASE = database.stripeApiBase;
  process.env.STRIPE_WEBHOOK_SECRET = database.webhookSecret; // what the simulator signs its webhooks with
  Object.assign(process.env, database.env); // DATABASE_POOL_MODE when DATABASE_POOLER=pgbouncer
  return () => database.release();
}
