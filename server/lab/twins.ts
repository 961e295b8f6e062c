/**
 * Unsafe twins: small, deliberately broken versions of the safe flows, each without exactly one
 * safeguard. They live only here, for the lab (server/routers/lab.ts) and the tests' negative
 * controls, so that a reader can watch each safeguard fail when it is taken away. Nothing on a
 * production path uses them, and the lab's procedures only ever run them for lab customers.
 *
 *   without a key                  every request places an order
 *   check-then-insert              looks for the key, then works, then stores it: copies that look
 *                                  at the same moment all find nothing and all work
 *   answer outside the transaction the work commits, then the answer is stored on its own: a crash
 *                                  in between leaves work without an answer, and the retry works again
 *   without a fingerprint          the key alone decides: other input with the same key is answered
 *                                  with the first request's result, and never runs
 *   without a customer scope       keys are shared by everyone: another customer's key returns the
 *                                  first customer's order
 *   random provider keys           the provider gets a new key on every call: a retry after a lost
 *                                  answer charges again
 *   without the lookup             a resume after the provider forgot its key charges again
 *   add one (vs set to n)          an operation that is not idempotent by nature, retried without a key
 *   webhook without a record       every delivery of an event is applied: a redelivered refund.failed
 *                                  gives the amount back twice
 *   webhook trusting its metadata  an event moves the order its metadata names, whatever payment it
 *                                  carries: someone else's payment marks an order paid
 */
import { randomUUID } from 'node:crypto';
import { getTRPCErrorFromUnknown } from '@trpc/server';
import { and, eq, sql } from 'drizzle-orm';
import type { Db, DbOrTx } from '../../db/client';
import { labCartLines, orders, refunds } from '../../db/schema';
import { idempotencyOptions } from '../env.js';
import { type Execution, fingerprint, reached, runIdempotent, runPhased } from '../idempotency';
import { type OrderView, type PlaceOrderInput, placeOrder } from '../services/orders';
import { type PaymentProvider, stripeProvider, verifiedEvent } from '../services/payments';
import { type PurchaseInput, purchase } from '../services/purchase';
import { applyEvent, type WebhookEvent } from '../services/webhooks';
import { liveKeyRow, storeAnswerAfterTheFact } from './keys';

/** The Stripe provider without the lookup a late resume makes before charging again. */
export const providerWithoutLookup: PaymentProvider = {
  ...stripeProvider,
  findCharge: async () => null,
  findRefund: async () => null,
};

/** The Stripe provider sending a fresh random key on every call instead of the derived one. */
export const providerWithRandomKeys: PaymentProvider = {
  ...stripeProvider,
  charge: (input) => stripeProvider.charge(input, { idempotencyKey: randomUUID() }),
  refund: (input) => stripeProvider.refund(input, { idempotencyKey: randomUUID() }),
};

/** What a keyed call needs, as the lab's procedures pass it on. */
export interface KeyedRequestParts {
  db: Db;
  customerId: string;
  procedure: string;
  headers: Headers;
  resHeaders: Headers;
}

const asExecution = async <T>(work: () => Promise<T>): Promise<Execution> => {
  try {
    return { ok: true, data: await work() };
  } catch (err) {
    return { ok: false, error: getTRPCErrorFromUnknown(err) };
  }
};

/** The result of a keyed run, as a procedure returns it (or throws it). */
function unwrap(execution: Execution): unknown {
  if (execution.ok) return execution.data;
  throw execution.error;
}

/** Runs `checkout.purchase`'s flow through the real phased runner, with another provider. */
export async function purchaseWith(
  provider: PaymentProvider,
  r: KeyedRequestParts,
  input: PurchaseInput,
): Promise<unknown> {
  return unwrap(
    await runPhased<Db, Execution>({
      db: r.db,
      scope: r.customerId,
      procedure: r.procedure,
      rawInput: input,
      headers: r.headers,
      resHeaders: r.resHeaders,
      options: idempotencyOptions(),
      execute: (steps) => asExecution(() => purchase(steps, r.customerId, input, provider)),
      replay: (data) => ({ ok: true, data }),
    }),
  );
}

/** The real one-transaction runner, fed a broken scope or a broken fingerprint input. */
async function placeOrderKeyed(
  r: KeyedRequestParts,
  input: PlaceOrderInput,
  broken: { scope?: string; fingerprintInput?: unknown },
): Promise<unknown> {
  return unwrap(
    await runIdempotent<Db, Execution>({
      db: r.db,
      scope: broken.scope ?? r.customerId,
      procedure: r.procedure,
      rawInput: 'fingerprintInput' in broken ? broken.fingerprintInput : input,
      headers: r.headers,
      resHeaders: r.resHeaders,
      options: idempotencyOptions(),
      execute: (tx, keyId) => asExecution(() => placeOrder(tx, r.customerId, input, { idempotencyKeyId: keyId })),
      replay: (data) => ({ ok: true, data }),
    }),
  );
}

