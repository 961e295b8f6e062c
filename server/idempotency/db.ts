/**
 * The layer's view of the database: any Drizzle database on postgres.js, whatever its schema, and the
 * one transaction helper the one-transaction runner needs. The app opens the pool (its URL, its
 * settings); the layer only borrows connections from it.
 */
import type { SQL } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import { type PostgresJsDatabase, PostgresJsSession, PostgresJsTransaction } from 'drizzle-orm/postgres-js';
import type postgres from 'postgres';

/** A Drizzle database on postgres.js (the pool), with any schema: the app's own. */
export type KeyDatabase = PostgresJsDatabase<Record<string, unknown>>;
/** The transaction handle of a database `TDb`: what `TDb.transaction(fn)` gives `fn`. */
export type TransactionOf<TDb extends KeyDatabase> = Parameters<Parameters<TDb['transaction']>[0]>[0];
/** The handle inside a transaction, for any schema. */
export type KeyTransaction = TransactionOf<KeyDatabase>;
/** What the layer's statements run on: the pool or a transaction. */
export type KeyDatabaseOrTransaction = KeyDatabase | KeyTransaction;

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
export async function pipelinedTransaction<TDb extends KeyDatabase, Row extends Record<string, unknown>, T>(
  db: TDb,
  first: SQL,
  body: (tx: TransactionOf<TDb>, rows: Row[]) => Promise<TransactionEnd<T>>,
): Promise<T> {
  // drizzle(sql) keeps the postgres.js pool it was given as `$client`.
  const connection = await (db as unknown as { $client: postgres.Sql }).$client.reserve();
  let open = true;
  let done = false;
  // Everything after the opening goes through this: once the transaction is over, nothing more is
  // sent on it (a late statement of this body must fail, not run outside any transaction).
  const unsafe = connection.unsafe.bind(connection) as (...args: unknown[]) => ReturnType<typeof connection.unsafe>;
  const send = ((...args: unknown[]) => {
    if (done) throw new Error('pipelinedTransaction: the transaction is over; nothing more is sent on it');
    return unsafe(...args);
  }) as typeof connection.unsafe;
  const fenced = new Proxy(connection, {
    get: (target, property) => (property === 'unsafe' ? send : Reflect.get(target, property)),
  });
  try {
    const opening = dialect.sqlToQuery(first);
    // Issued together: postgres.js writes both at once, and BEGIN does not wait for its answer.
    const [, rows] = await Promise.all([
      connection.unsafe('begin'),
      connection.unsafe<Row[]>(opening.sql, opening.params as never[], PREPARED),
    ]);
    // The same Drizzle transaction db.transaction would give, on the reserved connection.
    const schema = { schema: db._.schema!, fullSchema: db._.fullSchema, tableNamesMap: db._.tableNamesMap };
    const session = new PostgresJsSession(fenced as unknown as postgres.Sql, dialect, schema, {});
    const tx = new PostgresJsTransaction(dialect, session as never, schema) as unknown as TransactionOf<TDb>;
    const end = await body(tx, [...rows]);
    open = false;
    if ('rollback' in end) {
      await send('rollback');
      return end.rollback;
    }
    const closing = end.last ? dialect.sqlToQuery(end.last) : undefined;
    const [lastResult, commitResult] = await Promise.allSettled([
      closing ? send(closing.sql, closing.params as never[], PREPARED) : Promise.resolve(),
      send('commit'),
    ]);
    if (lastResult.status === 'rejected') throw lastResult.reason; // the COMMIT behind it rolled back
    if (commitResult.status === 'rejected') throw commitResult.reason; // TRANSACTION_ROLLED_BACK, or the connection
    // A COMMIT sent into a transaction that failed does not fail in Postgres: it answers ROLLBACK.
    // postgres.js 4 rejects it (above); the tag is checked too, so no driver can report it committed.
    const command = (commitResult.value as { command?: string }).command;
    if (command !== 'COMMIT')
      throw new Error(`pipelinedTransaction: the transaction was rolled back at COMMIT (${command})`);
    return end.commit;
  } catch (err) {
    // Still open: roll it back. (On a connection that died, Postgres rolled it back already, and
    // postgres.js 4 rejects this at once: a query on a closed connection fails, it never waits.)
    if (open) await send('rollback').catch(() => {});
    throw err;
  } finally {
    done = true;
    // postgres.js 4 closes, and never reuses, a connection that died or is still inside a transaction.
    connection.release();
  }
}
