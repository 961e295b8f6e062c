/**
 * The outbox worker: delivers staged side effects (receipts) at least once.
 *
 * Due messages are claimed with FOR UPDATE SKIP LOCKED (several workers never take the same one).
 * Each is delivered and marked delivered in a savepoint of its own: one that fails is rolled back
 * alone, scheduled again later (attempts + 1, a growing delay), and after MAX_ATTEMPTS set aside
 * as dead, so a poison message never blocks the ones behind it. If the worker dies after delivering
 * and before committing, the message is delivered again: the receiving side deduplicates, here by
 * order id (`receipts` primary key). With a real email provider, the message id would be the
 * idempotency key of the provider call.
 */
import { sql } from 'drizzle-orm';
import type { Db, Tx } from '../../db/client';
import { receipts } from '../../db/schema';
import { metrics } from '../observability/metrics';
import type { OrderView } from '../services/orders';

const BATCH = 20;
// 10 failures with delays doubling from 2 s (capped at an hour) span about half an hour: long enough
// to ride out an outage of the receiving side, short enough that a poison message is seen soon.
export const MAX_ATTEMPTS = 10;
const FIRST_RETRY_SECONDS = 2;
const MAX_RETRY_SECONDS = 3_600;

function receiptText(order: OrderView): string {
  const lines = order.items.map((i) => `${i.quantity} x ${i.name}: ${(i.lineTotalCents / 100).toFixed(2)}`);
  return [`Order ${order.id}`, ...lines, `Total: ${(order.totalCents / 100).toFixed(2)} ${order.currency}`].join('\n');
}

/** Performs one message. Throws when it cannot (the caller keeps it for later). */
async function perform(tx: Tx, message: { topic: string; payload: unknown }): Promise<void> {
  if (message.topic === 'receipt') {
    const order = message.payload as OrderView;
    await tx
      .insert(receipts)
      .values({ orderId: order.id, body: receiptText(order) })
      .onConflictDoNothing();
    return;
  }
  throw new Error(`no handler for outbox topic '${message.topic}'`);
}

export interface OutboxRun {
  delivered: number;
  failed: number;
  dead: number;
}

/** Delivers what is due; returns what happened to the messages it took. */
export async function deliverOutbox(db: Db, options: { signal?: AbortSignal } = {}): Promise<OutboxRun> {
  const run: OutboxRun = { delivered: 0, failed: 0, dead: 0 };
  // Batch after batch until none is full, or until the caller's budget is spent (server/jobs/run.ts).
  while (!options.signal?.aborted) {
    const taken = await db.transaction(async (tx) => {
      const batch = await tx.execute<{ id: string; topic: string; payload: unknown; attempts: number }>(sql`
        select id, topic, payload, attempts from outbox
        where delivered_at is null and dead_at is null and next_attempt_at <= now()
        order by next_attempt_at
        limit ${BATCH}
        for update skip locked`);
      for (const message of batch) {
        try {
          await tx.transaction(async (one) => {
            await perform(one, message);
            await one.execute(
              sql`update outbox set delivered_at = now(), attempts = attempts + 1 where id = ${message.id}`,
            );
          });
          run.delivered++;
          metrics().outbox.inc({ outcome: 'delivered' });
        } catch (err) {
          // Only this message's savepoint rolled back: record the failure and move on.
          const attempts = message.attempts + 1;
          const dead = attempts >= MAX_ATTEMPTS;
          const delay = Math.min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** (attempts - 1));
          await tx.execute(sql`
            update outbox set attempts = ${attempts}, last_error =
              ${String((err as Error).message ?? err).slice(0, 500)},
              next_attempt_at = now() + make_interval(secs => ${delay}),
              dead_at = ${dead ? sql`now()` : null}
            where id = ${message.id}`);
          if (dead) run.dead++;
          else run.failed++;
          metrics().outbox.inc({ outcome: dead ? 'dead' : 'failed' });
        }
      }
      return batch.length;
    });
    if (taken < BATCH) return run;
  }
  return run;
}
