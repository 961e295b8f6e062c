/**
 * The idempotency layer: what happens to one keyed request, from header to answer.
 *
 *   1. Read the `Idempotency-Key` header: missing -> 400 IDEMPOTENCY_KEY_REQUIRED, malformed -> 400
 *      IDEMPOTENCY_KEY_INVALID. Fingerprint the request: SHA-256 of procedure path + canonical input.
 *   2. Fast path, read-only: SELECT the live row for (customer, procedure, key).
 *        completed, same fingerprint  -> replay the stored answer (`Idempotent-Replayed: true`)
 *        completed, other fingerprint -> 422 IDEMPOTENCY_KEY_REUSED, nothing runs
 *        started (committed, leased)  -> wait for it (bounded), then as above; else 409 IN_USE
 *   3. No row: BEGIN; claim the key with one INSERT ... ON CONFLICT DO NOTHING; run the procedure
 *      with `ctx.db` bound to this same transaction; store its answer on the key row; COMMIT.
 *      The order and the stored answer commit together or not at all.
 *        claim conflicts -> someone else has the key: back to step 2 (their answer is ours)
 *        claim waits past the bound -> 409 IDEMPOTENCY_KEY_IN_USE with Retry-After
 *   4. What is kept when the procedure fails:
 *        a deliberate business failure (a TRPCError such as 409 sold out, 402 declined): the work
 *          is rolled back and the failure stored and replayed like a success;
 *        bad input (400) or an unexpected error (a bug, the database down): nothing is kept, the
 *          claim rolls back with the transaction and the key is free for a retry.
 *
 * Design note: crashes, and procedures with side effects outside the database.
 *   Here the claim is an uncommitted row. If the process dies while it holds a key, Postgres rolls
 *   the transaction back when the connection drops: the key, the order and the answer vanish
 *   together and a retry starts afresh. No lease can be left behind, so none needs to expire.
 *   That only works while all the work is in one transaction. A call to a payment provider cannot
 *   be rolled back, so a procedure that makes one is done in phases, each its own transaction
 *   (rocket-rides-atomic): the claim then commits, with `locked_until` as a lease and
 *   `lease_token` as a fencing token that every later phase checks in its WHERE clause (a holder
 *   whose lease was taken over updates zero rows and stops). `recovery_point` records the last
 *   committed phase; a retry that finds the lease expired takes it over (bumping the token) and
 *   resumes from there, repeating the provider call with a key derived from the key row's id, so
 *   the provider returns the first charge instead of making a second. Duplicates that find a
 *   committed `started` row wait for it in step 2 instead of on a row lock.
 */
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import { TRPCError } from '@trpc/server';
import type { DbOrTx, Tx } from '../../db/client';
import type { IdempotencyKey } from '../../db/schema';
import { AppError, ReplayedError, errorCodeOf, toStoredError } from '../errors';
import { fingerprint, keyTag, parseIdempotencyKey } from './key';
import {
  claimKey,
  completeKey,
  deleteIfExpired,
  findLiveKey,
  insertCompletedFailure,
  type KeyId,
  type StoredResponse,
} from './store';

export interface IdempotencyOptions {
  /** How long a key and its answer are kept. */
  ttlMs: number;
  /** How long a duplicate waits for an in-flight first request; 0: answer 409 at once. */
  waitMs: number;
}

/** What running the procedure gave: tRPC's middleware result has this shape. */
export type Execution = { ok: true; data: unknown } | { ok: false; error: TRPCError };

export type Decision =
  | 'executed' // ran the procedure and stored its answer
  | 'failure_stored' // ran it; a deliberate business failure was stored
  | 'released' // ran it; bad input or an unexpected error: nothing stored, key free
  | 'replayed' // answered from the stored result
  | 'waited_then_replayed' // the first request was in flight; waited, then answered with its result
  | 'in_use' // waited past the bound: 409
  | 'reused_with_different_input' // 422
  | 'missing' // 400, no key
  | 'invalid' // 400, malformed key
  | 'expired' // an expired key was deleted; the request runs as a new one
  | 'resumed'; // phased: took over a key whose holder was gone, resuming from its recovery point

// Seconds a client should wait before retrying a 409 IN_USE: long enough for a typical checkout
// (well under a second here) to finish, short enough that the customer barely notices.
export const RETRY_AFTER_SECONDS = 1;
// Polling a committed in-flight key (phased procedures): start fast, back off to 250 ms.
const POLL_START_MS = 25;
const POLL_MAX_MS = 250;
// A claim can conflict and then find no row only if the row was deleted in between (expiry):
// a few rounds settle it; more would mean something is wrong, and the client may retry.
const MAX_ROUNDS = 5;

const NOT_STORED_STATUSES = new Set([400, 401, 403, 408, 413, 429, 499]);

/**
 * A deliberate business failure: a 4xx TRPCError that is not about the request's form (400),
 * identity (401, 403) or rate (429). These are answers, and a retry must get the same answer.
 */
export function isStoredFailure(error: TRPCError): boolean {
  const status = getHTTPStatusCodeFromError(error);
  if (errorCodeOf(error)?.startsWith('IDEMPOTENCY_')) return false; // about the key, not an answer
  return status > 400 && status < 500 && !NOT_STORED_STATUSES.has(status);
}

export function logDecision(decision: Decision, fields: Record<string, unknown>): void {
  console.info(JSON.stringify({ msg: 'idempotency', decision, ...fields }));
}

/** Thrown inside the transaction to roll it back while keeping the procedure's failed result. */
class RollBack {
  constructor(readonly execution: Extract<Execution, { ok: false }>) {}
}

