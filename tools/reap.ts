/** `npm run db:reap`: deletes expired idempotency keys now (the servers also do it on a timer). */
import { createDatabase } from '../db/client';
import { getEnv } from '../server/env.js';
import { reapExpiredKeys } from '../server/idempotency';

const { db, sql } = createDatabase(getEnv().DATABASE_URL, { max: 1 });
const started = Date.now();
try {
  const n = await reapExpiredKeys(db, { restFactor: 0 }); // on demand: as fast as it can
  console.log(`[reaper] deleted ${n} expired idempotency key(s) in ${Date.now() - started} ms`);
} finally {
  await sql.end();
}
