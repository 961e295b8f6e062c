/**
 * Body limits on both endpoints: a body over the limit is a 413 before it is read whole, whether its
 * Content-Length says so, is absent (a streamed body) or lies; a body within the limit is read as
 * before. Each streamed body here counts what was taken from it, to show where reading stopped.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MAX_LINES } from '../shared/shop-rules';
import { signature } from '../simulator/webhooks';
import { API_BODY_LIMIT_BYTES, WEBHOOK_BODY_LIMIT_BYTES } from './body-limit';
import { getDatabase } from './db';
import { getEnv } from './env.js';
import { handleApiRequest, handleStripeWebhook } from './http';
import { customerCookie } from './testing';

const { sql } = getDatabase();
const CHUNK = 16 * 1024;

/** A body of `total` bytes (spaces: valid JSON whitespace), streamed in chunks; `pulled` counts what was read. */
function streamed(total: number) {
  const counter = { pulled: 0 };
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (counter.pulled >= total) return controller.close();
        const n = Math.min(CHUNK, total - counter.pulled);
        counter.pulled += n;
        controller.enqueue(new TextEncoder().encode(' '.repeat(n)));
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, counter };
}

const post = (url: string, body: BodyInit, headers: Record<string, string>) =>
  new Request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
    duplex: 'half',
  } as RequestInit);

const FIVE_MB = 5 * 1024 * 1024;

describe('the webhook endpoint refuses a body over 256 KiB with 413, before reading it whole', () => {
  const secret = () => getEnv().STRIPE_WEBHOOK_SECRET;
  const webhook = (body: BodyInit, headers: Record<string, string>) =>
    handleStripeWebhook(post('http://localhost/api/webhooks/stripe', body, headers));
  /** A well-formed event of about `size` bytes (its metadata padded), signed with the shop's secret. */
  const signedEventOf = (size: number) => {
    const event = {
      id: `evt_${randomUUID().replaceAll('-', '')}`,
      object: 'event',
      type: 'payment_intent.succeeded',
      data: {
        object: {
          id: `pi_${randomUUID().replaceAll('-', '')}`,
          amount: 100,
          currency: 'usd',
          metadata: { order_id: 'ORD-1', note: '' },
        },
      },
    };
    event.data.object.metadata.note = 'x'.repeat(size - JSON.stringify(event).length);
    const payload = JSON.stringify(event);
    return { event, payload, header: signature(secret(), payload) };
  };

  it('a signed event of 300 KiB with its true Content-Length: 413, nothing recorded', async () => {
    const { event, payload, header } = signedEventOf(300 * 1024);
    const res = await webhook(payload, { 'stripe-signature': header, 'content-length': String(payload.length) });
    expect(res.status).toBe(413);
    expect((await res.json()).error).toMatch(/larger than 256 KiB/);
    expect(await sql`select 1 from webhook_events where id = ${event.id}`).toHaveLength(0);
  });

  it('a signed event just under the limit is read and answered as usual', async () => {
    const { event, payload, header } = signedEventOf(WEBHOOK_BODY_LIMIT_BYTES - 100);
    const res = await webhook(payload, { 'stripe-signature': header });
    expect(res.status).toBe(200);
    expect((await res.json()).outcome).toBe('unrelated');
    expect(await sql`select outcome from webhook_events where id = ${event.id}`).toEqual([{ outcome: 'unrelated' }]);
  });

  it('Content-Length says 5 MB: 413 without reading the body', async () => {
    const { stream, counter } = streamed(FIVE_MB);
    const res = await webhook(stream, { 'stripe-signature': 't=1,v1=00', 'content-length': String(FIVE_MB) });
    expect(res.status).toBe(413);
    expect(counter.pulled).toBe(0);
  });

  it.each([
    ['no Content-Length (a streamed body)', {}],
    ['a Content-Length that lies (100 bytes)', { 'content-length': '100' }],
  ])('%s, 5 MB sent: 413, reading stops at the limit', async (_name, headers: Record<string, string>) => {
    const { stream, counter } = streamed(FIVE_MB);
    const res = await webhook(stream, { 'stripe-signature': 't=1,v1=00', ...headers });
    expect(res.status).toBe(413);
    expect(counter.pulled).toBeLessThanOrEqual(WEBHOOK_BODY_LIMIT_BYTES + 2 * CHUNK);
  });
});

describe('the tRPC endpoint refuses a body over 64 KiB with 413, before reading it whole', () => {
  const api = (body: BodyInit, headers: Record<string, string> = {}) =>
    handleApiRequest(
      post('http://localhost/api/trpc/checkout.placeOrder', body, {
        cookie: customerCookie(randomUUID()),
        'idempotency-key': randomUUID(),
        ...headers,
      }),
    );
  const expectTooLarge = async (res: Response) => {
    expect(res.status).toBe(413);
    const body = await res.json();
    expect(body.error.data.errorCode).toBe('BODY_TOO_LARGE');
    expect(body.error.message).toMatch(/at most 64 KiB/);
  };

  it('the largest cart the API takes is a tenth of the limit or less, and goes through', async () => {
    const cart = {
      items: Array.from({ length: MAX_LINES }, (_, i) => ({ productId: `p${i}`.padEnd(64, 'x'), quantity: 99 })),
    };
    expect(JSON.stringify(cart).length).toBeLessThan(API_BODY_LIMIT_BYTES / 10);
    const res = await api(JSON.stringify(cart));
    expect(res.status).toBe(400); // read, then refused for what it says (no such products), not for its size
    expect((await res.json()).error.data.errorCode).toBe('UNKNOWN_PRODUCT');
  });

  it('a 100 KiB body with its true Content-Length: 413, no order', async () => {
    const body = JSON.stringify({ items: [{ productId: 'travel-mug', quantity: 1 }], pad: 'x'.repeat(100 * 1024) });
    await expectTooLarge(await api(body, { 'content-length': String(body.length) }));
  });

  it('Content-Length says 5 MB: 413 without reading the body', async () => {
    const { stream, counter } = streamed(FIVE_MB);
    await expectTooLarge(await api(stream, { 'content-length': String(FIVE_MB) }));
    expect(counter.pulled).toBe(0);
  });

  it.each([
    ['no Content-Length (a streamed body)', {}],
    ['a Content-Length that lies (100 bytes)', { 'content-length': '100' }],
  ])('%s, 5 MB sent: 413, reading stops at the limit', async (_name, headers: Record<string, string>) => {
    const { stream, counter } = streamed(FIVE_MB);
    await expectTooLarge(await api(stream, headers));
    expect(counter.pulled).toBeLessThanOrEqual(API_BODY_LIMIT_BYTES + 2 * CHUNK);
  });
});
