/**
 * Every SQL statement about idempotency keys, in one file, each with the reason for its shape.
 * The table is `idempotency_keys` (schema.ts). Nothing outside this folder writes to it.
 */
import { randomUUID } from 'node:crypto';
import { and, eq, gt, inArray, isNull, lt, lte, or, type SQL, sql } from 'drizzle-orm';
import type { KeyDatabaseOrTransaction as DbOrTx, Statement, KeyTransaction as Tx } from './db';
import type { StoredError } from './errors';
import { type IdempotencyKey, idempotencyKeys } from './schema';

export interface KeyId {
  scope: string;
  procedure: string;
  key: string;
}

export type StoredResponse = { ok: true; data: unknown } | { ok: false; error: StoredError };

const sameKey = (k: KeyId) =>
  and(eq(idempotencyKeys.scope, k.scope), eq(idempotencyKeys.procedure, k.procedure), eq(idempotencyKeys.key, k.key));

/**
 * The read-only fast path: the live (unexpired) row for this key, if one is committed. A replay is
 * answered from this one SELECT, with no transaction and no write.
 */
export async function findLiveKey(db: DbOrTx, k: KeyId): Promise<IdempotencyKey | undefined> {
  const [row] = await db
    .select()
    .from(idempotencyKeys)
    .where(and(sameKey(k), gt(idempotencyKeys.expiresAt, sql`now()`)))
    .limit(1);
  return row;
}

/**
 * What the claim found: the key is ours now (with the id its row will have), or here is the row that
 * holds it, or (`existing: undefined`) another request holds it right now and has no final answer yet.
 */
export type Claim = { claimed: true; id: string } | { claimed: false; existing: ExistingKey | undefined };

/** The columns of an existing key that decide the answer, and whether it has expired. */
export interface ExistingKey {
  id: string;
  state: IdempotencyKey['state'];
  fingerprint: string;
  responseStatus: number | null;
  responseBody: unknown;
  expired: boolean;
}

// Seeds the hash that names a key's advisory lock: a constant of this layer, so that its locks are
// unlikely to share a number with an app's own advisory locks (sharing one would only make the two wait
// on each other, never break either).
const LOCK_SEED = 7_172_025;

const lockName = (k: KeyId) => `${k.scope}\n${k.procedure}\n${k.key}`;

/**
 * The claim of a one-transaction key, sent with BEGIN: one statement that takes a transaction-scoped
 * advisory lock on a hash of the key (scope, procedure, key), if no one holds it, and reads the key's
 * row. Of any number of requests with one key, one holds the lock until its transaction ends. The key
 * row itself is written once, at the end, with its answer (`completeKeyStatement`): a first execution
 * inserts one row and updates none, and a replay writes nothing (neither an advisory lock nor a read
 * gives the transaction a transaction id, as idempotency.test.ts checks).
 *
 * - Lock taken, no row: the key is ours.
 * - A completed, live row: that is the answer, whoever holds the lock (a completed row never changes).
 * - Lock held by another request, and no final row: that request is in flight; wait for it
 *   (`waitStatement`, then `lookupStatement`, in a transaction of their own).
 *
 * The read runs in the snapshot the statement started with, and the lock is taken after it: a holder
 * that committed its row between the two is not seen, the key looks free, and the work runs. Its row
 * is still written once: the holder's row is already in the unique index, so the INSERT at the end
 * fails, the work rolls back with it, and the next round replays the holder's row. That window is a
 * few microseconds wide; closing it would cost every first execution a second statement.
 */
export function claimStatement(k: KeyId): Statement {
  return { text: CLAIM, values: [lockName(k), k.scope, k.procedure, k.key] };
}

const CLAIM = `
  select not pg_try_advisory_xact_lock(hashtextextended($1, ${LOCK_SEED})) as held, k.id, k.state, k.fingerprint,
         k.response_status, k.response_body, k.expires_at <= now() as expired
  from (select 1) as one
  left join idempotency_keys k on k.scope = $2 and k.procedure = $3 and k.key = $4`;

/**
 * The wait for a key another request holds: the advisory lock, blocking, until that request's
 * transaction ends. The wait, and only the wait, is bounded by `lock_timeout`: the FROM clause saves the
 * session's own value and sets the bound for this transaction before the lock is asked for; the lookup
 * sent behind it (`lookupStatement`, a statement of its own, so that its snapshot includes what the holder
 * committed) puts the saved value back, so the procedure waits on its own locks as it would without a
 * key. A wait past the bound fails with SQLSTATE 55P03.
 */
