/**
 * Vitest global setup: makes sure the tests have a real, migrated, seeded Postgres.
 * Under `npm test` DATABASE_URL is already set; a bare `npx vitest` gets the embedded test cluster.
 * Test workers are started after this runs, so they inherit DATABASE_URL.
 */
import { prepareDatabase } from './with-db';

export default async function setup() {
  const database = await prepareDatabase({ test: true });
  process.env.DATABASE_URL = database.url;
  return () => database.release();
}
