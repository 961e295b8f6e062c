/**
 * One keyed request, as both runners see it (one-transaction.ts and phased.ts): the key read and
 * checked, the fingerprint, the deadline for waiting on an in-flight duplicate, and the answers that
 * do not run the procedure (a replay, 422, 409). Everything here is the same for both kinds.
 */

import type { TRPCError } from '@trpc/server';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import { errorCodeOf, IdempotencyError, ReplayedError } from './errors';
import { type Decision, reportDecision } from './hooks';
import { fingerprint, keyTag, parseIdempotencyKey } from './key';
import type { IdempotencyKey } from './schema';
import type { KeyId, StoredResponse } from './store';

/** What the procedure gave: tRPC's middleware result has this shape. */
export type Execution = { ok: true; data: unknown } | { ok: false; error: TRPCError };

export interface KeyedCall {
  /** Whose key it is: the same key from another scope is another key. */
  scope: string;
  /** The procedure path; part of the key and of the fingerprint. */
  procedure: string;
  rawInput: unknown;
  headers: Headers;
  resHeaders: Headers;
}

// Seconds a client should wait before retrying a 409 IN_USE: long enough for a typical checkout
// (well under a second here) to finish, short enough that the customer barely notices.
export const RETRY_AFTER_SECONDS = 1;
// Polling a committed in-flight key: start fast (most checkouts end within tens of milliseconds),
// back off to 250 ms so that many waiting duplicates cost little.
const POLL_START_MS = 25;
const POLL_MAX_MS = 250;

const NOT_STORED_STATUSES = new Set([400, 401, 403, 408, 413, 429, 499]);

/**
 * A deliberate business failure: a 4xx that is not about the request's form (400), identity (401,
 * 403) or rate (429), and not about the key. These are answers: a retry must get the same answer.
 */
export function isStoredFailure(error: TRPCError): boolean {
  if (error instanceof IdempotencyError) return false;
  const status = getHTTPStatusCodeFromError(error);
  return status > 400 && status < 500 && !NOT_STORED_STATUSES.has(status);
}

/** What an answer needs from a key's row. */
export type KeyState = Pick<IdempotencyKey, 'state' | 'fingerprint' | 'responseStatus' | 'responseBody'>;

export class KeyedRequest {
  readonly k: KeyId;
  readonly fp: string;
  readonly started = Date.now();
  readonly deadline: number;
  /** Set once this request has seen the key held by another: its replay is "waited_then_replayed". */
  waited = false;
  private delay = POLL_START_MS;
  private readonly tag: string;

  /** Reads and checks the key: a missing or malformed one is logged and refused with its 400. */
  constructor(
    readonly call: KeyedCall,
    waitMs: number,
    private tags: Record<string, unknown> = {},
  ) {
    // A caller's X-Request-Id (printable, short) tags the decision, to tie it to the request that made it.
    const requestId = call.headers.get('x-request-id');
    if (requestId && /^[\x21-\x7e]{1,64}$/.test(requestId)) this.tags = { ...tags, requestId };
    const parsed = parseIdempotencyKey(call.headers);
    if (!parsed.ok) {
      reportDecision({
        decision: parsed.reason,
        procedure: call.procedure,
        scope: call.scope,
        problem: parsed.problem,
        ...this.tags,
      });
      throw new IdempotencyError(
        parsed.reason === 'missing' ? 'IDEMPOTENCY_KEY_REQUIRED' : 'IDEMPOTENCY_KEY_INVALID',
        parsed.reason === 'invalid' ? `(${parsed.problem})` : undefined,
      );
    }
    this.k = { scope: call.scope, procedure: call.procedure, key: parsed.key };
    this.fp = fingerprint(call.procedure, call.rawInput);
    this.tag = keyTag(parsed.key);
    this.deadline = this.started + waitMs;
  }

  log(decision: Decision, extra: Record<string, unknown> = {}): void {
    reportDecision({
      decision,
      procedure: this.k.procedure,
      scope: this.k.scope,
      keyTag: this.tag,
      ms: Date.now() - this.started,
      ...this.tags,
      ...extra,
    });
  }

  /** The answer a completed row gives this request: its stored result, or 422 for other input. */
  answerFrom<R>(row: KeyState, replay: (data: unknown) => R): R {
    this.refuseOtherInput(row);
    this.call.resHeaders.set('Idempotent-Replayed', 'true');
    this.log(this.waited ? 'waited_then_replayed' : 'replayed', { status: row.responseStatus });
    const body = row.responseBody as StoredResponse;
    if (body.ok) return replay(body.data);
    throw new ReplayedError(body.error);
  }

  /** 422 when the row was made by a request with other input: nothing runs. */
  refuseOtherInput(row: Pick<KeyState, 'fingerprint'>): void {
    if (row.fingerprint === this.fp) return;
    this.log('reused_with_different_input');
    throw new IdempotencyError('IDEMPOTENCY_KEY_REUSED');
  }

  /** 409 with Retry-After: someone holds the key and did not finish within the bound. */
  inUse(extra: Record<string, unknown> = {}): never {
    this.call.resHeaders.set('Retry-After', String(RETRY_AFTER_SECONDS));
    this.log('in_use', extra);
    throw new IdempotencyError('IDEMPOTENCY_KEY_IN_USE');
  }

  /** Waits before looking at an in-flight key again (backing off); answers 409 once past the deadline. */
  async pause(): Promise<void> {
    if (Date.now() + this.delay > this.deadline) this.inUse();
    this.waited = true;
    await new Promise((r) => setTimeout(r, this.delay));
    this.delay = Math.min(this.delay * 2, POLL_MAX_MS);
  }

  /** The status and machine code of a failed execution, for the log line. */
  static describe(error: TRPCError): Record<string, unknown> {
    return { status: getHTTPStatusCodeFromError(error), errorCode: errorCodeOf(error) };
  }
}
