/**
 * The example's tables, as Drizzle sees them: its one business table, `example_messages`, and the layer's
 * `idempotency_keys`, re-exported from the folder's public face as your own schema file would.
 * `schema.sql` creates both (the layer's table from the folder's own SQL file).
 */
import { pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import { idempotencyKeys } from '../../server/idempotency/index';

export { idempotencyKeys };

/** A text message: saved as a draft (one transaction), or sent through the provider (phased). */
export const messages = pgTable('example_messages', {
  id: uuid('id').primaryKey().defaultRandom(),
  userId: text('user_id').notNull(), // whose message: also the scope of their idempotency keys
  to: text('to').notNull(),
  body: text('body').notNull(),
  status: text('status').$type<'draft' | 'sending' | 'sent'>().notNull(),
  providerMessageId: text('provider_message_id'), // the provider's id, once sent
  // The key that created it. In your app, make it a foreign key with ON DELETE SET NULL (the reaper
  // deletes expired keys, never messages); here it is none, because adding one would lock the key
  // table that the shop's tests, in the same database, are writing to.
  keyId: uuid('key_id'),
  createdAt: timestamp('created_at', { withTimezone: true }).defaultNow().notNull(),
});
