/**
 * Phased idempotent procedures: for work that calls something outside the database (a card
 * charge), which no database transaction can roll back. After rocket-rides-atomic.
 *
 * The claim commits at once, with a lease (`locked_until`) and a fencing token (`lease_token`).
 * The procedure then runs as named steps; each database step is its own transaction that also
 * records the step's result in `progress`, moves `recovery_point` and renews the lease, all
 * fenced by `WHERE lease_token = <ours>`: a holder whose lease was taken over updates nothing and
 * its step rolls back. Calls to the provider happen between steps, with a key derived from our
 * key row (`<key id>:<step>`), so repeating one returns the first result.
 *
 * A retry with the same key finds the row:
 *   completed                  -> the stored answer, replayed
 *   started, lease live        -> someone is working on it: wait (bounded), then as above or 409
 *   started, lease expired or released -> take it over (token + 1) and resume: steps already in
 *                                 `progress` return their saved result without running again
 *
 * Outcomes: success and deliberate failures (a decline) are stored. A provider that timed out or
 * failed (PROVIDER_UNAVAILABLE) or an unexpected error releases the lease and keeps the progress:
 * the client is told to retry with the same key, and the retry resumes. The completer
 * (server/jobs/completer.ts) resumes keys whose client never came back.
 */
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import { and, eq, isNull, lt, or, sql } from 'drizzle-orm';
import type { Db, Tx } from '../../db/client';
import { idempotencyKeys, type IdempotencyKey } from '../../db/schema';
import { AppError, ReplayedError, errorCodeOf, toStoredError } from '../errors';
import { isStoredFailure, keyedRequest, RETRY_AFTER_SECONDS, type Decision, type Execution } from './middleware';
import { deleteIfExpired, findLiveKey, type StoredResponse } from './store';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** What a phased procedure gets as `ctx.steps`. */
export interface Steps {
  /** The key row's id: stable across retries and takeovers. */
  readonly keyId: string;
  /** The results of steps that committed, by name. */
  readonly progress: Readonly<Record<string, Json>>;
  /** An idempotency key for an outside call, derived from our key row, the same on every retry. */
  providerKey(step: string): string;
  /**
   * Runs `fn` in its own transaction and records its result as step `name`, fenced by the lease.
   * A step that already committed (before a crash or a timeout) is not run again: its saved
   * result is returned.
   */
  step<T extends Json>(name: string, fn: (tx: Tx) => Promise<T>): Promise<T>;
}

/** Test hooks at step boundaries (server/test-hooks.ts): inside a step's transaction, and after it commits. */
export interface StepHooks {
  inStep?(name: string, tx: Tx): Promise<void>;
  afterStep?(name: string): Promise<void>;
}

export class LeaseLost extends Error {
  constructor() {
    super('the lease on this idempotency key was taken over');
    this.name = 'LeaseLost';
  }
}

export interface PhaseOptions {
  ttlMs: number;
  waitMs: number;
  leaseMs: number;
}

const POLL_START_MS = 25;
const POLL_MAX_MS = 250;

/** Steps bound to one holding of one key row. */
export function stepsFor(db: Db, row: IdempotencyKey, token: number, leaseMs: number, hooks?: StepHooks): Steps {
  const progress: Record<string, Json> = { ...(row.progress as Record<string, Json>) };
  return {
    keyId: row.id,
    progress,
    providerKey: (step) => `${row.id}:${step}`,
    async step<T extends Json>(name: string, fn: (tx: Tx) => Promise<T>): Promise<T> {
      if (name in progress) return progress[name] as T;
      const result = await db.transaction(async (tx) => {
        const value = await fn(tx);
        await hooks?.inStep?.(name, tx);
        const fenced = await tx
          .update(idempotencyKeys)
          .set({
            progress: sql`(${idempotencyKeys.progress}::jsonb || ${JSON.stringify({ [name]: value ?? null })}::jsonb)::json`,
            recoveryPoint: name,
            lockedUntil: sql`now() + make_interval(secs => ${leaseMs / 1000})`,
          })
          .where(and(eq(idempotencyKeys.id, row.id), eq(idempotencyKeys.leaseToken, token)))
          .returning({ id: idempotencyKeys.id });
        if (fenced.length === 0) throw new LeaseLost(); // rolls this step back
        return value;
      });
      progress[name] = result;
      await hooks?.afterStep?.(name);
      return result;
    },
  };
}

