/**
 * The database handle: postgres.js (the one driver) wrapped by Drizzle.
 *
 * `getDb()` gives the process-wide pool. In development it is cached on `globalThis`, so hot reload
 * re-imports this module without opening a new pool each time.
 */
import postgres from 'postgres';
import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import { getEnv } from '../server/env.js';
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
  /** Called once per statement sent to Postgres: the benchmark counts statements with it. */
  onQuery?: (query: string) => void;
}

export function createDatabase(url: string, options: CreateDatabaseOptions = {}): Database {
  const { onQuery } = options;
  const sql = postgres(url, {
    max: options.max ?? 10,
    onnotice: () => {}, // "relation already exists, skipping" and friends are not news
    connection: { application_name: 'retry-safe-checkout' }, // names this app's sessions in pg_stat_activity
    ...(onQuery ? { debug: (_conn: number, query: string) => onQuery(query) } : {}),
  });
  return { db: drizzle(sql, { schema }), sql };
}

const cache = globalThis as unknown as { __checkoutDatabase?: Database };

/** Makes `database` this process's pool (the benchmark installs one that counts statements). */
export function installDatabase(database: Database): void {
  cache.__checkoutDatabase = database;
}

/** The shared pool of this server process, created on first use. */
export function getDatabase(): Database {
  if (!cache.__checkoutDatabase) {
    const env = getEnv();
    cache.__checkoutDatabase = createDatabase(env.DATABASE_URL, { max: env.DATABASE_POOL_SIZE });
  }
  return cache.__checkoutDatabase;
}
