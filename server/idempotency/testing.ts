/**
 * Test support for this folder (imported by its `*.test.ts` only): a tiny tRPC app of its own, so
 * the layer's tests need nothing of the shop. The scope of a request is its `x-scope` header.
 *
 * - `notes.add` (one transaction): writes a note row that references its key row. Its `outcome`
 *   input picks a business failure (409, stored) or an unexpected error (nothing stored).
 * - `calls.make` (phased): reserves a note, makes a call to a fake outside service with the key
 *   derived from the key row, records the call. The fake service, like a payment provider,
 *   answers a repeated key with its first answer, and counts every call it receives.
 * - `calls.book` (phased): the same, but its last step writes a note of its own and stores the answer
 *   in the same transaction (`steps.complete`), as the shop's purchase does.
 */
import { randomUUID } from 'node:crypto';
import { initTRPC, TRPCError } from '@trpc/server';
import { fetchRequestHandler } from '@trpc/server/adapters/fetch';
import { sql } from 'drizzle-orm';
import { z } from 'zod';
import type { KeyDatabaseOrTransaction as DbOrTx, KeyDatabase, KeyTransaction } from './db';
import { errorCodeOf } from './errors';
import { planFault } from './faults';
import type { Steps } from './phased';
import { createIdempotency, type KeyedContext } from './trpc';

export async function createNotesTable(db: DbOrTx): Promise<void> {
  await db.execute(sql`
    create table if not exists idempotency_test_notes (
      id uuid primary key default gen_random_uuid(),
      scope text not null,
      key_id uuid,
      text text not null,
      created_at timestamptz not null default now()
    )`);
}

export async function countNotes(db: DbOrTx, scope: string): Promise<number> {
  const [row] = await db.execute<{ n: number }>(
    sql`select count(*)::int as n from idempotency_test_notes where scope = ${scope}`,
  );
  return row!.n;
}

/** A fake outside service (think: a payment provider) that honours idempotency keys. */
export class FakeService {
  readonly calls: { key: string; amount: number }[] = [];
  private readonly answers = new Map<string, string>();
  /** The next call fails before doing anything (a 500) or after doing it (a timeout). */
  failNext: 'before' | 'after' | null = null;

  async call(key: string, amount: number): Promise<string> {
    this.calls.push({ key, amount });
    const fail = this.failNext;
    this.failNext = null;
    if (fail === 'before') throw new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: 'the service failed' });
    const id = this.answers.get(key) ?? `call_${randomUUID()}`;
    this.answers.set(key, id);
    if (fail === 'after') throw new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: 'the service timed out' });
    return id;
  }

  /** Distinct effects made (one per distinct key). */
  get effects(): number {
    return this.answers.size;
  }
}

/**
 * The phased procedure's work: reserve a note, call the outside service with the key derived from the
 * key row, record the call. A function of its steps, so that the completer can finish it too.
 */
export async function makeCall(
  steps: Steps<KeyTransaction>,
  scope: string,
  input: { amount: number },
  service: FakeService,
): Promise<{ noteId: string; callId: string }> {
  const reserved = await steps.step('reserved', async (tx) => {
    const [note] = await tx.execute<{ id: string }>(
      sql`insert into idempotency_test_notes (scope, key_id, text) values (${scope},
        ${steps.keyId}, ${`reserve ${input.amount}`}) returning id`,
    );
    return note!.id;
  });
  const callId = await service.call(steps.providerKey('call'), input.amount);
  return steps.step('recorded', async () => ({ noteId: reserved, callId }));
}

/** `calls.book`: reserve, call, then a last step that writes a note and stores the answer with it. */
export async function bookCall(
  steps: Steps<KeyTransaction>,
  scope: string,
  input: { amount: number },
  service: FakeService,
): Promise<{ noteId: string; bookedId: string; callId: string }> {
  const reserved = await steps.step('reserved', async (tx) => {
    const [note] = await tx.execute<{ id: string }>(
      sql`insert into idempotency_test_notes (scope, key_id, text) values (${scope},
        ${steps.keyId}, ${`reserve ${input.amount}`}) returning id`,
    );
    return note!.id;
  });
  const callId = await service.call(steps.providerKey('call'), input.amount);
  return steps.complete('booked', async (tx) => {
    const [note] = await tx.execute<{ id: string }>(
      sql`insert into idempotency_test_notes (scope, key_id, text) values (${scope},
        ${steps.keyId}, ${`booked ${callId}`}) returning id`,
    );
    return { noteId: reserved, bookedId: note!.id, callId };
  });
}

/** A JSON answer off the wire, read field by field by the tests. */
// biome-ignore lint/suspicious/noExplicitAny: its shape is what each test asserts
export type Wire = any;

export interface TinyOptions {
  ttlMs?: number;
  waitMs?: number;
  leaseMs?: number;
}

