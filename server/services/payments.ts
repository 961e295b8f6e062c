/**
 * The payment provider: Stripe, through the official SDK. In development and tests the SDK talks
 * to the local simulator (simulator/stripe.ts) at STRIPE_API_BASE; with a real test key and no
 * STRIPE_API_BASE it talks to Stripe itself.
 *
 * Every call carries an idempotency key derived from our own key row, so calling again after a
 * timeout returns the first result instead of making a second. The SDK's own network retries are
 * off (it still retries one closed connection by itself, with the same key): a failed call is
 * retried by the client with the same key, which resumes the flow.
 *
 * Every error the provider can give is sorted here, once, into one of three kinds:
 *   decline    the card said no: an answer (the charge result says so);
 *   transient  nobody knows whether it took effect, or the provider asks us to slow down (timeout,
 *              connection lost, 5xx, 429, the same key still in flight): retry with the same key;
 *   final      the provider will never accept this request as it is (invalid request, nothing left
 *              to refund, authentication or permission refused, key reused with other parameters):
 *              a ProviderRefusal, which the flow turns into a stored answer.
 */
import Stripe from 'stripe';
import { getEnv } from '../env.js';
import { AppError } from '../errors';

export type ChargeResult =
  | { status: 'succeeded'; paymentIntentId: string; amountCents: number }
  // Not paid yet: the provider is processing it, or waits for the customer (3-D Secure). A webhook, or
  // the settle job asking the provider, moves the order on once it knows.
  | { status: 'processing'; paymentIntentId: string }
  | { status: 'declined'; paymentIntentId: string | null; declineCode: string; message: string };

export type RefundResult = { providerRefundId: string; status: 'pending' | 'succeeded' | 'failed' };

export interface ChargeInput {
  amountCents: number;
  currency: string;
  paymentMethod: string;
  orderId: string;
  customerId: string;
  /** Our key row: in the metadata, so the payment can be found again by it. */
  keyId: string;
}

export interface RefundInput {
  paymentIntentId: string;
  amountCents: number;
  refundId: string;
  orderId: string;
  customerId: string;
}

export interface CallOptions {
  /** Derived from our key row: the same on every retry of one step. */
  idempotencyKey: string;
}

/**
 * What the flows need from a payment provider. The flows take it as a parameter (the Stripe one
 * by default), so the lab can show what a provider used without a safeguard does.
 */
export interface PaymentProvider {
  charge(input: ChargeInput, options: CallOptions): Promise<ChargeResult>;
  /** The charge made for this key row, found by its metadata; null when there is none. */
  findCharge(keyId: string): Promise<ChargeResult | null>;
  refund(input: RefundInput, options: CallOptions): Promise<RefundResult>;
  /** The refund made for this refund row of ours, found by its metadata; null when there is none. */
  findRefund(paymentIntentId: string, refundId: string): Promise<RefundResult | null>;
}

/** The provider refused the request for good: retrying it unchanged can never succeed. */
export class ProviderRefusal extends Error {
  constructor(
    readonly providerCode: string,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, options);
    this.name = 'ProviderRefusal';
  }
}

/** Stripe keeps idempotency keys for at least 24 hours; after that the same key is a new request. */
export const PROVIDER_KEY_RETENTION_HOURS = 24;
/**
 * A flow resumed later than this after its key row was made may be past the provider's memory of
 * its key: it looks its payment up by metadata before calling again. An hour of margin covers clock
 * skew and the time the first attempt itself took.
 */
export const LOOK_UP_AFTER_MS = (PROVIDER_KEY_RETENTION_HOURS - 1) * 3_600_000;

/**
 * One client per copy of the SDK, kept on globalThis so that a hot reload in development does not make
 * another. A production build can hold several copies of the SDK in one process (the API route, the
 * webhook route and the jobs that instrumentation.ts starts are bundled apart), and sortError tells
 * errors apart with `instanceof` against this copy's classes: a client made by another copy throws
 * errors this one does not recognise, and a declined card would become a 500.
 */
const cache = globalThis as unknown as { __stripeClients?: Map<typeof Stripe, Stripe> };

function stripe(): Stripe {
  cache.__stripeClients ??= new Map();
  let client = cache.__stripeClients.get(Stripe);
  if (!client) {
    const env = getEnv();
    const base = env.STRIPE_API_BASE ? new URL(env.STRIPE_API_BASE) : undefined;
    client = new Stripe(env.STRIPE_SECRET_KEY, {
      maxNetworkRetries: 0,
      timeout: env.STRIPE_TIMEOUT_MS,
      telemetry: false,
      ...(base
        ? { host: base.hostname, port: base.port, protocol: base.protocol.replace(':', '') as 'http' | 'https' }
        : {}),
    });
    cache.__stripeClients.set(Stripe, client);
  }
  return client;
}

function requestOptions(o: CallOptions): Stripe.RequestOptions {
  return { idempotencyKey: o.idempotencyKey };
}

/**
 * Sorts a provider error (see the header) and always throws: a transient one as PROVIDER_UNAVAILABLE, a final
 * one as a ProviderRefusal. A decline never gets here: `charge` turns a StripeCardError into a declined result.
 */
