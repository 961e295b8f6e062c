/**
 * The app over HTTP: every tRPC call is a request to /api/trpc/<procedure path>, and the payment
 * provider's webhooks arrive at /api/webhooks/stripe. The route files in app/api/ hand their requests
 * to these functions; tests call them directly.
 */
import { fetchRequestHandler } from '@trpc/server/adapters/fetch';
import {
  API_BODY_LIMIT_BYTES,
  BodyTooLarge,
  readTextWithin,
  WEBHOOK_BODY_LIMIT_BYTES,
  withBodyLimit,
} from './body-limit';
import { createContext } from './context';
import { getDatabase } from './db';
import { idempotencyOptions } from './env.js';
import { AppError } from './errors';
import { log } from './observability/log';
import { metrics } from './observability/metrics';
import { appRouter } from './routers/_app';
import { verifiedEvent } from './services/payments';
import { applyEvent, parseEvent } from './services/webhooks';

export function handleApiRequest(req: Request): Promise<Response> {
  return fetchRequestHandler({
    endpoint: '/api/trpc',
    // The adapter reads the body itself: past the limit, its read fails with our error, answered 413.
    req: withBodyLimit(
      req,
      API_BODY_LIMIT_BYTES,
      () => new AppError('BODY_TOO_LARGE', { detail: `(at most ${API_BODY_LIMIT_BYTES / 1024} KiB)` }),
    ),
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
 * A webhook from Stripe. Its body is read only up to WEBHOOK_BODY_LIMIT_BYTES (larger: 413, see
 * body-limit.ts); its signature is checked next: unsigned, badly signed, stale (outside the
 * SDK's 5 minutes) or malformed requests get a 400 and change nothing; so does a signed body that is
 * not a well-formed event (the 400 names what is wrong). A verified event is applied once
 * (server/services/webhooks.ts) and answered 200, also when it was a redelivery, a mismatch or about
 * nothing of ours, so that Stripe stops sending it; an error of ours answers 500, and Stripe sends it
 * again later.
 */
export async function handleStripeWebhook(req: Request): Promise<Response> {
  let payload: string;
  try {
    payload = await readTextWithin(req, WEBHOOK_BODY_LIMIT_BYTES);
  } catch (err) {
    if (!(err instanceof BodyTooLarge)) throw err;
    metrics().webhooks.inc({ type: 'too_large', outcome: 'refused' });
    log().warn({ limit: err.limit }, 'webhook refused: body too large');
    return Response.json({ error: `webhook refused: ${err.message}` }, { status: 413 });
  }
  let verified: unknown;
  try {
    verified = verifiedEvent(payload, req.headers.get('stripe-signature'));
  } catch (err) {
    return refused('unverified', (err as Error).message);
  }
  const parsed = parseEvent(verified);
  if (!parsed.ok) return refused('malformed', parsed.problem);
  const { event } = parsed;
  const { outcome, detail, orderId } = await applyEvent(getDatabase().db, event);
  metrics().webhooks.inc({ type: event.type, outcome });
  const fields = { event: event.id, type: event.type, outcome, detail, order: orderId };
  // A mismatch is someone's payment naming an order that is not its own: worth a look (reconcile lists it).
  if (outcome === 'mismatch') log().warn(fields, `webhook ${event.type} mismatch: ${detail}`);
  else log().info(fields, `webhook ${event.type} ${outcome}`);
  return Response.json({ received: true, id: event.id, type: event.type, outcome, ...(detail ? { detail } : {}) });
}

/** A 400 for a webhook this shop will not act on, whoever sent it: counted, logged, nothing written. */
function refused(type: 'unverified' | 'malformed', reason: string): Response {
  metrics().webhooks.inc({ type, outcome: 'refused' });
  log().warn({ reason }, 'webhook refused');
  return Response.json({ error: `webhook refused: ${reason}` }, { status: 400 });
}