export function waitStatement(k: KeyId, options: { waitMs: number }): Statement {
  // lock_timeout = 0 would mean "wait forever" to Postgres; strict mode (waitMs 0) waits 1 ms.
  const lockTimeout = `${Math.max(1, Math.round(options.waitMs))}ms`;
  return { text: WAIT, values: [lockName(k), lockTimeout] };
}

const WAIT = `
  select pg_advisory_xact_lock(hashtextextended($1, ${LOCK_SEED}))
  from (
    select set_config('lock_timeout', $2, true)
    from (select set_config('idempotency.lock_timeout_before_claim', current_setting('lock_timeout'), true)) as saved
  ) as bounded_wait`;

/** After `waitStatement`: the key's row, read with the lock held, and the session's lock_timeout restored. */
export function lookupStatement(k: KeyId): Statement {
  return { text: LOOKUP, values: [k.scope, k.procedure, k.key] };
}

const LOOKUP = `
  select k.id, k.state, k.fingerprint, k.response_status, k.response_body, k.expires_at <= now() as expired
  from (select set_config('lock_timeout', current_setting('idempotency.lock_timeout_before_claim'), true)) as restored
  left join idempotency_keys k on k.scope = $1 and k.procedure = $2 and k.key = $3`;

/** Reads what the claim (or the wait's lookup) returned: one row, its key columns null when there is no key row. */
export function readClaim(rows: Record<string, unknown>[]): Claim {
  const row = rows[0]!;
  const held = row.held === true; // only the claim says; after a wait, the lock is ours
  if (row.id === null) return held ? { claimed: false, existing: undefined } : { claimed: true, id: randomUUID() };
  const existing: ExistingKey = {
    id: row.id as string,
    state: row.state as ExistingKey['state'],
    fingerprint: row.fingerprint as string,
    responseStatus: row.response_status as number | null,
    responseBody: row.response_body,
    expired: row.expired as boolean,
  };
  const final = existing.state === 'completed' && !existing.expired;
  return { claimed: false, existing: held && !final ? undefined : existing };
}

/** The claim on its own, in a caller's transaction: the new row's id, or undefined when the key exists. */
export async function claimKey(tx: Tx, k: KeyId, options: { waitMs: number }): Promise<string | undefined> {
  const run = async (q: Statement) => [...(await tx.execute<Record<string, unknown>>(asSql(q)))];
  let claim = readClaim(await run(claimStatement(k)));
  if (!claim.claimed && !claim.existing) {
    await run(waitStatement(k, options));
    claim = readClaim(await run(lookupStatement(k)));
  }
  return claim.claimed ? claim.id : undefined;
}

/** A ready statement as Drizzle SQL (for a caller's transaction): the text, its $n replaced by values. */
function asSql(q: Statement): SQL {
  const parts = q.text.split(/\$(\d+)/);
  const out = sql.empty();
  parts.forEach((part, i) => {
    out.append(i % 2 === 0 ? sql.raw(part) : sql`${q.values[Number(part) - 1]}`);
  });
  return out;
}

/**
 * Deletes this key's row if it has expired (the reaper has not reached it yet), so that a request
 * reusing an expired key is a new request, as the retention policy says. Like the reaper, it
 * leaves a `started` row alone: that belongs to its holder or to the completer.
 */
export async function deleteIfExpired(db: DbOrTx, k: KeyId): Promise<boolean> {
  const deleted = await db
    .delete(idempotencyKeys)
    .where(and(sameKey(k), lte(idempotencyKeys.expiresAt, sql`now()`), eq(idempotencyKeys.state, 'completed')))
    .returning({ id: idempotencyKeys.id });
  return deleted.length > 0;
}

/**
 * The key's row, written once, with its answer: the last statement of the transaction that did the
 * work, sent with the COMMIT behind it (db.ts). A plain INSERT: if a row for the key exists after all
 * (written by a request that does not take the lock: a failure stored after its rollback), the unique
 * index refuses it, and that error turns the COMMIT into a rollback of the whole work. The caller then
 * reads the row that won. `responseJson` is the stored answer's JSON text, as the client gets it.
 */
export function completeKeyStatement(
  id: string,
  k: KeyId,
  fingerprint: string,
  ttlMs: number,
  status: number,
  responseJson: string,
): Statement {
  return { text: COMPLETE, values: [id, k.scope, k.procedure, k.key, fingerprint, status, responseJson, ttlMs / 1000] };
}

const COMPLETE = `
  insert into idempotency_keys (id, scope, procedure, key, fingerprint, state, recovery_point, response_status,
                                response_body, completed_at, expires_at)
  values ($1, $2, $3, $4, $5, 'completed', 'finished', $6, $7, now(), now() + make_interval(secs => $8))`;

