'use client';
/**
 * The tRPC client for React. Components call `useTRPC()` and pass its `queryOptions()` /
 * `mutationOptions()` to TanStack Query.
 *
 * The links (how calls travel, and where the Idempotency-Key header is set) are in trpc-links.ts.
 */
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { createTRPCClient } from '@trpc/client';
import { createTRPCContext } from '@trpc/tanstack-react-query';
import { type ReactNode, useState } from 'react';
import type { AppRouter } from '@/server/routers/_app';
import { createLinks } from './trpc-links';

export const { TRPCProvider, useTRPC, useTRPCClient } = createTRPCContext<AppRouter>();

function makeQueryClient() {
  return new QueryClient({
    defaultOptions: {
      queries: { staleTime: 5_000, retry: 1 },
      // Mutations are never retried by TanStack Query: a blind retry without a key is how
      // duplicate orders happen. Retries of keyed mutations are the checkout's own business.
      mutations: { retry: false },
    },
  });
}

export function TRPCReactProvider({ children }: { children: ReactNode }) {
  const [queryClient] = useState(makeQueryClient);
  const [trpcClient] = useState(() => createTRPCClient<AppRouter>({ links: createLinks({ url: '/api/trpc' }) }));
  return (
    <QueryClientProvider client={queryClient}>
      <TRPCProvider trpcClient={trpcClient} queryClient={queryClient}>
        {children}
      </TRPCProvider>
    </QueryClientProvider>
  );
}
