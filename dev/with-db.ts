/**
 * Brings a database up, migrates and seeds it, starts the payment simulator, then runs a command
 * with DATABASE_URL and STRIPE_API_BASE pointing at them. Every npm script that needs a database
 * runs through it:
 *
 *   tsx dev/with-db.ts -- next dev            # what `npm run dev` does
 *   tsx dev/with-db.ts --test -- "vitest run" # a fresh test database for one run
 *   tsx dev/with-db.ts                         # just migrate and seed (`npm run db:migrate`)
 *   tsx dev/with-db.ts --test --pgbouncer -- … # the same, through PgBouncer in transaction mode
 *   tsx dev/with-db.ts --test --replicated -- …# a primary and a synchronous standby instead
 *   tsx dev/with-db.ts --test --ha -- …        # etcd, three Postgres under Patroni, HAProxy in front
 *
 * Where the database comes from is a switch over modules of one shape (dev/database.ts): each starts
 * a database and gives its URL and a stop. With DATABASE_URL already set, that database is used as it
 * is (dev/own-url.ts, your own Postgres). Otherwise the embedded Postgres (dev/postgres.ts) is
 * started: the `dev` cluster for the app, the `test` cluster (and a database recreated on every run)
 * for the tests, so running tests never touches the orders you placed by hand. Ctrl-C stops the
 * command, then the Postgres this process started.
 *
 * The payment simulator (simulator/stripe.ts) runs inside this process, unless you set
 * STRIPE_API_BASE (yours) or a real STRIPE_SECRET_KEY (then the app talks to Stripe).
 *
 * Past one machine: `--pgbouncer` (or DATABASE_POOLER=pgbouncer, which `npx vitest run` also honours)
 * puts PgBouncer in transaction mode in front of whichever database was chosen (dev/pgbouncer.ts),
 * and the command talks to it; migrations go through it too. `--replicated` starts a primary and a
 * streaming standby with synchronous commits instead of the embedded cluster (dev/replicated.ts),
 * and hands the command a URL naming both. `--ha` starts etcd, three Postgres nodes under Patroni and
 * HAProxy in front of the leader instead (dev/patroni.ts), and hands the command HAProxy's URL.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';
import { runMigrations } from '../db/migrate';
import { seedCatalog } from '../db/seed';
import { DEV_WEBHOOK_SECRET, getLauncherEnv } from '../server/env.js';
import { StripeSimulator } from '../simulator/stripe';
import type { Database, DatabaseRequest, StartDatabase } from './database';
import * as ownUrl from './own-url';
import * as patroni from './patroni';
import * as pgbouncer from './pgbouncer';
import * as embedded from './postgres';
import { DatabaseStartError } from './postgres';
import * as replicated from './replicated';
import { stateDir, statePath } from './state';

export interface PreparedDatabase {
  url: string;
  /** The payment simulator's URL, when this process started one. */
  stripeApiBase?: string;
  /** The simulator this process started, if any. */
  simulator?: StripeSimulator;
  /** What the app checks webhook signatures with (STRIPE_WEBHOOK_SECRET). */
  webhookSecret: string;
  /** More variables the command needs: from the database source (dev/database.ts). */
  env: Record<string, string>;
  /** Stops what this process started: the simulator, and the database if it started one. */
  release(): Promise<void>;
}

/** Where the database comes from: one module each, all with the same `start` (dev/database.ts). */
const SOURCES = {
  embedded: embedded.start,
  'own-url': ownUrl.start,
  replicated: replicated.start,
  ha: patroni.start,
} satisfies Record<string, StartDatabase>;

/** The flags that choose a source, and which of them cannot go together. */
export function chooseSource(options: {
  replicated?: boolean;
  ha?: boolean;
  pgbouncer: boolean;
  databaseUrl?: string;
}): keyof typeof SOURCES {
  const flag = options.ha ? '--ha' : options.replicated ? '--replicated' : undefined;
  if (options.ha && options.replicated)
    throw new DatabaseStartError('--ha and --replicated each start their own cluster.', 'pick one of them.');
  if (flag && options.databaseUrl)
    throw new DatabaseStartError(
      `${flag} starts its own Postgres, and DATABASE_URL names another database.`,
      `unset DATABASE_URL, or run without ${flag}.`,
    );
  if (options.replicated && options.pgbouncer)
    throw new DatabaseStartError(
      'PgBouncer cannot stand in front of the replicated pair: it does not know which server is writable, and the ' +
        'failover needs the app to find it.',
      'run --replicated without --pgbouncer (or DATABASE_POOLER), or --pgbouncer alone.',
    );
  if (options.ha) return 'ha';
  if (options.replicated) return 'replicated';
  return options.databaseUrl ? 'own-url' : 'embedded';
}

