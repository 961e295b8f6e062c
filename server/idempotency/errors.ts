/**
 * The errors of the idempotency layer, and how the errors of a procedure are stored and replayed.
 *
 * Every error here carries a machine-readable `errorCode` (the IETF draft leaves 422 ambiguous:
 * a client must be able to tell "key reused" from "invalid input" without reading the message).
 * Statuses follow the draft: missing or malformed key 400, reused with other input 422, in use 409.
 */
import { TRPCError } from '@trpc/server';

type TRPCCode = TRPCError['code'];

export const idempotencyErrors = {
  IDEMPOTENCY_KEY_REQUIRED: {
    code: 'BAD_REQUEST',
    message:
      'This operation needs an Idempotency-Key header: a new random value (a UUID) for each new request, sent again ' +
      'unchanged with every retry of it.',
  },
  IDEMPOTENCY_KEY_INVALID: {
    code: 'BAD_REQUEST',
    message:
      'The Idempotency-Key header is malformed: use 1 to 255 printable ASCII characters (a UUID is recommended).',
  },
  IDEMPOTENCY_KEY_REUSED: {
    code: 'UNPROCESSABLE_CONTENT',
    message:
      'This Idempotency-Key was already used for a different request. Use a new key for a new request; send the same ' +
      'key only to retry the exact same request.',
  },
  IDEMPOTENCY_KEY_IN_USE: {
    code: 'CONFLICT',
    message:
      'A request with this Idempotency-Key is still being processed. Retry with the same key after the Retry-After ' +
      'delay.',
  },
  IDEMPOTENCY_BATCH_REFUSED: {
    code: 'BAD_REQUEST',
    message:
      'Keyed mutations cannot travel in a batch: a batch shares one set of headers, so its calls would share one ' +
      'Idempotency-Key. Nothing was run. Send them one request each, each with its own key.',
  },
} as const satisfies Record<string, { code: TRPCCode; message: string }>;

export type IdempotencyErrorCode = keyof typeof idempotencyErrors;

/** An error of the layer itself, never stored with a key: it is about the key, not an answer. */
export class IdempotencyError extends TRPCError {
  readonly errorCode: IdempotencyErrorCode;

  constructor(errorCode: IdempotencyErrorCode, detail?: string) {
    const { code, message } = idempotencyErrors[errorCode];
    super({ code, message: detail ? `${message} ${detail}` : message });
    this.name = 'IdempotencyError';
    this.errorCode = errorCode;
  }
}

/** The machine-readable code of a deliberate error (any error with a string `errorCode`), or null. */
export function errorCodeOf(error: unknown): string | null {
  const code = (error as { errorCode?: unknown } | null)?.errorCode;
  return typeof code === 'string' ? code : null;
}

/** The input field a deliberate error is about, if it names one. */
export function fieldOf(error: unknown): { path: string; problem: string } | undefined {
  const field = (error as { field?: { path: string; problem: string } } | null)?.field;
  return field && typeof field.path === 'string' ? field : undefined;
}

/** An error as stored with an idempotency key: everything a client sees of it. */
export interface StoredError {
  code: TRPCCode;
  errorCode: string | null;
  message: string;
  field?: { path: string; problem: string };
}

export function toStoredError(error: TRPCError): StoredError {
  const field = fieldOf(error);
  return { code: error.code, errorCode: errorCodeOf(error), message: error.message, ...(field ? { field } : {}) };
}

/** A stored error, thrown again on replay: same tRPC code (so same status), errorCode, field and message. */
export class ReplayedError extends TRPCError {
  readonly errorCode: string | null;
  readonly field: { path: string; problem: string } | undefined;

  constructor(stored: StoredError) {
    super({ code: stored.code, message: stored.message });
    this.name = 'ReplayedError';
    this.errorCode = stored.errorCode;
    this.field = stored.field;
  }
}
