/**
 * The key and the fingerprint: pure functions, no database.
 *
 * The key arrives in the `Idempotency-Key` header (IETF draft-ietf-httpapi-idempotency-key-header).
 * The draft makes it a Structured Field string (`"8e03978e-..."`); Stripe and most clients send it
 * bare (`8e03978e-...`). Both are accepted and mean the same key.
 */
import { hash } from 'node:crypto';
import { canonicalJson } from './canonical-json';

export const IDEMPOTENCY_HEADER = 'idempotency-key';
// Stripe's limit, and what the `key` column's CHECK allows. A UUID (36) is the recommended key.
export const MAX_KEY_LENGTH = 255;

export type ParsedKey = { ok: true; key: string } | { ok: false; reason: 'missing' | 'invalid'; problem: string };

const PRINTABLE_ASCII = /^[\x20-\x7e]+$/;

/**
 * Reads the key from the request headers. `Headers` joins repeated headers with ", ", so a comma in
 * a bare key means the header came twice (or as a list): refused, since we cannot tell which key
 * the client meant.
 */
export function parseIdempotencyKey(headers: Headers): ParsedKey {
  const raw = headers.get(IDEMPOTENCY_HEADER);
  if (raw === null) return { ok: false, reason: 'missing', problem: 'no Idempotency-Key header' };
  let key = raw;
  if (raw.startsWith('"')) {
    // sf-string: "..." with \" and \\ as the only escapes, and nothing after the closing quote.
    const m = /^"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"$/.exec(raw);
    if (!m) return { ok: false, reason: 'invalid', problem: 'a quoted key must be one well-formed string' };
    key = m[1]!.replace(/\\(["\\])/g, '$1');
  } else if (raw.includes(',')) {
    return {
      ok: false,
      reason: 'invalid',
      problem: 'send exactly one Idempotency-Key header (a bare key cannot contain a comma)',
    };
  }
  if (key.length === 0) return { ok: false, reason: 'invalid', problem: 'the key is empty' };
  if (key.length > MAX_KEY_LENGTH)
    return { ok: false, reason: 'invalid', problem: `the key is longer than ${MAX_KEY_LENGTH} characters` };
  if (!PRINTABLE_ASCII.test(key))
    return { ok: false, reason: 'invalid', problem: 'the key must be printable ASCII (a UUID is recommended)' };
  return { ok: true, key };
}

/** SHA-256 over the procedure path and the canonical input: what "the same request" means. */
export function fingerprint(procedure: string, input: unknown): string {
  // One-shot hashing (no Hash object per request): the same digest as feeding the parts one by one.
  return hash('sha256', `${procedure}\n${canonicalJson(input)}`, 'hex');
}

/** A short, one-way tag of a key for logs: enough to correlate lines, useless to replay a request. */
export function keyTag(key: string): string {
  return hash('sha256', key, 'hex').slice(0, 12);
}