/** The database for the app (`test: false`) or for one test run (`test: true`), migrated and seeded. */
export async function prepareDatabase(options: {
  test: boolean;
  pgbouncer?: boolean;
  replicated?: boolean;
  ha?: boolean;
}): Promise<PreparedDatabase> {
  const env = getLauncherEnv();
  const withPgBouncer = Boolean(options.pgbouncer) || env.DATABASE_POOLER === 'pgbouncer';
  fs.mkdirSync(stateDir(), { recursive: true, mode: 0o755 });
  // The secret the simulator signs its webhooks with and the app checks them with: the public dev one
  // for npm run dev, a fresh one per test run (the production builds that tests start refuse the dev one).
  const webhookSecret =
    env.STRIPE_WEBHOOK_SECRET ?? (options.test ? `whsec_test_${randomBytes(16).toString('hex')}` : DEV_WEBHOOK_SECRET);
  const source = chooseSource({ ...options, pgbouncer: withPgBouncer, databaseUrl: env.DATABASE_URL });
  const request: DatabaseRequest = { test: options.test, database: options.test ? 'checkout_test' : 'checkout' };
  let database: Database = await SOURCES[source](request);
  if (withPgBouncer) database = await pgbouncer.start(request, database);
  try {
    await runMigrations(database.url, { transactionPooler: withPgBouncer });
    await seedCatalog(database.url);
  } catch (err) {
    await database.stop();
    throw err;
  }
  console.log('[db] migrations applied, catalog seeded');

  let simulator: StripeSimulator | undefined;
  let stripeApiBase: string | undefined;
  if (!env.STRIPE_API_BASE && !env.STRIPE_SECRET_KEY) {
    // The dev simulator keeps its ledger next to the dev database; the tests' starts empty.
    simulator = new StripeSimulator({
      stateFile: options.test ? undefined : statePath('stripe-simulator.json'),
      webhookSecret,
    });
    try {
      stripeApiBase = await simulator.listen(options.test ? 0 : env.STRIPE_SIM_PORT);
      console.log(`[payments] Stripe simulator on ${stripeApiBase}`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') {
        await database.stop();
        throw err;
      }
      // `npm run dev` is running and owns the simulator: use its ledger (npm run reconcile does).
      simulator = undefined;
      stripeApiBase = `http://127.0.0.1:${env.STRIPE_SIM_PORT}`;
      console.log(`[payments] using the Stripe simulator already running on ${stripeApiBase}`);
    }
  }
  return {
    url: database.url,
    stripeApiBase,
    webhookSecret,
    simulator,
    env: database.env,
    release: async () => {
      await simulator?.close();
      await database.stop();
    },
  };
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const dash = argv.indexOf('--');
  const flags = dash === -1 ? argv : argv.slice(0, dash);
  const command = dash === -1 ? [] : argv.slice(dash + 1);
  const known = ['--test', '--pgbouncer', '--replicated', '--ha'];
  const unknown = flags.filter((f) => !known.includes(f));
  if (unknown.length)
    throw new Error(
      `unknown flag ${unknown.join(' ')} (usage: tsx dev/with-db.ts [--test] [--pgbouncer] [--replicated | --ha] ` +
        `[-- ` +
        `command])`,
    );

  const database = await prepareDatabase({
    test: flags.includes('--test'),
    pgbouncer: flags.includes('--pgbouncer'),
    replicated: flags.includes('--replicated'),
    ha: flags.includes('--ha'),
  });
  try {
    return command.length > 0 ? await runChild(command, database) : 0;
  } finally {
    await database.release();
  }
}

/** Runs the command (a single argument is a shell line) and passes Ctrl-C / SIGTERM / SIGHUP on to it. */
function runChild(command: string[], database: PreparedDatabase): Promise<number> {
  const [cmd, ...args] = command as [string, ...string[]];
  const env = {
    ...process.env,
    DATABASE_URL: database.url,
    ...(database.stripeApiBase ? { STRIPE_API_BASE: database.stripeApiBase } : {}),
    STRIPE_WEBHOOK_SECRET: database.webhookSecret,
    ...database.env,
    // The command talks to the PgBouncer started here: a vitest inside it must not start another.
    ...(database.env.DATABASE_POOL_MODE ? { DATABASE_POOLER: '' } : {}),
  };
  // `next dev` or `next start`: the simulator sends its webhooks to the app it serves.
  const next = command.join(' ').match(/\bnext (dev|start)\b(?:.*?(?:-p|--port)[ =](\d+))?/);
  if (next && database.simulator)
    database.simulator.webhooks.endpoints.add(
      `http://127.0.0.1:${next[2] ?? process.env.PORT ?? 3000}/api/webhooks/stripe`,
    );
  const child = spawn(cmd, args, { stdio: 'inherit', shell: args.length === 0, env });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    // Ctrl-C reaches the whole terminal group; the command stops first, then `finally` stops Postgres.
    process.on(signal, () => child.kill(signal));
  }
  return new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      // One message, never a stack trace: a failed start says what is wrong and what to do.
      const message =
        err instanceof DatabaseStartError ? err.message : err instanceof Error ? err.message : String(err);
      console.error(`[db] ${message}`);
      process.exit(1);
    },
  );
}