export function tinyApp(db: KeyDatabase, options: TinyOptions = {}) {
  const settings = {
    ttlMs: options.ttlMs ?? 3_600_000,
    waitMs: options.waitMs ?? 5_000,
    leaseMs: options.leaseMs ?? 2_000,
  };
  const service = new FakeService();
  const t = initTRPC.context<KeyedContext>().create({
    errorFormatter: ({ shape, error }) => ({ ...shape, data: { ...shape.data, errorCode: errorCodeOf(error) } }),
  });
  const idempotency = createIdempotency<KeyDatabase>({ options: () => settings });
  // As in the app: the input is validated first, then the key (see server/trpc.ts).
  const keyed = {
    input: <S extends z.ZodType>(schema: S) => t.procedure.input(schema).concat(idempotency.oneTransaction),
  };
  const phased = {
    input: <S extends z.ZodType>(schema: S) => t.procedure.input(schema).concat(idempotency.phased),
  };

  const router = t.router({
    notes: t.router({
      add: keyed
        .input(
          z.strictObject({
            text: z.string().min(1).max(100),
            outcome: z.enum(['ok', 'conflict', 'crash']).optional(),
            setCookie: z.boolean().optional(),
          }),
        )
        .mutation(async ({ ctx, input }) => {
          // A procedure may set response headers of its own (a session cookie, say); they are its
          // first answer's, and never part of what a replay sends.
          if (input.setCookie) ctx.resHeaders.append('Set-Cookie', `note-session=${randomUUID()}; Path=/; HttpOnly`);
          const [note] = await ctx.db.execute<{ id: string }>(
            sql`insert into idempotency_test_notes (scope, key_id, text) values (${ctx.idempotencyScope},
              ${ctx.idempotencyKeyId}, ${input.text}) returning id`,
          );
          if (input.outcome === 'conflict')
            throw Object.assign(new TRPCError({ code: 'CONFLICT', message: 'No more notes today.' }), {
              errorCode: 'NOTES_SOLD_OUT',
            });
          if (input.outcome === 'crash') throw new Error('the handler crashed');
          return { noteId: note!.id, text: input.text };
        }),
    }),
    calls: t.router({
      make: phased
        .input(z.strictObject({ amount: z.number().int().positive() }))
        .mutation(({ ctx, input }) => makeCall(ctx.steps, ctx.idempotencyScope, input, service)),
      book: phased
        .input(z.strictObject({ amount: z.number().int().positive() }))
        .mutation(({ ctx, input }) => bookCall(ctx.steps, ctx.idempotencyScope, input, service)),
    }),
  });

  /** Sends one HTTP request through the tRPC fetch adapter, as a client would over the wire. */
  async function http(
    path: string,
    request: { scope: string; key?: string | null; body?: unknown; rawBody?: string; headers?: [string, string][] },
  ): Promise<{ status: number; headers: Headers; body: Wire }> {
    const headers = new Headers(request.headers);
    headers.set('content-type', 'application/json');
    headers.set('x-scope', request.scope);
    if (request.key != null) headers.set('idempotency-key', request.key);
    const req = new Request(`http://tiny/trpc/${path}`, {
      method: 'POST',
      headers,
      body: request.rawBody ?? JSON.stringify(request.body ?? {}),
    });
    const res = await fetchRequestHandler({
      endpoint: '/trpc',
      req,
      router,
      createContext: ({ req: r, resHeaders }) => ({
        db,
        headers: r.headers,
        resHeaders,
        idempotencyScope: r.headers.get('x-scope') ?? 'nobody',
      }),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: JSON.parse(text) };
  }

  return { router, http, service, settings };
}

/**
 * Makes the layer reach each of its eleven decisions once or more, for `scope`, on tiny apps of its
 * own (the log and metrics tests check each is reported).
 */
export async function makeEveryDecision(db: KeyDatabase, scope: string): Promise<void> {
  const app = tinyApp(db);
  const strict = tinyApp(db, { waitMs: 150, leaseMs: 2_000 });
  const add = (key: string | null, body: unknown = { text: 'note' }, on = app) =>
    on.http('notes.add', { scope, key, body });
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const k1 = randomUUID();
  await add(k1); // executed
  await add(k1); // replayed
  await add(k1, { text: 'other' }); // reused_with_different_input
  await add(null); // missing
  await add(''); // invalid
  await add(randomUUID(), { text: 'x', outcome: 'conflict' }); // failure_stored
  await add(randomUUID(), { text: 'x', outcome: 'crash' }); // released
  const k2 = randomUUID();
  planFault({ scope, boundary: 'executed', action: 'delay', ms: 600 });
  const slow = add(k2);
  await sleep(150);
  await add(k2); // waited_then_replayed
  await slow;
  const k3 = randomUUID();
  planFault({ scope, boundary: 'executed', action: 'delay', ms: 800 });
  const held = add(k3, { text: 'note' }, strict);
  await sleep(150);
  await add(k3, { text: 'note' }, strict); // in_use (its bound is 150 ms)
  await held;
  await db.execute(
    sql`update idempotency_keys set expires_at = now() - interval '1 second' where scope = ${scope} and key = ${k1}`,
  );
  await add(k1, { text: 'other' }); // expired, then executed
  const k4 = randomUUID();
  app.service.failNext = 'before';
  await app.http('calls.make', { scope, key: k4, body: { amount: 3 } }); // released (the service failed)
  await app.http('calls.make', { scope, key: k4, body: { amount: 3 } }); // resumed, then executed
}
