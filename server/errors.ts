/**
 * Every error the shop throws on purpose, in one table: its machine-readable `errorCode` (sent in
 * the tRPC error's `data.errorCode`), the tRPC code that sets the HTTP status, and the message a
 * person reads. Clients branch on `errorCode`, never on message text or on the status alone:
 * a 400 can be bad input or a missing key, and those need different handling. The errors about
 * idempotency keys are the layer's own (server/idempotency/errors.ts); both reach the client the
 * same way, through the error formatter in server/trpc.ts.
 */
import { TRPCError } from '@trpc/server';
import type { ZodError } from 'zod';

type TRPCCode = TRPCError['code'];

export const errorCatalog = {
  // Input and domain (400: fix the request; retrying it unchanged fails the same way)
  VALIDATION_FAILED: { code: 'BAD_REQUEST', message: 'The request is invalid.' },
  UNKNOWN_PRODUCT: { code: 'BAD_REQUEST', message: 'No product with this id is in the catalog.' },
  MIXED_CURRENCIES: { code: 'BAD_REQUEST', message: 'All items of one order must be priced in the same currency.' },
  ORDER_NOT_FOUND: { code: 'NOT_FOUND', message: 'No such order for this customer.' },
  BODY_TOO_LARGE: { code: 'PAYLOAD_TOO_LARGE', message: 'The request body is larger than this API takes.' },
  // A business failure: stored with the idempotency key and replayed, like a success.
  PRODUCT_SOLD_OUT: { code: 'CONFLICT', message: 'This product is sold out. Remove it from your cart and try again.' },
  PAYMENT_DECLINED: { code: 'PAYMENT_REQUIRED', message: 'The card was declined. Choose another card and try again.' },
  CHECKOUT_ABANDONED: {
    code: 'CONFLICT',
    message:
      'This checkout was abandoned before payment and has been cancelled. Nothing was charged; start a new checkout.',
  },
  PAYMENT_REFUSED_BY_PROVIDER: {
    code: 'CONFLICT',
    message:
      'The payment provider refused this payment for good, so nothing was charged. Choose another card, or contact ' +
      'the shop.',
  },
  CHECKOUT_GAVE_UP: {
    code: 'CONFLICT',
    message:
      'We could not finish this checkout: the payment provider kept failing, so nothing more will be tried on its ' +
      'own. The shop will check what the provider holds and set it right; you will not be charged twice.',
  },
  REFUND_EXCEEDS_PAYMENT: {
    code: 'BAD_REQUEST',
    message: 'The refund is larger than what is left to refund on this order.',
  },
  REFUND_REFUSED_BY_PROVIDER: {
    code: 'CONFLICT',
    message:
      'The payment provider refused this refund for good, so nothing was refunded by this request and the amount can ' +
      'be refunded again.',
  },
  REFUND_GAVE_UP: {
    code: 'CONFLICT',
    message:
      'We could not finish this refund: the payment provider kept failing. The shop will check what the provider ' +
      'holds and set it right.',
  },
  ORDER_NOT_REFUNDABLE: { code: 'BAD_REQUEST', message: 'Only a paid order can be refunded.' },
  // The provider timed out, failed or asked us to slow down: nothing is final yet.
  PROVIDER_UNAVAILABLE: {
    code: 'SERVICE_UNAVAILABLE',
    message:
      'The payment provider did not answer. Nothing is lost: retry with the same Idempotency-Key and the payment ' +
      'resumes where it stopped, without charging twice.',
  },
  BENCH_BASELINE_DISABLED: {
    code: 'NOT_FOUND',
    message:
      'The benchmark baseline is off here. npm run bench turns it on (ENABLE_BENCH_BASELINE=1) for its own server.',
  },
  LAB_DISABLED: {
    code: 'NOT_FOUND',
    message: 'The retry lab is off here. It is on in development and tests; set ENABLE_LAB=1 to turn it on.',
  },
  LAB_CUSTOMER_REQUIRED: {
    code: 'FORBIDDEN',
    message: "The lab's unsafe twins only ever run for the lab's own customers, never for a real one.",
  },
  LAB_SCENARIO_UNKNOWN: { code: 'BAD_REQUEST', message: 'No lab scenario has this id.' },
  LAB_NEEDS_SIMULATOR: {
    code: 'BAD_REQUEST',
    message:
      'This scenario scripts faults at the payment simulator, which is not in use here (STRIPE_API_BASE is unset).',
  },
  LAB_RUN_NOT_FOUND: { code: 'NOT_FOUND', message: 'No lab run has this id.' },

  // Customer identity (401)
  CUSTOMER_COOKIE_MISSING: {
    code: 'UNAUTHORIZED',
    message: 'No customer cookie was sent. This response set one: send it back and retry.',
  },
  CUSTOMER_COOKIE_INVALID: {
    code: 'UNAUTHORIZED',
    message: 'The customer cookie failed its signature check and was not trusted. A new one was set: retry with it.',
  },
} as const satisfies Record<string, { code: TRPCCode; message: string }>;

export type ErrorCode = keyof typeof errorCatalog;

/** A deliberate error with a stable `errorCode`. `detail` is appended to the catalog message. */
export class AppError extends TRPCError {
  readonly errorCode: ErrorCode;
  /** The input field at fault, if any, and what is wrong with it (for `data.fieldErrors`). */
  readonly field: { path: string; problem: string } | undefined;

  constructor(errorCode: ErrorCode, options: { detail?: string; field?: string; cause?: unknown } = {}) {
    const problem = [errorCatalog[errorCode].message, options.detail].filter(Boolean).join(' ');
    super({
      code: errorCatalog[errorCode].code,
      message: options.field ? `${options.field}: ${problem}` : problem,
      cause: options.cause,
    });
    this.name = 'AppError';
    this.errorCode = errorCode;
    this.field = options.field ? { path: options.field, problem } : undefined;
  }
}

/**
 * A validation failure as people read it: `items[1].quantity: must be from 1 to 99`, one entry per
 * field (the first problem of each), so the message names exactly what to fix.
 */
export function describeZodError(error: ZodError): { message: string; fields: Record<string, string> } {
  const fields: Record<string, string> = {};
  for (const issue of error.issues) {
    const path = issue.path
      .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
      .join('')
      .replace(/^\./, '');
    fields[path || 'input'] ??= issue.message;
  }
  return {
    message: Object.entries(fields)
      .map(([f, m]) => `${f}: ${m}`)
      .join('; '),
    fields,
  };
}

/** The message a client reads for this error (the same text the HTTP error formatter sends). */
export function clientMessage(error: TRPCError): string {
  const cause = error.cause as ZodError | undefined;
  return cause?.name === 'ZodError' ? describeZodError(cause).message : error.message;
}
