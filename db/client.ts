/**
 * The database handle: postgres.js (the one driver) wrapped by Drizzle. This module only knows how
 * to open a pool for a URL; which URL, and the pool a server process shares, are the server's
 * business (server/db.ts).
 */
import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { fenceTransactions } from '../server/idempotency';
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
  /** Session settings of the app's connections (timeouts): see `transactionPooler` for where they go. */
  connection?: Record<string, string | number>;
  /**
   * The URL is a pooler in transaction mode (PgBouncer's `pool_mode = transaction`): consecutive
   * transactions of one of our connections run on different server sessions, shared with other
   * clients. Two things change:
   *
   * - No prepared statements (`prepare: false`): a statement prepared on one server session does not
   *   exist on the next. (Drizzle's query builder sends unnamed statements anyway; raw SQL and
   *   postgres.js tagged templates would otherwise be prepared.)
   * - The session settings are not sent when the connection opens (PgBouncer refuses startup
   *   parameters it does not track, and a session setting would apply to whoever gets that server
   *   session next, or to nobody). Each transaction sets them itself as its first statement, with
   *   `set local name = 'value'`: local to the transaction, forgotten at its commit or
   *   rollback, so nothing leaks to the pooler's next client. The statement is pipelined with the
   *   transaction's own first statement: no extra round trip.
   */
  transactionPooler?: boolean;
  /** Called once per statement sent to Postgres: the benchmark counts statements with it. */
  onQuery?: (query: string) => void;
}

export function createDatabase(url: string, options: CreateDatabaseOptions = {}): Database {
  const { onQuery, transactionPooler = false } = options;
  const settings = options.connection ?? {};
  const sql = postgres(url, {
    max: options.max ?? 10,
    onnotice: () => {}, // "relation already exists, skipping" and friends are not news
    // names this app's sessions in pg_stat_activity (PgBouncer tracks it per client, so it passes)
    connection: { application_name: 'retry-safe-checkout', ...(transactionPooler ? {} : settings) },
    ...(transactionPooler ? { prepare: false } : {}),
    ...(onQuery ? { debug: (_conn: number, query: string) => onQuery(query) } : {}),
  });
  if (transactionPooler && Object.keys(settings).length > 0) settingsPerTransaction(sql, settings);
  // Every transaction (Drizzle's db.transaction included) sends nothing once it is over or its
  // connection died: without this, a body still running after the death writes outside it.
  fenceTransactions(sql);
  return { db: drizzle(sql, { schema }), sql };
}

/**
 * Makes every transaction begun on `sql` start with `set local name = 'value'; ...`. Each is opened
 * with a BEGIN on a reserved connection (`sql.reserve()`), Drizzle's `db.transaction` too once
 * `fenceTransactions` has replaced `sql.begin`; the statement is sent right behind the BEGIN, before
 * anything the caller sends next, on the same connection: pipelined, no extra round trip. Statements
 * outside a transaction run with the server's defaults: each is short, and waits at most for a
 * transaction that is itself bounded by these settings.
 */
function settingsPerTransaction(sql: postgres.Sql, settings: Record<string, string | number>): void {
  // SET LOCAL, not `select set_config(...)`: a SELECT takes the transaction's snapshot, after which
  // Postgres refuses SET TRANSACTION ISOLATION LEVEL (Drizzle's `db.transaction(fn, { isolationLevel })`).
  const statement = Object.entries(settings)
    .map(([name, value]) => {
      if (!/^[a-z_.]+$/.test(name) || !/^[\w.-]+$/.test(String(value)))
        throw new Error(`unsafe session setting ${name}=${value}`);
      return `set local ${name} = '${value}'`;
    })
    .join('; ');
  const reserve = sql.reserve.bind(sql);
  Object.assign(sql, {
    reserve: async () => {
      const connection = await reserve();
      const unsafe = connection.unsafe.bind(connection);
      Object.assign(connection, {
        unsafe: (query: string, ...rest: unknown[]) => {
          const q = unsafe(query, ...(rest as []));
          if (!/^\s*(begin|start\s+transaction)\b/i.test(query)) return q;
          // Queries run in the order they are executed: BEGIN first, then the settings, then whatever
          // the caller sends next. A failure here fails the transaction's next statement too.
          q.execute();
          unsafe(statement)
            .execute()
            .catch(() => {});
          return q;
        },
      });
      return connection;
    },
  });
}