const isLockTimeout = (err: unknown) =>
  (err as { cause?: { code?: string } })?.cause?.code === '55P03' || (err as { code?: string })?.code === '55P03';

export interface IdempotentCall<R extends Execution> {
  /** The pool: the layer opens its own transaction. */
  db: DbOrTx;
  scope: string;
  procedure: string;
  rawInput: unknown;
  headers: Headers;
  resHeaders: Headers;
  options: IdempotencyOptions;
  /** Runs the procedure in `tx`; `keyId` is the claimed key row (orders reference it). */
  execute: (tx: Tx, keyId: string) => Promise<R>;
  /** Builds a successful result from stored data (tRPC needs its own result shape). */
  replay: (data: unknown) => R;
}

/**
 * Step 1, shared by both kinds of keyed procedure: reads and checks the key (logging and throwing
 * the 400s), fingerprints the request, and returns a logger that tags every line with the key.
 */
export function keyedRequest(call: { headers: Headers; scope: string; procedure: string; rawInput: unknown }, tags: Record<string, unknown> = {}) {
  const started = Date.now();
  const parsed = parseIdempotencyKey(call.headers);
  const base = { procedure: call.procedure, scope: call.scope, ...tags };
  if (!parsed.ok) {
    logDecision(parsed.reason, { ...base, problem: parsed.problem });
    throw new AppError(parsed.reason === 'missing' ? 'IDEMPOTENCY_KEY_REQUIRED' : 'IDEMPOTENCY_KEY_INVALID', {
      detail: parsed.reason === 'invalid' ? `(${parsed.problem})` : undefined,
    });
  }
  const k: KeyId = { scope: call.scope, procedure: call.procedure, key: parsed.key };
  const fp = fingerprint(call.procedure, call.rawInput);
  const log = (decision: Decision, extra: Record<string, unknown> = {}) =>
    logDecision(decision, { ...base, keyTag: keyTag(parsed.key), ms: Date.now() - started, ...extra });
  return { started, k, fp, log };
}

export async function runIdempotent<R extends Execution>(call: IdempotentCall<R>): Promise<R> {
  const { started, k, fp, log } = keyedRequest(call);
  const deadline = started + call.options.waitMs;
  let sawInFlight = false;

  for (let round = 0; round < MAX_ROUNDS; round++) {
    const existing = await findLiveKey(call.db, k);
    if (existing) return answerFrom(await waitWhileStarted(existing), sawInFlight);

    const attempt = await claimAndExecute();
    if (attempt !== 'conflict') return attempt;
    sawInFlight = true; // someone else held the key while we tried: their answer is ours
  }
  return inUse();

  async function claimAndExecute(): Promise<R | 'conflict'> {
    let rollback: RollBack;
    try {
      return await call.db.transaction(async (tx) => {
        let id = await claimKey(tx, k, fp, call.options);
        if (!id && (await deleteIfExpired(tx, k))) {
          log('expired');
          id = await claimKey(tx, k, fp, call.options);
        }
        if (!id) return 'conflict' as const;

        const execution = await call.execute(tx, id);
        if (!execution.ok) throw new RollBack(execution as Extract<Execution, { ok: false }>);
        // Stored and returned as the same JSON, so the first answer and every replay are identical.
        const data = JSON.parse(JSON.stringify(execution.data ?? null)) as unknown;
        await completeKey(tx, id, 200, { ok: true, data });
        log('executed');
        return { ...execution, data };
      });
    } catch (err) {
      if (isLockTimeout(err)) return inUse();
      if (!(err instanceof RollBack)) throw err; // our own SQL failed: nothing was kept; a 500
      rollback = err;
    }

    const { error } = rollback.execution;
    if (!isStoredFailure(error)) {
      log('released', { status: getHTTPStatusCodeFromError(error), errorCode: errorCodeOf(error) });
      return rollback.execution as R;
    }
    const stored = toStoredError(error);
    const status = getHTTPStatusCodeFromError(error);
    const id = await insertCompletedFailure(call.db, k, fp, status, { ok: false, error: stored }, call.options.ttlMs);
    if (!id) return 'conflict';
    log('failure_stored', { status, errorCode: stored.errorCode });
    return rollback.execution as R;
  }

  /** A committed 'started' row belongs to a phased procedure in flight: poll it until it finishes. */
  async function waitWhileStarted(row: IdempotencyKey): Promise<IdempotencyKey> {
    let delay = POLL_START_MS;
    while (row.state === 'started' && row.fingerprint === fp) {
      if (Date.now() + delay > deadline) return inUse();
      sawInFlight = true;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, POLL_MAX_MS);
      row = (await findLiveKey(call.db, k)) ?? row;
    }
    return row;
  }

  function answerFrom(row: IdempotencyKey, waited: boolean): R {
    if (row.fingerprint !== fp) {
      log('reused_with_different_input');
      throw new AppError('IDEMPOTENCY_KEY_REUSED');
    }
    call.resHeaders.set('Idempotent-Replayed', 'true');
    log(waited ? 'waited_then_replayed' : 'replayed', { status: row.responseStatus });
    const body = row.responseBody as StoredResponse;
    if (body.ok) return call.replay(body.data);
    throw new ReplayedError(body.error);
  }

  function inUse(): never {
    call.resHeaders.set('Retry-After', String(RETRY_AFTER_SECONDS));
    log('in_use');
    throw new AppError('IDEMPOTENCY_KEY_IN_USE');
  }
}
