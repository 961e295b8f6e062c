/**
 * Phased procedures on the folder's tiny `calls.make` (reserve, outside call with a derived key,
 * record): leases, fencing, takeover and resume, against the real Postgres.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../../db/client';
import { clearFaults, planFault } from './faults';
import { countNotes, createNotesTable, tinyApp, type Wire } from './testing';

const { sql, db } = createDatabase(process.env.DATABASE_URL!, { max: 20 });
const BODY = { amount: 5 };

beforeAll(() => createNotesTable(db));
afterAll(() => sql.end());
afterEach(() => clearFaults());

const errorCode = (r: { body: Wire }): string => r.body.error.data.errorCode;

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
