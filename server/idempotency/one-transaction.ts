/**
 * Keyed procedures whose whole effect is in the database: the claim, the work and the stored answer
 * are one transaction. See README.md in this folder for the flow and why it is crash-safe.
 */
import type { DbOrTx, Tx } from '../../db/client';
import { toStoredError } from './errors';
import { reached } from './hooks';
import { isStoredFailure, KeyedRequest, type Execution, type KeyedCall } from './request';
import { claimKey, completeKey, deleteIfExpired, findLiveKey, insertCompletedFailure } from './store';

export interface OneTransactionOptions {
  /** How long a key and its answer are kept. */
  ttlMs: number;
  /** How long a duplicate waits for an in-flight first request; 0: answer 409 at once. */
  waitMs: number;
}

export interface IdempotentCall<R extends Execution> extends KeyedCall {
  /** The pool: the layer opens its own transaction. */
  db: DbOrTx;
  options: OneTransactionOptions;
  /** Runs the procedure in `tx`; `keyId` is the claimed key row (orders reference it). */
  execute: (tx: Tx, keyId: string) => Promise<R>;
  /** Builds a successful result from stored data (tRPC needs its own result shape). */
  replay: (data: unknown) => R;
}

// A claim can conflict and then find no row only if the row was deleted in between (expiry):
// a few rounds settle it; more would mean something is wrong, and the client may retry.
const MAX_ROUNDS = 5;

/** Thrown inside the transaction to roll it back while keeping the procedure's failed result. */
class RollBack {
  constructor(readonly execution: Extract<Execution, { ok: false }>) {}
}

const isLockTimeout = (err: unknown) =>
  (err as { cause?: { code?: string } })?.cause?.code === '55P03' || (err as { code?: string })?.code === '55P03';

export async function runIdempotent<R extends Execution>(call: IdempotentCall<R>): Promise<R> {
  const request = new KeyedRequest(call, call.options.waitMs);
  const { k, fp } = request;
  const at = (boundary: string, tx?: Tx, keyId?: string) => reached({ procedure: k.procedure, scope: k.scope, boundary, tx, keyId });

  for (let round = 0; round < MAX_ROUNDS; round++) {
    const existing = await findLiveKey(call.db, k);
    if (existing) return request.answerFrom(await waitWhileStarted(existing), call.replay);

    const attempt = await claimAndExecute();
    if (attempt !== 'conflict') return attempt;
    // The key exists but was not live a moment ago: expired and not yet reaped, or just claimed by
    // someone else. An expired row goes, in its own committed statement (so a failure of the work
    // that follows cannot bring it back), and this request is a new one; otherwise their answer is ours.
    if (await deleteIfExpired(call.db, k)) request.log('expired');
    else request.waited = true;
  }
  return request.inUse();

  async function claimAndExecute(): Promise<R | 'conflict'> {
    let rollback: RollBack;
    let keyId: string | undefined;
    try {
      const result = await call.db.transaction(async (tx) => {
        const id = await claimKey(tx, k, fp, call.options);
        if (!id) return 'conflict' as const;
        keyId = id;
        await at('claimed', tx, id);

        const execution = await call.execute(tx, id);
        if (!execution.ok) throw new RollBack(execution as Extract<Execution, { ok: false }>);
        await at('executed', tx, id);
        // Stored and returned as the same JSON, so the first answer and every replay are identical.
        const data = JSON.parse(JSON.stringify(execution.data ?? null)) as unknown;
        await completeKey(tx, id, 200, { ok: true, data });
        return { ...execution, data };
      });
      if (result === 'conflict') return result;
      request.log('executed');
      await at('stored', undefined, keyId);
      return result;
    } catch (err) {
      if (isLockTimeout(err)) return request.inUse();
      if (!(err instanceof RollBack)) throw err; // our own SQL failed: nothing was kept; a 500
      rollback = err;
    }

    const { error } = rollback.execution;
    if (!isStoredFailure(error)) {
      request.log('released', KeyedRequest.describe(error));
      return rollback.execution as R;
    }
    const stored = toStoredError(error);
    const described = KeyedRequest.describe(error);
    const id = await insertCompletedFailure(call.db, k, fp, described.status as number, { ok: false, error: stored }, call.options.ttlMs);
    if (!id) return 'conflict';
    request.log('failure_stored', described);
    return rollback.execution as R;
  }

  /** A committed 'started' row belongs to a phased procedure in flight: poll it until it finishes. */
  async function waitWhileStarted(row: NonNullable<Awaited<ReturnType<typeof findLiveKey>>>) {
    while (row.state === 'started' && row.fingerprint === fp) {
      await request.pause();
      row = (await findLiveKey(call.db, k)) ?? row;
    }
    return row;
  }
}
