/** The retry policy of the checkout client: what is retried, and how long it waits. */
import { describe, expect, it } from 'vitest';
import {
  backoffMs,
  classifyFailure,
  continues,
  intentSlot,
  intentStateAfter,
  intentToSend,
  keyTooOld,
  sameInput,
} from './use-idempotent-mutation';

const trpcError = (httpStatus: number, errorCode: string | null, headers: Record<string, string> = {}) => ({
  message: 'm',
  data: { httpStatus, errorCode },
  meta: { response: { headers: new Headers(headers) } },
});

describe('classifyFailure: retry only what may not have been processed', () => {
  it.each([
    ['a network error (no HTTP answer)', { message: 'Failed to fetch' }, 'retryable'],
    ['a 500', trpcError(500, null), 'retryable'],
    ['a 503', trpcError(503, null), 'retryable'],
    ['409 IDEMPOTENCY_KEY_IN_USE', trpcError(409, 'IDEMPOTENCY_KEY_IN_USE'), 'retryable'],
    ['400 validation', trpcError(400, 'VALIDATION_FAILED'), 'final'],
    ['409 sold out (a business answer)', trpcError(409, 'PRODUCT_SOLD_OUT'), 'final'],
    ['401 cookie', trpcError(401, 'CUSTOMER_COOKIE_INVALID'), 'final'],
    ['422 IDEMPOTENCY_KEY_REUSED', trpcError(422, 'IDEMPOTENCY_KEY_REUSED'), 'reused'],
    ['402 a declined card', trpcError(402, 'PAYMENT_DECLINED'), 'final'],
    ['409 a checkout the server cancelled (the client was gone)', trpcError(409, 'CHECKOUT_ABANDONED'), 'final'],
    ['409 the provider refused the payment for good', trpcError(409, 'PAYMENT_REFUSED_BY_PROVIDER'), 'final'],
    ['409 the server gave up finishing the checkout', trpcError(409, 'CHECKOUT_GAVE_UP'), 'final'],
  ])('%s: %s', (_name, error, kind) => {
    expect(classifyFailure(error).kind).toBe(kind);
  });

  it('honours Retry-After on 409 IN_USE', () => {
    expect(classifyFailure(trpcError(409, 'IDEMPOTENCY_KEY_IN_USE', { 'retry-after': '2' })).retryAfterMs).toBe(2000);
  });
});

describe('backoffMs: exponential with jitter, capped', () => {
  it('doubles from 250 ms and stays within [half, full] of each step', () => {
    expect(backoffMs(1, () => 0)).toBe(125);
    expect(backoffMs(1, () => 1)).toBe(250);
    expect(backoffMs(3, () => 1)).toBe(1000);
    expect(backoffMs(3, () => 0)).toBe(500);
  });
  it('never exceeds 4 s', () => {
    expect(backoffMs(20, () => 1)).toBe(4000);
  });
});

describe('sameInput: one intent per cart', () => {
  it('ignores key order, not values', () => {
    expect(sameInput({ items: [{ productId: 'a', quantity: 1 }] }, { items: [{ quantity: 1, productId: 'a' }] })).toBe(
      true,
    );
    expect(sameInput({ items: [{ productId: 'a', quantity: 1 }] }, { items: [{ productId: 'a', quantity: 2 }] })).toBe(
      false,
    );
  });
});

describe('keys that are too old are never sent', () => {
  const DAY = 24 * 3_600_000;
  it('a key younger than the retention less the margin (an hour, or a tenth) may be sent; older, never', () => {
    const now = 1_000 * DAY;
    expect(keyTooOld({ createdAt: now - 22 * 3_600_000 }, DAY, now)).toBe(false);
    expect(keyTooOld({ createdAt: now - 23 * 3_600_000 - 1 }, DAY, now)).toBe(true);
    expect(keyTooOld({ createdAt: now - 2 * DAY }, DAY, now)).toBe(true);
    expect(keyTooOld({ createdAt: now - 50_000 }, 60_000, now)).toBe(false); // a tenth of a minute: 6 s margin
    expect(keyTooOld({ createdAt: now - 55_000 }, 60_000, now)).toBe(true);
  });
  it('an intent saved before keys had an age counts as too old', () => {
    expect(keyTooOld({ createdAt: undefined as unknown as number }, DAY)).toBe(true);
  });
});

describe('continues: which submit reuses the key', () => {
  const intent = (state: 'pending' | 'failed' | 'over') => ({ key: 'k', input: { a: 1 }, createdAt: 0, state });
  it('the same input after no answer (pending, failed) continues with the same key', () => {
    expect(continues(intent('pending'), { a: 1 })).toBe(true);
    expect(continues(intent('failed'), { a: 1 })).toBe(true);
  });
  it('after a final answer (a decline), the same input is a new intent', () => {
    expect(continues(intent('over'), { a: 1 })).toBe(false);
  });
  it(
    'a cancelled checkout (409 CHECKOUT_ABANDONED) ends its intent: paying again for the same cart is a new intent, ' +
      'with a new key',
    () => {
      const endedBy = (error: unknown) => intent(intentStateAfter(classifyFailure(error))); // as the hook stores it
      expect(continues(endedBy(trpcError(409, 'CHECKOUT_ABANDONED')), { a: 1 })).toBe(false);
      expect(continues(endedBy(trpcError(503, null)), { a: 1 })).toBe(true); // unknown outcome: the same key again
    },
  );
  it('a 422 (the key already belongs to another cart) ends its intent too: the next Pay gets a new key', () => {
    expect(intentStateAfter(classifyFailure(trpcError(422, 'IDEMPOTENCY_KEY_REUSED')))).toBe('over');
  });
  it('other input is a new intent', () => {
    expect(continues(intent('pending'), { a: 2 })).toBe(false);
    expect(continues(null, { a: 1 })).toBe(false);
  });
});

describe('intentToSend: what a click sends', () => {
  const refund = { orderId: 'o1', amountCents: 500 };
  const stored = (state: 'pending' | 'failed' | 'over') => ({ key: 'k1', input: refund, createdAt: 1, state });
  const newKey = () => 'k2';

  it('a click while the intent is pending, or after no answer, sends its key again', () => {
    expect(intentToSend(stored('pending'), refund, false, newKey, 9)).toEqual({ ...stored('pending') });
    expect(intentToSend(stored('failed'), refund, false, newKey, 9)).toEqual({ ...stored('pending') });
  });

  it('after a final answer (a refusal), the same refund again is a new intent: a new key, a new age', () => {
    expect(intentToSend(stored('over'), refund, false, newKey, 9)).toEqual({
      key: 'k2',
      input: refund,
      createdAt: 9,
      state: 'pending',
    });
  });

  it('after a success, a late click of the double-click sends nothing, whatever the form says now', () => {
    expect(intentToSend(null, refund, true, newKey)).toBeNull();
    expect(intentToSend(null, { orderId: 'o1', amountCents: 1495 }, true, newKey)).toBeNull();
  });

  it('once the page starts afresh (the customer asks for another refund), the next click is a new intent', () => {
    expect(intentToSend(null, refund, false, newKey, 9)?.key).toBe('k2');
  });
});

describe('intentSlot: two kinds of intent on one page keep apart', () => {
  it("each order's refund intent has its own slot, apart from the checkout's", () => {
    const slots = [intentSlot('checkout'), intentSlot('refund:o1'), intentSlot('refund:o2')];
    expect(new Set(slots).size).toBe(3);
    expect(slots[0]).toBe('intent:checkout'); // the slot a reloaded checkout resumes from, as before
  });
});
