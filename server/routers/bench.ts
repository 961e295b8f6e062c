/**
 * The benchmark's baseline (`npm run bench`): the checkout's procedure body, `placeOrder` in one
 * transaction, behind a plain customer procedure with nothing added: no key, no lab check. What a keyed
 * checkout costs is measured against this. Not retry-safe, so off unless ENABLE_BENCH_BASELINE=1.
 */
import { getEnv } from '../env.js';
import { AppError } from '../errors';
import { placeOrder, placeOrderInput } from '../services/orders';
import { customerProcedure, router } from '../trpc';

export const benchRouter = router({
  placeOrder: customerProcedure.input(placeOrderInput).mutation(({ ctx, input }) => {
    if (!getEnv().ENABLE_BENCH_BASELINE) throw new AppError('BENCH_BASELINE_DISABLED');
    return ctx.db.transaction((tx) => placeOrder(tx, ctx.customerId, input));
  }),
});
