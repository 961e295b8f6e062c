/** The one HTTP entry point of the API: every tRPC call is a request to /api/trpc/<procedure path>. */
import { fetchRequestHandler } from '@trpc/server/adapters/fetch';
import { createContext } from '@/server/context';
import { ensureBackgroundJobs } from '@/server/jobs/schedule';
import { appRouter } from '@/server/routers/_app';

function handler(req: Request) {
  ensureBackgroundJobs(); // reaper, completer, outbox worker: started once per process
  return fetchRequestHandler({
    endpoint: '/api/trpc',
    req,
    router: appRouter,
    createContext: ({ req, resHeaders }) => createContext({ req, resHeaders }),
    onError({ error, path }) {
      // Deliberate errors are answers, not incidents; only unexpected ones are logged with their cause.
      if (error.code === 'INTERNAL_SERVER_ERROR') console.error(`[trpc] ${path ?? '?'} failed:`, error.cause ?? error);
    },
  });
}

export { handler as GET, handler as POST };
