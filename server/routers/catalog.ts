import { asc } from 'drizzle-orm';
import { products } from '../../db/schema';
import { publicProcedure, router } from '../trpc';

export const catalogRouter = router({
  list: publicProcedure.query(({ ctx }) => ctx.db.select().from(products).orderBy(asc(products.priceCents))),
});
