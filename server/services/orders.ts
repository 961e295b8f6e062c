/**
 * Orders: the domain, with no HTTP or tRPC in it.
 *
 * The client sends product ids and quantities only. Prices and totals come from the catalog, read
 * inside the same transaction that writes the order: a price sent by the client is refused by the
 * input schema, never used.
 */
import { and, asc, desc, eq, inArray, sql } from 'drizzle-orm';
import { z } from 'zod';
import type { DbOrTx, Tx } from '../../db/client';
import { orderItems, orders, products, refunds } from '../../db/schema';
import { MAX_LINES, MAX_QUANTITY } from '../../shared/shop-rules';
import { AppError } from '../errors';

export const cartItemSchema = z.strictObject({
  productId: z.string().min(1, 'must not be empty').max(64, 'must be at most 64 characters'),
  quantity: z
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(1, `must be from 1 to ${MAX_QUANTITY}`)
    .max(MAX_QUANTITY, `must be from 1 to ${MAX_QUANTITY}`),
});

export const placeOrderInput = z.strictObject({
  items: z
    .array(cartItemSchema, { error: 'must be a list of {productId, quantity}' })
    .min(1, 'the cart is empty: add at least one product')
    .max(MAX_LINES, `at most ${MAX_LINES} different products per order`)
    .superRefine((items, ctx) => {
      const seen = new Set<string>();
      items.forEach((item, i) => {
        if (seen.has(item.productId)) {
          ctx.addIssue({
            code: 'custom',
            path: [i, 'productId'],
            message: `'${item.productId}' is listed twice: send one line with the total quantity`,
          });
        }
        seen.add(item.productId);
      });
    }),
});
export type PlaceOrderInput = z.infer<typeof placeOrderInput>;

export interface OrderView {
  id: string;
  status: string;
  totalCents: number;
  refundedCents: number;
  currency: string;
  createdAt: string;
  items: { productId: string; name: string; quantity: number; unitPriceCents: number; lineTotalCents: number }[];
}

/**
 * One refund of an order, as its customer sees it: pending until the provider confirms it, then
 * succeeded, or failed (refused: its amount was given back to what the order may still refund).
 */
export interface RefundLine {
  id: string;
  amountCents: number;
  status: 'pending' | 'succeeded' | 'failed';
  createdAt: string;
}

/**
 * The order page's answer: the order and its refunds, oldest first. A type of its own rather than a
 * field of OrderView, because an OrderView is stored as it is (in idempotency answers, in receipts)
 * and a stored answer must replay byte for byte, whatever is refunded later.
 */
export interface OrderDetail extends OrderView {
  refunds: RefundLine[];
}

/** An order in the history: what `refundedCents` holds that the provider has not confirmed yet. */
export interface OrderSummary extends OrderView {
  pendingRefundCents: number;
}

/**
 * Writes one order and its lines. Takes a transaction, not the pool: the caller decides what else
 * commits with it (for the idempotent checkout, the stored result of the key).
 */
export async function placeOrder(
  tx: Tx,
  customerId: string,
  input: PlaceOrderInput,
  options: { idempotencyKeyId?: string; status?: 'placed' | 'pending_payment' } = {},
): Promise<OrderView> {
  const ids = input.items.map((i) => i.productId);
  const found = await tx.select().from(products).where(inArray(products.id, ids));
  const byId = new Map(found.map((p) => [p.id, p]));

  const lines = input.items.map((item, i) => {
    const product = byId.get(item.productId);
    if (!product)
      throw new AppError('UNKNOWN_PRODUCT', { field: `items[${i}].productId`, detail: `('${item.productId}')` });
    if (product.soldOut)
      throw new AppError('PRODUCT_SOLD_OUT', { field: `items[${i}].productId`, detail: `('${product.name}')` });
    return { product, quantity: item.quantity };
  });
  const currency = lines[0]!.product.currency;
  if (lines.some((l) => l.product.currency !== currency)) throw new AppError('MIXED_CURRENCIES', { field: 'items' });
  const totalCents = lines.reduce((sum, l) => sum + l.product.priceCents * l.quantity, 0);

  const [order] = await tx
    .insert(orders)
    .values({
      customerId,
      totalCents,
      currency,
      idempotencyKeyId: options.idempotencyKeyId,
      status: options.status ?? 'placed',
    })
    .returning();
  await tx.insert(orderItems).values(
    lines.map((l) => ({
      orderId: order!.id,
      productId: l.product.id,
      quantity: l.quantity,
      unitPriceCents: l.product.priceCents,
    })),
  );
  return {
    id: order!.id,
    status: order!.status,
    totalCents,
    refundedCents: 0,
    currency,
    createdAt: order!.createdAt.toISOString(),
    items: lines
      .map((l) => ({
        productId: l.product.id,
        name: l.product.name,
        quantity: l.quantity,
        unitPriceCents: l.product.priceCents,
        lineTotalCents: l.product.priceCents * l.quantity,
      }))
      .sort(byProductId),
  };
}

