/**
 * The tRPC context: built once per HTTP request (or per test caller), before any procedure runs.
 *
 * It carries the database handle, so a middleware can swap in a transaction for the procedure
 * (that is how `idempotentProcedure` makes the order and its stored result commit together).
 */
import type { TRPCRequestInfo } from '@trpc/server/http';
import type { DbOrTx } from '../db/client';
import { type CustomerIdentity, resolveCustomer } from './customer';
import { getDatabase } from './db';
import { getEnv } from './env.js';
import { refuseKeyedBatches } from './idempotency/trpc';

export interface Context {
  db: DbOrTx;
  customer: CustomerIdentity;
  /** The request's headers: the idempotency middleware reads `Idempotency-Key` from here. */
  headers: Headers;
  /** Headers for the response: Set-Cookie, Idempotent-Replayed, Retry-After. */
  resHeaders: Headers;
}

export function createContext(opts: { req: Request; resHeaders: Headers; info?: TRPCRequestInfo }): Context {
  refuseKeyedBatches(opts.info); // before any call of the batch runs
  return {
    db: getDatabase().db,
    customer: resolveCustomer(opts.req, opts.resHeaders, getEnv().COOKIE_SECRET),
    headers: opts.req.headers,
    resHeaders: opts.resHeaders,
  };
}
