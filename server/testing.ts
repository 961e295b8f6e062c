/**
 * Helpers for the tests (imported by `*.test.ts` only): procedure callers for a given customer, and
 * requests through the real HTTP route handler, all against the real database from DATABASE_URL.
 */
import { randomUUID } from 'node:crypto';
import { GET, POST } from '@/app/api/trpc/[trpc]/route';
import { getDatabase } from '../db/client';
import { signCustomerId } from './customer';
import { getEnv } from './env.js';
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
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- raw JSON off the wire
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
  const res = await (method === 'GET' ? GET : POST)(req);
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
