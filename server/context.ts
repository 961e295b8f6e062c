/**
 * The tRPC context: built once per HTTP request (or per test caller), before any procedure runs.
 *
 * It carries the database handle, so a middleware can swap in a transaction for the procedure
 * (that is how `idempotentProcedure` makes the order and its stored result commit together).
 */
import type { TRPCRequestInfo } from '@trpc/server/http';
import type { Db } from '../db/client';
import { type CustomerIdentity, resolveCustomer } from './customer';
import { getDatabase } from './db';
import { getEnv } from './env.js';
import { refuseKeyedBatch } from './idempotency';

/** The app's own HTTP handlers, handed to the context by server/http.ts (the lab sends its requests through them). */
export interface InProcessHandlers {
  api: (req: Request) => Promise<Response>;
  webhook: (req: Request) => Promise<Response>;
}

export interface Context {
  /** The pool. A keyed procedure gets its transaction here instead (`idempotentProcedure`). */
  db: Db;
  customer: CustomerIdentity;
  /** The request's headers: the idempotency middleware reads `Idempotency-Key` from here. */
  headers: Headers;
  /** Headers for the response: Set-Cookie, Idempotent-Replayed, Retry-After. */
  resHeaders: Headers;
  /** The handlers this request came through, when it came over HTTP (not for in-process test callers). */
  handlers?: InProcessHandlers;
}

export function createContext(opts: {
  req: Request;
  resHeaders: Headers;
  info?: TRPCRequestInfo;
  handlers?: InProcessHandlers;
}): Context {
  refuseKeyedBatch(opts.info, opts.req.headers); // before any call of the batch runs
  return {
    db: getDatabase().db,
    customer: resolveCustomer(opts.req, opts.resHeaders, getEnv().COOKIE_SECRET),
    headers: opts.req.headers,
    resHeaders: opts.resHeaders,
    handlers: opts.handlers,
  };
}
