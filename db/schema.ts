/**
 * The database schema. `npm run db:generate` turns changes here into a SQL migration under
 * `db/migrations`, which is committed and applied on start.
 *
 * Money is integer cents plus an ISO currency code: never floats.
 */
import { relations, sql } from 'drizzle-orm';
import { boolean, check, index, integer, json, pgTable, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import { type IdempotencyKey, idempotencyKeys } from '../server/idempotency';
import { MAX_QUANTITY } from '../shared/shop-rules';

export const products = pgTable(
  'products',
  {
    id: text('id').primaryKey(), // a readable slug, e.g. "espresso-beans"
    name: text('name').notNull(),
    description: text('description').notNull(),
    priceCents: integer('price_cents').notNull(),
    currency: text('currency').notNull(),
    // A sold-out product stays listed but cannot be ordered: a business failure, not bad input.
    soldOut: boolean('sold_out').notNull().default(false),
  },
  (t) => [
    check('products_id_length', sql`char_length(${t.id}) between 1 and 64`),
    check('products_price_positive', sql`${t.priceCents} > 0`),
    check('products_currency_iso', sql`${t.currency} ~ '^[A-Z]{3}$'`),
  ],
);

/**
 * One row per idempotency key: the idempotency layer's own table (server/idempotency/schema.ts),
 * re-exported here so that the shop's migrations create it and its orders can point at it.
 */
export { type IdempotencyKey, idempotencyKeys };

export const orders = pgTable(
  'orders',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    // The anonymous customer from the signed cookie. There is no customers table: the identity
    // is the signed id itself, and every order query filters on it.
    customerId: uuid('customer_id').notNull(),
    // placed: no payment involved (checkout.placeOrder). The purchase flow goes pending_payment ->
    // paid | payment_failed | cancelled, or through payment_processing (the provider has not received
    // the money yet: processing, or waiting for the customer's 3-D Secure) to paid | payment_failed.
    // Forward only, enforced by a trigger (db/migrations/0006_payment_states.sql).
    status: text('status', {
      enum: ['placed', 'pending_payment', 'payment_processing', 'paid', 'payment_failed', 'cancelled'],
    })
      .notNull()
      .default('placed'),
    totalCents: integer('total_cents').notNull(),
    currency: text('currency').notNull(),
    // The provider's PaymentIntent for this order's one charge (null until a charge was made).
    paymentIntentId: text('payment_intent_id').unique(),
    // Sum of succeeded and in-flight refunds; never above the total.
    refundedCents: integer('refunded_cents').notNull().default(0),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    // The key that created this order, if any. Cleared when the reaper deletes the expired key.
    // Checked at COMMIT (DEFERRABLE INITIALLY DEFERRED, db/migrations/0008_deferred_order_key_check.sql,
    // which Drizzle's schema cannot express): a one-transaction key's row is written after the order,
    // with its answer, as the transaction's last statement.
    idempotencyKeyId: uuid('idempotency_key_id').references(() => idempotencyKeys.id, { onDelete: 'set null' }),
  },
  (t) => [
    // Deleting a key clears this column through the foreign key: the index keeps that cheap.
    index('orders_idempotency_key_idx').on(t.idempotencyKeyId),
    // The history page: one customer's orders, newest first.
    index('orders_customer_created_idx').on(t.customerId, t.createdAt.desc()),
    check('orders_total_positive', sql`${t.totalCents} > 0`),
    check('orders_refund_within_total', sql`${t.refundedCents} between 0 and ${t.totalCents}`),
  ],
);

export const orderItems = pgTable(
  'order_items',
  {
    orderId: uuid('order_id')
      .notNull()
      .references(() => orders.id, { onDelete: 'cascade' }),
    productId: text('product_id')
      .notNull()
      .references(() => products.id),
    quantity: integer('quantity').notNull(),
    // The catalog price at the time of the order, so later price changes do not rewrite history.
    unitPriceCents: integer('unit_price_cents').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.orderId, t.productId] }),
    check('order_items_quantity_range', sql`${t.quantity} between 1 and ${sql.raw(String(MAX_QUANTITY))}`),
  ],
);

/**
 * Refunds of paid orders: reserved (pending) before the provider call; succeeded after it, or
 * failed when the provider refused it for good (the reservation is then given back).
 */
export const refunds = pgTable(
  'refunds',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    orderId: uuid('order_id')
      .notNull()
      .references(() => orders.id),
    amountCents: integer('amount_cents').notNull(),
    status: text('status', { enum: ['pending', 'succeeded', 'failed'] })
      .notNull()
      .default('pending'),
    providerRefundId: text('provider_refund_id').unique(),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [index('refunds_order_idx').on(t.orderId), check('refunds_amount_positive', sql`${t.amountCents} > 0`)],
);

