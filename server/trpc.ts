/**
 * tRPC init: the only file that touches `initTRPC`. It exports builders, never the raw `t` object.
 *
 * Which builder to use:
 * - `publicProcedure`   anyone, no customer needed (the catalog).
 * - `customerProcedure` `ctx.customerId` is a verified customer. Mutations require a cookie the
 *                       client already had, so a client that drops cookies cannot scatter orders
 *                       over fresh identities.
 */
import { initTRPC } from '@trpc/server';
import { ZodError } from 'zod';
import type { Context } from './context';
import { AppError, describeZodError } from './errors';

const t = initTRPC.context<Context>().create({
  errorFormatter({ shape, error }) {
    const zod = error.cause instanceof ZodError ? describeZodError(error.cause) : undefined;
    const errorCode = error instanceof AppError ? error.errorCode : zod ? 'VALIDATION_FAILED' : undefined;
    // An unexpected error's message can hold SQL or internals: the client gets a generic one.
    const message =
      zod?.message ??
      (error.code === 'INTERNAL_SERVER_ERROR' && !(error instanceof AppError)
        ? 'Something went wrong on our side. Retrying is safe.'
        : shape.message);
    return {
      ...shape,
      message,
      data: {
        ...shape.data,
        errorCode: errorCode ?? null,
        fieldErrors: zod?.fields ?? (error instanceof AppError && error.field ? { [error.field.path]: error.field.problem } : null),
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
