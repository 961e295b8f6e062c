/**
 * Metrics in the Prometheus text format at GET /api/metrics: what the idempotency layer decided and
 * how long it took, keys in flight, the completer's takeovers and give-ups, the outbox's backlog and
 * deliveries, webhook events by type and outcome, and the process's own figures. On in development
 * and tests; in production only with ENABLE_METRICS=1 and a METRICS_TOKEN the scraper must send
 * (`Authorization: Bearer <token>`), so business volumes are never public.
 */
import { timingSafeEqual } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { getDatabase } from '../db';
import { getEnv } from '../env.js';
import type { DecisionEvent } from '../idempotency';
import { countKeysInFlight } from '../idempotency';

function create() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const keysInFlight = () => countKeysInFlight(getDatabase().db);
  const outboxBacklog = async () => {
    const [row] = await getDatabase().db.execute<{ n: number }>(
      sql`select count(*)::int as n from outbox where delivered_at is null and dead_at is null`,
    );
    return row!.n;
  };
  return {
    registry,
    decisions: new Counter({
      name: 'idempotency_decisions_total',
      help: 'Keyed requests by procedure and decision.',
      labelNames: ['procedure', 'decision'],
      registers: [registry],
    }),
    latency: new Histogram({
      name: 'idempotency_request_duration_seconds',
      help: 'From the arrival of a keyed request to its decision, by procedure and decision.',
      labelNames: ['procedure', 'decision'],
      // From a replay (a few ms) to a checkout that waited on the provider (seconds).
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    keysInFlight: new Gauge({
      name: 'idempotency_keys_in_flight',
      help: 'Keys claimed and not answered yet (phased procedures at work, or abandoned).',
      registers: [registry],
      async collect() {
        this.set(await keysInFlight());
      },
    }),
    completer: new Counter({
      name: 'completer_runs_total',
      help: 'Keys the completer took over, and gave up on.',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    outboxBacklog: new Gauge({
      name: 'outbox_backlog',
      help: 'Outbox messages waiting to be delivered.',
      registers: [registry],
      async collect() {
        this.set(await outboxBacklog());
      },
    }),
    outbox: new Counter({
      name: 'outbox_delivery_attempts_total',
      help: 'Outbox delivery attempts by outcome.',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    webhooks: new Counter({
      name: 'webhook_events_total',
      help: 'Webhook deliveries by event type and outcome.',
      labelNames: ['type', 'outcome'],
      registers: [registry],
    }),
  };
}

// Kept on globalThis: Next evaluates this module in more than one bundle of one process, and a
// metric may be registered only once.
const cache = globalThis as unknown as { __metrics?: ReturnType<typeof create> };
export function metrics() {
  cache.__metrics ??= create();
  return cache.__metrics;
}

/** The decision listener: one count and one timing per keyed request. */
export function countDecision(event: DecisionEvent): void {
  const m = metrics();
  m.decisions.inc({ procedure: event.procedure, decision: event.decision });
  if (typeof event.ms === 'number')
    m.latency.observe({ procedure: event.procedure, decision: event.decision }, event.ms / 1000);
}

/** Whether the request carries `Authorization: Bearer <token>` (compared in constant time). */
export function authorized(req: Request, token: string | undefined): boolean {
  if (!token) return true;
  const given = Buffer.from(req.headers.get('authorization') ?? '');
  const expected = Buffer.from(`Bearer ${token}`);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export async function handleMetrics(req: Request): Promise<Response> {
  const env = getEnv();
  if (!env.ENABLE_METRICS) return new Response('Not found', { status: 404 });
  if (!authorized(req, env.METRICS_TOKEN)) return new Response('Unauthorized', { status: 401 });
  const { registry } = metrics();
  return new Response(await registry.metrics(), { headers: { 'content-type': registry.contentType } });
}
