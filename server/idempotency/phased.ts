/**
 * Keyed procedures with an effect outside the database (a card charge), which no transaction can
 * roll back: the claim commits at once with a lease and a fencing token, and the work runs as named
 * steps, each its own transaction. See README.md in this folder for the states and the rules.
 */

import type { TRPCError } from '@trpc/server';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import { fenced, type KeyDatabase, type KeyTransaction, type TransactionOf } from './db';
import { IdempotencyError, toStoredError } from './errors';
import { type Decision, isProcessGone, reached } from './hooks';
import { type Execution, isStoredFailure, type KeyedCall, KeyedRequest } from './request';
import type { IdempotencyKey } from './schema';
import {
  claimPhased,
  deleteIfExpired,
  findLiveKey,
  finishPhased,
  recordFinalStep,
  recordStep,
  releasePhased,
  type StoredResponse,
  takeOver,
} from './store';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/**
 * A value a step may save: what survives JSON as it is. An interface of strings, numbers, booleans,
 * nulls, arrays and such objects passes; a `Date`, a function, a `bigint` or a required property that
 * may be `undefined` does not (JSON would turn it into something else, and a resumed step would get
 * that instead).
 */
export type JsonSafe<T> = T extends string | number | boolean | null
  ? T
  : T extends Date | bigint | symbol | undefined | ((...args: never[]) => unknown)
    ? never
    : T extends readonly (infer U)[]
      ? readonly JsonSafe<U>[]
      : { [K in keyof T]: JsonSafe<T[K]> };

