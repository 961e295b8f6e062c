/**
 * Keyed procedures whose whole effect is in the database: the claim, the work and the stored answer
 * are one transaction. See README.md in this folder for the flow and why it is crash-safe.
 */
import {
  type KeyDatabase,
  type KeyTransaction,
  pipelinedTransaction,
  type TransactionEnd,
  type TransactionOf,
} from './db';
import { toStoredError } from './errors';
import { reached } from './hooks';
import { type Execution, isStoredFailure, type KeyedCall, KeyedRequest, type KeyState } from './request';
import {
  type Claim,
  claimStatement,
  completeKeyStatement,
  deleteIfExpired,
  type ExistingKey,
  findLiveKey,
  insertCompletedFailure,
  isKeyTaken,
  lookupStatement,
  readClaim,
  waitStatement,
} from './store';

export interface OneTransactionOptions {
  /** How long a key and its answer are kept. */
  ttlMs: number;
  /** How long a duplicate waits for an in-flight first request; 0: answer 409 at once. */
  waitMs: number;
}

export interface IdempotentCall<TDb extends KeyDatabase, R extends Execution> extends KeyedCall {
  /** The pool: the layer opens its own transaction (on a connection it reserves). */
  db: TDb;
  options: OneTransactionOptions;
  /** Runs the procedure in `tx`; `keyId` is the claimed key row (orders reference it). */
  execute: (tx: TransactionOf<TDb>, keyId: string) => Promise<R>;
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

export async function runIdempotent<TDb extends KeyDatabase, R extends Execution>(
  call: IdempotentCall<TDb, R>,
): Promise<R> {
  const request = new KeyedRequest(call, call.options.waitMs);
  const { k, fp } = request;
  const at = (boundary: string, tx?: KeyTransaction, keyId?: string) =>
    reached({ procedure: k.procedure, scope: k.scope, boundary, tx, keyId });

  // Set once the key was found held by a request in flight: from then on, each round waits for the lock.
  let wait = false;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const attempt = await claimAndExecute(wait);
    if (attempt === 'held') {
      wait = true;
      request.waited = true;
    } else if (attempt !== 'conflict') return attempt;
  }
  return request.inUse();

  /**
   * One round: claim the key and, if it is ours, do the work and store the answer, all in one
   * transaction; if it is not, answer from the row that holds it. 'conflict' means: look again;
   * 'held': another request holds the key, wait for it (`wait`: this round waits for the lock).
   */
  async function claimAndExecute(wait: boolean): Promise<R | 'conflict' | 'held'> {
    let keyId: string | undefined;
    let outcome: Claim | 'executed';
    let result: R | undefined;
    try {
      // The wait on a duplicate in flight is bounded by what is left of this request's bound, over
      // every round, not by the whole bound again each round.
      const waitMs = Math.max(1, request.deadline - Date.now());
      outcome = await pipelinedTransaction(
        call.db,
        wait ? [waitStatement(k, { waitMs }), lookupStatement(k)] : claimStatement(k),
        async (tx, rows): Promise<TransactionEnd<Claim | 'executed'>> => {
          const claim = readClaim(rows);
          if (!claim.claimed) return { rollback: claim }; // a replay writes nothing: the claim wrote nothing
          keyId = claim.id;
          await at('claimed', tx, claim.id);

          const execution = await call.execute(tx, claim.id);
          if (!execution.ok) throw new RollBack(execution as Extract<Execution, { ok: false }>);
          await at('executed', tx, claim.id);
          // Stored and returned as the same JSON, so the first answer and every replay are identical:
          // the text is made once, stored as it is, and parsed for the first answer.
          const text = JSON.stringify(execution.data ?? null);
          result = { ...execution, data: JSON.parse(text) as unknown };
          // The key row, with its answer, is the last statement of the transaction that did the work.
          const answer = `{"ok":true,"data":${text}}`;
          return { commit: 'executed', last: completeKeyStatement(claim.id, k, fp, call.options.ttlMs, 200, answer) };
        },
      );
    } catch (err) {
      if (isLockTimeout(err)) return request.inUse();
      // A row for the key committed without the lock (a failure stored after its rollback): the work
      // was rolled back with the refused row; that row is the key's answer, read next round.
      if (isKeyTaken(err)) return 'conflict';
      if (!(err instanceof RollBack)) throw err; // our own SQL failed: nothing was kept; a 500
      return storeFailure(err);
    }

    if (outcome === 'executed') {
      request.log('executed');
      await at('stored', undefined, keyId);
      return result!;
    }
    if (outcome.claimed) throw new Error('unreachable: a claimed key is either executed or rolled back');
    if (!outcome.existing) return 'held';
    return answerExisting(outcome.existing);
  }

  /** The key is held by a row: its stored answer, or wait for it, or (expired) start again. */
  async function answerExisting(existing: ExistingKey): Promise<R | 'conflict'> {
    // Expired and not yet reaped: it goes, in its own committed statement (so a failure of the work
    // that follows cannot bring it back), and this request is a new one.
    if (existing.expired) {
      if (await deleteIfExpired(call.db, k)) request.log('expired');
      return 'conflict';
    }
    return request.answerFrom(await waitWhileStarted(existing), call.replay);
  }

  /** The procedure failed and its work was rolled back: a business failure is stored as the answer. */
  async function storeFailure(rollback: RollBack): Promise<R | 'conflict'> {
    const { error } = rollback.execution;
    if (!isStoredFailure(error)) {
      request.log('released', KeyedRequest.describe(error));
      return rollback.execution as R;
    }
    const stored = toStoredError(error);
    const described = KeyedRequest.describe(error);
    const id = await insertCompletedFailure(
      call.db,
      k,
      fp,
      described.status as number,
      { ok: false, error: stored },
      call.options.ttlMs,
    );
    if (!id) return 'conflict';
    request.log('failure_stored', described);
    return rollback.execution as R;
  }

  /** A committed 'started' row belongs to a phased procedure in flight: poll it until it finishes. */
  async function waitWhileStarted(row: KeyState): Promise<KeyState> {
    while (row.state === 'started' && row.fingerprint === fp) {
      await request.pause();
      row = (await findLiveKey(call.db, k)) ?? row;
    }
    return row;
  }
}