/** The unique (scope, procedure, key) index refused a row: another request's row for the key committed. */
export const isKeyTaken = (err: unknown): boolean => {
  const e = (err as { cause?: unknown })?.cause ?? err;
  const { code, constraint_name } = e as { code?: string; constraint_name?: string };
  return code === '23505' && constraint_name === 'idempotency_keys_scope_procedure_key_idx';
};

/**
 * Stores a deliberate failure (the work was rolled back) as a completed key, in its own transaction.
 * Undefined when someone claimed the key in between: then their result is the key's result.
 */
export async function insertCompletedFailure(
  db: DbOrTx,
  k: KeyId,
  fingerprint: string,
  status: number,
  body: StoredResponse,
  ttlMs: number,
): Promise<string | undefined> {
  const rows = await db
    .insert(idempotencyKeys)
    .values({
      ...k,
      fingerprint,
      state: 'completed',
      recoveryPoint: 'finished',
      responseStatus: status,
      responseBody: body,
      completedAt: sql`now()`,
      expiresAt: sql`now() + make_interval(secs => ${ttlMs / 1000})`,
    })
    .onConflictDoNothing()
    .returning({ id: idempotencyKeys.id });
  return rows[0]?.id;
}

// ---------------------------------------------------------------------------------------------
// Phased procedures: the claim commits at once, with a lease and a fencing token (see README.md).

const leaseFromNow = (leaseMs: number) => sql`now() + make_interval(secs => ${leaseMs / 1000})`;
const heldBy = (id: string, token: number) => and(eq(idempotencyKeys.id, id), eq(idempotencyKeys.leaseToken, token));

/**
 * The phased claim: the same atomic INSERT ... ON CONFLICT DO NOTHING, committed on its own, with
 * a lease (`locked_until`) and the request's input (so the completer can finish it without its
 * client). Returns the new row, or undefined when the key already exists.
 */
export async function claimPhased(
  db: DbOrTx,
  k: KeyId,
  fingerprint: string,
  requestInput: unknown,
  options: { ttlMs: number; leaseMs: number },
): Promise<IdempotencyKey | undefined> {
  const [row] = await db
    .insert(idempotencyKeys)
    .values({
      ...k,
      fingerprint,
      requestInput: requestInput ?? null,
      lockedUntil: leaseFromNow(options.leaseMs),
      expiresAt: sql`now() + make_interval(secs => ${options.ttlMs / 1000})`,
    })
    .onConflictDoNothing()
    .returning();
  return row;
}

/**
 * Takes over a started key whose lease expired or was released, bumping the fencing token: from
 * now on, every write of the previous holder matches no row. Undefined if someone holds it.
 */
export async function takeOver(
  db: DbOrTx,
  id: string,
  leaseMs: number,
  options: { byCompleter?: boolean } = {},
): Promise<IdempotencyKey | undefined> {
  const [row] = await db
    .update(idempotencyKeys)
    .set({
      leaseToken: sql`${idempotencyKeys.leaseToken} + 1`,
      lockedUntil: leaseFromNow(leaseMs),
      ...(options.byCompleter ? { completerRuns: sql`${idempotencyKeys.completerRuns} + 1` } : {}),
    })
    .where(
      and(
        eq(idempotencyKeys.id, id),
        eq(idempotencyKeys.state, 'started'),
        or(isNull(idempotencyKeys.lockedUntil), lt(idempotencyKeys.lockedUntil, sql`now()`)),
      ),
    )
    .returning();
  return row;
}

/**
 * Records a step's result and recovery point and renews the lease, in the step's own transaction,
 * fenced by the token. False when the lease was taken over: the caller rolls the step back.
 */
export async function recordStep(
  tx: Tx,
  id: string,
  token: number,
  name: string,
  value: unknown,
  leaseMs: number,
): Promise<boolean> {
  const fenced = await tx
    .update(idempotencyKeys)
    .set({
      progress: sql`(${idempotencyKeys.progress}::jsonb || ${JSON.stringify({ [name]: value ?? null })}::jsonb)::json`,
      recoveryPoint: name,
      lockedUntil: leaseFromNow(leaseMs),
    })
    .where(heldBy(id, token))
    .returning({ id: idempotencyKeys.id });
  return fenced.length > 0;
}

/**
 * A last step and the key's answer in one statement, in the step's transaction: its result and
 * the answer commit together or not at all (a refusal and the undoing of its reservation, say).
 * Fenced like every step: false when the lease was lost.
 */
export async function recordFinalStep(
  tx: Tx,
  id: string,
  token: number,
  name: string,
  value: unknown,
  status: number,
  body: StoredResponse,
): Promise<boolean> {
  const done = await tx
    .update(idempotencyKeys)
    .set({
      progress: sql`(${idempotencyKeys.progress}::jsonb || ${JSON.stringify({ [name]: value ?? null })}::jsonb)::json`,
      state: 'completed',
      recoveryPoint: 'finished',
      responseStatus: status,
      responseBody: body,
      completedAt: sql`now()`,
      lockedUntil: null,
    })
    .where(heldBy(id, token))
    .returning({ id: idempotencyKeys.id });
  return done.length > 0;
}

