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

/**
 * A statement ready to send: fixed text with $1, $2... and its values. The layer's hot-path statements
 * are written this way, so a request spends no time building SQL (Drizzle's builder walks its
 * template on every call); Drizzle's `SQL` is accepted too.
 */
export interface Statement {
  text: string;
  values: unknown[];
}

/** How a pipelined transaction ends: committed (with a last statement sent along), or rolled back. */
export type TransactionEnd<T> = { commit: T; last?: SQL | Statement } | { rollback: T };

const dialect = new PgDialect();

const toQuery = (s: SQL | Statement) =>
  'text' in s && typeof s.text === 'string' ? { sql: s.text, params: s.values } : dialect.sqlToQuery(s as SQL);

/**
 * The opening and last statements are prepared (named, kept per connection by postgres.js). Unprepared,
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
 * `first` may be several statements: all of them go in the BEGIN's packet, and Postgres runs them one
 * after the other (each, in READ COMMITTED, with a snapshot taken when it starts: a statement sees what
 * committed while the one before it waited on a lock).
 *
 * `body` gets a Drizzle transaction on the reserved connection (no nested transactions: savepoints
 * are not needed on the paths that use this), the rows of the last opening statement, and the rows
 * of each opening statement in order.
 */
export async function pipelinedTransaction<TDb extends KeyDatabase, Row extends Record<string, unknown>, T>(
  db: TDb,
  first: SQL | Statement | (SQL | Statement)[],
  body: (tx: TransactionOf<TDb>, rows: Row[], each: Row[][]) => Promise<TransactionEnd<T>>,
): Promise<T> {
  // drizzle(sql) keeps the postgres.js pool it was given as `$client`.
  const watched = await reserveWatched((db as unknown as { $client: postgres.Sql }).$client);
  const { connection, guard, state } = watched;
  let open = true;
  let done = false;
  // Everything after the opening goes through this: once the transaction is over, or its connection
  // closed, nothing more is sent on it. (postgres.js reopens a closed connection under the same
  // handle for whoever the pool serves next; a late statement of this body, or our COMMIT, would
  // land in that stranger's transaction.)
  const send: typeof connection.unsafe = (...args: Parameters<typeof connection.unsafe>) => {
    if (done || !state.alive) throw refusal('pipelinedTransaction');
    return connection.unsafe(...args);
  };
  const fenced = new Proxy(connection, {
    get: (target, property) => (property === 'unsafe' ? send : Reflect.get(target, property)),
  });
  try {
    const opening = (Array.isArray(first) ? first : [first]).map(toQuery);
    const [, ...results] = await guard(
      Promise.all([
        connection.unsafe('begin', [], { onexecute: watched.onexecute } as never),
        ...opening.map((q) => connection.unsafe<Row[]>(q.sql, q.params as never[], PREPARED)),
      ]),
    );
    const each = results.map((r) => [...(r as Row[])]);
    // The same Drizzle transaction db.transaction would give, on the reserved connection.
    const schema = { schema: db._.schema!, fullSchema: db._.fullSchema, tableNamesMap: db._.tableNamesMap };
    const session = new PostgresJsSession(fenced as unknown as postgres.Sql, dialect, schema, {});
    const tx = new PostgresJsTransaction(dialect, session as never, schema) as unknown as TransactionOf<TDb>;
    const end = await Promise.race([body(tx, each.at(-1)!, each), watched.closedLater()]);
    open = false;
    if ('rollback' in end) {
      await guard(send('rollback'));
      return end.rollback;
    }
    const closing = end.last ? toQuery(end.last) : undefined;
    const [lastResult, commitResult] = await guard(
      Promise.allSettled([
        closing ? send(closing.sql, closing.params as never[], PREPARED) : Promise.resolve(),
        send('commit'),
      ]),
    );
    if (lastResult.status === 'rejected') throw lastResult.reason; // the COMMIT behind it rolled back
    if (commitResult.status === 'rejected') throw commitResult.reason;
    // (postgres.js may also retry a failed prepared statement by itself, after the COMMIT queued
    // behind it, outside the transaction: the tag is the truth, whatever the promises say.)
    assertCommitted(commitResult.value, 'pipelinedTransaction');
    return end.commit;
  } catch (err) {
    // Still open: roll it back (a connection that died took its transaction with it already).
    if (open && state.alive) await guard(send('rollback')).catch(() => {});
    throw err;
  } finally {
    done = true;
    watched.release();
  }
}

