/**
 * The pool this server process shares, opened on first use from DATABASE_URL. It is kept on
 * `globalThis`, so that a hot reload in development, which evaluates this module again, finds the
 * pool it already has instead of opening another.
 */
import { createDatabase, type Database } from '../db/client';
import { getEnv } from './env.js';

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
