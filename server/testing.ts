/**
 * Helpers for the tests (imported by `*.test.ts` only): procedure callers for a given customer,
 * requests through the real HTTP handler, and faults planned in a server or at the payment
 * simulator; all against the real database from DATABASE_URL.
 */
import { randomUUID } from 'node:crypto';
import { signCustomerId } from './customer';
import { getDatabase } from './db';
import { getEnv } from './env.js';
import { handleApiRequest, handleStripeWebhook } from './http';
import type { FaultPlan } from './idempotency';
import { createCaller } from './routers/_app';

/** A caller for one customer (a fresh one unless given), as if its cookie had been presented. */
export function callerFor(customerId: string = randomUUID(), headers: Record<string, string> = {}) {
  const resHeaders = new Headers();
  const caller = createCaller({
    db: getDatabase().db,
    customer: { status: 'presented', id: customerId },
    headers: new Headers(headers),
    resHeaders,
  });
  return { caller, customerId, resHeaders };
}

/** The Cookie header a browser of this customer would send. */
export function customerCookie(customerId: string): string {
  return `customer=${signCustomerId(customerId, getEnv().COOKIE_SECRET)}`;
}

export interface HttpResult {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: raw JSON off the wire, read field by field by the tests
  body: any;
}

/** Sends one HTTP request through the Next route handler, exactly as a client would over the wire. */
export async function http(
  method: 'GET' | 'POST',
  path: string,
  options: { body?: unknown; rawBody?: string; headers?: Record<string, string> | [string, string][] } = {},
): Promise<HttpResult> {
  const headers = new Headers(options.headers);
  if (method === 'POST' && !headers.has('content-type')) headers.set('content-type', 'application/json');
  const req = new Request(`http://localhost/api/trpc/${path}`, {
    method,
    headers,
    body: method === 'POST' ? (options.rawBody ?? JSON.stringify(options.body ?? {})) : undefined,
  });
  const res = await handleApiRequest(req);
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: res.status, headers: res.headers, body };
}

/** Orders currently stored for a customer, read straight from the database. */
export async function countOrders(customerId: string): Promise<number> {
  const { sql } = getDatabase();
  const [row] = await sql<{ n: number }[]>`select count(*)::int as n from orders where customer_id = ${customerId}`;
  return row!.n;
}

/** Plans a fault in a server process started for a test (its /api/test/faults, ENABLE_TEST_HOOKS=1). */
export async function planServerFault(baseUrl: string, plan: FaultPlan): Promise<void> {
  const res = await fetch(`${baseUrl}/api/test/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(plan),
  });
  if (!res.ok) throw new Error(`planning a fault failed: ${res.status} ${await res.text()}`);
}

/**
 * Scripts a fault at the payment simulator for this customer's next provider call(s): `error_500`,
 * `rate_limit`, `timeout_after_charge` (charged, answer never sent), `reset_after_charge`.
 */
export async function scriptProviderFault(
  customerId: string,
  fault: string,
  options: { path?: string; times?: number } = {},
): Promise<void> {
  const res = await fetch(`${getEnv().STRIPE_API_BASE}/__sim/faults`, {
    method: 'POST',
    body: JSON.stringify({ metadata: { customer_id: customerId }, fault, ...options }),
  });
  if (!res.ok) throw new Error(`scripting a provider fault failed: ${res.status} ${await res.text()}`);
}

/** A webhook event the simulator made for this customer, with its payload and signature as sent. */
export interface SignedEvent {
  event: { id: string; type: string; data: { object: { id: string; status?: string } } };
  signed: { payload: string; header: string };
}

/** The simulator's events about this customer's payments and refunds, oldest first. */
export async function providerEvents(customerId: string): Promise<SignedEvent[]> {
  const res = await fetch(`${getEnv().STRIPE_API_BASE}/__sim/events?customer_id=${customerId}`);
  return ((await res.json()) as { events: SignedEvent[] }).events;
}

/** Delivers a webhook to the app's handler as the provider would: the payload with its signature header. */
export async function deliverWebhook(payload: string, signature: string | null): Promise<HttpResult> {
  const headers = new Headers({ 'content-type': 'application/json' });
  if (signature !== null) headers.set('stripe-signature', signature);
  const res = await handleStripeWebhook(
    new Request('http://localhost/api/webhooks/stripe', { method: 'POST', headers, body: payload }),
  );
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: JSON.parse(text) };
}
