/**
 * The retry lab (/lab): scenarios a learner runs from the browser, and the unsafe twins they are
 * compared with. On in development and tests; in production only with ENABLE_LAB=1, and then it
 * only ever acts as its own lab customers (server/lab/session.ts), never as a real one.
 */
import { z } from 'zod';
import type { Db } from '../../db/client';
import { MAX_QUANTITY } from '../../shared/shop-rules';
import { getEnv } from '../env.js';
import { AppError } from '../errors';
import { parseIdempotencyKey } from '../idempotency';
import { readRun, startRun } from '../lab/runs';
import { scenarioById, scenarios } from '../lab/scenarios';
import { isLabCustomer } from '../lab/session';
import { type KeyedRequestParts, twins } from '../lab/twins';
import { placeOrderInput } from '../services/orders';
import { purchaseInput } from '../services/purchase';
import { customerProcedure, publicProcedure, router } from '../trpc';

const labSwitch = <T extends { next: () => unknown }>(opts: T) => {
  if (!getEnv().ENABLE_LAB) throw new AppError('LAB_DISABLED');
  return opts.next() as ReturnType<T['next']>;
};
const labQuery = publicProcedure.use(function labIsOn(opts) {
  return labSwitch(opts);
});
const labMutation = customerProcedure.use(function labIsOn(opts) {
  return labSwitch(opts);
});

/** The twins: only for the lab's own customers. */
const twinProcedure = labMutation.use(async function onlyLabCustomers({ ctx, next }) {
  if (!(await isLabCustomer(ctx.db, ctx.customerId))) throw new AppError('LAB_CUSTOMER_REQUIRED');
  return next();
});

const parts = (
  ctx: { db: Db; customerId: string; headers: Headers; resHeaders: Headers },
  procedure: string,
): KeyedRequestParts => ({
  db: ctx.db,
  customerId: ctx.customerId,
  procedure,
  headers: ctx.headers,
  resHeaders: ctx.resHeaders,
});

/** The twins that read the key themselves still need one. */
function keyOf(headers: Headers): string {
  const parsed = parseIdempotencyKey(headers);
  if (!parsed.ok) throw new AppError('VALIDATION_FAILED', { detail: `(Idempotency-Key: ${parsed.problem})` });
  return parsed.key;
}

/** The pretend instance a balancer sent the request to (the twin with keys in memory): 1 or 2. */
function instanceOf(headers: Headers): string {
  const instance = headers.get('x-lab-instance') ?? '1';
  if (instance !== '1' && instance !== '2')
    throw new AppError('VALIDATION_FAILED', { detail: '(X-Lab-Instance: must be 1 or 2)' });
  return instance;
}

const cartInput = z.strictObject({
  productId: z.string().min(1).max(64),
  quantity: z.number().int().min(1).max(MAX_QUANTITY),
});

