/**
 * tRPC init: the only file that touches `initTRPC`. It exports builders, never the raw `t` object.
 *
 * Which builder to use:
 * - `publicProcedure`   anyone, no customer needed (the catalog).
 * - `customerProcedure` `ctx.customerId` is a verified customer. Mutations require a cookie the
 *                       client already had, so a client that drops cookies cannot scatter orders
 *                       over fresh identities.
 * - `idempotentProcedure` for every mutation with an effect: safe to retry. It requires an
 *                       `Idempotency-Key` header, and the handler's `ctx.db` is the transaction in
 *                       which its answer is stored with the key (see server/idempotency/).
 *                       The handler needs no code of its own for keys.
 * - `phasedProcedure`   like `idempotentProcedure`, for work that calls the payment provider:
 *                       the handler runs as `ctx.steps.step(...)` transactions around the
 *                       provider calls, and resumes where it stopped (server/idempotency/phases.ts).
 */
import { initTRPC } from '@trpc/server';
import { ZodError } from 'zod';
import type { Context } from './context';
import { getEnv } from './env.js';
import type { Db } from '../db/client';
import { runIdempotent } from './idempotency/middleware';
import { runPhased } from './idempotency/phases';
import { testStepHooks } from './test-hooks';
import { AppError, describeZodError, errorCodeOf, fieldOf } from './errors';

const t = initTRPC.context<Context>().create({
  errorFormatter({ shape, error }) {
    const zod = error.cause instanceof ZodError ? describeZodError(error.cause) : undefined;
    const errorCode = errorCodeOf(error) ?? (zod ? 'VALIDATION_FAILED' : null);
    const field = fieldOf(error);
    // An unexpected error's message can hold SQL or internals: the client gets a generic one.
    const message =
      zod?.message ??
      (error.code === 'INTERNAL_SERVER_ERROR' && errorCode === null
        ? 'Something went wrong on our side. Retrying is safe.'
        : shape.message);
    return {
      ...shape,
      message,
      data: {
        ...shape.data,
        errorCode,
        fieldErrors: zod?.fields ?? (field ? { [field.path]: field.problem } : null),
      },
    };
  },
});

export const router = t.router;
export const createCallerFactory = t.createCallerFactory;
export const publicProcedure = t.procedure;

export const customerProcedure = t.procedure.use(function requireCustomer({ ctx, type, next }) {
  const { customer } = ctx;
  if (customer.status === 'rejected') throw new AppError('CUSTOMER_COOKIE_INVALID');
  if (customer.status === 'minted' && type === 'mutation') throw new AppError('CUSTOMER_COOKIE_MISSING');
  return next({ ctx: { customerId: customer.id } });
});

export const idempotentProcedure = customerProcedure.use(async function idempotency(opts) {
  const { ctx, path, getRawInput, next } = opts;
  const env = getEnv();
  return runIdempotent({
    db: ctx.db,
    scope: ctx.customerId, // keys are per customer: another customer's key is another key
    procedure: path,
    rawInput: await getRawInput(),
    headers: ctx.headers,
    resHeaders: ctx.resHeaders,
    options: { ttlMs: env.IDEMPOTENCY_KEY_TTL_HOURS * 3_600_000, waitMs: env.IDEMPOTENCY_WAIT_MS },
    execute: (tx, keyId) => next({ ctx: { db: tx, idempotencyKeyId: keyId } }),
    // A replay skips the procedure: the middleware answers itself, in tRPC's result shape.
    replay: (data) => ({ ok: true as const, data, marker: 'middlewareMarker' as never, ctx: undefined as never }),
  });
});

export const phasedProcedure = customerProcedure.use(async function phasedIdempotency(opts) {
  const { ctx, path, getRawInput, next } = opts;
  const env = getEnv();
  return runPhased({
    db: ctx.db as Db, // the pool: each step opens its own transaction
    scope: ctx.customerId,
    procedure: path,
    rawInput: await getRawInput(),
    headers: ctx.headers,
    resHeaders: ctx.resHeaders,
    options: {
      ttlMs: env.IDEMPOTENCY_KEY_TTL_HOURS * 3_600_000,
      waitMs: env.IDEMPOTENCY_WAIT_MS,
      leaseMs: env.IDEMPOTENCY_LEASE_MS,
    },
    execute: (steps) => next({ ctx: { steps } }),
    replay: (data) => ({ ok: true as const, data, marker: 'middlewareMarker' as never, ctx: undefined as never }),
    hooks: testStepHooks(ctx.headers),
  });
});