/**
 * A connection reserved for one transaction, and watched. `state.alive` turns false the moment it
 * closes (postgres.js's close callback runs before any other code does), `guard(p)` settles with `p`
 * or with that close, whichever comes first (a query sent on a connection that dies may never settle;
 * postgres.js's own `begin` races its transaction against the close for the same reason), and
 * `release()` gives it back only if it still lives. Send the BEGIN with `onexecute` as its option:
 * that is where postgres.js hands over the connection whose close is watched.
 */
async function reserveWatched(pool: postgres.Sql) {
  const connection = await pool.reserve();
  let raw: RawConnection | undefined;
  let rejectClosed: (err: unknown) => void = () => {};
  const closed = new Promise<never>((_, reject) => (rejectClosed = reject));
  closed.catch(() => {}); // only awaited while the transaction runs
  const state = { alive: true };
  return {
    connection,
    state,
    guard: <V>(p: PromiseLike<V>) => Promise.race([p, closed]),
    onexecute: (c: RawConnection) => {
      raw = c;
      c.onclose = (err) => {
        state.alive = false;
        rejectClosed(err);
      };
      return true; // the connection takes the next query at once: pipelined
    },
    /**
     * The close, as the error a transaction's body is raced against. If the body fails too, its error
     * wins: it may be why the connection closed (a planned crash cuts its own connection, then says
     * so), so it is given a moment.
     */
    closedLater: () =>
      closed.catch((err: unknown) => new Promise<never>((_, reject) => setTimeout(() => reject(err), 50))),
    release() {
      if (raw) raw.onclose = null;
      // A connection that closed while reserved is already among postgres.js's closed ones, to be
      // opened again when the pool needs it; releasing it would put it back among the open ones, and
      // the next query sent on it would fail (postgres.js 3.4.9). Any other goes back to the pool (if
      // it closes later, the pool sees that as it does for any of its connections).
      if (state.alive) connection.release();
    },
  };
}

/** What is thrown at a statement sent on a transaction that is over or whose connection closed. */
const refusal = (who: string) =>
  new Error(`${who}: the transaction is over or its connection closed; nothing more is sent on it`);

/**
 * A COMMIT sent into a transaction that failed does not fail: Postgres answers it ROLLBACK. The tag is
 * the truth.
 */
function assertCommitted(answer: unknown, who: string): void {
  const command = (answer as { command?: string }).command;
  if (command !== 'COMMIT') throw new Error(`${who}: the transaction was rolled back at COMMIT (${command})`);
}

/** The part of a postgres.js connection this needs: its close callback (set by `begin` too). */
interface RawConnection {
  onclose: ((err: unknown) => void) | null;
}

const FENCED = Symbol.for('retry-safe-checkout.fenced-transactions');

/**
 * Replaces postgres.js's `sql.begin` (what Drizzle's `db.transaction` calls) on the pool `sql` with one
 * that sends nothing on a transaction's connection once the transaction is over or that connection
 * closed. Returns `sql`; calling it again changes nothing.
 *
 * Why: postgres.js 3.4 rejects a transaction whose connection dies, but the transaction's body goes on
 * running, and its handle still points at that connection, which the pool opens again, outside any
 * transaction, for the next query waiting. A statement the body sends after the death then runs there
 * and commits on its own: half a transaction kept. Seen with an INSERT sent 300 ms after the backend
 * was terminated (db.test.ts), and with a planned crash whose `pg_terminate_backend(pg_backend_pid())`
 * landed on the reopened connection and killed twenty other requests' queries pipelined on it.
 *
 * Fenced, each transaction runs on a connection reserved for it (as `sql.begin` does), its statements
 * go through a handle that refuses to send once the transaction is over or its connection closed (the
 * close is seen before any of the body's code runs again), and a COMMIT that Postgres answers with
 * ROLLBACK (the transaction had failed) is an error, not a success. Savepoints (`tx.savepoint`,
 * Drizzle's nested `tx.transaction`) are fenced the same way.
 */
