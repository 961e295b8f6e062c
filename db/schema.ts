/**
 * The database schema. `npm run db:generate` turns changes here into a SQL migration under
 * `db/migrations`, which is committed and applied on start.
 *
 * Money is integer cents plus an ISO currency code: never floats.
 */
import { relations, sql } from 'drizzle-orm';
import { check, index, integer, pgTable, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core';

export const products = pgTable(
  'products',
  {
    id: text('id').primaryKey(), // a readable slug, e.g. "espresso-beans"
    name: text('name').notNull(),
    description: text('description').notNull(),
    priceCents: integer('price_cents').notNull(),
    currency: text('currency').notNull(),
  },
  (t) => [
    check('products_id_length', sql`char_length(${t.id}) between 1 and 64`),
    check('products_price_positive', sql`${t.priceCents} > 0`),
    check('products_currency_iso', sql`${t.currency} ~ '^[A-Z]{3}$'`),
  ],
);

export const orders = pgTable(
  'orders',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    // The anonymous customer from the signed cookie. There is no customers table: the identity
    // is the signed id itself, and every order query filters on it.
    customerId: uuid('customer_id').notNull(),
    status: text('status', { enum: ['placed'] }).notNull().default('placed'),
    totalCents: integer('total_cents').notNull(),
    currency: text('currency').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [
    // The history page: one customer's orders, newest first.
    index('orders_customer_created_idx').on(t.customerId, t.createdAt.desc()),
    check('orders_total_positive', sql`${t.totalCents} > 0`),
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
    check('order_items_quantity_range', sql`${t.quantity} between 1 and 99`),
  ],
);

// Relations let `db.query.orders.findMany({ with: { items: { with: { product: true } } } })` load an
// order with its lines in one statement.
export const ordersRelations = relations(orders, ({ many }) => ({ items: many(orderItems) }));
export const orderItemsRelations = relations(orderItems, ({ one }) => ({
  order: one(orders, { fields: [orderItems.orderId], references: [orders.id] }),
  product: one(products, { fields: [orderItems.productId], references: [products.id] }),
}));

export type Product = typeof products.$inferSelect;
export type Order = typeof orders.$inferSelect;
export type OrderItem = typeof orderItems.$inferSelect;
