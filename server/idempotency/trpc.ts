/**
 * The tRPC side of the layer: two procedure builders an app joins to its own with `.concat()`, and
 * the batch guard its createContext calls. Both builders read the key from `ctx.headers`, answer
 * replays and refusals themselves, and set the response headers (`Idempotent-Replayed`,
 * `Retry-After`) on `ctx.resHeaders`; the procedure that follows has no code about keys.
 *
 *   const keyed = createIdempotency<Db>({ options: () => ({ ttlMs, waitMs, leaseMs }) });
 *   const placeOrder = customerProcedure.input(schema).concat(keyed.oneTransaction).mutation(...)
 *
 * The input comes first (`.input()` before `.concat()`): invalid input is a 400 whatever the key's
 * state, and nothing is stored for it.
 */
import { initTRPC } from '@trpc/server';
import type { TRPCRequestInfo } from '@trpc/server/http';
import type { KeyDatabase, TransactionOf } from './db';
import { IdempotencyError } from './errors';
import { IDEMPOTENCY_HEADER } from './key';
import { runIdempotent } from './one-transaction';
import { runPhased, type Steps } from './phased';

/** What the app's context must hold before a keyed procedure runs. */
export interface KeyedContext<TDb extends KeyDatabase = KeyDatabase> {
  /** The pool (not a transaction): the layer opens its own transactions on it. */
  db: TDb;
  /** The request's headers: the key is read from `Idempotency-Key`. */
  headers: Headers;
  /** The response's headers: `Idempotent-Replayed`, `Retry-After`. */
  resHeaders: Headers;
  /** Whose keys these are (the customer, the tenant): the same key from another scope is another key. */
  idempotencyScope: string;
}

export interface IdempotencyOptions {
  /** How long a key and its answer are kept (then the same key is a new request). */
  ttlMs: number;
  /** How long a duplicate waits for an in-flight first request before 409; 0: at once. */
  waitMs: number;
  /** Phased procedures: how long a holder's lease lasts without a step renewing it. */
  leaseMs: number;
}

/**
 * A replay answers without running the procedure. tRPC's public API has no way for a middleware to
 * return a result without calling `next()` (https://github.com/trpc/trpc/issues/4066, open); its
 * procedure caller reads only `ok` and `data` from what a middleware returns (`createProcedureCaller` in
 * https://github.com/trpc/trpc/blob/main/packages/server/src/unstable-core-do-not-import/procedureBuilder.ts).
 * So the result is built here, in tRPC's shape, in this one place; `trpc.test.ts` fails if an upgrade of
 * tRPC stops accepting it.
 */
function answerWithoutRunning<R>(data: unknown): R {
  return { ok: true, data } as R;
}

/**
 * The keyed builders for an app whose database is `TDb` (its Drizzle database on postgres.js), so that
 * the procedure's `ctx.db` is typed with the app's own schema.
 */
export function createIdempotency<TDb extends KeyDatabase>(config: { options: () => IdempotencyOptions }) {
  const t = initTRPC.context<KeyedContext<TDb>>().create();
  return {
    /**
     * The whole effect is in the database: the procedure's `ctx.db` becomes the transaction that
     * claims the key and stores the answer (they commit together or not at all), and
     * `ctx.idempotencyKeyId` is the claimed key row.
     */
    oneTransaction: t.procedure.use(async function oneTransactionIdempotency({ ctx, path, getRawInput, next }) {
      const execute = (tx: TransactionOf<TDb>, keyId: string) => next({ ctx: { db: tx, idempotencyKeyId: keyId } });
      return runIdempotent<TDb, Awaited<ReturnType<typeof execute>>>({
        db: ctx.db,
        scope: ctx.idempotencyScope,
        procedure: path,
        rawInput: await getRawInput(),
        headers: ctx.headers,
        resHeaders: ctx.resHeaders,
        options: config.options(),
        execute,
        replay: answerWithoutRunning,
      });
    }),
    /**
     * An effect outside the database (a card charge): the procedure gets `ctx.steps` (see phased.ts)
     * and runs its work as steps, each its own transaction on the pool, around the outside calls.
     */
    phased: t.procedure.use(async function phasedIdempotency({ ctx, path, getRawInput, next }) {
      const execute = (steps: Steps<TransactionOf<TDb>>) => next({ ctx: { steps } });
      return runPhased<TDb, Awaited<ReturnType<typeof execute>>>({
        db: ctx.db,
        scope: ctx.idempotencyScope,
        procedure: path,
        rawInput: await getRawInput(),
        headers: ctx.headers,
        resHeaders: ctx.resHeaders,
        options: config.options(),
        execute,
        replay: answerWithoutRunning,
      });
    }),
  };
}

/**
 * Call from the app's createContext: refuses a batch that carries an `Idempotency-Key`, before any
 * of its calls runs. A batch shares one set of headers, so its calls would share one key: a second
 * keyed call would be answered with the first one's result, or refused as a reuse. A keyed procedure
 * in a batch without the header is refused on its own, like any keyed call without a key.
 *
 * Deciding by the header, not by which procedures are keyed, keeps to tRPC's public API: the
 * procedure a batched call resolves to is marked `@internal` (`TRPCRequestInfoProcedureCall.procedure`
 * in https://github.com/trpc/trpc/blob/main/packages/server/src/unstable-core-do-not-import/http/types.ts).
 */
export function refuseKeyedBatch(info: TRPCRequestInfo | undefined, headers: Headers): void {
  if (info?.isBatchCall && headers.has(IDEMPOTENCY_HEADER)) throw new IdempotencyError('IDEMPOTENCY_BATCH_REFUSED');
}
