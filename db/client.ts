/**
 * The database handle: postgres.js (the one driver) wrapped by Drizzle. This module only knows how
 * to open a pool for a URL; which URL, and the pool a server process shares, are the server's
 * business (server/db.ts).
 */

import type { SQL } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import { drizzle, type PostgresJsDatabase, PostgresJsSession, PostgresJsTransaction } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
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
   *   `set_config(name, value, true)`: local to the transaction, forgotten at its commit or
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
  return { db: drizzle(sql, { schema }), sql };
}

/** How a pipelined transaction ends: committed (with a last statement sent along), or rolled back. */
export type TransactionEnd<T> = { commit: T; last?: SQL } | { rollback: T };

const dialect = new PgDialect();

/**
 * The first and last statements are prepared (named, kept per connection by postgres.js). Unprepared,
 * a statement with parameters is sent in two steps, its text to be described and then its values,
 * and postgres.js sends nothing else on the connection in between: the COMMIT would wait for the
 * last statement instead of travelling with it. Prepared, after its first use on a connection it is
 * one message with the values, pipelined. (Behind a transaction pooler the URL's `prepare=false`
 * wins, and this is the slower, correct path.) Drizzle's own queries are unprepared unless named.
 */
const PREPARED = { prepare: true };

/**
 * `db.transaction`, with two round trips fewer. On one reserved connection, BEGIN goes to Postgres
 * in the same packet as the transaction's first statement (`first`), and COMMIT in the same packet
 * as its last (`last`): postgres.js pipelines queries issued together, so neither waits for the
 * other's answer. What Postgres runs is exactly what `db.transaction` would run, in the same order;
 * only the waiting between them is gone. That matters where a statement costs less than its round
 * trip, as on a small machine shared by the app and the database.
 *
 * - If `first` fails, the transaction is rolled back and the error thrown (BEGIN cannot fail alone).
 * - If `last` fails, Postgres answers the COMMIT sent behind it with a rollback: nothing is kept,
 *   and the error is thrown. Nothing is ever committed that `body` did not see succeed, except `last`.
 * - If `body` throws, the transaction is rolled back and the error thrown, as with `db.transaction`.
 *
 * `body` gets a Drizzle transaction on the reserved connection (no nested transactions: savepoints
 * are not needed on the paths that use this) and the rows `first` returned.
 */
