/**
 * What the layer relies on in tRPC beyond its documented API, pinned: if an upgrade of tRPC changes
 * any of it, a test here fails and names it (see trpc.ts for why each is needed).
 */
import { randomUUID } from 'node:crypto';
import { initTRPC } from '@trpc/server';
import { fetchRequestHandler } from '@trpc/server/adapters/fetch';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../../db/client';
import type { Steps } from './phased';
import { countNotes, createNotesTable, tinyApp, type Wire } from './testing';
import { refuseKeyedBatch } from './trpc';

const { sql, db } = createDatabase(process.env.DATABASE_URL!, { max: 5 });
const app = tinyApp(db);
beforeAll(() => createNotesTable(db));
afterAll(() => sql.end());

describe('what the layer relies on in tRPC', () => {
  it("a middleware's answer made without next() is what the client gets; the procedure never runs", async () => {
    const scope = randomUUID();
    const key = randomUUID();
    const first = await app.http('notes.add', { scope, key, body: { text: 'once' } });
    const replay = await app.http('notes.add', { scope, key, body: { text: 'once' } });
    expect(replay.status).toBe(200);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect((replay.body as Wire).result.data).toEqual((first.body as Wire).result.data);
    expect(await countNotes(db, scope)).toBe(1); // the answer came from the middleware alone
  });

  it('createContext sees a batch as a batch (info.isBatchCall), so the guard can refuse a keyed one', async () => {
    const t = initTRPC.create();
    const router = t.router({ ping: t.procedure.query(() => 'pong') });
    const seen: boolean[] = [];
    const call = (url: string, headers: Record<string, string> = {}) =>
      fetchRequestHandler({
        endpoint: '/trpc',
        req: new Request(url, { headers }),
        router,
        createContext: ({ req, info }) => {
          seen.push(info.isBatchCall);
          refuseKeyedBatch(info, req.headers);
          return {};
        },
      });
    expect((await call('http://t/trpc/ping')).status).toBe(200);
    expect((await call('http://t/trpc/ping,ping?batch=1&input={}')).status).toBe(200);
    expect((await call('http://t/trpc/ping,ping?batch=1&input={}', { 'idempotency-key': 'k' })).status).toBe(400);
    expect(seen).toEqual([false, true, true]);
  });
});

describe('steps save only what survives JSON', () => {
  it('a step that would save a Date, a function or a maybe-undefined field does not type-check', () => {
    // Checked by `npm run typecheck`: each line below must be a type error, or the check itself fails.
    const check = (steps: Steps) => [
      // @ts-expect-error a Date would come back from a resumed step as a string
      () => steps.step('when', async () => new Date()),
      // @ts-expect-error a function does not survive JSON at all
      () => steps.step('callback', async () => ({ run: () => 1 })),
      // @ts-expect-error a required field that may be undefined would come back missing
      () => steps.complete('maybe', async () => ({ id: 'x', note: undefined as string | undefined })),
      // An interface of plain values is fine, optional fields included.
      () => steps.step('order', async () => ({ id: 'x', totalCents: 100, tags: ['a'], note: null, extra: 1 })),
    ];
    expect(check).toBeTypeOf('function');
  });
});
