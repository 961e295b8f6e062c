/**
 * The database: a postgres.js pool wrapped by Drizzle (the layer needs exactly this pair), and the
 * tables. One `idempotency_keys` table serves every app and procedure in a database (a key is unique
 * per scope, procedure and key), so the example can share a database with the shop in this
 * repository; its own table has a name nothing else here uses.
 */
import fs from 'node:fs';
import path from 'node:path';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { fenceTransactions } from '../../server/idempotency/index';
import * as schema from './schema';

export function openDatabase(url: string) {
  // Fenced: a transaction whose connection dies sends nothing more (the layer's README says why).
  const sql = fenceTransactions(
    postgres(url, {
      max: 10,
      onnotice: () => {}, // "already exists, skipping"
      connection: { application_name: 'standalone-example' },
    }),
  );
  return { db: drizzle(sql, { schema }), sql };
}

export type Db = ReturnType<typeof openDatabase>['db'];

/**
 * Creates the tables if they are missing: the layer's own SQL file, then the example's. The layer's is
 * run only where its table is missing: even with IF NOT EXISTS, its CREATE INDEX would lock the table
 * that other apps (and the shop's tests) are writing to.
 */
export async function createTables(sql: postgres.Sql): Promise<void> {
  const read = (file: string) => fs.readFileSync(path.join(import.meta.dirname, file), 'utf8');
  await sql.begin(async (tx) => {
    const [found] = await tx`select to_regclass('idempotency_keys') is not null as exists`;
    if (!found!.exists) await tx.unsafe(read('../../server/idempotency/idempotency_keys.sql'));
    await tx.unsafe(read('schema.sql'));
  });
}
