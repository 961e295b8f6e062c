/**
 * How tRPC calls travel. Queries are batched into one request; mutations never are, because a
 * batch shares one set of HTTP headers and a keyed mutation must carry its own `Idempotency-Key`.
 *
 * A mutation gets its key from the operation's context:
 *   client.checkout.placeOrder.mutate(input, { context: { idempotencyKey } })
 */
import { httpBatchLink, httpLink, splitLink, type TRPCLink } from '@trpc/client';
import type { AppRouter } from '@/server/routers/_app';

export interface LinkOptions {
  url: string;
  /** For tests: where requests go. Defaults to the global fetch. */
  fetch?: typeof fetch;
}

export function createLinks({ url, fetch }: LinkOptions): TRPCLink<AppRouter>[] {
  return [
    splitLink({
      condition: (op) => op.type === 'mutation',
      true: httpLink({
        url,
        fetch,
        headers: ({ op }) => {
          const key = op.context.idempotencyKey;
          return typeof key === 'string' ? { 'Idempotency-Key': key } : {};
        },
      }),
      false: httpBatchLink({ url, fetch }),
    }),
  ];
}
