/**
 * The example's API: two keyed mutations, built from the layer's public face only.
 *
 *   messages.save   one transaction: the message row, the key and the stored answer commit together.
 *   messages.send   phased: a step saves the message, the provider sends it (with a key derived from
 *                   ours), a last step records the provider's id and stores the answer.
 *
 * The procedures have no code about keys: `.concat(keyed.oneTransaction)` / `.concat(keyed.phased)` do it.
 */
import { initTRPC, TRPCError } from '@trpc/server';
import { eq } from 'drizzle-orm';
import { z } from 'zod';
import {
  createIdempotency,
  errorCodeOf,
  type IdempotencyOptions,
  type KeyedContext,
  type Steps,
  type TransactionOf,
} from '../../server/idempotency/index';
import type { Db } from './db';
import { messages } from './schema';

// 1. CONTEXT: what createContext (server.ts) gives every procedure. `userId` stands in for your auth.
export interface Context extends Omit<KeyedContext<Db>, 'idempotencyScope'> {
  userId: string | null;
  providerUrl: string;
}

// 2. INITIALIZATION: every error carries the layer's machine-readable code (IDEMPOTENCY_KEY_REUSED...).
const t = initTRPC.context<Context>().create({
  errorFormatter: ({ shape, error }) => ({ ...shape, data: { ...shape.data, errorCode: errorCodeOf(error) } }),
});

/** How long keys live and wait; LEASE_MS is shortened by the tests, so a killed holder is taken over sooner. */
export const idempotencyOptions = (): IdempotencyOptions => ({
  ttlMs: 24 * 3_600_000, // a day: longer than any client retries
  waitMs: 10_000, // a duplicate waits this long for the first request, then 409
  leaseMs: Number(process.env.LEASE_MS ?? 30_000), // longer than the provider call's timeout (5 s)
});
const keyed = createIdempotency<Db>({ options: idempotencyOptions });

// 3. PROCEDURES: auth first (it sets the scope of the keys), then .input(), then the keyed builder.
const authed = t.procedure.use(function authenticated({ ctx, next }) {
  if (!ctx.userId) throw new TRPCError({ code: 'UNAUTHORIZED', message: 'Send an x-user-id header.' });
  return next({ ctx: { userId: ctx.userId, idempotencyScope: ctx.userId } });
});
const message = z.strictObject({ to: z.string().regex(/^\+[0-9]{6,15}$/), body: z.string().min(1).max(160) });
type Message = z.infer<typeof message>;

export const router = t.router({
  messages: t.router({
    save: authed
      .input(message)
      .concat(keyed.oneTransaction)
      .mutation(async ({ ctx, input }) => {
        // ctx.db is the transaction that claimed the key: this row and the stored answer commit together.
        const [row] = await ctx.db
          .insert(messages)
          .values({ userId: ctx.userId, ...input, status: 'draft', keyId: ctx.idempotencyKeyId })
          .returning({ id: messages.id, status: messages.status });
        return row!;
      }),
    send: authed
      .input(message)
      .concat(keyed.phased)
      .mutation(({ ctx, input }) => sendMessage(ctx.steps, ctx.userId, input, ctx.providerUrl)),
  }),
});

export type AppRouter = typeof router;

/**
 * The phased work, a function of its steps so that the completer can run it too (server.ts). Each
 * step commits on its own; a retry or a takeover skips the steps already done and gets their results.
 */
export async function sendMessage(
  steps: Steps<TransactionOf<Db>>,
  userId: string,
  input: Message,
  providerUrl: string,
): Promise<{ id: string; status: 'sent'; providerMessageId: string }> {
  const id = await steps.step('saved', async (tx) => {
    const [row] = await tx
      .insert(messages)
      .values({ userId, ...input, status: 'sending', keyId: steps.keyId })
      .returning({ id: messages.id });
    return row!.id;
  });
  // Outside the database: the provider's own key makes a repeated call (after a crash) send nothing twice.
  const sent = await callProvider(providerUrl, steps.providerKey('send'), input);
  return steps.complete('sent', async (tx) => {
    await tx.update(messages).set({ status: 'sent', providerMessageId: sent.id }).where(eq(messages.id, id));
    return { id, status: 'sent' as const, providerMessageId: sent.id };
  });
}

/** One call to the provider. Unreachable or failing: a 503 (the key is released; a retry resumes). */
async function callProvider(url: string, key: string, input: Message): Promise<{ id: string }> {
  const res = await fetch(`${url}/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': key },
    body: JSON.stringify(input),
    signal: AbortSignal.timeout(5_000), // well inside the lease: the call ends before anyone takes over
  }).catch((cause: unknown) => {
    throw new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: 'The provider could not be reached.', cause });
  });
  if (!res.ok) throw new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: `The provider answered ${res.status}.` });
  return (await res.json()) as { id: string };
}
