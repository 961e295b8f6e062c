/**
 * Canonical JSON: object keys sorted at every depth, `undefined` properties left out, so that `{a,b}`
 * and `{b,a}` give the same text. "The same request" means the same canonical JSON of its input: the
 * fingerprint (key.ts) hashes it. Pure, with no imports: an app may use it in the browser too.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}
