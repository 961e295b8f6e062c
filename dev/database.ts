/**
 * The one shape every way of getting a database has, so that dev/with-db.ts is a switch and nothing
 * more. Each source is one module exporting `start`:
 *
 *   dev/postgres.ts     the embedded Postgres (the default)
 *   dev/own-url.ts      your own Postgres, named by DATABASE_URL
 *   dev/replicated.ts   a primary and a synchronous standby (--replicated)
 *   dev/patroni.ts      etcd, three Postgres nodes under Patroni, HAProxy in front (--ha)
 *   dev/pgbouncer.ts    PgBouncer in front of any of them (--pgbouncer): its `start` also takes the one behind
 *
 * A source starts what it needs, gives the URL the app connects to and the variables the command it
 * runs may need (where a cluster's state is, so the chaos run can break it), and stops what it started.
 */

export interface DatabaseRequest {
  /** A test run (a database recreated on every run) or the app's own (kept between runs). */
  test: boolean;
  /** The database's name: `checkout`, or `checkout_test` for a test run. */
  database: string;
}

export interface Database {
  /** The URL the app, the migrations and the tools connect to. */
  url: string;
  /** Variables for the command the launcher runs (EMBEDDED_PG_DATA, REPLICATED_PG_STATE, HA_STATE...). */
  env: Record<string, string>;
  /** Stops what `start` started; a database it only borrowed is left as it was. */
  stop(): Promise<void>;
}

export type StartDatabase = (request: DatabaseRequest) => Promise<Database>;
