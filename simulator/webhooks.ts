/**
 * The simulator's webhooks, sent the way Stripe sends them: each change of a payment intent or a
 * refund becomes an event (`evt_...`), signed (`Stripe-Signature: t=<time>,v1=<HMAC-SHA256 of
 * "time.body">`), and delivered to every registered endpoint AT LEAST once: a delivery that fails
 * or is not answered 2xx is retried with a growing delay, and on purpose some are sent twice, some
 * late, so that they arrive out of order. The shop must apply each event once and never go back.
 */
import { createHmac, randomBytes } from 'node:crypto';

/** The object an event is about: a payment intent, a refund, a charge (as a plain object). */
export interface EventObject {
  id: string;
  metadata?: Record<string, string>;
  payment_intent?: string;
}

export interface SimEvent {
  id: string;
  object: 'event';
  type: string;
  created: number;
  api_version: string;
  livemode: false;
  data: { object: EventObject };
}

export interface WebhookConfig {
  /** Probability (0..1) that an event is delivered a second time (Stripe delivers at least once). */
  duplicates: number;
  /** Each delivery waits up to this long first: deliveries overtake one another. */
  maxDelayMs: number;
}

/** A record of each delivery attempt, for the chaos checker and tests. */
export interface Delivery {
  eventId: string;
  url: string;
  status: number | null;
  at: number;
}

// A failed delivery is retried 6 times, 250 ms x 2^n apart (about 16 s in all): enough to outlast an
// instance restart in the chaos run, bounded so that a dead endpoint is given up on.
const RETRIES = 6;
const RETRY_BASE_MS = 250;
// An event's payload is the object as it stood when the event was made, as Stripe's are.
const API_VERSION = '2024-06-20';

export function signature(secret: string, payload: string, timestamp = Math.floor(Date.now() / 1000)): string {
  const v1 = createHmac('sha256', secret).update(`${timestamp}.${payload}`).digest('hex');
  return `t=${timestamp},v1=${v1}`;
}

export class WebhookSender {
  readonly events: SimEvent[] = [];
  readonly deliveries: Delivery[] = [];
  readonly endpoints = new Set<string>();
  config: WebhookConfig = { duplicates: 0, maxDelayMs: 0 };

  constructor(private readonly secret: string) {}

  /** Makes an event of `object`'s change and sends it to every endpoint (unless `deliver` is false). */
  emit(type: string, object: EventObject, deliver = true): SimEvent {
    const event: SimEvent = {
      id: `evt_${randomBytes(12).toString('base64url')}`,
      object: 'event',
      type,
      created: Math.floor(Date.now() / 1000),
      api_version: API_VERSION,
      livemode: false,
      data: { object: structuredClone(object) },
    };
    this.events.push(event);
    if (!deliver) return event;
    for (const url of this.endpoints) {
      void this.deliver(event, url);
      if (Math.random() < this.config.duplicates) void this.deliver(event, url);
    }
    return event;
  }

  /** The event as a request body and its signature header, signed now (tests deliver with these). */
  signed(event: SimEvent): { payload: string; header: string } {
    const payload = JSON.stringify(event, null, 2);
    return { payload, header: signature(this.secret, payload) };
  }

  /** Sends one event to one endpoint until it is answered 2xx, or the retries run out. */
  async deliver(event: SimEvent, url: string): Promise<void> {
    if (this.config.maxDelayMs > 0) await sleep(Math.random() * this.config.maxDelayMs);
    for (let attempt = 0; attempt <= RETRIES; attempt++) {
      const { payload, header } = this.signed(event);
      const status = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'stripe-signature': header },
        body: payload,
        signal: AbortSignal.timeout(10_000),
      }).then(
        (r) => r.status,
        () => null,
      );
      this.deliveries.push({ eventId: event.id, url, status, at: Date.now() });
      if (status !== null && status >= 200 && status < 300) return;
      if (!this.endpoints.has(url)) return; // unregistered meanwhile
      await sleep(RETRY_BASE_MS * 2 ** attempt);
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());
