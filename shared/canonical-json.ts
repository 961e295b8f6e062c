/**
 * Canonical JSON: object keys sorted at every depth, `undefined` properties left out, so that
 * `{a,b}` and `{b,a}` give the same text. The client compares intents with it, and the payment
 * simulator keys its idempotency records with it. Pure and browser-safe.
 *
 * The idempotency layer fingerprints requests with its own copy (server/idempotency/canonical-json.ts):
 * the layer imports nothing of this app, and the browser cannot import server code. A test
 * (server/canonical-json.test.ts) keeps the two the same function.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}
