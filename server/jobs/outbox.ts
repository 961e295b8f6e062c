/**
 * The outbox worker: delivers staged side effects (receipts) at least once.
 *
 * A message is claimed with FOR UPDATE SKIP LOCKED (several workers never take the same one),
 * delivered, and marked delivered in the same transaction. If the worker dies after delivering and
 * before committing, the message is delivered again: so the receiving side deduplicates, here by
 * order id (`receipts` primary key). With a real email provider, the message id would be the
 * idempotency key of the provider call.
 */
import { sql } from 'drizzle-orm';
import type { Db } from '../../db/client';
import { receipts } from '../../db/schema';
import type { OrderView } from '../services/orders';

const BATCH = 20;

function receiptText(order: OrderView): string {
  const lines = order.items.map((i) => `${i.quantity} x ${i.name}: ${(i.lineTotalCents / 100).toFixed(2)}`);
  return [`Order ${order.id}`, ...lines, `Total: ${(order.totalCents / 100).toFixed(2)} ${order.currency}`].join('\n');
}

/** Delivers what is waiting; returns how many messages were delivered. */
export async function deliverOutbox(db: Db): Promise<number> {
  let delivered = 0;
  for (;;) {
    const n = await db.transaction(async (tx) => {
      const batch = await tx.execute<{ id: string; topic: string; payload: OrderView }>(sql`
        select id, topic, payload from outbox
        where delivered_at is null
        order by created_at
        limit ${BATCH}
        for update skip locked`);
      for (const message of batch) {
        if (message.topic === 'receipt') {
          await tx.insert(receipts).values({ orderId: message.payload.id, body: receiptText(message.payload) }).onConflictDoNothing();
        }
        await tx.execute(sql`update outbox set delivered_at = now(), attempts = attempts + 1 where id = ${message.id}`);
      }
      return batch.length;
    });
    delivered += n;
    if (n < BATCH) return delivered;
  }
}
