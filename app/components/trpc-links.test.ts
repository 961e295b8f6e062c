/** Rule 1, client side: keyed mutations travel alone, each with its own Idempotency-Key header. */
import { createTRPCClient } from '@trpc/client';
import { describe, expect, it } from 'vitest';
import { handleApiRequest } from '@/server/http';
import type { AppRouter } from '@/server/routers/_app';
import { customerCookie } from '@/server/testing';
import { createLinks } from './trpc-links';

describe('tRPC client links', () => {
  it('never batches a mutation: two keyed mutations and two queries sent together make three requests', async () => {
    const cookie = customerCookie(crypto.randomUUID());
    const sent: { url: string; key: string | null }[] = [];
    const client = createTRPCClient<AppRouter>({
      links: createLinks({
        url: 'http://localhost/api/trpc',
        fetch: async (input, init) => {
          const req = new Request(input as string, init);
          req.headers.set('cookie', cookie);
          sent.push({ url: req.url, key: req.headers.get('idempotency-key') });
          return handleApiRequest(req);
        },
      }),
    });
    const [keyA, keyB] = [crypto.randomUUID(), crypto.randomUUID()];
    const input = { items: [{ productId: 'travel-mug', quantity: 1 }] };
    const [a, b] = await Promise.all([
      client.checkout.placeOrder.mutate(input, { context: { idempotencyKey: keyA } }),
      client.checkout.placeOrder.mutate(input, { context: { idempotencyKey: keyB } }),
      client.catalog.list.query(),
      client.orders.history.query(),
    ]);
    expect(a.id).not.toBe(b.id);

    const mutations = sent.filter((s) => s.url.includes('checkout.placeOrder'));
    expect(mutations.map((m) => m.key).sort()).toEqual([keyA, keyB].sort());
    expect(mutations.every((m) => !m.url.includes(','))).toBe(true); // alone, not in a batch
    const queries = sent.filter((s) => !s.url.includes('checkout.'));
    expect(queries).toHaveLength(1); // the two queries shared one batched request
    expect(queries[0]!.url).toContain('catalog.list,orders.history');
    expect(queries[0]!.key).toBeNull();
  });
});
