/**
 * The client's rule for old keys, shared by the shop's client and the lab: a key is never sent once
 * it is older than the server keeps keys, less a margin. The server would take it for a new request.
 * Pure and browser-safe; the retention comes from the server (`Idempotency-Key-Retention`).
 */

/** How much before the server forgets a key the client stops sending it: a tenth, at most an hour. */
export const safetyMarginMs = (retentionMs: number) => Math.min(3_600_000, retentionMs / 10);

/** Whether a key made at `createdAt` is too old to send: the server may already treat it as new. */
export function keyTooOld(intent: { createdAt: number }, retentionMs: number, now = Date.now()): boolean {
  return !Number.isFinite(intent.createdAt) || now - intent.createdAt > retentionMs - safetyMarginMs(retentionMs);
}