/**
 * The outbox: side effects that must happen once after a commit (the receipt), written in the
 * same transaction as the change that causes them, delivered later by a worker, at least once.
 * A message that fails is retried later with a growing delay, and set aside (`dead_at`) after too
 * many failures, so that it never blocks the messages behind it.
 */
export const outbox = pgTable(
  'outbox',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    topic: text('topic').notNull(),
    // One message per fact: staging the same receipt twice is a no-op.
    dedupeKey: text('dedupe_key').notNull().unique(),
    payload: json('payload').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    deliveredAt: timestamp('delivered_at', { withTimezone: true, mode: 'date' }),
    attempts: integer('attempts').notNull().default(0),
    // Not before this time: the next delivery of a message that failed waits here.
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    lastError: text('last_error'),
    // Set aside after too many failures: listed by `npm run reconcile`, never tried again by itself.
    deadAt: timestamp('dead_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [index('outbox_due_idx').on(t.nextAttemptAt).where(sql`${t.deliveredAt} is null and ${t.deadAt} is null`)],
);

/** What a recorded webhook event did (see `webhookEvents.outcome`). */
export const WEBHOOK_OUTCOMES = ['applied', 'stale', 'unrelated', 'mismatch'] as const;

/**
 * Every webhook event the provider delivered, recorded in the transaction that applied it: a
 * redelivery finds its id here and changes nothing. `outcome` says what it did.
 */
export const webhookEvents = pgTable(
  'webhook_events',
  {
    id: text('id').primaryKey(), // the provider's event id (evt_...)
    type: text('type').notNull(),
    // The PaymentIntent or Refund the event is about.
    objectId: text('object_id').notNull(),
    // applied: it moved an order or a refund forward; stale: it arrived after a later state and
    // changed nothing; unrelated: it is about nothing this shop made; mismatch: it names an order or
    // a refund of ours, but the payment or refund it carries is not that one's, so it changed nothing
    // (server/services/webhooks.ts says what must match; reconcile lists these).
    outcome: text('outcome', { enum: WEBHOOK_OUTCOMES }).notNull(),
    // For a mismatch: the order it named (reconcile lists a customer's by it) and what did not match.
    orderId: uuid('order_id'),
    detail: text('detail'),
    receivedAt: timestamp('received_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [
    check('webhook_events_id_length', sql`char_length(${t.id}) between 1 and 255`),
    check(
      'webhook_events_outcome',
      sql`${t.outcome} in (${sql.raw(WEBHOOK_OUTCOMES.map((o) => `'${o}'`).join(', '))})`,
    ),
    check('webhook_events_detail_length', sql`char_length(${t.detail}) <= 1000`),
  ],
);

/** Where receipts are delivered: the stand-in for an email provider, deduplicated by order. */
export const receipts = pgTable('receipts', {
  orderId: uuid('order_id')
    .primaryKey()
    .references(() => orders.id),
  body: text('body').notNull(),
  deliveredAt: timestamp('delivered_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
});

// Relations let `db.query.orders.findMany({ with: { items: { with: { product: true } } } })` load an
// order with its lines in one statement.
export const ordersRelations = relations(orders, ({ many }) => ({ items: many(orderItems) }));
export const orderItemsRelations = relations(orderItems, ({ one }) => ({
  order: one(orders, { fields: [orderItems.orderId], references: [orders.id] }),
  product: one(products, { fields: [orderItems.productId], references: [products.id] }),
}));

export type Product = typeof products.$inferSelect;

/**
 * The lab (/lab, server/lab/): customers it made for itself, and its runs. The lab only ever acts
 * as one of these customers, so even with the lab on in production it touches no real customer.
 */
export const labCustomers = pgTable('lab_customers', {
  id: uuid('id').primaryKey(),
  createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
});

/** One run of a lab scenario: what happened, step by step, and the verdict counted from the records. */
export const labRuns = pgTable('lab_runs', {
  id: uuid('id').primaryKey().defaultRandom(),
  scenario: text('scenario').notNull(),
  variant: text('variant', { enum: ['safe', 'unsafe'] }).notNull(),
  // The lab customers of this run (most scenarios need one; "two customers" needs two).
  customers: json('customers').$type<string[]>().notNull(),
  status: text('status', { enum: ['running', 'done', 'failed'] })
    .notNull()
    .default('running'),
  timeline: json('timeline').notNull().default([]),
  verdict: json('verdict'),
  createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
});

/** The lab's server-side cart, for the scenario about naturally idempotent operations. */
export const labCartLines = pgTable(
  'lab_cart_lines',
  {
    customerId: uuid('customer_id').notNull(),
    productId: text('product_id').notNull(),
    quantity: integer('quantity').notNull(),
  },
  (t) => [primaryKey({ columns: [t.customerId, t.productId] })],
);