/** Stores the final answer of a phased key, fenced like every step. False when the lease was lost. */
export async function finishPhased(
  db: DbOrTx,
  id: string,
  token: number,
  status: number,
  body: StoredResponse,
): Promise<boolean> {
  const done = await db
    .update(idempotencyKeys)
    .set({
      state: 'completed',
      recoveryPoint: 'finished',
      responseStatus: status,
      responseBody: body,
      completedAt: sql`now()`,
      lockedUntil: null,
    })
    .where(heldBy(id, token))
    .returning({ id: idempotencyKeys.id });
  return done.length > 0;
}

/**
 * Gives a phased key back without an answer. `forget`: nothing was done yet (the input was refused
 * before any step), so the row goes and the key is free; otherwise the lease ends now and the next
 * retry (or the completer) takes over at once, resuming from the recovery point.
 */
export async function releasePhased(
  db: DbOrTx,
  id: string,
  token: number,
  { forget }: { forget: boolean },
): Promise<void> {
  if (forget) {
    await db.delete(idempotencyKeys).where(and(heldBy(id, token), eq(idempotencyKeys.recoveryPoint, 'started')));
  } else {
    await db.update(idempotencyKeys).set({ lockedUntil: sql`now()` }).where(heldBy(id, token));
  }
}

/**
 * Phased keys whose client never came back: still started, lease lapsed, older than `olderThanSeconds`.
 * The completer takes each over (takeOver) and drives it to an end.
 */
export async function findAbandoned(
  db: DbOrTx,
  options: {
    procedures: string[];
    olderThanSeconds: number;
    limit: number;
    scope?: string;
    backoffBaseSeconds: number;
  },
): Promise<string[]> {
  // A key the completer failed to finish waits longer before its next try: 2^runs x base seconds
  // after its lease ended, at most an hour.
  const spaced = sql`${idempotencyKeys.lockedUntil} < now() - make_interval(secs => least(3600,
    ${options.backoffBaseSeconds} * (power(2, ${idempotencyKeys.completerRuns}) - 1)))`;
  const rows = await db
    .select({ id: idempotencyKeys.id })
    .from(idempotencyKeys)
    .where(
      and(
        eq(idempotencyKeys.state, 'started'),
        inArray(idempotencyKeys.procedure, options.procedures),
        or(isNull(idempotencyKeys.lockedUntil), spaced),
        lt(idempotencyKeys.createdAt, sql`now() - make_interval(secs => ${options.olderThanSeconds})`),
        options.scope ? eq(idempotencyKeys.scope, options.scope) : undefined,
      ),
    )
    .limit(options.limit);
  return rows.map((r) => r.id);
}

/**
 * Deletes up to `batchSize` expired keys, oldest first. SKIP LOCKED lets several reapers (one per
 * server process) run at once without waiting on each other or on a key being worked on; a small
 * batch keeps each transaction, and so each lock, short. Orders that referenced a deleted key keep
 * existing, their `idempotency_key_id` set to null by the foreign key.
 *
 * Only completed keys are reaped: a started one belongs to its holder (or, for phased procedures,
 * to the completer that finishes it).
 */
export async function reapExpiredBatch(db: DbOrTx, batchSize: number): Promise<number> {
  const rows = await db.execute<{ id: string }>(sql`
    delete from idempotency_keys
    where id in (
      select id from idempotency_keys
      where expires_at <= now() and state = 'completed'
      order by expires_at
      limit ${batchSize}
      for update skip locked
    )
    returning id`);
  return rows.length;
}

/** Keys claimed and not answered yet: phased procedures at work, or abandoned (the in-flight gauge). */
export async function countKeysInFlight(db: DbOrTx): Promise<number> {
  const [row] = await db
    .select({ n: sql<number>`count(*)::int` })
    .from(idempotencyKeys)
    .where(eq(idempotencyKeys.state, 'started'));
  return row!.n;
}

/** The state of each of these key rows that still exists (reconcile: a given-up checkout, or an expired one). */
export async function keyStatesOf(db: DbOrTx, ids: string[]): Promise<Map<string, IdempotencyKey['state']>> {
  if (ids.length === 0) return new Map();
  const rows = await db
    .select({ id: idempotencyKeys.id, state: idempotencyKeys.state })
    .from(idempotencyKeys)
    .where(inArray(idempotencyKeys.id, ids));
  return new Map(rows.map((r) => [r.id, r.state]));
}
