import { placeOrder, placeOrderInput } from '../services/orders';
import { purchase, purchaseInput } from '../services/purchase';
import { idempotentProcedure, phasedProcedure, router } from '../trpc';

export const checkoutRouter = router({
  /**
   * The checkout the shop uses: places the order and charges the card, exactly once per key, in
   * steps around the provider call (server/services/purchase.ts).
   */
  purchase: phasedProcedure
    .input(purchaseInput)
    .mutation(({ ctx, input }) => purchase(ctx.steps, ctx.customerId, input)),

  /**
   * Places an order without payment, all of it one transaction, safe to retry: send an
   * `Idempotency-Key` header (a UUID per checkout attempt) and the same key with every retry.
   * Note what is not here: any code about keys.
   */
  placeOrder: idempotentProcedure
    .input(placeOrderInput)
    .mutation(({ ctx, input }) =>
      placeOrder(ctx.db, ctx.customerId, input, { idempotencyKeyId: ctx.idempotencyKeyId }),
    ),
});
