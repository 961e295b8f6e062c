// @ts-check
/**
 * The one place that reads `process.env`. Everything else imports `getEnv()`.
 *
 * It is plain JavaScript (type-checked through JSDoc) so that `next.config.mjs` can import it and
 * refuse to start the server with a bad environment, instead of failing at the first request.
 */
import { z } from 'zod';

/** Turns "1"/"true"/"0"/"false" into a boolean; anything else is a validation error naming the variable. */
const flag = z.enum(['1', '0', 'true', 'false']).transform((v) => v === '1' || v === 'true');

// Fixed secrets are only acceptable on a developer's machine: they are public, in this file.
const DEV_COOKIE_SECRET = 'dev-only-cookie-secret-do-not-use-in-production!';
// The payment simulator signs its webhooks with this one too (dev/with-db.ts hands it over).
export const DEV_WEBHOOK_SECRET = 'whsec_dev_only_simulator_secret_do_not_use_in_production';

const serverVariables = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  // Set by `dev/with-db.ts` (embedded Postgres) or by you (your own Postgres).
  DATABASE_URL: z
    .string({
      error: 'DATABASE_URL is not set: start the app with `npm run dev` / `npm start`, or set it to your Postgres',
    })
    .regex(/^postgres(ql)?:\/\//, 'DATABASE_URL must start with postgres:// or postgresql://'),
  // Signs the anonymous customer cookie. 32+ characters; required in production.
  COOKIE_SECRET: z.string().min(32, 'COOKIE_SECRET must be at least 32 characters').optional(),
  // `transaction` when DATABASE_URL is a pooler in transaction mode (PgBouncer's pool_mode =
  // transaction): no prepared statements, and the timeouts of server/db.ts set per transaction
  // instead of per session. `session` (the default): direct to Postgres, or a session-mode pooler.
  DATABASE_POOL_MODE: z
    .enum(['session', 'transaction'], { error: 'DATABASE_POOL_MODE must be session or transaction' })
    .default('session'),
  // Size of the connection pool of one server process.
  DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(200).default(20),
  // A transaction left idle this long is ended by Postgres: a frozen holder of a key lets go of it
  // (see server/db.ts). Longer than any pause inside one of our transactions, shorter than the
  // wait of a duplicate (IDEMPOTENCY_WAIT_MS), so the duplicate usually gets the key.
  DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: z.coerce.number().int().min(500).max(3_600_000).default(10_000),

  // Idempotency keys are kept 24 h after creation (Stripe's policy): long enough for any client's
  // retries, including a customer who comes back to the tab the next morning. After that the same
  // key is a new request.
  IDEMPOTENCY_KEY_TTL_HOURS: z.coerce
    .number()
    .positive()
    .max(24 * 90)
    .default(24),
  // How long a duplicate waits for the first request with its key before answering 409 with
  // Retry-After. 10 s covers a slow checkout; 0 is the IETF draft's strict behaviour (409 at once).
  IDEMPOTENCY_WAIT_MS: z.coerce.number().int().min(0).max(60_000).default(10_000),
  // The reaper runs inside each server process every 10 minutes (0 turns it off): expired keys
  // pile up at most ~10 minutes' worth, and each run is small. Several processes share the work.
  IDEMPOTENCY_REAPER_INTERVAL_SECONDS: z.coerce.number().int().min(0).max(86_400).default(600),

  // Phased procedures (those that call the payment provider) hold their key with a lease that
  // each phase renews. 30 s is several provider timeouts: a live holder never loses it, and a
  // crashed one blocks its key for at most that long before a retry or the completer takes over.
  IDEMPOTENCY_LEASE_MS: z.coerce.number().int().min(500).max(600_000).default(30_000),
  // A phased key abandoned mid-way (the client never came back) is finished by the completer
  // after 5 minutes: long after any client retry would have come, well within the provider's
  // own 24 h memory of our idempotency keys.
  COMPLETER_DELAY_SECONDS: z.coerce.number().int().min(0).max(86_400).default(300),
  // How often each server runs the completer and the outbox worker (0: never; tests run them).
  JOBS_INTERVAL_SECONDS: z.coerce.number().int().min(0).max(3_600).default(15),
  // The timers of the background jobs (server/jobs/schedule.ts), on by default. 0 where the server has
  // no long-lived process (serverless functions): a scheduler calls /api/jobs instead (server/jobs/run.ts).
  ENABLE_JOBS: flag.default(true),
  // What a scheduler sends to /api/jobs as `Authorization: Bearer <CRON_SECRET>` (Vercel Cron sends
  // its project's CRON_SECRET this way). Required for that route in production; 16+ characters.
  CRON_SECRET: z.string().min(16, 'CRON_SECRET must be at least 16 characters').optional(),

  // The payment provider. A Stripe secret key; by default a key for the local simulator.
  STRIPE_SECRET_KEY: z
    .string()
    .regex(/^sk_(test|live)_\w+$/, 'STRIPE_SECRET_KEY must look like sk_test_...')
    .optional(),
  // Where the Stripe SDK sends requests: the simulator's URL (set by dev/with-db.ts), or unset for
  // the real Stripe API.
  STRIPE_API_BASE: z.url().optional(),
  // Checks the signature of the provider's webhooks (Stripe shows it as whsec_...). Required in
  // production; elsewhere the simulator's public one.
  STRIPE_WEBHOOK_SECRET: z
    .string()
    .regex(/^whsec_\w+$/, 'STRIPE_WEBHOOK_SECRET must look like whsec_...')
    .optional(),
  // One provider call that has not answered in 10 s is abandoned and the key released: the
  // client retries with the same key, and the provider's idempotency makes the retry safe.
  STRIPE_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(10_000),

  // Logs: the lowest level printed, and the name each line carries (several instances, one log).
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  INSTANCE_NAME: z.string().max(64).optional(),
  // GET /api/metrics (Prometheus). On outside production; in production only with a token.
  ENABLE_METRICS: flag.optional(),
  METRICS_TOKEN: z.string().min(16, 'METRICS_TOKEN must be at least 16 characters').optional(),

  // The retry lab (/lab) and its unsafe twins. On in development and tests, off in production
  // unless asked for; even then it only acts as lab customers it made itself.
  ENABLE_LAB: flag.optional(),
  // The benchmark's baseline (bench.placeOrder): the checkout's order with no key, nothing stored and
  // nothing checked, not retry-safe. Off unless asked for; `npm run bench` turns it on for its server.
  ENABLE_BENCH_BASELINE: flag.default(false),
  // Test-only: the server accepts faults planned at /api/test/faults (a delay, a failure, a cut
  // connection, a kill at a named boundary; server/idempotency/faults.ts). Refused in production.
  ENABLE_TEST_HOOKS: flag.default(false),
});

