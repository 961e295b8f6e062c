/**
 * The tRPC side of the layer: two middlewares that make a procedure keyed. The app's tRPC init
 * (server/trpc.ts) puts them into builders, so a procedure needs no code of its own for keys.
 *
 * Both read the key from `ctx.headers`, answer replays and refusals themselves, and set the
 * response headers (`Idempotent-Replayed`, `Retry-After`) on `ctx.resHeaders`.
 */
import { experimental_standaloneMiddleware } from '@trpc/server';
import type { TRPCRequestInfo } from '@trpc/server/http';
import type { Db, DbOrTx } from '../../db/client';
import { IdempotencyError } from './errors';
import { type OneTransactionOptions, runIdempotent } from './one-transaction';
import { type PhaseOptions, runPhased } from './phased';

/** What the app's context must hold before a keyed procedure runs. */
export interface KeyedContext {
  db: DbOrTx;
  headers: Headers;
  resHeaders: Headers;
  /** Whose keys these are (the customer, the tenant): the same key from another scope is another key. */
  idempotencyScope: string;
}

// The middlewares made here: a procedure that has one of them is keyed.
const keyedMiddlewares = new WeakSet<object>();
function remember<T extends { _middlewares: object[] }>(made: T): T {
  for (const fn of made._middlewares) keyedMiddlewares.add(fn);
  return made;
}

/**
 * Call from the app's createContext: refuses a batch that contains a keyed procedure, before any call
 * of it runs. A batch shares one set of headers, so its calls would share one Idempotency-Key.
 */
export function refuseKeyedBatches(info: TRPCRequestInfo | undefined): void {
  if (!info?.isBatchCall) return;
  // tRPC keeps a procedure's middlewares in `_def.middlewares` (not in its public types).
  const middlewaresOf = (call: TRPCRequestInfo['calls'][number]) =>
    (call.procedure?._def as { middlewares?: object[] } | undefined)?.middlewares ?? [];
  const keyed = info.calls.some((call) => middlewaresOf(call).some((fn) => keyedMiddlewares.has(fn)));
  if (keyed) throw new IdempotencyError('IDEMPOTENCY_BATCH_REFUSED');
}

/** A replay skips the procedure: the middleware answers itself, in tRPC's result shape. */
const replayResult = (data: unknown) => ({
  ok: true as const,
  data,
  marker: 'middlewareMarker' as never,
  ctx: undefined as never,
});

/**
 * One transaction: the procedure's `ctx.db` becomes the transaction that claims the key and stores
 * the answer, and `ctx.idempotencyKeyId` the claimed key row.
 */
export function oneTransactionIdempotency(options: () => OneTransactionOptions) {
  return remember(
    experimental_standaloneMiddleware<{ ctx: KeyedContext }>().create(async function idempotency({
      ctx,
      path,
      getRawInput,
      next,
    }) {
      return runIdempotent({
        db: ctx.db,
        scope: ctx.idempotencyScope,
        procedure: path,
        rawInput: await getRawInput(),
        headers: ctx.headers,
        resHeaders: ctx.resHeaders,
        options: options(),
        execute: (tx, keyId) => next({ ctx: { db: tx, idempotencyKeyId: keyId } }),
        replay: replayResult,
      });
    }),
  );
}

/** Phased: the procedure gets `ctx.steps` (see phased.ts) and runs its steps on the pool. */
export function phasedIdempotency(options: () => PhaseOptions) {
  return remember(
    experimental_standaloneMiddleware<{ ctx: KeyedContext }>().create(async function phasedIdempotency({
      ctx,
      path,
      getRawInput,
      next,
    }) {
      return runPhased({
        db: ctx.db as Db, // the pool: each step opens its own transaction
        scope: ctx.idempotencyScope,
        procedure: path,
        rawInput: await getRawInput(),
        headers: ctx.headers,
        resHeaders: ctx.resHeaders,
        options: options(),
        execute: (steps) => next({ ctx: { steps } }),
        replay: replayResult,
      });
    }),
  );
}
