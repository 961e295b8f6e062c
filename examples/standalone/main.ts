/**
 * Runs the example: `npx tsx dev/with-db.ts -- tsx examples/standalone/main.ts` (or any DATABASE_URL).
 * Starts the stand-in provider too, unless PROVIDER_URL names one.
 */
import { createTables, openDatabase } from './db';
import { startProvider } from './provider';
import { createServer, startJobs } from './server';

const url = process.env.DATABASE_URL;
if (!url) throw new Error('Set DATABASE_URL to a Postgres database (13 or later).');
const { db, sql } = openDatabase(url);
await createTables(sql);
const providerUrl = process.env.PROVIDER_URL ?? (await startProvider()).url;
const server = createServer(db, providerUrl);
server.listen(Number(process.env.PORT ?? 4000), '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : address;
  console.log(`listening on http://127.0.0.1:${port}/trpc (provider: ${providerUrl})`);
});
startJobs(db, providerUrl);