function sortError(err: unknown): never {
  if (!(err instanceof Stripe.errors.StripeError)) throw err; // not the provider's: a bug of ours
  const status = err.statusCode ?? 0;
  const transient =
    err instanceof Stripe.errors.StripeConnectionError ||
    err instanceof Stripe.errors.StripeRateLimitError ||
    err instanceof Stripe.errors.StripeAPIError ||
    status >= 500 ||
    status === 409; // the same key still in flight there
  if (transient) {
    throw new AppError('PROVIDER_UNAVAILABLE', { detail: `(${err.type}${status ? ` ${status}` : ''})`, cause: err });
  }
  throw new ProviderRefusal(err.code ?? err.type, err.message, { cause: err });
}

function chargeResultOf(intent: Stripe.PaymentIntent): ChargeResult {
  if (intent.status === 'succeeded')
    return { status: 'succeeded', paymentIntentId: intent.id, amountCents: intent.amount_received };
  if (intent.status === 'processing' || intent.status === 'requires_action' || intent.status === 'requires_capture') {
    return { status: 'processing', paymentIntentId: intent.id };
  }
  const error = intent.last_payment_error;
  return {
    status: 'declined',
    paymentIntentId: intent.id,
    declineCode: error?.decline_code ?? error?.code ?? 'card_declined',
    message: error?.message ?? 'The card was declined.',
  };
}

export const stripeProvider: PaymentProvider = {
  async charge(input, options) {
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
      return chargeResultOf(intent);
    } catch (err) {
      if (err instanceof Stripe.errors.StripeCardError) {
        const intent = (err.raw as { payment_intent?: { id: string } }).payment_intent;
        return {
          status: 'declined',
          paymentIntentId: intent?.id ?? null,
          declineCode: err.decline_code ?? err.code ?? 'card_declined',
          message: err.message,
        };
      }
      return sortError(err);
    }
  },

  async findCharge(keyId) {
    try {
      const found = await stripe().paymentIntents.search({ query: `metadata['idempotency_key_id']:'${keyId}'` });
      // Several could exist only if an earlier resume made a second one; the one that succeeded wins.
      const intent = found.data.find((pi) => pi.status === 'succeeded') ?? found.data[0];
      return intent ? chargeResultOf(intent) : null;
    } catch (err) {
      return sortError(err);
    }
  },

  async refund(input, options) {
    try {
      const r = await stripe().refunds.create(
        {
          payment_intent: input.paymentIntentId,
          amount: input.amountCents,
          metadata: { refund_id: input.refundId, order_id: input.orderId, customer_id: input.customerId },
        },
        requestOptions(options),
      );
      return refundResultOf(r);
    } catch (err) {
      return sortError(err);
    }
  },

  async findRefund(paymentIntentId, refundId) {
    try {
      for await (const r of stripe().refunds.list({ payment_intent: paymentIntentId, limit: 100 })) {
        if (r.metadata?.refund_id === refundId) return refundResultOf(r);
      }
      return null;
    } catch (err) {
      return sortError(err);
    }
  },
};

function refundResultOf(r: Stripe.Refund): RefundResult {
  const status =
    r.status === 'succeeded' ? 'succeeded' : r.status === 'failed' || r.status === 'canceled' ? 'failed' : 'pending';
  return { providerRefundId: r.id, status };
}

/** Where a payment stands now, asked of the provider (the settle job, when no webhook came). */
export async function paymentStatus(paymentIntentId: string): Promise<ChargeResult> {
  try {
    return chargeResultOf(await stripe().paymentIntents.retrieve(paymentIntentId));
  } catch (err) {
    return sortError(err);
  }
}

/** Where a refund stands now, asked of the provider. */
export async function refundStatus(providerRefundId: string): Promise<RefundResult> {
  try {
    return refundResultOf(await stripe().refunds.retrieve(providerRefundId));
  } catch (err) {
    return sortError(err);
  }
}

/**
 * A webhook's event, if its `Stripe-Signature` checks out: the SDK's own check (HMAC-SHA256 of
 * `timestamp.body` with STRIPE_WEBHOOK_SECRET, within 300 s of now). Throws when it does not.
 */
export function verifiedEvent(payload: string, signature: string | null): Stripe.Event {
  if (!signature) throw new Error('no Stripe-Signature header');
  return stripe().webhooks.constructEvent(
    payload,
    signature,
    getEnv().STRIPE_WEBHOOK_SECRET,
    WEBHOOK_TOLERANCE_SECONDS,
  );
}

// Stripe's own default: an event signed more than 5 minutes ago is refused (a replayed capture).
export const WEBHOOK_TOLERANCE_SECONDS = 300;

/** One customer's payment intents at the provider, found by their metadata (the lab counts charges with it). */
export async function providerIntentsOf(customerId: string): Promise<Stripe.PaymentIntent[]> {
  const found = await stripe().paymentIntents.search({ query: `metadata['customer_id']:'${customerId}'`, limit: 100 });
  return found.data;
}

/** Every PaymentIntent and Refund the provider has, for reconciliation (auto-paginated). */
export async function listProviderLedger(): Promise<{ intents: Stripe.PaymentIntent[]; refunds: Stripe.Refund[] }> {
  const intents: Stripe.PaymentIntent[] = [];
  for await (const pi of stripe().paymentIntents.list({ limit: 100 })) intents.push(pi);
  const refunds: Stripe.Refund[] = [];
  for await (const r of stripe().refunds.list({ limit: 100 })) refunds.push(r);
  return { intents, refunds };
}
