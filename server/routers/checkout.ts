import { placeOrder, placeOrderInput } from '../services/orders';
import { customerProcedure, router } from '../trpc';

export const checkoutRouter = router({
  placeOrder: customerProcedure
    .input(placeOrderInput)
    .mutation(({ ctx, input }) => ctx.db.transaction((tx) => placeOrder(tx, ctx.customerId, input))),
});
