/**
 * The generic completer on the folder's tiny `calls.make` (reserve, outside call, record): a key whose
 * client never came back is taken over and finished through the flow the app registered, once; a flow
 * that keeps failing is given up on with the answer the app chose. Against the real Postgres.
 */
import { randomUUID } from 'node:crypto';
import { TRPCError } from '@trpc/server';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../../db/client';
import { type CompleterOutcome, createCompleter } from './completer';
import { clearFaults, planFault } from './faults';
import { countNotes, createNotesTable, makeCall, tinyApp, type Wire } from './testing';

const { sql, db } = createDatabase(process.env.DATABASE_URL!, { max: 10 });
const LEASE_MS = 300;
const BODY = { amount: 7 };

beforeAll(() => createNotesTable(db));
afterAll(() => sql.end());
afterEach(() => clearFaults());

/** A client that sends `calls.make` and dies after its first step: the key is left started. */
async function abandon(app: ReturnType<typeof tinyApp>, scope: string, key: string) {
  planFault({ scope, boundary: 'after:reserved', action: 'vanish' });
  await app.http('calls.make', { scope, key, body: BODY }).catch(() => {});
  await new Promise((r) => setTimeout(r, LEASE_MS + 100)); // its lease lapses
}

describe('the completer', () => {
  it('finishes an abandoned key through its flow: one outside effect, and the client gets the answer', async () => {
    const app = tinyApp(db, { leaseMs: LEASE_MS });
    const scope = randomUUID();
    const key = randomUUID();
    await abandon(app, scope, key);
    const [left] = await sql`select state, recovery_point from idempotency_keys where scope = ${scope}`;
    expect(left).toEqual({ state: 'started', recovery_point: 'reserved' });

    const outcomes: CompleterOutcome[] = [];
    const completer = createCompleter({
      db,
      options: () => app.settings,
      flows: {
        'calls.make': {
          finish: (steps, abandoned) =>
            makeCall(steps, abandoned.scope, abandoned.requestInput as typeof BODY, app.service),
          gaveUp: () => new TRPCError({ code: 'CONFLICT', message: 'gave up' }),
        },
      },
      onOutcome: (e) => outcomes.push(e.outcome),
    });
    expect(await completer.run({ delaySeconds: 0, scope })).toEqual({ finished: 1, failed: 0, released: 0, gaveUp: 0 });
    expect(outcomes).toEqual(['takeover', 'finished']);
    // A second run finds nothing left to do.
    expect(await completer.run({ delaySeconds: 0, scope })).toEqual({ finished: 0, failed: 0, released: 0, gaveUp: 0 });

    expect(app.service.effects).toBe(1);
    expect(await countNotes(db, scope)).toBe(1); // the reservation the client made, resumed, not made again
    const back = await app.http('calls.make', { scope, key, body: BODY });
    expect(back.status).toBe(200);
    expect(back.headers.get('idempotent-replayed')).toBe('true');
    const [note] = await sql`select id from idempotency_test_notes where scope = ${scope}`;
    expect((back.body as Wire).result.data).toEqual({ noteId: note!.id, callId: expect.stringMatching(/^call_/) });
  });

  it('a flow that keeps failing is released each time, then given up on with the answer the app chose', async () => {
    const app = tinyApp(db, { leaseMs: LEASE_MS });
    const scope = randomUUID();
    const key = randomUUID();
    await abandon(app, scope, key);
    const completer = createCompleter({
      db,
      options: () => app.settings,
      flows: {
        'calls.make': {
          finish: async () => {
            throw new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: 'the service is down' });
          },
          gaveUp: () =>
            Object.assign(new TRPCError({ code: 'CONFLICT', message: 'We gave up; a person will look.' }), {
              errorCode: 'CALL_GAVE_UP',
            }),
        },
      },
    });
    const run = () => completer.run({ delaySeconds: 0, scope, maxRuns: 2, backoffBaseSeconds: 0 });
    expect(await run()).toMatchObject({ released: 1 });
    expect(await run()).toMatchObject({ released: 1 });
    expect(await run()).toMatchObject({ gaveUp: 1 });
    expect(await run()).toEqual({ finished: 0, failed: 0, released: 0, gaveUp: 0 });

    const back = await app.http('calls.make', { scope, key, body: BODY });
    expect(back.status).toBe(409);
    expect((back.body as Wire).error.data.errorCode).toBe('CALL_GAVE_UP');
    expect(app.service.effects).toBe(0); // the flow never reached the service
  });
});
