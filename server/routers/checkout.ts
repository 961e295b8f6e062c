import { getEnv } from '../env.js';
import { AppError } from '../errors';
import { placeOrder, placeOrderInput } from '../services/orders';
import { purchase, purchaseInput } from '../services/purchase';
import { testDelay, testFailAfterWrite, testProviderFault } from '../test-hooks';
import { customerProcedure, idempotentProcedure, phasedProcedure, router } from '../trpc';

export const checkoutRouter = router({
  /**
   * The checkout the shop uses: places the order and charges the card, exactly once per key, in
   * steps around the provider call (server/services/purchase.ts).
   */
  purchase: phasedProcedure.input(purchaseInput).mutation(async ({ ctx, input }) => {
    const order = await purchase(ctx.steps, ctx.customerId, input, { simulatorFault: testProviderFault(ctx.headers) });
    await testDelay(ctx.headers);
    return order;
  }),

  /**
   * Places an order without payment (all of it one transaction), safe to retry: send an `Idempotency-Key` header (a UUID per checkout attempt)
   * and the same key with every retry. Note what is not here: any code about keys.
   */
  placeOrder: idempotentProcedure.input(placeOrderInput).mutation(async ({ ctx, input }) => {
    const order = await placeOrder(ctx.db, ctx.customerId, input, { idempotencyKeyId: ctx.idempotencyKeyId });
    await testDelay(ctx.headers);
    testFailAfterWrite(ctx.headers);
    return order;
  }),

  /**
   * The same work with no key: every call places an order. The negative control of the tests and
   * the baseline of the benchmark; never use it from a real client.
   */
  placeOrderUnprotected: customerProcedure
    .use(function unprotectedCheckoutSwitch({ next }) {
      if (!getEnv().UNPROTECTED_CHECKOUT) throw new AppError('UNPROTECTED_CHECKOUT_DISABLED');
      return next();
    })
    .input(placeOrderInput)
    .mutation(({ ctx, input }) =>
      ctx.db.transaction(async (tx) => {
        const order = await placeOrder(tx, ctx.customerId, input);
        await testDelay(ctx.headers);
        return order;
      }),
    ),
});
