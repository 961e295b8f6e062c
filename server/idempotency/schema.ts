/**
 * The layer's one table, as Drizzle sees it: one row per idempotency key. `idempotency_keys.sql` in
 * this folder creates the same table in plain SQL, for an app that does not use drizzle-kit; a test
 * (`schema.test.ts`) checks that the two agree. An app that does use drizzle-kit re-exports this table
 * from its own schema file, and its migrations create it.
 */
import { sql } from 'drizzle-orm';
import { check, index, integer, json, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';

export const idempotencyKeys = pgTable(
  'idempotency_keys',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    // Who owns the key (a customer, a tenant): the same key from another scope is another row.
    scope: text('scope').notNull(),
    // The tRPC procedure path, e.g. "checkout.placeOrder": a key is never shared by two operations.
    procedure: text('procedure').notNull(),
    // The client's Idempotency-Key value, as sent.
    key: text('key').notNull(),
    // SHA-256 (hex) of the procedure path and the canonical JSON of the input: "the same request".
    fingerprint: text('fingerprint').notNull(),
    // 'started' until an answer is stored, then 'completed'.
    state: text('state', { enum: ['started', 'completed'] })
      .notNull()
      .default('started'),
    // Phased procedures: the last step that committed ('started' before any, 'finished' at the end).
    recoveryPoint: text('recovery_point').notNull().default('started'),
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
    check('idempotency_keys_scope_length', sql`char_length(${t.scope}) between 1 and 128`),
    check('idempotency_keys_procedure_length', sql`char_length(${t.procedure}) between 1 and 128`),
    check('idempotency_keys_key_length', sql`char_length(${t.key}) between 1 and 255`),
    check('idempotency_keys_fingerprint_sha256', sql`${t.fingerprint} ~ '^[0-9a-f]{64}$'`),
    check('idempotency_keys_recovery_point_length', sql`char_length(${t.recoveryPoint}) between 1 and 64`),
    check(
      'idempotency_keys_completed_has_result',
      sql`(${t.state} = 'completed') = (${t.responseStatus} is not null and ${t.responseBody} is not null)`,
    ),
  ],
);

export type IdempotencyKey = typeof idempotencyKeys.$inferSelect;
