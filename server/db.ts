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

/**
 * Session settings of the app's connections: bounds on what a stuck holder can hold.
 *
 * - idle_in_transaction_session_timeout (DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS, 10 s): a one-
 *   transaction procedure holds its key by an open transaction. A holder that stops without dying
 *   (a paused process, a frozen VM, a partition) keeps its socket open, so nothing else would end
 *   that transaction for hours (TCP keepalive). Postgres ends it after this much idleness instead,
 *   rolling back the claim and the work: the key is free for a retry. No transaction here is ever
 *   idle that long on purpose: provider calls are never made inside one.
 * - statement_timeout (30 s): a last bound on any one statement, lock waits included. The claim's
 *   own wait is bounded far lower, by lock_timeout (IDEMPOTENCY_WAIT_MS).
 * - tcp_keepalives_* (10 s idle, then 3 probes 5 s apart): Postgres notices within about 25 s that
 *   the machine of a client vanished (its process cannot answer a probe when its host is gone).
 *
 * Behind a pooler in transaction mode (DATABASE_POOL_MODE=transaction) the first two are set by
 * each transaction instead (db/client.ts), which is where they act: idleness inside a transaction,
 * and the statements of a transaction. The keepalives are the pooler's business there: its clients
 * are our processes (PgBouncer's tcp_keepalive settings, set alike by dev/pgbouncer.ts), and a
 * client that vanishes mid-transaction makes PgBouncer close the server session, which rolls back.
 */
function sessionSettings(env: ReturnType<typeof getEnv>) {
  const bounds = {
    idle_in_transaction_session_timeout: env.DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS,
    statement_timeout: 30_000,
  };
  if (env.DATABASE_POOL_MODE === 'transaction') return bounds;
  return { ...bounds, tcp_keepalives_idle: 10, tcp_keepalives_interval: 5, tcp_keepalives_count: 3 };
}

/** The shared pool of this server process, created on first use. */
export function getDatabase(): Database {
  if (!cache.__checkoutDatabase) {
    const env = getEnv();
    cache.__checkoutDatabase = createDatabase(env.DATABASE_URL, {
      max: env.DATABASE_POOL_SIZE,
      connection: sessionSettings(env),
      transactionPooler: env.DATABASE_POOL_MODE === 'transaction',
    });
  }
  return cache.__checkoutDatabase;
}
