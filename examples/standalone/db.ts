/**
 * The database: a postgres.js pool wrapped by Drizzle (the layer needs exactly this pair), and the
 * tables. The example keeps its tables in a Postgres schema of its own, so it can share a database
 * with another app that has an `idempotency_keys` table too (the shop in this repository does).
 */
import fs from 'node:fs';
import path from 'node:path';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import * as schema from './schema';

export const PG_SCHEMA = 'standalone_example';

export function openDatabase(url: string) {
  const sql = postgres(url, {
    max: 10,
    onnotice: () => {}, // "already exists, skipping"
    connection: { application_name: 'standalone-example', search_path: PG_SCHEMA },
  });
  return { db: drizzle(sql, { schema }), sql };
}

export type Db = ReturnType<typeof openDatabase>['db'];

/** Creates the tables if they are missing: the layer's own SQL file, then the example's. */
export async function createTables(sql: postgres.Sql): Promise<void> {
  const read = (file: string) => fs.readFileSync(path.join(import.meta.dirname, file), 'utf8');
  await sql.begin(async (tx) => {
    await tx.unsafe(`create schema if not exists ${PG_SCHEMA}`);
    await tx.unsafe(read('../../server/idempotency/idempotency_keys.sql'));
    await tx.unsafe(read('schema.sql'));
  });
}