export function fenceTransactions<S extends postgres.Sql>(sql: S): S {
  const marked = sql as unknown as Record<symbol, boolean>;
  if (marked[FENCED]) return sql;
  type Body = (tx: postgres.TransactionSql) => unknown;
  Object.assign(sql, {
    begin: (options: string | Body, fn?: Body) =>
      typeof options === 'function' ? fencedBegin(sql, '', options) : fencedBegin(sql, options, fn!),
  });
  marked[FENCED] = true;
  return sql;
}

/** `db`, its pool fenced (fenceTransactions): what the layer's own `db.transaction` calls go through. */
export function fenced<TDb extends KeyDatabase>(db: TDb): TDb {
  fenceTransactions((db as unknown as { $client: postgres.Sql }).$client);
  return db;
}

async function fencedBegin(pool: postgres.Sql, options: string, fn: (tx: postgres.TransactionSql) => unknown) {
  const watched = await reserveWatched(pool);
  const { connection, guard, state } = watched;
  // Set once the body has settled (before the COMMIT or ROLLBACK is sent): from then on, nothing of
  // the body's reaches the connection, whenever it was built.
  let over = false;
  const refuse = () => {
    if (over || !state.alive) throw refusal('transaction');
  };
  // A postgres.js query is sent when first awaited, not when built: checked again then.
  const checkedWhenSent = <Q>(q: Q): Q => {
    const query = q as { handler?: (x: { reject(err: unknown): void }) => unknown };
    const send = query.handler;
    if (typeof send === 'function')
      query.handler = (x) => (over || !state.alive ? x.reject(refusal('transaction')) : send.call(query, x));
    return q;
  };
  let savepoints = 0;
  const savepoint = async (name: unknown, body?: unknown) => {
    const work = (typeof name === 'function' ? name : body) as (tx: postgres.TransactionSql) => unknown;
    const label = `s${++savepoints}`;
    refuse();
    await guard(connection.unsafe(`savepoint ${label}`));
    try {
      const result = await guard(settle(work(fenced)));
      refuse();
      await guard(connection.unsafe(`release savepoint ${label}`));
      return result;
    } catch (err) {
      if (state.alive && !over) await guard(connection.unsafe(`rollback to savepoint ${label}`)).catch(() => {});
      throw err;
    }
  };
  const fenced = new Proxy(connection, {
    apply: (target, self, args) => {
      refuse();
      return checkedWhenSent(Reflect.apply(target, self, args));
    },
    get: (target, property) => {
      if (property === 'savepoint') return savepoint;
      const value = Reflect.get(target, property);
      if (property !== 'unsafe' && property !== 'file') return value;
      return (...args: unknown[]) => {
        refuse();
        return checkedWhenSent((value as (...a: unknown[]) => unknown).apply(target, args));
      };
    },
  }) as unknown as postgres.TransactionSql;
  let open = false;
  try {
    const begin = `begin ${options.replace(/[^a-z ]/gi, '')}`;
    await guard(connection.unsafe(begin, [], { onexecute: watched.onexecute } as never));
    open = true;
    let result: unknown;
    try {
      result = await Promise.race([settle(fn(fenced)), watched.closedLater()]);
    } finally {
      over = true;
    }
    if (!state.alive) throw refusal('transaction');
    open = false;
    assertCommitted(await guard(connection.unsafe('commit')), 'transaction');
    return result;
  } catch (err) {
    over = true;
    if (open && state.alive) await guard(connection.unsafe('rollback')).catch(() => {});
    throw err;
  } finally {
    over = true;
    watched.release();
  }
}

/** What a transaction body may return: a value, a promise, or (postgres.js) an array of queries. */
const settle = (x: unknown): Promise<unknown> => (Array.isArray(x) ? Promise.all(x) : Promise.resolve(x));