/** What a phased procedure gets as `ctx.steps`; `TTx` is the app's transaction type. */
export interface Steps<TTx = KeyTransaction> {
  /** The key row's id: stable across retries and takeovers. */
  readonly keyId: string;
  /** When the key was first claimed: a resume may come much later (see the provider's key retention). */
  readonly claimedAt: Date;
  /** The results of steps that committed, by name. */
  readonly progress: Readonly<Record<string, Json>>;
  /** An idempotency key for an outside call, derived from our key row, the same on every retry. */
  providerKey(step: string): string;
  /**
   * Runs `fn` in its own transaction and records its result as step `name`, fenced by the lease.
   * A step that already committed (before a crash or a timeout) is not run again: its saved
   * result is returned.
   */
  step<T>(name: string, fn: (tx: TTx) => Promise<T & JsonSafe<T>>): Promise<T>;
  /**
   * The last step of a success: runs `fn` and stores its result as the key's answer, in one
   * transaction. Nothing can happen between recording the outcome and answering.
   */
  complete<T>(name: string, fn: (tx: TTx) => Promise<T & JsonSafe<T>>): Promise<T>;
  /**
   * The last step of a deliberate failure (a 4xx: a decline, a refusal, a cancellation): runs `fn`
   * (what the failure means for the records: undo a reservation, fail the order) and stores `error`
   * as the key's answer, in one transaction; then throws `error`.
   */
  fail(name: string, error: TRPCError, fn: (tx: TTx) => Promise<void>): Promise<never>;
  /** Set once `complete` or `fail` stored the answer. */
  readonly finished: StoredResponse | undefined;
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

/** Steps bound to one holding of one key row. */
export function stepsFor<TDb extends KeyDatabase>(
  db: TDb,
  row: IdempotencyKey,
  token: number,
  leaseMs: number,
): Steps<TransactionOf<TDb>> {
  type Tx = TransactionOf<TDb>;
  const progress: Record<string, Json> = { ...(row.progress as Record<string, Json>) };
  const at = (boundary: string, tx?: KeyTransaction) =>
    reached({ procedure: row.procedure, scope: row.scope, keyId: row.id, boundary, tx });
  let finished: StoredResponse | undefined;

  /** One step's transaction: `fn`, then the fenced record (and, for a last step, the answer). */
  async function run<T>(
    name: string,
    fn: (tx: Tx) => Promise<T>,
    answer?: (value: T) => { status: number; body: StoredResponse },
  ): Promise<T> {
    // A crash played inside the step (fault injection) cuts the step's connection, and the driver may
    // fail the transaction with "connection closed" before the step itself has stopped: the crash,
    // once the step has stopped, is the error that counts.
    let gone: unknown;
    let body: Promise<unknown> | undefined;
    const result = await fenced(db)
      .transaction((tx) => {
        const work = (async () => {
          // Stored and returned as the same JSON, so the first answer and every replay are identical.
          const value = JSON.parse(JSON.stringify((await fn(tx)) ?? null)) as T;
          await at(`inside:${name}`, tx).catch((err: unknown) => {
            if (isProcessGone(err)) gone = err;
            throw err;
          });
          const a = answer?.(value);
          const recorded = a
            ? await recordFinalStep(tx, row.id, token, name, value, a.status, a.body)
            : await recordStep(tx, row.id, token, name, value, leaseMs);
          if (!recorded) throw new LeaseLost(); // rolls this step back
          return { value, body: a?.body };
        })();
        body = work;
        return work;
      })
      .catch(async (err: unknown) => {
        await body?.catch(() => {});
        throw gone ?? err;
      });
    progress[name] = result.value as Json; // it came back from JSON.parse: it is JSON
    if (result.body) finished = result.body;
    await at(`after:${name}`);
    return result.value;
  }

  return {
    keyId: row.id,
    claimedAt: row.createdAt,
    progress,
    get finished() {
      return finished;
    },
    providerKey: (step) => `${row.id}:${step}`,
    async step<T>(name: string, fn: (tx: Tx) => Promise<T & JsonSafe<T>>): Promise<T> {
      if (name in progress) return progress[name] as T;
      return run(name, fn);
    },
    async complete<T>(name: string, fn: (tx: Tx) => Promise<T & JsonSafe<T>>): Promise<T> {
      return run(name, fn, (value) => ({ status: 200, body: { ok: true, data: value } }));
    },
    async fail(name: string, error: TRPCError, fn: (tx: Tx) => Promise<void>): Promise<never> {
      if (!isStoredFailure(error))
        throw new Error(`steps.fail() stores answers: ${error.code} is not a stored failure`);
      await run(
        name,
        async (tx) => {
          await fn(tx);
          return null;
        },
        () => ({ status: getHTTPStatusCodeFromError(error), body: { ok: false, error: toStoredError(error) } }),
      );
      throw error;
    },
  };
}

export type Holding = { row: IdempotencyKey; token: number };

/**
 * Runs a holding of a key to its end: the procedure, then the stored answer or a release.
 * Shared by the request path and the completer.
 */
export async function drive<TDb extends KeyDatabase, R extends Execution>(
  db: TDb,
  holding: Holding,
  options: PhaseOptions,
  execute: (steps: Steps<TransactionOf<TDb>>) => Promise<R>,
  log: (decision: Decision, extra?: Record<string, unknown>) => void,
  /** What losing the lease to a takeover answers: 409 IN_USE (with Retry-After, on the request path). */
  lost: () => never = () => {
    log('in_use', { reason: 'lease taken over' });
    throw new IdempotencyError('IDEMPOTENCY_KEY_IN_USE');
  },
): Promise<R> {
  const { row, token } = holding;
  const steps = stepsFor(db, row, token, options.leaseMs);
  const execution = await execute(steps);
  // A crash played by fault injection: a dead process does nothing more, so neither do we.
  if (!execution.ok && isProcessGone(execution.error)) return execution;
  const stored = () => reached({ procedure: row.procedure, scope: row.scope, keyId: row.id, boundary: 'stored' });

  // The procedure stored its answer in its last step (complete or fail): that answer is the outcome.
  if (steps.finished) {
    if (steps.finished.ok) {
      log('executed', { resumedFrom: row.recoveryPoint });
      await stored();
      return { ok: true, data: steps.finished.data } as R;
    }
    log('failure_stored', { errorCode: steps.finished.error.errorCode, resumedFrom: row.recoveryPoint });
    await stored();
    return execution;
  }
  if (execution.ok) {
    const data = JSON.parse(JSON.stringify(execution.data ?? null)) as unknown;
    if (!(await finishPhased(db, row.id, token, 200, { ok: true, data }))) lost();
    log('executed', { resumedFrom: row.recoveryPoint });
    await stored();
    return { ...execution, data };
  }
  const { error } = execution;
  if (error.cause instanceof LeaseLost) lost();
  if (isStoredFailure(error)) {
    const described = KeyedRequest.describe(error);
    if (
      !(await finishPhased(db, row.id, token, described.status as number, { ok: false, error: toStoredError(error) }))
    )
      lost();
    log('failure_stored', described);
    await stored();
    return execution;
  }
  const refusedInput = error.code === 'BAD_REQUEST' || error.code === 'PARSE_ERROR';
  await releasePhased(db, row.id, token, { forget: refusedInput });
  log('released', KeyedRequest.describe(error));
  return execution;
}

export interface PhasedCall<TDb extends KeyDatabase, R extends Execution> extends KeyedCall {
  /** The pool: each step opens its own transaction on it. */
  db: TDb;
  options: PhaseOptions;
  execute: (steps: Steps<TransactionOf<TDb>>) => Promise<R>;
  replay: (data: unknown) => R;
}

export async function runPhased<TDb extends KeyDatabase, R extends Execution>(call: PhasedCall<TDb, R>): Promise<R> {
  const request = new KeyedRequest(call, call.options.waitMs, { phased: true });
  const { k, fp } = request;
  const log = (decision: Decision, extra?: Record<string, unknown>) => request.log(decision, extra);
  const run = async (holding: Holding) => {
    await reached({ procedure: k.procedure, scope: k.scope, keyId: holding.row.id, boundary: 'claimed' });
    return drive(call.db, holding, call.options, call.execute, log, () =>
      request.inUse({ reason: 'lease taken over' }),
    );
  };

  for (;;) {
    const row = await findLiveKey(call.db, k);
    if (!row) {
      const claimed = await claimPhased(call.db, k, fp, call.rawInput, call.options);
      if (claimed) return run({ row: claimed, token: claimed.leaseToken });
      // The key exists but was not live a moment ago: expired and not yet reaped (then it goes, and
      // this request is a new one), or just claimed by someone else (their row decides, next round).
      if (await deleteIfExpired(call.db, k)) {
        request.log('expired');
        continue;
      }
      // An expired row still `started` (abandoned, waiting for the completer) never becomes live:
      // poll it like an in-flight one, so this loop waits within the bound instead of spinning.
      await request.pause();
      continue;
    }

    request.refuseOtherInput(row);
    if (row.state === 'completed') return request.answerFrom(row, call.replay);
    // Started: take it over if its holder is gone, else wait for it.
    const taken = await takeOver(call.db, row.id, call.options.leaseMs);
    if (taken) {
      request.log('resumed', { recoveryPoint: taken.recoveryPoint });
      return run({ row: taken, token: taken.leaseToken });
    }
    await request.pause();
  }
}
