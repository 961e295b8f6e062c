'use client';
/**
 * One intent, one key: the client half of retry safety, for any keyed mutation.
 *
 * An *intent* is one thing the customer means to do once ("buy this cart"). It gets a key
 * (`crypto.randomUUID()`) when it starts, and that key goes with every request made for it: every
 * click, every automatic retry, every manual "Try again", and the request a reloaded page resumes.
 * The intent (key, input, when the key was made) is kept in sessionStorage, so a reload mid-request
 * lands on the same answer instead of making a second order.
 *
 * A new key is made only when there is a new intent: after a success (the next purchase is new),
 * after a final failure (a decline: paying again is a new attempt), or when the input changed (a
 * new payload with an old key would be refused with 422).
 *
 * A key is never sent once it is older than the server keeps keys (it says how long, in the
 * `Idempotency-Key-Retention` header), less a margin: the server would take it for a new request
 * and could order a second time. Such an intent is not resent but shown to the customer, with their
 * recent orders, to ask whether it went through ("expired").
 *
 * Clicks are not de-duplicated here on purpose: correctness comes from the server-side key, and a
 * double-click simply sends the same key twice.
 *
 * One page may hold several of these, one per kind of intent (the order page refunds with one): each
 * has its own `name`, so its own sessionStorage slot, key and state. After a success a hook takes no
 * new intent until the page says the customer means a new one (`startFresh`): a late click of a
 * double-click must never become a second purchase, or a second refund.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import { canonicalJson } from '@/shared/canonical-json';
import { keyTooOld, safetyMarginMs } from '@/shared/key-age';

// Automatic retries: up to 6 attempts within 45 s, backing off 0.25 s, 0.5 s, 1 s ... capped at 4 s,
// each with jitter so that many clients retrying after one outage do not arrive in lockstep.
export const MAX_ATTEMPTS = 6;
export const MAX_RETRY_WINDOW_MS = 45_000;
const BACKOFF_BASE_MS = 250;
const BACKOFF_CAP_MS = 4_000;
// One attempt that has not answered in 15 s is treated as lost and retried with the same key.
export const ATTEMPT_TIMEOUT_MS = 15_000;
// Waiting for the network to come back does not use up attempts, but is bounded too.
const MAX_OFFLINE_WAIT_MS = 5 * 60_000;

export type FailureKind = 'retryable' | 'reused' | 'final';

export interface Classified {
  kind: FailureKind;
  /** Server-requested delay (Retry-After), in ms. */
  retryAfterMs?: number;
  message: string;
  errorCode?: string | null;
}

interface ErrorLike {
  message?: string;
  name?: string;
  data?: { httpStatus?: number; errorCode?: string | null } | null;
  meta?: { response?: { headers?: { get(name: string): string | null } } };
  cause?: unknown;
}

/**
 * Which failures are safe to retry with the same key: those where the request may not have been
 * processed or may still be running (network error, timeout, 5xx, 409 IN_USE). Never: bad input
 * (400), a key reused for other input (422), or a business answer (sold out, declined): retrying
 * those gives the same answer.
 */
export function classifyFailure(error: unknown): Classified {
  const e = (error ?? {}) as ErrorLike;
  const status = e.data?.httpStatus;
  const errorCode = e.data?.errorCode ?? null;
  const message = e.message ?? 'Unknown error';
  if (status === undefined) return { kind: 'retryable', message }; // no answer: network, timeout, abort
  if (status >= 500) return { kind: 'retryable', message, errorCode };
  if (errorCode === 'IDEMPOTENCY_KEY_IN_USE') {
    const header = Number(e.meta?.response?.headers?.get('retry-after'));
    return {
      kind: 'retryable',
      message,
      errorCode,
      retryAfterMs: Number.isFinite(header) && header > 0 ? header * 1000 : undefined,
    };
  }
  if (errorCode === 'IDEMPOTENCY_KEY_REUSED') return { kind: 'reused', message, errorCode };
  return { kind: 'final', message, errorCode };
}

/** Exponential backoff with "equal jitter": half fixed, half random. `attempt` starts at 1. */
export function backoffMs(attempt: number, random: () => number = Math.random): number {
  const exp = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1));
  return exp / 2 + random() * (exp / 2);
}