/** One customer's orders, newest first. Another customer's orders are never in the result. */
export async function listOrders(db: DbOrTx, customerId: string, limit = 50): Promise<OrderView[]> {
  const rows = await db.query.orders.findMany({
    where: eq(orders.customerId, customerId),
    orderBy: [desc(orders.createdAt), desc(orders.id)],
    limit,
    with: { items: { with: { product: true } } },
  });
  return rows.map(toView);
}

export async function getOrder(db: DbOrTx, customerId: string, orderId: string): Promise<OrderView> {
  const row = await db.query.orders.findFirst({
    where: and(eq(orders.id, orderId), eq(orders.customerId, customerId)),
    with: { items: { with: { product: true } } },
  });
  if (!row) throw new AppError('ORDER_NOT_FOUND', { field: 'orderId' });
  return toView(row);
}

/** One customer's order with its refunds (the order page). */
export async function getOrderDetail(db: DbOrTx, customerId: string, orderId: string): Promise<OrderDetail> {
  const order = await getOrder(db, customerId, orderId); // not found unless it is this customer's
  const rows = await db
    .select({ id: refunds.id, amountCents: refunds.amountCents, status: refunds.status, createdAt: refunds.createdAt })
    .from(refunds)
    .where(eq(refunds.orderId, orderId))
    .orderBy(asc(refunds.createdAt), asc(refunds.id));
  return { ...order, refunds: rows.map((r) => ({ ...r, createdAt: r.createdAt.toISOString() })) };
}

/** One customer's orders, newest first, each with the part of its refunds still pending (the history page). */
export async function orderHistory(db: DbOrTx, customerId: string): Promise<OrderSummary[]> {
  const list = await listOrders(db, customerId);
  if (list.length === 0) return [];
  const pending = await db
    .select({ orderId: refunds.orderId, cents: sql<number>`sum(${refunds.amountCents})::int` })
    .from(refunds)
    .where(
      and(
        inArray(
          refunds.orderId,
          list.map((o) => o.id),
        ),
        eq(refunds.status, 'pending'),
      ),
    )
    .groupBy(refunds.orderId);
  const byOrder = new Map(pending.map((p) => [p.orderId, p.cents]));
  return list.map((o) => ({ ...o, pendingRefundCents: byOrder.get(o.id) ?? 0 }));
}

/** An order by id alone, for work that is not on behalf of a customer (webhooks, jobs). */
export async function getOrderById(db: DbOrTx, orderId: string): Promise<OrderView> {
  const row = await db.query.orders.findFirst({
    where: eq(orders.id, orderId),
    with: { items: { with: { product: true } } },
  });
  if (!row) throw new AppError('ORDER_NOT_FOUND', { field: 'orderId' });
  return toView(row);
}

const byProductId = (a: { productId: string }, b: { productId: string }) => a.productId.localeCompare(b.productId);

type OrderRow = typeof orders.$inferSelect & {
  items: (typeof orderItems.$inferSelect & { product: typeof products.$inferSelect })[];
};

function toView(row: OrderRow): OrderView {
  return {
    id: row.id,
    status: row.status,
    totalCents: row.totalCents,
    refundedCents: row.refundedCents,
    currency: row.currency,
    createdAt: row.createdAt.toISOString(),
    items: row.items
      .map((i) => ({
        productId: i.productId,
        name: i.product.name,
        quantity: i.quantity,
        unitPriceCents: i.unitPriceCents,
        lineTotalCents: i.unitPriceCents * i.quantity,
      }))
      .sort(byProductId),
  };
}
