import { z } from 'zod';
import { getOrderDetail, orderHistory } from '../services/orders';
import { refundInput, refundOrder } from '../services/purchase';
import { customerProcedure, phasedProcedure, router } from '../trpc';

export const ordersRouter = router({
  /** The calling customer's orders, newest first (never anyone else's), with what is still pending of their refunds. */
  history: customerProcedure.query(({ ctx }) => orderHistory(ctx.db, ctx.customerId)),
  /** One of the calling customer's orders, with its refunds. */
  byId: customerProcedure
    .input(z.strictObject({ orderId: z.uuid('must be an order id (a UUID)') }))
    .query(({ ctx, input }) => getOrderDetail(ctx.db, ctx.customerId, input.orderId)),
  /** Refunds part or all of a paid order through the provider, exactly once per key. */
  refund: phasedProcedure
    .input(refundInput)
    .mutation(({ ctx, input }) => refundOrder(ctx.steps, ctx.customerId, input)),
});