export async function pipelinedTransaction<Row extends Record<string, unknown>, T>(
  db: Db,
  first: SQL,
  body: (tx: Tx, rows: Row[]) => Promise<TransactionEnd<T>>,
): Promise<T> {
  const connection = await (db as Db & { $client: postgres.Sql }).$client.reserve();
  // A query sent on a connection that dies may never settle (postgres.js's own `begin` races its
  // transaction against the connection's close for the same reason): so does this one.
  let raw: RawConnection | undefined;
  let rejectClosed: (err: unknown) => void = () => {};
  const closed = new Promise<never>((_, reject) => (rejectClosed = reject));
  closed.catch(() => {}); // only awaited while the transaction runs
  const guard = <V>(p: Promise<V>) => Promise.race([p, closed]);
  let open = true;
  let alive = true;
  let done = false;
  // Everything after the opening goes through this: once the transaction is over, or its connection
  // closed, nothing more is sent on it. (postgres.js reopens a closed connection under the same
  // handle for whoever the pool serves next; a late statement of this body, or our COMMIT, would
  // land in that stranger's transaction.)
  const send: typeof connection.unsafe = (...args: Parameters<typeof connection.unsafe>) => {
    if (done || !alive)
      throw new Error(
        'pipelinedTransaction: the transaction is over or its connection closed; nothing more is sent on it',
      );
    return connection.unsafe(...args);
  };
  const fenced = new Proxy(connection, {
    get: (target, property) => (property === 'unsafe' ? send : Reflect.get(target, property)),
  });
  try {
    const opening = dialect.sqlToQuery(first);
    const onexecute = (c: RawConnection) => {
      raw = c;
      c.onclose = (err) => {
        alive = false;
        rejectClosed(err);
      };
      return true; // the connection takes the next query at once: pipelined
    };
    const [, rows] = await guard(
      Promise.all([
        connection.unsafe('begin', [], { onexecute } as never),
        connection.unsafe<Row[]>(opening.sql, opening.params as never[], PREPARED),
      ]),
    );
    // The same Drizzle transaction db.transaction would give, on the reserved connection.
    const schema = { schema: db._.schema!, fullSchema: db._.fullSchema, tableNamesMap: db._.tableNamesMap };
    const session = new PostgresJsSession(fenced as unknown as postgres.Sql, dialect, schema, {});
    const tx = new PostgresJsTransaction(dialect, session as never, schema) as unknown as Tx;
    // If the body fails too, its error wins over the connection's: it may be why the connection
    // closed (a planned crash cuts its own connection, then says so), so it is given a moment.
    const end = await Promise.race([
      body(tx, [...rows]),
      closed.catch((err: unknown) => new Promise<never>((_, reject) => setTimeout(() => reject(err), 50))),
    ]);
    open = false;
    if ('rollback' in end) {
      await guard(send('rollback'));
      return end.rollback;
    }
    const closing = end.last ? dialect.sqlToQuery(end.last) : undefined;
    const [lastResult, commitResult] = await guard(
      Promise.allSettled([
        closing ? send(closing.sql, closing.params as never[], PREPARED) : Promise.resolve(),
        send('commit'),
      ]),
    );
    if (lastResult.status === 'rejected') throw lastResult.reason; // the COMMIT behind it rolled back
    if (commitResult.status === 'rejected') throw commitResult.reason;
    // A COMMIT sent into a transaction that failed does not fail: Postgres answers it ROLLBACK. The
    // tag is the truth, whatever the promises say (postgres.js may also retry a failed prepared
    // statement by itself, after the COMMIT queued behind it, outside the transaction).
    if ((commitResult.value as { command?: string }).command !== 'COMMIT') {
      throw new Error(
        `pipelinedTransaction: the transaction was rolled back at COMMIT ` +
          `(${(commitResult.value as { command?: string }).command})`,
      );
    }
    return end.commit;
  } catch (err) {
    // Still open: roll it back (a connection that died took its transaction with it already).
    if (open && alive) await guard(send('rollback')).catch(() => {});
    throw err;
  } finally {
    done = true;
    if (raw) raw.onclose = null;
    // A connection that closed while reserved is already among postgres.js's closed ones, to be
    // opened again when the pool needs it; releasing it would put it back among the open ones, and
    // the next query sent on it would fail (postgres.js 3.4.9). Any other goes back to the pool (if
    // it closes later, the pool sees that as it does for any of its connections).
    if (alive) connection.release();
  }
}

/** The part of a postgres.js connection this needs: its close callback (set by `begin` too). */
interface RawConnection {
  onclose: ((err: unknown) => void) | null;
}

/**
 * Makes every transaction begun on `sql` start with `select set_config(name, value, true), ...`:
 * those of `sql.begin` (Drizzle's `db.transaction`) and those opened with a BEGIN on a reserved
 * connection (`sql.reserve()`). The statement is sent right behind the BEGIN, before anything the
 * caller sends next, on the same connection: pipelined, no extra round trip. Statements outside a
 * transaction run with the server's defaults: each is short, and waits at most for a transaction
 * that is itself bounded by these settings.
 */
function settingsPerTransaction(sql: postgres.Sql, settings: Record<string, string | number>): void {
  const statement = `select ${Object.entries(settings)
    .map(([name, value]) => {
      if (!/^[a-z_.]+$/.test(name) || !/^[\w.-]+$/.test(String(value)))
        throw new Error(`unsafe session setting ${name}=${value}`);
      return `set_config('${name}', '${value}', true)`;
    })
    .join(', ')}`;
  type Begin = (options: string, fn: (tx: postgres.TransactionSql) => unknown) => Promise<unknown>;
  const begin = sql.begin.bind(sql) as unknown as Begin;
  const wrapped: Begin = (options, fn) =>
    begin(options, (tx) => {
      // Executed now, so it is queued ahead of the first statement of `fn`.
      const applied = tx.unsafe(statement).execute();
      return Promise.all([applied, fn(tx)]).then(([, result]) => result);
    });
  Object.assign(sql, {
    begin: (options: unknown, fn?: unknown) =>
      typeof options === 'function' ? wrapped('', options as never) : wrapped(options as string, fn as never),
  });

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
