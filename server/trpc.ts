/**
 * tRPC init: the only file that touches `initTRPC`. It exports builders, never the raw `t` object.
 *
 * Which builder to use:
 * - `publicProcedure`     anyone, no customer needed (the catalog).
 * - `customerProcedure`   `ctx.customerId` is a verified customer (or, for a query, the new one its
 *                         response makes). Mutations require a cookie the client already had.
 * - `idempotentProcedure` every mutation whose effect is all in the database: safe to retry. It
 *                         requires an `Idempotency-Key` header, and the handler's `ctx.db` is the
 *                         transaction in which its answer is stored with the key.
 * - `phasedProcedure`     the same contract for work that calls the payment provider: the handler
 *                         runs as `ctx.steps.step(...)` transactions around the provider calls.
 * The keyed builders come from server/idempotency/; a handler built from them has no key code.
 */
import { initTRPC } from '@trpc/server';
import { ZodError, type ZodType } from 'zod';
import type { Db } from '../db/client';
import type { Context } from './context';
import { idempotencyOptions } from './env.js';
import { AppError, describeZodError } from './errors';
import { createIdempotency, errorCodeOf, fieldOf } from './idempotency';

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
  // A query is answered as the customer of the new cookie (it sees nothing of anyone); a mutation
  // needs a cookie the client already had, so a client that drops or damages cookies cannot
  // scatter orders over fresh identities.
  if (customer.status === 'rejected' && type === 'mutation') throw new AppError('CUSTOMER_COOKIE_INVALID');
  if (customer.status === 'minted' && type === 'mutation') throw new AppError('CUSTOMER_COOKIE_MISSING');
  // Keys are per customer: the same key from another customer is another key.
  return next({ ctx: { customerId: customer.id, idempotencyScope: customer.id } });
});

// The keyed builders of the idempotency layer, typed with the shop's database.
const keyed = createIdempotency<Db>({ options: idempotencyOptions });

// The input is validated before the key is looked at (`.input()` before `.concat()`): invalid input
// is a 400 whatever the key's state (never a 422 or a replay), and nothing is stored for it.
export const idempotentProcedure = {
  input: <TSchema extends ZodType>(schema: TSchema) => customerProcedure.input(schema).concat(keyed.oneTransaction),
};

export const phasedProcedure = {
  input: <TSchema extends ZodType>(schema: TSchema) => customerProcedure.input(schema).concat(keyed.phased),
};