export const labRouter = router({
  scenarios: labQuery.query(() =>
    scenarios.map(({ play: _play, ...card }) => ({
      ...card,
      available: !card.needsSimulator || Boolean(getEnv().STRIPE_API_BASE),
    })),
  ),

  /** Starts a run of a scenario, safe or by its unsafe twin; the page polls `run` for it. */
  start: labMutation
    .input(z.strictObject({ scenario: z.string().min(1).max(64), variant: z.enum(['safe', 'unsafe']) }))
    .mutation(async ({ ctx, input }) => {
      const scenario = scenarioById(input.scenario);
      if (!scenario) throw new AppError('LAB_SCENARIO_UNKNOWN', { field: 'scenario', detail: `('${input.scenario}')` });
      if (scenario.needsSimulator && !getEnv().STRIPE_API_BASE) throw new AppError('LAB_NEEDS_SIMULATOR');
      if (!ctx.handlers) throw new Error('a lab run is started over HTTP: its requests go through the same handler');
      return { runId: await startRun(ctx.db, input.scenario, input.variant, ctx.handlers) };
    }),

  run: labQuery.input(z.strictObject({ runId: z.uuid() })).query(async ({ ctx, input }) => {
    const run = await readRun(ctx.db, input.runId);
    if (!run) throw new AppError('LAB_RUN_NOT_FOUND', { field: 'runId' });
    return run;
  }),

  // The unsafe twins, as procedures the lab's runs (and the tests' negative controls) call over HTTP.
  placeOrderWithoutKey: twinProcedure
    .input(placeOrderInput)
    .mutation(({ ctx, input }) => twins.placeOrderWithoutKey(ctx.db, ctx.customerId, input)),
  placeOrderCheckThenInsert: twinProcedure
    .input(placeOrderInput)
    .mutation(({ ctx, input }) =>
      twins.placeOrderCheckThenInsert(parts(ctx, 'lab.placeOrderCheckThenInsert'), keyOf(ctx.headers), input),
    ),
  placeOrderAnswerOutsideTransaction: twinProcedure
    .input(placeOrderInput)
    .mutation(({ ctx, input }) =>
      twins.placeOrderAnswerOutsideTransaction(
        parts(ctx, 'lab.placeOrderAnswerOutsideTransaction'),
        keyOf(ctx.headers),
        input,
      ),
    ),
  placeOrderWithoutFingerprint: twinProcedure
    .input(placeOrderInput)
    .mutation(({ ctx, input }) =>
      twins.placeOrderWithoutFingerprint(parts(ctx, 'lab.placeOrderWithoutFingerprint'), input),
    ),
  placeOrderWithoutScope: twinProcedure
    .input(placeOrderInput)
    .mutation(({ ctx, input }) => twins.placeOrderWithoutScope(parts(ctx, 'lab.placeOrderWithoutScope'), input)),
  placeOrderClaimCommittedApart: twinProcedure
    .input(placeOrderInput)
    .mutation(({ ctx, input }) =>
      twins.placeOrderClaimCommittedApart(parts(ctx, 'lab.placeOrderClaimCommittedApart'), keyOf(ctx.headers), input),
    ),
  placeOrderStoringEveryAnswer: twinProcedure
    .input(placeOrderInput)
    .mutation(({ ctx, input }) =>
      twins.placeOrderStoringEveryAnswer(parts(ctx, 'lab.placeOrderStoringEveryAnswer'), keyOf(ctx.headers), input),
    ),
  placeOrderWithMemoryKeys: twinProcedure
    .input(placeOrderInput)
    .mutation(({ ctx, input }) =>
      twins.placeOrderWithMemoryKeys(
        parts(ctx, 'lab.placeOrderWithMemoryKeys'),
        keyOf(ctx.headers),
        instanceOf(ctx.headers),
        input,
      ),
    ),
  placeOrderOneKeyForAll: twinProcedure
    .input(placeOrderInput)
    .mutation(({ ctx, input }) => twins.placeOrderOneKeyForAll(parts(ctx, 'lab.placeOrderOneKeyForAll'), input)),
  purchaseOneKeyForAll: twinProcedure
    .input(purchaseInput)
    .mutation(({ ctx, input }) => twins.purchaseOneKeyForAll(parts(ctx, 'lab.purchaseOneKeyForAll'), input)),
  purchaseForgettingAnswers: twinProcedure
    .input(purchaseInput)
    .mutation(({ ctx, input }) =>
      twins.purchaseForgettingAnswers(parts(ctx, 'lab.purchaseForgettingAnswers'), keyOf(ctx.headers), input),
    ),
  purchaseWithEndlessLease: twinProcedure
    .input(purchaseInput)
    .mutation(({ ctx, input }) => twins.purchaseWithEndlessLease(parts(ctx, 'lab.purchaseWithEndlessLease'), input)),
  purchaseNoCompleterKnows: twinProcedure
    .input(purchaseInput)
    .mutation(({ ctx, input }) => twins.purchaseNoCompleterKnows(parts(ctx, 'lab.purchaseNoCompleterKnows'), input)),
  purchaseWithoutLookup: twinProcedure
    .input(purchaseInput)
    .mutation(({ ctx, input }) => twins.purchaseWithoutLookup(parts(ctx, 'lab.purchaseWithoutLookup'), input)),
  purchaseWithRandomProviderKeys: twinProcedure
    .input(purchaseInput)
    .mutation(({ ctx, input }) =>
      twins.purchaseWithRandomProviderKeys(parts(ctx, 'lab.purchaseWithRandomProviderKeys'), input),
    ),
  setCartQuantity: twinProcedure
    .input(cartInput)
    .mutation(({ ctx, input }) => twins.setCartQuantity(ctx.db, ctx.customerId, input.productId, input.quantity)),
  addOneToCart: twinProcedure
    .input(cartInput.pick({ productId: true }))
    .mutation(({ ctx, input }) => twins.addOneToCart(ctx.db, ctx.customerId, input.productId)),
});
