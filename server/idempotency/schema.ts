/**
 * The layer's one table, as Drizzle sees it: one row per idempotency key. `idempotency_keys.sql` in
 * this folder creates the same table in plain SQL, for an app that does not use drizzle-kit; a test
 * (`schema.test.ts`) checks that the two agree. An app that does use drizzle-kit re-exports this table
 * from its own schema file, and its migrations create it.
 */
import { sql } from 'drizzle-orm';
import {
  check,
  customType,
  index,
  integer,
  json,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';

/**
 * A text column whose rule lives in a Postgres domain (created by the migration and by
 * `idempotency_keys.sql`), not in a CHECK on the table. Same rule, same SQLSTATE (23514), same
 * constraint name in the error (whose message says "value for domain ..." instead of naming the row).
 * The difference is cost: Postgres parses and plans a table's CHECKs again for every INSERT or UPDATE
 * statement, a domain's once per connection; the key row's INSERT measured about 90 µs with the five
 * rules as CHECKs and about 50 µs as domains (docs/reference/costs.md). The rule that relates two
 * columns (a completed row has its answer) cannot be a domain and stays a CHECK.
 * Careful: the rule belongs to the type, so changing such a column to `text` (here, or by ALTER ... TYPE)
 * drops it silently, where a CHECK on the table would have stayed.
 */
const ruled = (domain: string) => customType<{ data: string; driverData: string }>({ dataType: () => domain });

export const idempotencyKeys = pgTable(
  'idempotency_keys',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    // Who owns the key (a customer, a tenant): the same key from another scope is another row.
    scope: ruled('idempotency_keys_scope')('scope').notNull(),
    // The tRPC procedure path, e.g. "checkout.placeOrder": a key is never shared by two operations.
    procedure: ruled('idempotency_keys_procedure')('procedure').notNull(),
    // The client's Idempotency-Key value, as sent.
    key: ruled('idempotency_keys_key')('key').notNull(),
    // SHA-256 (hex) of the procedure path and the canonical JSON of the input: "the same request".
    fingerprint: ruled('idempotency_keys_fingerprint')('fingerprint').notNull(),
    // 'started' until an answer is stored, then 'completed'.
    state: text('state', { enum: ['started', 'completed'] })
      .notNull()
      .default('started'),
    // Phased procedures: the last step that committed ('started' before any, 'finished' at the end).
    recoveryPoint: ruled('idempotency_keys_recovery_point')('recovery_point').notNull().default('started'),
    // A committed 'started' row is leased to one worker until this time (null: the claim is held by
    // an open transaction instead, and vanishes if that transaction dies).
    lockedUntil: timestamp('locked_until', { withTimezone: true, mode: 'date' }),
    // Fencing token: bumped on every takeover, checked by every write of the holder.
    leaseToken: integer('lease_token').notNull().default(1),
    // How often the completer has tried to finish this key: it waits longer after each failed try,
    // and gives up (storing an answer) after a bounded number of them.
    completerRuns: integer('completer_runs').notNull().default(0),
    // Phased procedures: what each committed step saved (an order id, say), by step name.
    progress: json('progress').notNull().default({}),
    // Phased procedures: the input, so that the completer can finish the work if the client never returns.
    requestInput: json('request_input'),
    // The stored answer: an HTTP status and the JSON the client got. `json`, not `jsonb`: it keeps the
    // text as written, key order included, so a replay is byte for byte the first answer.
    responseStatus: integer('response_status'),
    responseBody: json('response_body'),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    completedAt: timestamp('completed_at', { withTimezone: true, mode: 'date' }),
    // After this time the key is forgotten: the reaper deletes it, and a request reusing it is new.
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }).notNull(),
  },
  (t) => [
    // The claim: one atomic INSERT ... ON CONFLICT on this index. It also serves every lookup.
    uniqueIndex('idempotency_keys_scope_procedure_key_idx').on(t.scope, t.procedure, t.key),
    // The reaper: oldest expiries first, in small batches.
    index('idempotency_keys_expires_at_idx').on(t.expiresAt),
    // scope, procedure, key, fingerprint and recovery_point are checked by their domains (`ruled`).
    check(
      'idempotency_keys_completed_has_result',
      sql`(${t.state} = 'completed') = (${t.responseStatus} is not null and ${t.responseBody} is not null)`,
    ),
  ],
);

export type IdempotencyKey = typeof idempotencyKeys.$inferSelect;
