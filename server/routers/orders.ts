import { z } from 'zod';
import { getOrder, listOrders } from '../services/orders';
import { customerProcedure, router } from '../trpc';

export const ordersRouter = router({
  /** The calling customer's orders, newest first (never anyone else's). */
  history: customerProcedure.query(({ ctx }) => listOrders(ctx.db, ctx.customerId)),
  byId: customerProcedure
    .input(z.strictObject({ orderId: z.uuid('must be an order id (a UUID)') }))
    .query(({ ctx, input }) => getOrder(ctx.db, ctx.customerId, input.orderId)),
});