export const twins = {
  /** No key at all: one order per request. */
  placeOrderWithoutKey: (db: Db, customerId: string, input: PlaceOrderInput): Promise<OrderView> =>
    db.transaction((tx) => placeOrder(tx, customerId, input)),

  /** The fingerprint sees no input: the key alone decides what "the same request" is. */
  placeOrderWithoutFingerprint: (r: KeyedRequestParts, input: PlaceOrderInput) =>
    placeOrderKeyed(r, input, { fingerprintInput: null }),

  /** Keys shared by every customer: the scope is the same for all. */
  placeOrderWithoutScope: (r: KeyedRequestParts, input: PlaceOrderInput) =>
    placeOrderKeyed(r, input, { scope: 'everyone' }),

  /** Look, then work, then store: no atomic claim. */
  async placeOrderCheckThenInsert(r: KeyedRequestParts, key: string, input: PlaceOrderInput): Promise<unknown> {
    const k = { scope: r.customerId, procedure: r.procedure, key };
    const fp = fingerprint(r.procedure, input);
    const seen = await liveKeyRow(r.db, k);
    if (seen?.state === 'completed') return (seen.responseBody as { ok: true; data: unknown }).data;
    const order = await r.db.transaction(async (tx) => {
      const placed = await placeOrder(tx, r.customerId, input);
      await reached({ procedure: r.procedure, scope: r.customerId, boundary: 'executed', tx });
      return placed;
    });
    await storeAnswerAfterTheFact(r.db, k, fp, { ok: true, data: order }, idempotencyOptions().ttlMs);
    return order;
  },

  /** The work commits, then the answer is stored in a statement of its own. */
  async placeOrderAnswerOutsideTransaction(
    r: KeyedRequestParts,
    key: string,
    input: PlaceOrderInput,
  ): Promise<unknown> {
    const k = { scope: r.customerId, procedure: r.procedure, key };
    const fp = fingerprint(r.procedure, input);
    const seen = await liveKeyRow(r.db, k);
    if (seen?.state === 'completed') return (seen.responseBody as { ok: true; data: unknown }).data;
    const order = await r.db.transaction((tx) => placeOrder(tx, r.customerId, input));
    // committed; the answer is not stored yet
    await reached({ procedure: r.procedure, scope: r.customerId, boundary: 'executed' });
    await storeAnswerAfterTheFact(r.db, k, fp, { ok: true, data: order }, idempotencyOptions().ttlMs);
    return order;
  },

  purchaseWithRandomProviderKeys: (r: KeyedRequestParts, input: PurchaseInput) =>
    purchaseWith(providerWithRandomKeys, r, input),

  /** Naturally idempotent: setting a quantity twice leaves what setting it once leaves. */
  async setCartQuantity(db: DbOrTx, customerId: string, productId: string, quantity: number): Promise<number> {
    await db
      .insert(labCartLines)
      .values({ customerId, productId, quantity })
      .onConflictDoUpdate({ target: [labCartLines.customerId, labCartLines.productId], set: { quantity } });
    return quantity;
  },

  /** Not idempotent: every call adds one, so a retry adds one more. */
  async addOneToCart(db: DbOrTx, customerId: string, productId: string): Promise<number> {
    const [row] = await db
      .insert(labCartLines)
      .values({ customerId, productId, quantity: 1 })
      .onConflictDoUpdate({
        target: [labCartLines.customerId, labCartLines.productId],
        set: { quantity: sql`${labCartLines.quantity} + 1` },
      })
      .returning({ quantity: labCartLines.quantity });
    return row!.quantity;
  },

  async cartQuantity(db: DbOrTx, customerId: string, productId: string): Promise<number> {
    const [row] = await db
      .select({ quantity: labCartLines.quantity })
      .from(labCartLines)
      .where(and(eq(labCartLines.customerId, customerId), eq(labCartLines.productId, productId)));
    return row?.quantity ?? 0;
  },
};

/**
 * A webhook handler as many are written: it trusts each event to arrive once. Without the event-id
 * record (and with a plain decrement instead of a forward-only move), a redelivered refund.failed
 * gives the amount back a second time.
 */
export async function applyRefundFailedWithoutRecord(
  db: Db,
  event: { type: string; data: { object: { id: string; amount: number; metadata?: Record<string, string> } } },
): Promise<void> {
  if (event.type !== 'refund.failed') return;
  const refund = event.data.object;
  const refundId = refund.metadata?.refund_id;
  if (!refundId) return;
  await db.transaction(async (tx) => {
    const [row] = await tx.select({ orderId: refunds.orderId }).from(refunds).where(eq(refunds.id, refundId));
    if (!row) return;
    await tx.update(refunds).set({ status: 'failed' }).where(eq(refunds.id, refundId));
    await tx
      .update(orders)
      .set({ refundedCents: sql`${orders.refundedCents} - ${refund.amount}` })
      .where(eq(orders.id, row.orderId));
  });
}

/**
 * The webhook endpoint with that handler: the signature is checked as in the shop (the lesson is not
 * about signatures), then every delivery is applied, a redelivery too.
 */
export async function handleWebhookWithoutRecord(db: Db, req: Request): Promise<Response> {
  const payload = await req.text();
  let event: ReturnType<typeof verifiedEvent>;
  try {
    event = verifiedEvent(payload, req.headers.get('stripe-signature'));
  } catch (err) {
    return Response.json({ error: `webhook refused: ${(err as Error).message}` }, { status: 400 });
  }
  await applyRefundFailedWithoutRecord(db, event as unknown as Parameters<typeof applyRefundFailedWithoutRecord>[1]);
  return Response.json({ received: true, id: event.id, type: event.type, outcome: 'applied' });
}

/**
 * The shop's webhook handling with every event taken at its metadata's word: the payment (or refund)
 * an event carries is never compared with the order's (or refund's) own. Any payment naming an order,
 * of any amount, by anyone, marks it paid.
 */
export function applyEventTrustingMetadata(db: Db, event: WebhookEvent) {
  const trusting = async () => undefined;
  return applyEvent(db, event, { payment: trusting, refund: trusting });
}
