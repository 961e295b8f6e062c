/**
 * The HTTP server: tRPC's standalone adapter on plain Node, and the two jobs the layer needs.
 *
 * The standalone adapter gives createContext Node's `req` and `res`, not `Headers`: the layer reads
 * the key from a `Headers` (`headers`) and writes `Idempotent-Replayed` and `Retry-After` into
 * another (`resHeaders`), which `responseMeta` sends with the response.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { TRPCError } from '@trpc/server';
import { createHTTPServer } from '@trpc/server/adapters/standalone';
import { createCompleter, reapExpiredKeys, refuseKeyedBatch } from '../../server/idempotency/index';
import type { Db } from './db';
import { idempotencyOptions, router, sendMessage } from './router';

const toHeaders = (h: IncomingHttpHeaders) =>
  new Headers(Object.entries(h).flatMap(([k, v]) => (v === undefined ? [] : [[k, String(v)] as [string, string]])));

export function createServer(db: Db, providerUrl: string) {
  return createHTTPServer({
    router,
    basePath: '/trpc/',
    maxBodySize: 64 * 1024, // a message is a few hundred bytes
    createContext: ({ req, info }) => {
      const headers = toHeaders(req.headers);
      refuseKeyedBatch(info, headers); // a batch shares one set of headers, hence one key: refused
      return { db, headers, resHeaders: new Headers(), userId: headers.get('x-user-id'), providerUrl };
    },
    responseMeta: ({ ctx }) => ({ headers: ctx?.resHeaders ?? {} }),
  });
}

/**
 * The completer finishes `messages.send` keys whose client never came back (it died, or gave up):
 * it takes the key over and runs the same function the procedure runs, with the same steps.
 */
export function createMessageCompleter(db: Db, providerUrl: string) {
  return createCompleter({
    db,
    options: idempotencyOptions,
    flows: {
      'messages.send': {
        finish: (steps, key) =>
          sendMessage(steps, key.scope, key.requestInput as { to: string; body: string }, providerUrl),
        gaveUp: () => new TRPCError({ code: 'CONFLICT', message: 'The message could not be sent; nothing was sent.' }),
      },
    },
  });
}

/** Both jobs on timers in this process (several processes may run them at once). Returns a stop function. */
export function startJobs(db: Db, providerUrl: string): () => void {
  const completer = createMessageCompleter(db, providerUrl);
  const log = (job: string) => (err: unknown) => console.error(`${job} failed`, err);
  // A key is the completer's once its client had a minute to retry by itself.
  const finishing = setInterval(() => completer.run({ delaySeconds: 60 }).catch(log('completer')), 5_000);
  // Expired keys (older than ttlMs) are deleted every five minutes, in small batches.
  const reaping = setInterval(() => reapExpiredKeys(db).catch(log('reaper')), 5 * 60_000);
  return () => {
    clearInterval(finishing);
    clearInterval(reaping);
  };
}
