/**
 * Request bodies are read no further than a limit: whoever sends a body, signed or not, keyed or
 * not, cannot make the server hold more than that. The limit is checked twice, because either check
 * alone can be dodged: the declared `Content-Length` first (a body declared too large is refused
 * without reading a byte of it), then every chunk as it streams in (a body with no Content-Length, or
 * one whose Content-Length lies, is cut off at the first byte past the limit). Nothing is buffered
 * beyond the limit.
 */

/**
 * The webhook endpoint's limit. A Stripe event carries one object (a payment intent or a refund with
 * its metadata): a few kilobytes, and well under 256 KiB even with the largest metadata Stripe
 * allows (50 keys of 500 characters). A larger body is no event of ours, and it is refused before its
 * signature is checked, which needs the whole body.
 */
export const WEBHOOK_BODY_LIMIT_BYTES = 256 * 1024;

/**
 * The tRPC endpoint's limit. The largest input the API takes is a cart of 50 lines (MAX_LINES) with
 * product ids of 64 characters: under 6 KiB as JSON (body-limit.test.ts builds it). 64 KiB is ten
 * times that, room for a batch of queries and for growth, and still small enough that a stream of
 * oversized requests cannot fill the server's memory.
 */
export const API_BODY_LIMIT_BYTES = 64 * 1024;

/** The body is larger than the limit (declared, or counted while it streamed in). */
export class BodyTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`the request body is larger than ${limit / 1024} KiB, the most this endpoint takes`);
    this.name = 'BodyTooLarge';
  }
}

/** What the request says its body weighs, if it says so in a form we can read. */
function declaredLength(req: Request): number | undefined {
  const header = req.headers.get('content-length');
  if (header === null || !/^\d+$/.test(header.trim())) return undefined;
  return Number(header);
}

/**
 * The body as text, read through `withBodyLimit`: given up as soon as it passes `limit` bytes (the
 * rest is never read). Throws BodyTooLarge. The webhook route reads its body this way; the tRPC
 * adapter reads the limited request itself.
 */
export async function readTextWithin(req: Request, limit: number): Promise<string> {
  return withBodyLimit(req, limit, () => new BodyTooLarge(limit)).text();
}

/**
 * The same request, whose body stream fails with `tooLarge()` once it passes `limit` bytes (or at
 * once, when its Content-Length says it will). For handlers that read the body themselves, as the
 * tRPC adapter does: the error they get is ours, and it becomes the answer.
 */
export function withBodyLimit(req: Request, limit: number, tooLarge: () => Error): Request {
  if (!req.body) return req;
  const source = req.body;
  const declared = declaredLength(req);
  let size = 0;
  const body =
    declared !== undefined && declared > limit
      ? new ReadableStream<Uint8Array>({
          start(controller) {
            source.cancel().catch(() => {});
            controller.error(tooLarge());
          },
        })
      : source.pipeThrough(
          new TransformStream<Uint8Array, Uint8Array>({
            transform(chunk, controller) {
              size += chunk.byteLength;
              if (size > limit) controller.error(tooLarge());
              else controller.enqueue(chunk);
            },
          }),
        );
  return new Request(req.url, {
    method: req.method,
    headers: req.headers,
    body,
    signal: req.signal,
    // A stream body must say it is sent one way, as it arrives (Node's fetch requires it).
    duplex: 'half',
  } as RequestInit);
}
