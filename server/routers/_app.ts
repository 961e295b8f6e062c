/** The whole API. `AppRouter` is the only thing the client imports from the server (as a type). */
import { createCallerFactory, router } from '../trpc';
import { benchRouter } from './bench';
import { catalogRouter } from './catalog';
import { checkoutRouter } from './checkout';
import { healthRouter } from './health';
import { labRouter } from './lab';
import { ordersRouter } from './orders';

export const appRouter = router({
  bench: benchRouter,
  catalog: catalogRouter,
  checkout: checkoutRouter,
  health: healthRouter,
  lab: labRouter,
  orders: ordersRouter,
});

export type AppRouter = typeof appRouter;

/** Calls procedures in-process, without HTTP: used by the tests. */
export const createCaller = createCallerFactory(appRouter);
