/**
 * The payment provider: Stripe, through the official SDK. In development and tests the SDK talks
 * to the local simulator (simulator/stripe.ts) at STRIPE_API_BASE; with a real test key and no
 * STRIPE_API_BASE it talks to Stripe itself.
 *
 * Every call carries an idempotency key derived from our own key row, so calling again after a
 * timeout returns the first charge instead of making a second. The SDK's own retries are off:
 * a failed call is retried by the client with the same key, which resumes the flow.
 */
import Stripe from 'stripe';
import { getEnv } from '../env.js';
import { AppError } from '../errors';


export type ChargeResult =
  | { status: 'succeeded'; paymentIntentId: string; amountCents: number }
  | { status: 'declined'; paymentIntentId: string | null; declineCode: string; message: string };

const cache = globalThis as unknown as { __stripe?: Stripe };

function stripe(): Stripe {
  if (!cache.__stripe) {
    const env = getEnv();
    const base = env.STRIPE_API_BASE ? new URL(env.STRIPE_API_BASE) : undefined;
    cache.__stripe = new Stripe(env.STRIPE_SECRET_KEY, {
      maxNetworkRetries: 0,
      timeout: env.STRIPE_TIMEOUT_MS,
      telemetry: false,
      ...(base ? { host: base.hostname, port: base.port, protocol: base.protocol.replace(':', '') as 'http' | 'https' } : {}),
    });
  }
  return cache.__stripe;
}

export interface CallOptions {
  /** Derived from our key row: the same on every retry of one step. */
  idempotencyKey: string;
}

function requestOptions(o: CallOptions): Stripe.RequestOptions {
  return { idempotencyKey: getEnv().UNSAFE_RANDOM_PROVIDER_KEYS ? crypto.randomUUID() : o.idempotencyKey };
}

/**
 * A provider failure after which nobody knows whether the call took effect (timeout, connection
 * reset, 5xx) or that asks us to slow down (429). Never final: retry with the same key.
 */
function unavailable(err: unknown): AppError {
  const detail = err instanceof Stripe.errors.StripeError ? `(${err.type}${err.statusCode ? ` ${err.statusCode}` : ''})` : undefined;
  return new AppError('PROVIDER_UNAVAILABLE', { detail, cause: err });
}

const isTransient = (err: unknown) =>
  err instanceof Stripe.errors.StripeConnectionError ||
  err instanceof Stripe.errors.StripeRateLimitError ||
  err instanceof Stripe.errors.StripeAPIError ||
  (err instanceof Stripe.errors.StripeError && (err.statusCode ?? 0) >= 500) ||
  (err instanceof Stripe.errors.StripeError && err.statusCode === 409); // the same key still in flight there

export async function charge(
  input: { amountCents: number; currency: string; paymentMethod: string; orderId: string; customerId: string; keyId: string },
  options: CallOptions,
): Promise<ChargeResult> {
  try {
    const intent = await stripe().paymentIntents.create(
      {
        amount: input.amountCents,
        currency: input.currency.toLowerCase(),
        payment_method: input.paymentMethod,
        automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
        confirm: true,
        metadata: { order_id: input.orderId, customer_id: input.customerId, idempotency_key_id: input.keyId },
      },
      requestOptions(options),
    );
    return { status: 'succeeded', paymentIntentId: intent.id, amountCents: intent.amount_received };
  } catch (err) {
    if (err instanceof Stripe.errors.StripeCardError) {
      const intent = (err.raw as { payment_intent?: { id: string } }).payment_intent;
      return { status: 'declined', paymentIntentId: intent?.id ?? null, declineCode: err.decline_code ?? err.code ?? 'card_declined', message: err.message };
    }
    if (isTransient(err)) throw unavailable(err);
    throw err; // a bug (bad parameters, an idempotency_error): a 500, key released
  }
}

export async function refund(
  input: { paymentIntentId: string; amountCents: number; refundId: string; orderId: string; customerId: string },
  options: CallOptions,
): Promise<{ providerRefundId: string }> {
  try {
    const r = await stripe().refunds.create(
      { payment_intent: input.paymentIntentId, amount: input.amountCents, metadata: { refund_id: input.refundId, order_id: input.orderId, customer_id: input.customerId } },
      requestOptions(options),
    );
    return { providerRefundId: r.id };
  } catch (err) {
    if (isTransient(err)) throw unavailable(err);
    throw err;
  }
}

/** Every PaymentIntent and Refund the provider has, for reconciliation (auto-paginated). */
export async function listProviderLedger(): Promise<{ intents: Stripe.PaymentIntent[]; refunds: Stripe.Refund[] }> {
  const intents: Stripe.PaymentIntent[] = [];
  for await (const pi of stripe().paymentIntents.list({ limit: 100 })) intents.push(pi);
  const refunds: Stripe.Refund[] = [];
  for await (const r of stripe().refunds.list({ limit: 100 })) refunds.push(r);
  return { intents, refunds };
}
