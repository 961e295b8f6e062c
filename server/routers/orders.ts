import { z } from 'zod';
import { getOrder, listOrders } from '../services/orders';
import { refundInput, refundOrder } from '../services/purchase';
import { customerProcedure, phasedProcedure, router } from '../trpc';

export const ordersRouter = router({
  /** The calling customer's orders, newest first (never anyone else's). */
  history: customerProcedure.query(({ ctx }) => listOrders(ctx.db, ctx.customerId)),
  byId: customerProcedure
    .input(z.strictObject({ orderId: z.uuid('must be an order id (a UUID)') }))
    .query(({ ctx, input }) => getOrder(ctx.db, ctx.customerId, input.orderId)),
  /** Refunds part or all of a paid order through the provider, exactly once per key. */
  refund: phasedProcedure
    .input(refundInput)
    .mutation(({ ctx, input }) => refundOrder(ctx.steps, ctx.customerId, input)),
});