/** The names of every variable the server reads. */
export const SERVER_ENV_NAMES = Object.keys(serverVariables.shape);

const serverSchema = serverVariables.transform((e, ctx) => {
  if (!e.COOKIE_SECRET && e.NODE_ENV === 'production') {
    ctx.addIssue({ code: 'custom', path: ['COOKIE_SECRET'], message: 'COOKIE_SECRET is required in production' });
    return z.NEVER;
  }
  if ((!e.STRIPE_WEBHOOK_SECRET || e.STRIPE_WEBHOOK_SECRET === DEV_WEBHOOK_SECRET) && e.NODE_ENV === 'production') {
    ctx.addIssue({
      code: 'custom',
      path: ['STRIPE_WEBHOOK_SECRET'],
      message: "is required in production (the provider's signing secret, not the simulator's public one)",
    });
    return z.NEVER;
  }
  if (!e.STRIPE_SECRET_KEY && !e.STRIPE_API_BASE) {
    ctx.addIssue({
      code: 'custom',
      path: ['STRIPE_SECRET_KEY'],
      message: 'set STRIPE_SECRET_KEY for Stripe, or STRIPE_API_BASE for the simulator',
    });
    return z.NEVER;
  }
  if (e.ENABLE_METRICS && e.NODE_ENV === 'production' && !e.METRICS_TOKEN) {
    // Order and payment volumes are business figures: never public.
    ctx.addIssue({
      code: 'custom',
      path: ['METRICS_TOKEN'],
      message: 'is required in production when ENABLE_METRICS=1',
    });
    return z.NEVER;
  }
  if (!e.ENABLE_JOBS && e.NODE_ENV === 'production' && !e.CRON_SECRET) {
    // Without the timers and without a way for a scheduler to call the jobs route, nothing would
    // ever finish an abandoned checkout or deliver a receipt.
    ctx.addIssue({
      code: 'custom',
      path: ['CRON_SECRET'],
      message: 'is required in production when ENABLE_JOBS=0: the scheduler calling /api/jobs must send it',
    });
    return z.NEVER;
  }
  if (e.ENABLE_TEST_HOOKS && e.NODE_ENV === 'production') {
    // Planned faults can stall, fail or kill this server on request: never where customers are.
    ctx.addIssue({
      code: 'custom',
      path: ['ENABLE_TEST_HOOKS'],
      message: 'is refused in production: it lets a request stall or kill the server',
    });
    return z.NEVER;
  }
  if (e.STRIPE_TIMEOUT_MS >= e.IDEMPOTENCY_LEASE_MS) {
    // A provider call runs under the lease: if it could outlast it, another request could take
    // the key over while the call is still in flight.
    ctx.addIssue({
      code: 'custom',
      path: ['STRIPE_TIMEOUT_MS'],
      message:
        `must be shorter than IDEMPOTENCY_LEASE_MS (${e.STRIPE_TIMEOUT_MS} >= ${e.IDEMPOTENCY_LEASE_MS}): a ` +
        `provider call must end while its lease holds`,
    });
    return z.NEVER;
  }
  return {
    ...e,
    COOKIE_SECRET: e.COOKIE_SECRET ?? DEV_COOKIE_SECRET,
    STRIPE_WEBHOOK_SECRET: e.STRIPE_WEBHOOK_SECRET ?? DEV_WEBHOOK_SECRET,
    // The simulator accepts any well-formed test key.
    STRIPE_SECRET_KEY: e.STRIPE_SECRET_KEY ?? 'sk_test_simulator',
    ENABLE_LAB: e.ENABLE_LAB ?? e.NODE_ENV !== 'production',
    ENABLE_METRICS: e.ENABLE_METRICS ?? e.NODE_ENV !== 'production',
  };
});