/** Two inputs are the same intent when their canonical JSON (sorted keys) is the same. */
export function sameInput(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

export interface StoredIntent<TInput> {
  key: string;
  input: TInput;
  /** When the key was made (ms since the epoch, this browser's clock). */
  createdAt: number;
  /**
   * pending: a request may be in flight (a reloaded page resumes it);
   * failed:  the outcome is unknown (no answer, 5xx): "Try again" sends the same key;
   * over:    the outcome is final (a decline, a refusal): the next submit is a new intent.
   */
  state: 'pending' | 'failed' | 'over';
}

export { keyTooOld, safetyMarginMs };

/** Whether a submit of `input` continues `current` (same key) rather than starting a new intent. */
export function continues<TInput>(
  current: StoredIntent<TInput> | null,
  input: TInput,
): current is StoredIntent<TInput> {
  return current !== null && current.state !== 'over' && sameInput(current.input, input);
}

/**
 * What an intent becomes when its sending ends without success: a final answer (a decline, a
 * cancelled checkout, bad input) is `over`, and paying again is a new attempt with a new key; no
 * answer, or one that may not have been processed, leaves it `failed`, to continue with its key.
 */
export function intentStateAfter(last: Classified | null): 'failed' | 'over' {
  return last?.kind === 'retryable' ? 'failed' : 'over';
}

/**
 * What a submit sends: the current intent continued (same key), or a new intent (new key); or
 * nothing once an intent of this hook succeeded (`finished`) and the page has not started a new one.
 */
export function intentToSend<TInput>(
  current: StoredIntent<TInput> | null,
  input: TInput,
  finished: boolean,
  newKey: () => string = () => crypto.randomUUID(),
  now: number = Date.now(),
): StoredIntent<TInput> | null {
  if (finished) return null;
  return continues(current, input)
    ? { ...current, state: 'pending' }
    : { key: newKey(), input, createdAt: now, state: 'pending' };
}

/** The sessionStorage slot of a hook's pending intent: one per name (per kind of intent, per order...). */
export const intentSlot = (name: string) => `intent:${name}`;

export type Status = 'idle' | 'sending' | 'retrying' | 'offline' | 'failed' | 'succeeded' | 'expired';

export interface SendResult<TOutput> {
  data: TOutput;
  /** True when the server answered from a stored result (`Idempotent-Replayed: true`). */
  replayed: boolean;
}

export interface IdempotentMutationOptions<TInput, TOutput> {
  /** Names the sessionStorage slot: one pending intent per name per tab (`refund:<order id>`, say). */
  name: string;
  send: (input: TInput, key: string, signal: AbortSignal) => Promise<SendResult<TOutput>>;
  onSuccess: (data: TOutput, info: { replayed: boolean; key: string }) => void;
  /** How long the server keeps keys (ms), as it said; resolves once it has said so. */
  retention: () => Promise<number>;
}

export function useIdempotentMutation<TInput, TOutput>(options: IdempotentMutationOptions<TInput, TOutput>) {
  const storageKey = intentSlot(options.name);
  const [status, setStatus] = useState<Status>('idle');
  const [failure, setFailure] = useState<Classified | null>(null);
  const [expired, setExpired] = useState<StoredIntent<TInput> | null>(null);
  const [attempt, setAttempt] = useState(0);
  const done = useRef(false); // one outcome per intent, however many requests were sent
  const succeeded = useRef(false); // after a success no late click starts a new intent, until startFresh
  const inFlight = useRef(0);
  const optionsRef = useRef(options);
  optionsRef.current = options;

  const read = useCallback((): StoredIntent<TInput> | null => {
    try {
      return JSON.parse(sessionStorage.getItem(storageKey) ?? 'null') as StoredIntent<TInput> | null;
    } catch {
      return null;
    }
  }, [storageKey]);
  const write = useCallback(
    (intent: StoredIntent<TInput> | null) => {
      if (intent) sessionStorage.setItem(storageKey, JSON.stringify(intent));
      else sessionStorage.removeItem(storageKey);
    },
    [storageKey],
  );

  /** Stops before sending a key the server may have forgotten: the customer is asked instead. */
  const tooOld = useCallback(async (intent: StoredIntent<TInput>): Promise<boolean> => {
    if (!keyTooOld(intent, await optionsRef.current.retention())) return false;
    setExpired(intent);
    setStatus('expired');
    return true;
  }, []);

  const run = useCallback(
    async (intent: StoredIntent<TInput>) => {
      done.current = false;
      inFlight.current += 1;
      setStatus('sending');
      setFailure(null);
      const startedAt = Date.now();
      let last: Classified | null = null;
      try {
        for (let n = 1; n <= MAX_ATTEMPTS && !done.current; n++) {
          if (await tooOld(intent)) return;
          setAttempt(n);
          if (typeof navigator !== 'undefined' && !navigator.onLine) {
            setStatus('offline');
            await waitForOnline(MAX_OFFLINE_WAIT_MS);
            setStatus('retrying');
          }
          try {
            const result = await optionsRef.current.send(
              intent.input,
              intent.key,
              AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
            );
            if (done.current) return;
            done.current = true;
            succeeded.current = true;
            write(null); // success ends the intent: the next purchase gets a new key
            setStatus('succeeded');
            optionsRef.current.onSuccess(result.data, { replayed: result.replayed, key: intent.key });
            return;
          } catch (err) {
            if (done.current) return;
            last = classifyFailure(err);
            if (last.kind !== 'retryable') break;
            const delay = Math.max(backoffMs(n), last.retryAfterMs ?? 0);
            if (n === MAX_ATTEMPTS || Date.now() - startedAt + delay > MAX_RETRY_WINDOW_MS) break;
            setStatus('retrying');
            // the top of the loop waits for the network
            if (typeof navigator !== 'undefined' && !navigator.onLine) continue;
            await new Promise((r) => setTimeout(r, delay));
          }
        }
        if (done.current || inFlight.current > 1) return; // another click's request may still succeed
        write({ ...intent, state: intentStateAfter(last) });
        setFailure(last);
        setStatus('failed');
      } finally {
        inFlight.current -= 1;
      }
    },
    [write, tooOld],
  );

  /** Starts (or, for an unchanged input, continues) the intent. Safe to call on every click. */
  const submit = useCallback(
    (input: TInput) => {
      const intent = intentToSend(read(), input, succeeded.current);
      if (!intent) return;
      write(intent);
      void run(intent);
    },
    [read, write, run],
  );

  /**
   * The input of the intent still unfinished in this tab (in flight, resumed after a reload, or with no
   * answer yet), or null. A page whose input depends on what the server says (the amount left to
   * refund, which the refund itself changes) sends this again, so its key, instead of reading its form.
   */
  const unfinishedInput = useCallback((): TInput | null => {
    const intent = read();
    return intent && intent.state !== 'over' ? intent.input : null;
  }, [read]);

  /**
   * Drops the current intent: the next submit gets a new key (after a 422, say, or when the customer
   * asks for another refund after one succeeded).
   */
  const startFresh = useCallback(() => {
    succeeded.current = false;
    write(null);
    setFailure(null);
    setExpired(null);
    setStatus('idle');
  }, [write]);

  /** For an expired intent: the customer ordered again on purpose, so this is a new intent and key. */
  const orderAgain = useCallback(() => {
    const old = expired;
    startFresh();
    if (old) submit(old.input);
  }, [expired, startFresh, submit]);

  // A page reloaded while a request was in flight picks the intent up again, with the same key,
  // unless that key is too old to send.
  const [resumed, setResumed] = useState(false);
  useEffect(() => {
    const intent = read();
    if (intent?.state !== 'pending') return;
    setResumed(true);
    void tooOld(intent).then((old) => {
      if (!old) void run(intent);
    });
  }, [read, run, tooOld]);

  return { status, failure, attempt, resumed, expired, submit, startFresh, orderAgain, unfinishedInput };
}

function waitForOnline(maxMs: number): Promise<void> {
  return new Promise((resolve) => {
    const finish = () => {
      window.removeEventListener('online', finish);
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(finish, maxMs);
    window.addEventListener('online', finish);
    if (navigator.onLine) finish();
  });
}
