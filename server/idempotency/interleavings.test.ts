/**
 * Property-based: random keys, payloads, arrival times and in-flight durations, fired concurrently
 * at the folder's tiny procedure. Whatever the interleaving, per key: at most one note; every answer
 * that is not a 422 is the same answer; a request whose payload differs from the one that ran gets
 * 422 and never runs. Notes are counted per scope, so a note made under any key row shows.
 */
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../../db/client';
import { clearFaults, planFault } from './faults';
import { createNotesTable, tinyApp } from './testing';

const { sql, db } = createDatabase(process.env.DATABASE_URL!, { max: 20 });
const app = tinyApp(db);
const PAYLOADS = [
  { text: 'first' },
  { text: 'second' },
  { text: 'sold out', outcome: 'conflict' }, // a stored business failure
];

beforeAll(() => createNotesTable(db));
afterAll(() => sql.end());
afterEach(() => clearFaults());

const request = fc.record({
  key: fc.integer({ min: 0, max: 3 }),
  payload: fc.integer({ min: 0, max: PAYLOADS.length - 1 }),
  startAfterMs: fc.integer({ min: 0, max: 40 }),
  holdMs: fc.constantFrom(0, 0, 20, 80), // how long a request that runs stays in flight
});

describe('random interleavings of keyed requests', () => {
  it('one note per key that answered success, identical answers, mismatched payloads never run', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(request, { minLength: 2, maxLength: 25 }), async (requests) => {
        const keys = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
        // One scope per key, so that each key's notes are counted on their own, under any key row.
        const scopes = keys.map(() => randomUUID());
        // Each request that runs holds its key for one of the planned durations (in arrival order).
        for (const r of requests)
          if (r.holdMs > 0) planFault({ scope: scopes[r.key]!, boundary: 'executed', action: 'delay', ms: r.holdMs });
        const answers = await Promise.all(
          requests.map(async (r) => {
            await new Promise((resolve) => setTimeout(resolve, r.startAfterMs));
            const res = await app.http('notes.add', {
              scope: scopes[r.key]!,
              key: keys[r.key]!,
              body: PAYLOADS[r.payload],
            });
            // A stack trace (sent outside production only) is where a replayed error differs.
            if (res.body?.error?.data) delete res.body.error.data.stack;
            return { ...r, status: res.status, body: JSON.stringify(res.body) };
          }),
        );
        clearFaults();

        for (let k = 0; k < keys.length; k++) {
          const forKey = answers.filter((a) => a.key === k);
          if (forKey.length === 0) continue;
          const [row] =
            await sql`select id, fingerprint, response_status from idempotency_keys where scope = ${scopes[k]!} and
              key = ${keys[k]!}`;
          const notes = await sql`select id from idempotency_test_notes where scope = ${scopes[k]!}`;
          expect(notes.length).toBeLessThanOrEqual(1);

          const answered = forKey.filter((a) => a.status !== 422);
          // Every non-422 answer is one and the same answer, and came from the stored payload.
          expect(
            new Set(answered.map((a) => `${a.status} ${a.body}`)),
            JSON.stringify(answered, null, 1),
          ).toHaveProperty('size', 1);
          expect(new Set(answered.map((a) => a.payload)).size).toBeLessThanOrEqual(1);
          const winner = answered[0];
          if (winner) {
            expect(row).toBeDefined();
            expect(row!.response_status).toBe(winner.status);
            expect(notes.length).toBe(winner.status === 200 ? 1 : 0);
            // Requests with another payload were refused, never run.
            for (const a of forKey.filter((x) => x.payload !== winner.payload)) expect(a.status).toBe(422);
          }
        }
      }),
      { numRuns: 25 },
    );
  });
});
