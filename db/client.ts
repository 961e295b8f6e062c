/**
 * The database handle: postgres.js (the one driver) wrapped by Drizzle. This module only knows how
 * to open a pool for a URL; which URL, and the pool a server process shares, are the server's
 * business (server/db.ts).
 */
import postgres from 'postgres';
import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import * as schema from './schema';

export type Db = PostgresJsDatabase<typeof schema>;
/** The handle inside `db.transaction(...)`: same query API, bound to one connection. */
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];
/** What services accept: they work the same on the pool or inside a caller's transaction. */
export type DbOrTx = Db | Tx;

export interface Database {
  db: Db;
  sql: postgres.Sql;
}

export interface CreateDatabaseOptions {
  max?: number;
  /** Session settings sent when each connection opens (e.g. timeouts). */
  connection?: Record<string, string | number>;
  /** Called once per statement sent to Postgres: the benchmark counts statements with it. */
  onQuery?: (query: string) => void;
}

export function createDatabase(url: string, options: CreateDatabaseOptions = {}): Database {
  const { onQuery } = options;
  const sql = postgres(url, {
    max: options.max ?? 10,
    onnotice: () => {}, // "relation already exists, skipping" and friends are not news
    // names this app's sessions in pg_stat_activity
    connection: { application_name: 'retry-safe-checkout', ...options.connection },
    ...(onQuery ? { debug: (_conn: number, query: string) => onQuery(query) } : {}),
  });
  return { db: drizzle(sql, { schema }), sql };
}
