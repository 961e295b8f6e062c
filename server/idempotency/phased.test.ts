/**
 * Phased procedures on the folder's tiny `calls.make` (reserve, outside call with a derived key,
 * record): leases, fencing, takeover and resume, against the real Postgres.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../../db/client';
import { clearFaults, planFault } from './faults';
import { reapExpiredKeys } from './reaper';
import { countNotes, createNotesTable, tinyApp, type Wire } from './testing';

const { sql, db } = createDatabase(process.env.DATABASE_URL!, { max: 20 });
const BODY = { amount: 5 };

beforeAll(() => createNotesTable(db));
afterAll(() => sql.end());
afterEach(() => clearFaults());

const errorCode = (r: { body: Wire }): string => r.body.error.data.errorCode;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What a stale holder must never change: the key row's token, state, progress, recovery point and answer. */
const keyRow = async (scope: string) =>
  (
    await sql`select lease_token, state, progress, recovery_point, response_status, response_body, completed_at
      from idempotency_keys where scope = ${scope}`
  )[0];
const notesOf = async (scope: string) =>
  (await sql`select text from idempotency_test_notes where scope = ${scope} order by created_at`).map((n) => n.text);

describe('phased: fencing', () => {
  it(
    'a holder still running after its lease was taken over writes nothing more, and its client gets 409 with ' +
      'Retry-After',
    async () => {
      const app = tinyApp(db, { leaseMs: 500, waitMs: 100 });
      const scope = randomUUID();
      const key = randomUUID();
      // Holder A commits its first step, then stalls (a GC pause, a slow disk) well past its lease.
      planFault({ scope, boundary: 'after:reserved', action: 'delay', ms: 1_500 });
      const a = app.http('calls.make', { scope, key, body: BODY });
      await new Promise((r) => setTimeout(r, 800));

      // A retry finds the lease lapsed, takes the key over (token 2), resumes after 'reserved', finishes.
      const b = await app.http('calls.make', { scope, key, body: BODY });
      expect(b.status).toBe(200);

      // A wakes up and goes on: its outside call repeats the derived key (no second effect), and its
      // next write is fenced out.
      const late = await a;
      expect(late.status).toBe(409);
      expect(errorCode(late)).toBe('IDEMPOTENCY_KEY_IN_USE');
      expect(late.headers.get('retry-after')).toBe('1');

      expect(app.service.effects).toBe(1);
      expect(app.service.calls.length).toBe(2); // B's call and A's repeat, both with the same key
      expect(new Set(app.service.calls.map((c) => c.key)).size).toBe(1);
      expect(await countNotes(db, scope)).toBe(1); // the one reservation A committed before it stalled
      const [row] = await sql`select lease_token, state, response_body from idempotency_keys where scope = ${scope}`;
      expect(row!.lease_token).toBe(2);
      expect(row!.state).toBe('completed');
      expect(row!.response_body).toEqual({ ok: true, data: b.body.result.data }); // B's answer stands

      // A's client retries as told: it gets B's answer.
      const retried = await app.http('calls.make', { scope, key, body: BODY });
      expect(retried.headers.get('idempotent-replayed')).toBe('true');
      expect(retried.body).toEqual(b.body);
    },
  );
});

describe('phased: fencing at every write', () => {
  it(
    'a stale holder that reaches an intermediate step writing a row of its own: the row is rolled back, the key ' +
      'row is unchanged, 409',
    async () => {
      const app = tinyApp(db, { leaseMs: 500, waitMs: 100 });
      const scope = randomUUID();
      const key = randomUUID();
      // Holder A stalls right after its claim, before its first step (which inserts a note), past its lease.
      planFault({ scope, boundary: 'claimed', action: 'delay', ms: 1_500 });
      const a = app.http('calls.make', { scope, key, body: BODY });
      await sleep(800);
      const b = await app.http('calls.make', { scope, key, body: BODY }); // takes over (token 2), runs every step
      expect(b.status).toBe(200);
      const afterB = await keyRow(scope);
      expect(afterB).toMatchObject({ lease_token: 2, state: 'completed', recovery_point: 'finished' });

      // A wakes up and runs step 'reserved': its insert happens in the step's transaction, then the fenced
      // record of the step matches no row (token 1), and the step rolls back with its note.
      const late = await a;
      expect(late.status).toBe(409);
      expect(errorCode(late)).toBe('IDEMPOTENCY_KEY_IN_USE');
      expect(await notesOf(scope)).toEqual([`reserve ${BODY.amount}`]); // B's only
      expect(await keyRow(scope)).toEqual(afterB);
      expect(app.service.calls.length).toBe(1); // A stopped at its first write, before the outside call
    },
  );

  it(
    'a stale holder that reaches the final step (its answer and a row of its own in one transaction): nothing ' +
      "of it commits, B's answer stands, 409",
    async () => {
      const app = tinyApp(db, { leaseMs: 500, waitMs: 100 });
      const scope = randomUUID();
      const key = randomUUID();
      // A commits 'reserved', then stalls past its lease; B takes over, resumes and completes with 'booked'.
      planFault({ scope, boundary: 'after:reserved', action: 'delay', ms: 1_500 });
      const a = app.http('calls.book', { scope, key, body: BODY });
      await sleep(800);
      const b = await app.http('calls.book', { scope, key, body: BODY });
      expect(b.status).toBe(200);
      const afterB = await keyRow(scope);
      expect(afterB).toMatchObject({ lease_token: 2, state: 'completed', recovery_point: 'finished' });
      expect(afterB!.response_body).toEqual({ ok: true, data: b.body.result.data });

      // A wakes, repeats the call (same derived key, no new effect), and runs its final step: its 'booked'
      // note and its answer are one transaction, fenced by token 1, so both roll back.
      const late = await a;
      expect(late.status).toBe(409);
      expect(errorCode(late)).toBe('IDEMPOTENCY_KEY_IN_USE');
      expect(app.service.effects).toBe(1);
      expect(await notesOf(scope)).toEqual([`reserve ${BODY.amount}`, `booked ${b.body.result.data.callId}`]);
      expect(await keyRow(scope)).toEqual(afterB);

      const retried = await app.http('calls.book', { scope, key, body: BODY });
      expect(retried.headers.get('idempotent-replayed')).toBe('true');
      expect(retried.body).toEqual(b.body);
    },
  );
});

describe('phased: the reaper and started keys', () => {
  it('never deletes a started key, however long ago it expired; a completed one expired as long ago goes', async () => {
    const app = tinyApp(db, { leaseMs: 300 });
    const scope = randomUUID();
    const [started, completed] = [randomUUID(), randomUUID()];
    // One key whose holder died after its first step (a payment waiting past its key's retention, say).
    planFault({ scope, boundary: 'after:reserved', action: 'vanish' });
    await app.http('calls.make', { scope, key: started, body: BODY }).catch(() => {});
    expect((await app.http('calls.make', { scope, key: completed, body: BODY })).status).toBe(200);
    await sql`update idempotency_keys set created_at = now() - interval '400 days',
      expires_at = now() - interval '365 days', locked_until = now() - interval '365 days' where scope = ${scope}`;

    await reapExpiredKeys(db, { restFactor: 0 });
    const left = await sql`select key, state, recovery_point from idempotency_keys where scope = ${scope}`;
    // Deleting it would free the key: a retry would be a new request, and a second outside call.
    expect(left).toEqual([{ key: started, state: 'started', recovery_point: 'reserved' }]);
  });
});
