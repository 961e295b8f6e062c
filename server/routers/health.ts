import { publicProcedure, router } from '../trpc';

export const healthRouter = router({
  /** No database work: readiness checks, and the benchmark's measure of the framework's own ceiling. */
  ping: publicProcedure.query(() => ({ ok: true })),
});
