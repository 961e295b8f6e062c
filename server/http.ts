/**
 * The app over HTTP: every tRPC call is a request to /api/trpc/<procedure path>, and the payment
 * provider's webhooks arrive at /api/webhooks/stripe. The route files in app/api/ hand their requests
 * to these functions; tests call them directly.
 */
import { fetchRequestHandler } from '@trpc/server/adapters/fetch';
import { createContext } from './context';
import { getDatabase } from './db';
import { idempotencyOptions } from './env.js';
import { log } from './observability/log';
import { metrics } from './observability/metrics';
import { appRouter } from './routers/_app';
import { verifiedEvent } from './services/payments';
import { applyEvent } from './services/webhooks';

export function handleApiRequest(req: Request): Promise<Response> {
  return fetchRequestHandler({
    endpoint: '/api/trpc',
    req,
    router: appRouter,
    // The handlers go into the context rather than being imported where they are needed (the lab
    // replays its scripted requests through them): nothing below this file imports it back.
    createContext: ({ req, resHeaders, info }) =>
      createContext({ req, resHeaders, info, handlers: { api: handleApiRequest, webhook: handleStripeWebhook } }),
    // Every answer says how long keys are kept, so a client never sends one the server has forgotten
    // (it would be taken for a new request); see app/components/use-idempotent-mutation.ts.
    responseMeta: () => ({
      headers: { 'Idempotency-Key-Retention': String(Math.floor(idempotencyOptions().ttlMs / 1000)) },
    }),
    onError({ error, path }) {
      // Deliberate errors are answers, not incidents; only unexpected ones are logged with their cause.
      if (error.code === 'INTERNAL_SERVER_ERROR')
        log().error({ err: error.cause ?? error, procedure: path }, `${path ?? '?'} failed`);
    },
  });
}

/**
 * A webhook from Stripe. Its signature is checked first: unsigned, badly signed, stale (outside the
 * SDK's 5 minutes) or malformed requests get a 400 and change nothing. A verified event is applied
 * once (server/services/webhooks.ts) and answered 200, also when it was a redelivery, so that Stripe
 * stops sending it; an error of ours answers 500, and Stripe sends it again later.
 */
export async function handleStripeWebhook(req: Request): Promise<Response> {
  const payload = await req.text();
  let event: ReturnType<typeof verifiedEvent>;
  try {
    event = verifiedEvent(payload, req.headers.get('stripe-signature'));
  } catch (err) {
    metrics().webhooks.inc({ type: 'unverified', outcome: 'refused' });
    log().warn({ reason: (err as Error).message }, 'webhook refused');
    return Response.json({ error: `webhook refused: ${(err as Error).message}` }, { status: 400 });
  }
  const outcome = await applyEvent(getDatabase().db, event);
  metrics().webhooks.inc({ type: event.type, outcome });
  log().info({ event: event.id, type: event.type, outcome }, `webhook ${event.type} ${outcome}`);
  return Response.json({ received: true, id: event.id, type: event.type, outcome });
}