/** Takes over a started key whose lease expired or was released. Undefined if someone else holds it. */
export async function takeOver(db: Db, id: string, leaseMs: number): Promise<IdempotencyKey | undefined> {
  const [row] = await db
    .update(idempotencyKeys)
    .set({ leaseToken: sql`${idempotencyKeys.leaseToken} + 1`, lockedUntil: sql`now() + make_interval(secs => ${leaseMs / 1000})` })
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

/** Stores the final answer; fenced like every step. */
async function finish(db: Db, row: IdempotencyKey, token: number, status: number, body: StoredResponse): Promise<void> {
  const done = await db
    .update(idempotencyKeys)
    .set({ state: 'completed', recoveryPoint: 'finished', responseStatus: status, responseBody: body, completedAt: sql`now()`, lockedUntil: null })
    .where(and(eq(idempotencyKeys.id, row.id), eq(idempotencyKeys.leaseToken, token)))
    .returning({ id: idempotencyKeys.id });
  if (done.length === 0) throw new LeaseLost();
}

/** Gives the key back without an answer: the next retry (or the completer) takes over at once. */
async function release(db: Db, row: IdempotencyKey, token: number, { forget }: { forget: boolean }): Promise<void> {
  const fenced = and(eq(idempotencyKeys.id, row.id), eq(idempotencyKeys.leaseToken, token));
  if (forget) {
    // Nothing was done yet (the input was refused before any step): the key is free again.
    await db.delete(idempotencyKeys).where(and(fenced, eq(idempotencyKeys.recoveryPoint, 'started')));
  } else {
    await db.update(idempotencyKeys).set({ lockedUntil: sql`now()` }).where(fenced);
  }
}

export type Holding = { row: IdempotencyKey; token: number };

/**
 * Runs a holding of a key to its end: the procedure, then the stored answer or a release.
 * Shared by the request path and the completer.
 */
export async function drive<R extends Execution>(
  db: Db,
  holding: Holding,
  options: PhaseOptions,
  execute: (steps: Steps) => Promise<R>,
  log: (decision: Decision, extra?: Record<string, unknown>) => void,
  hooks?: StepHooks,
): Promise<R> {
  const { row, token } = holding;
  const lost = () => {
    log('in_use', { reason: 'lease taken over' });
    return new AppError('IDEMPOTENCY_KEY_IN_USE');
  };
  const execution = await execute(stepsFor(db, row, token, options.leaseMs, hooks));
  try {
    if (execution.ok) {
      const data = JSON.parse(JSON.stringify(execution.data ?? null)) as unknown;
      await finish(db, row, token, 200, { ok: true, data });
      log('executed', { resumedFrom: row.recoveryPoint });
      return { ...execution, data };
    }
    const { error } = execution as Extract<Execution, { ok: false }>;
    if (error.cause instanceof LeaseLost) throw lost();
    if (isStoredFailure(error)) {
      const status = getHTTPStatusCodeFromError(error);
      await finish(db, row, token, status, { ok: false, error: toStoredError(error) });
      log('failure_stored', { status, errorCode: errorCodeOf(error) });
      return execution;
    }
  } catch (err) {
    if (err instanceof LeaseLost) throw lost();
    throw err;
  }
  const { error } = execution as Extract<Execution, { ok: false }>;
  const refusedInput = error.code === 'BAD_REQUEST' || error.code === 'PARSE_ERROR';
  await release(db, row, token, { forget: refusedInput });
  log('released', { status: getHTTPStatusCodeFromError(error), errorCode: errorCodeOf(error) });
  return execution;
}

export interface PhasedCall<R extends Execution> {
  db: Db;
  scope: string;
  procedure: string;
  rawInput: unknown;
  headers: Headers;
  resHeaders: Headers;
  options: PhaseOptions;
  execute: (steps: Steps) => Promise<R>;
  replay: (data: unknown) => R;
  hooks?: StepHooks;
}

export async function runPhased<R extends Execution>(call: PhasedCall<R>): Promise<R> {
  const { started, k, fp, log } = keyedRequest(call, { phased: true });
  const deadline = started + call.options.waitMs;
  let waited = false;
  let delay = POLL_START_MS;
  const inUse = (): never => {
    call.resHeaders.set('Retry-After', String(RETRY_AFTER_SECONDS));
    log('in_use');
    throw new AppError('IDEMPOTENCY_KEY_IN_USE');
  };

  for (;;) {
    const row = await findLiveKey(call.db, k);
    if (!row) {
      const [claimed] = await call.db
        .insert(idempotencyKeys)
        .values({
          ...k,
          fingerprint: fp,
          requestInput: call.rawInput ?? null,
          lockedUntil: sql`now() + make_interval(secs => ${call.options.leaseMs / 1000})`,
          expiresAt: sql`now() + make_interval(secs => ${call.options.ttlMs / 1000})`,
        })
        .onConflictDoNothing()
        .returning();
      if (claimed) return drive(call.db, { row: claimed, token: claimed.leaseToken }, call.options, call.execute, log, call.hooks);
      // The key exists but was not live a moment ago: expired and not yet reaped (then it goes, and
      // this request is a new one), or just claimed by someone else (their row decides, next round).
      if (await deleteIfExpired(call.db, k)) {
        log('expired');
        continue;
      }
      waited = true;
      // An expired row still `started` (abandoned, waiting for the completer) never becomes live:
      // poll it like an in-flight one, so this loop waits within the bound instead of spinning.
      if (Date.now() + delay > deadline) inUse();
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, POLL_MAX_MS);
      continue;
    }

    if (row.fingerprint !== fp) {
      log('reused_with_different_input');
      throw new AppError('IDEMPOTENCY_KEY_REUSED');
    }
    if (row.state === 'completed') {
      call.resHeaders.set('Idempotent-Replayed', 'true');
      log(waited ? 'waited_then_replayed' : 'replayed', { status: row.responseStatus });
      const body = row.responseBody as StoredResponse;
      if (body.ok) return call.replay(body.data);
      throw new ReplayedError(body.error);
    }
    // Started: take it over if its holder is gone, else wait for it.
    const taken = await takeOver(call.db, row.id, call.options.leaseMs);
    if (taken) {
      log('resumed', { recoveryPoint: taken.recoveryPoint });
      return drive(call.db, { row: taken, token: taken.leaseToken }, call.options, call.execute, log, call.hooks);
    }
    if (Date.now() + delay > deadline) inUse();
    waited = true;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, POLL_MAX_MS);
  }
}