/** Variables the database launcher reads before any server exists. */
const launcherSchema = z.object({
  DATABASE_URL: z.string().optional(),
  // 5432 is left to any Postgres you already run. The embedded clusters' ports sit below 32768, out of
  // the range the system lends to outgoing connections (32768-60999 on Linux, 49152 and up
  // elsewhere): a client socket holding the port for a moment once made a test cluster fail to start.
  EMBEDDED_PG_PORT: z.coerce.number().int().min(1024).max(65535).default(25432),
  // The test cluster's port. Unset: the port its server left running listens on, else a free one below
  // that range, chosen at start (dev/ports.ts): clones side by side never fight over one port.
  EMBEDDED_PG_TEST_PORT: z.coerce.number().int().min(1024).max(65535).optional(),
  // `pgbouncer`: the launcher puts PgBouncer in transaction mode between the app and the database
  // (dev/pgbouncer.ts), as `--pgbouncer` does.
  DATABASE_POOLER: z.enum(['pgbouncer'], { error: 'DATABASE_POOLER must be pgbouncer (or unset)' }).optional(),
  // The primary of the replicated pair (`--replicated`, dev/replicated.ts); its standby is on the next port.
  // Unset: two free ports, chosen at each start (the pair starts empty every time).
  REPLICATED_PG_PORT: z.coerce.number().int().min(1024).max(65534).optional(),
  // Set by dev/with-db.ts for the command it runs, with --replicated: where the pair's state is.
  REPLICATED_PG_STATE: z.string().optional(),
  // Set by dev/with-db.ts for the command it runs, with --ha: where the Patroni cluster's state is.
  HA_STATE: z.string().optional(),
  // Set when you point the app at the real Stripe: then no simulator is started.
  STRIPE_API_BASE: z.string().optional(),
  STRIPE_SECRET_KEY: z.string().optional(),
  // The payment simulator's port for `npm run dev` (the tests pick a free one).
  STRIPE_SIM_PORT: z.coerce.number().int().min(1024).max(65535).default(12111),
  // Set by dev/with-db.ts for the command it runs, when it started the embedded cluster: where its
  // data and binaries are (the chaos run restarts Postgres through them).
  EMBEDDED_PG_DATA: z.string().optional(),
  EMBEDDED_PG_BIN: z.string().optional(),
  // The simulator signs its webhooks with it (dev/with-db.ts); see the server's STRIPE_WEBHOOK_SECRET.
  STRIPE_WEBHOOK_SECRET: z.string().optional(),
  // Where run-time files go (dev/state.ts): by default a folder per clone outside the project.
  CHECKOUT_STATE_DIR: z.string().optional(),
  XDG_STATE_HOME: z.string().optional(),
});

/**
 * An empty variable means unset, everywhere: `JOBS_INTERVAL_SECONDS=` must not quietly become 0.
 * @param {Record<string, string | undefined>} env
 */
function withoutEmpty(env) {
  return Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v.trim() !== ''));
}

/**
 * @template {z.ZodType} S
 * @param {S} schema
 * @param {Record<string, string | undefined>} [env]
 * @returns {z.output<S>}
 */
function parse(schema, env = process.env) {
  const result = schema.safeParse(withoutEmpty(env));
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${i.path.join('.') || '(env)'}: ${i.message}`);
    throw new Error(`Invalid environment:\n${lines.join('\n')}`);
  }
  return result.data;
}

/** @type {z.output<typeof serverSchema> | undefined} */
let cached;

/**
 * Parses a server environment without caching it (the tests check the rules with it).
 * @param {Record<string, string | undefined>} env
 */
export function parseServerEnv(env) {
  return parse(serverSchema, env);
}

/** The validated server environment, parsed once per process. */
export function getEnv() {
  cached ??= parse(serverSchema);
  return cached;
}

/**
 * The idempotency layer's settings, in the units it uses (milliseconds): the one place where the
 * variables above are turned into them.
 */
export function idempotencyOptions() {
  const env = getEnv();
  return {
    ttlMs: env.IDEMPOTENCY_KEY_TTL_HOURS * 3_600_000,
    waitMs: env.IDEMPOTENCY_WAIT_MS,
    leaseMs: env.IDEMPOTENCY_LEASE_MS,
  };
}

/** The launcher's environment (read fresh: the launcher sets DATABASE_URL itself). */
export function getLauncherEnv() {
  return parse(launcherSchema);
}
