/**
 * The API over HTTP: every tRPC call is a request to /api/trpc/<procedure path>, handled here.
 * app/api/trpc/[trpc]/route.ts hands its requests to this function; tests call it directly.
 */
import { fetchRequestHandler } from '@trpc/server/adapters/fetch';
import { createContext } from './context';
import { idempotencyOptions } from './env.js';
import { appRouter } from './routers/_app';

export function handleApiRequest(req: Request): Promise<Response> {
  return fetchRequestHandler({
    endpoint: '/api/trpc',
    req,
    router: appRouter,
    createContext: ({ req, resHeaders, info }) => createContext({ req, resHeaders, info }),
    // Every answer says how long keys are kept, so a client never sends one the server has forgotten
    // (it would be taken for a new request); see app/components/use-idempotent-mutation.ts.
    responseMeta: () => ({ headers: { 'Idempotency-Key-Retention': String(Math.floor(idempotencyOptions().ttlMs / 1000)) } }),
    onError({ error, path }) {
      // Deliberate errors are answers, not incidents; only unexpected ones are logged with their cause.
      if (error.code === 'INTERNAL_SERVER_ERROR') console.error(`[trpc] ${path ?? '?'} failed:`, error.cause ?? error);
    },
  });
}
