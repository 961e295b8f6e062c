/**
 * The idempotency contract, rule by rule (numbers as in the README), on the folder's own tiny
 * procedure (testing.ts) over HTTP, against the real Postgres. The shop's checkout is tested the
 * same way in server/routers/checkout.test.ts.
 */
import { randomUUID } from 'node:crypto';
import { sql as drizzleSql, TransactionRollbackError } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../../db/client';
import { clearFaults, planFault } from './faults';
import { DECISIONS, type DecisionEvent, onDecision } from './hooks';
import { fingerprint, MAX_KEY_LENGTH } from './key';
import { runIdempotent } from './one-transaction';
import { reapExpiredKeys } from './reaper';
import type { Execution } from './request';
import { claimKey, insertCompletedFailure } from './store';
import { countNotes, createNotesTable, makeEveryDecision, tinyApp, type Wire } from './testing';

const { sql, db } = createDatabase(process.env.DATABASE_URL!, { max: 20 });
const app = tinyApp(db);
const NOTE = { text: 'buy milk' };
const OTHER = { text: 'buy bread' };

beforeAll(() => createNotesTable(db));
afterAll(() => sql.end());
afterEach(() => clearFaults());

const add = (scope: string, key: string | null, body: unknown = NOTE, headers: [string, string][] = []) =>
  app.http('notes.add', { scope, key, body, headers });
const noteId = (r: { body: Wire }): string => r.body.result.data.noteId;
const errorCode = (r: { body: Wire }): string => r.body.error.data.errorCode;

async function keyRow(scope: string, key: string) {
  const [row] = await sql`select * from idempotency_keys where scope = ${scope} and key = ${key}`;
  return row;
}

describe('rule 1: the key travels in the Idempotency-Key header', () => {
  it('a bare key and the same key as an IETF structured-field string are one key', async () => {
    const scope = randomUUID();
    const key = randomUUID();
    const first = await add(scope, key);
    const again = await add(scope, `"${key}"`);
    expect(first.status).toBe(200);
    expect(again.status).toBe(200);
    expect(noteId(again)).toBe(noteId(first));
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(await countNotes(db, scope)).toBe(1);
  });
});

describe('rule 2: the handler writes in the transaction that stores the answer', () => {
  it('the note references its key row, and both were committed together, the row marked finished', async () => {
    const scope = randomUUID();
    const key = randomUUID();
    const res = await add(scope, key);
    const row = await keyRow(scope, key);
    const [note] = await sql`select key_id from idempotency_test_notes where id = ${noteId(res)}`;
    expect(note!.key_id).toBe(row!.id);
    expect(row!.state).toBe('completed');
    expect(row!.recovery_point).toBe('finished');
    expect(row!.response_body).toEqual({ ok: true, data: res.body.result.data });
  });

  it('a failure after the note was written rolls back the note and the claim together', async () => {
    const scope = randomUUID();
    const key = randomUUID();
    planFault({ scope, boundary: 'executed', action: 'fail' });
    const failed = await add(scope, key);
    expect(failed.status).toBe(500);
    expect(await countNotes(db, scope)).toBe(0);
    expect(await keyRow(scope, key)).toBeUndefined();
  });
});

describe('rule 3: keys are scoped', () => {
  it("the same key in another scope is another key and never returns the first scope's answer", async () => {
    const alice = randomUUID();
    const bob = randomUUID();
    const key = randomUUID();
    const hers = await add(alice, key);
    const his = await add(bob, key);
    expect(his.status).toBe(200);
    expect(his.headers.get('idempotent-replayed')).toBeNull();
    expect(noteId(his)).not.toBe(noteId(hers));
    expect(await countNotes(db, alice)).toBe(1);
    expect(await countNotes(db, bob)).toBe(1);
  });
});

describe('rule 4: same key, different input is 422 IDEMPOTENCY_KEY_REUSED', () => {
  it('refuses the second request without running it, with a message to use a new key', async () => {
    const scope = randomUUID();
    const key = randomUUID();
    await add(scope, key);
    const reused = await add(scope, key, OTHER);
    expect(reused.status).toBe(422);
    expect(errorCode(reused)).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(reused.body.error.message).toMatch(/Use a new key for a new request/);
    expect(await countNotes(db, scope)).toBe(1);
  });

  it(
    'the fingerprint is over canonical JSON: the same input with keys in another order is the same ' + 'request',
    async () => {
      const scope = randomUUID();
      const key = randomUUID();
      const first = await app.http('notes.add', { scope, key, rawBody: '{"text":"x","outcome":"ok"}' });
      const reordered = await app.http('notes.add', { scope, key, rawBody: '{ "outcome": "ok", "text": "x" }' });
      expect(reordered.status).toBe(200);
      expect(noteId(reordered)).toBe(noteId(first));
    },
  );

  it('invalid input sent with a completed key is a 400 about the input, never a 422', async () => {
    const scope = randomUUID();
    const key = randomUUID();
    expect((await add(scope, key)).status).toBe(200);
    const res = await add(scope, key, { text: '' }); // completed key, other and invalid input
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/text/);
    expect(errorCode(res)).not.toBe('IDEMPOTENCY_KEY_REUSED');
  });
});

describe('rule 5: missing or malformed keys are 400s with their own codes', () => {
  it('no key: 400 IDEMPOTENCY_KEY_REQUIRED, nothing written', async () => {
    const scope = randomUUID();
    const res = await add(scope, null);
    expect(res.status).toBe(400);
    expect(errorCode(res)).toBe('IDEMPOTENCY_KEY_REQUIRED');
    expect(await countNotes(db, scope)).toBe(0);
  });

  const malformed: [string, string][] = [
    ['empty', ''],
    [`longer than ${MAX_KEY_LENGTH} characters`, 'k'.repeat(MAX_KEY_LENGTH + 1)],
    ['with a tab (not printable)', 'abc\tdef'],
    ['with a DEL control character', 'abc\x7fdef'],
    ['non-ASCII', 'clé-ünïcode'],
    ['a broken structured-field string', '"unterminated'],
  ];
  it.each(malformed)('a key that is %s: 400 IDEMPOTENCY_KEY_INVALID, nothing written', async (_name, key) => {
    const scope = randomUUID();
    // raw bytes, as they arrive on the wire
    const res = await add(scope, null, NOTE, [['idempotency-key', Buffer.from(key, 'utf8').toString('latin1')]]);
    expect(res.status).toBe(400);
    expect(errorCode(res)).toBe('IDEMPOTENCY_KEY_INVALID');
    expect(await countNotes(db, scope)).toBe(0);
  });

  it('the header sent twice: 400 IDEMPOTENCY_KEY_INVALID (we cannot tell which key was meant)', async () => {
    const key = randomUUID();
    const res = await add(randomUUID(), null, NOTE, [
      ['idempotency-key', key],
      ['idempotency-key', key],
    ]);
    expect(res.status).toBe(400);
    expect(errorCode(res)).toBe('IDEMPOTENCY_KEY_INVALID');
  });

  it(`a key of exactly ${MAX_KEY_LENGTH} printable characters is accepted`, async () => {
    const res = await add(randomUUID(), `~${'x'.repeat(MAX_KEY_LENGTH - 2)}!`);
    expect(res.status).toBe(200);
  });
});

describe('rule 6: a completed key replays its stored answer without running the procedure', () => {
  it('same note, same body byte for byte, Idempotent-Replayed: true, still one note', async () => {
    const scope = randomUUID();
    const key = randomUUID();
    const first = await add(scope, key);
    const replay = await add(scope, key);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(JSON.stringify(replay.body)).toBe(JSON.stringify(first.body));
    expect(await countNotes(db, scope)).toBe(1);
  });

  it(
    "a replay sends none of the first answer's own headers: a Set-Cookie the procedure set is never sent " + 'again',
    async () => {
      const scope = randomUUID();
      const key = randomUUID();
      const body = { text: 'with a cookie', setCookie: true };
      const first = await add(scope, key, body);
      expect(first.headers.get('set-cookie')).toMatch(/^note-session=/); // the first answer had one
      const replay = await add(scope, key, body);
      expect(replay.headers.get('idempotent-replayed')).toBe('true');
      expect(replay.headers.get('set-cookie')).toBeNull();
    },
  );

  it('a replay sends one claim between BEGIN and ROLLBACK, and nothing else', async () => {
    const scope = randomUUID();
    const key = randomUUID();
    await add(scope, key);
    const statements: string[] = [];
    const counted = createDatabase(process.env.DATABASE_URL!, { max: 1, onQuery: (q) => statements.push(q.trim()) });
    try {
      await counted.sql`select 1`; // open the connection first: its one-time setup queries are not the request's
      statements.length = 0;
      const result = await runIdempotent({
        db: counted.db,
        scope,
        procedure: 'notes.add',
        rawInput: NOTE,
        headers: new Headers({ 'idempotency-key': key }),
        resHeaders: new Headers(),
        options: { ttlMs: 3_600_000, waitMs: 1_000 },
        execute: async () => ({ ok: true, data: 'must not run' }),
        replay: (data) => ({ ok: true, data }),
      });
      expect(result.ok && result.data).not.toBe('must not run');
      expect(statements).toHaveLength(3);
      expect(statements[0]).toBe('begin');
      expect(statements[1]).toMatch(/^select not pg_try_advisory_xact_lock/);
      expect(statements[2]).toBe('rollback');
    } finally {
      await counted.sql.end();
    }
  });

  it('the claim of a key that exists writes nothing: its transaction never gets a transaction id', async () => {
    const scope = randomUUID();
    const key = randomUUID();
    await add(scope, key);
    // A write of any kind (a tuple, a row lock, the WAL record of either) first gives the transaction
    // an id; the claim (an advisory lock and a read) must not. Rolled back either way.
    const xidAfterClaiming = async (k: string, thenWrite: boolean) => {
      let xid: string | null | undefined;
      let claimed: string | undefined;
      await db
        .transaction(async (tx) => {
          claimed = await claimKey(tx, { scope, procedure: 'notes.add', key: k }, { waitMs: 1_000 });
          if (thenWrite)
            await tx.execute(drizzleSql`insert into idempotency_test_notes (scope, text) values (${scope}, 'x')`);
          const [row] = await tx.execute<{ xid: string | null }>(
            drizzleSql`select pg_current_xact_id_if_assigned()::text as xid`,
          );
          xid = row!.xid;
          tx.rollback();
        })
        .catch((err: unknown) => {
          if (!(err instanceof TransactionRollbackError)) throw err;
        });
      return { xid, claimed };
    };
    const free = await xidAfterClaiming(randomUUID(), false);
    expect(free.claimed).toMatch(/^[0-9a-f-]{36}$/); // a free key is claimed: the id its row will have
    expect(free.xid).toBeNull();
    const taken = await xidAfterClaiming(key, false);
    expect(taken.claimed).toBeUndefined();
    expect(taken.xid).toBeNull();
    expect((await xidAfterClaiming(randomUUID(), true)).xid).toMatch(/^\d+$/); // the probe sees a write
  });
});

describe('rule 7: a duplicate of an in-flight request waits for it, within a bound', () => {
  it('waits for the first request and answers with its result (one note)', async () => {
    const scope = randomUUID();
    const key = randomUUID();
    planFault({ scope, boundary: 'executed', action: 'delay', ms: 1500 });
    const slow = add(scope, key);
    await new Promise((r) => setTimeout(r, 300)); // the first has claimed the key and is sleeping
    const duplicate = await add(scope, key);
    const first = await slow;
    expect(duplicate.status).toBe(200);
    expect(duplicate.headers.get('idempotent-replayed')).toBe('true');
    expect(noteId(duplicate)).toBe(noteId(first));
    expect(await countNotes(db, scope)).toBe(1);
  });

  /** Runs the layer directly with a chosen bound and a procedure that holds the key for `holdMs`. */
  function direct(scope: string, key: string, waitMs: number, holdMs: number, resHeaders = new Headers()) {
    return runIdempotent<typeof db, Execution>({
      db,
      scope,
      procedure: 'test.hold',
      rawInput: { n: 1 },
      headers: new Headers({ 'idempotency-key': key }),
      resHeaders,
      options: { ttlMs: 3_600_000, waitMs },
      execute: async () => {
        await new Promise((r) => setTimeout(r, holdMs));
        return { ok: true, data: { heldFor: holdMs } };
      },
      replay: (data) => ({ ok: true, data }),
    });
  }

  it('past the bound: 409 IDEMPOTENCY_KEY_IN_USE with Retry-After', async () => {
    const scope = randomUUID();
    const key = randomUUID();
    const holder = direct(scope, key, 5_000, 1_500);
    await new Promise((r) => setTimeout(r, 200));
    const resHeaders = new Headers();
    const started = Date.now();
    await expect(direct(scope, key, 300, 0, resHeaders)).rejects.toMatchObject({
      code: 'CONFLICT',
      errorCode: 'IDEMPOTENCY_KEY_IN_USE',
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(Date.now() - started).toBeLessThan(1_400); // gave up at the bound, not when the holder finished
    expect(resHeaders.get('retry-after')).toBe('1');
    await holder;
  });

  it(
    'the bound covers the claim only: with a bound of 0, the procedure may still wait on an ordinary ' + 'lock',
    async () => {
      const strict = tinyApp(db, { waitMs: 0 });
      const scope = randomUUID();
      // Another transaction holds a lock the procedure's insert needs, for 300 ms; nobody holds the key.
      const holder = sql.begin(async (tx) => {
        await tx`lock table idempotency_test_notes in exclusive mode`;
        await new Promise((r) => setTimeout(r, 300));
      });
      await new Promise((r) => setTimeout(r, 50));
      const res = await strict.http('notes.add', { scope, key: randomUUID(), body: NOTE });
      await holder;
      expect(res.status).toBe(200); // not 409 IDEMPOTENCY_KEY_IN_USE
      expect(await countNotes(db, scope)).toBe(1);
    },
  );

  it('strict mode (bound 0): 409 at once, as the IETF draft says', async () => {
    const scope = randomUUID();
    const key = randomUUID();
    const holder = direct(scope, key, 5_000, 1_500);
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    await expect(direct(scope, key, 0, 0)).rejects.toMatchObject({ errorCode: 'IDEMPOTENCY_KEY_IN_USE' });
    // The holder has about 1.3 s left, so a duplicate that waited would take that long; the margin
    // under it is for a loaded machine, not a looser rule.
    expect(Date.now() - started).toBeLessThan(1_000);
    await holder;
  });
});

describe('rule 8: what is stored when the procedure fails', () => {
  it('a deliberate business failure (409) is stored and replayed like a success', async () => {
    const scope = randomUUID();
    const key = randomUUID();
    const body = { text: 'one more', outcome: 'conflict' };
    const first = await add(scope, key, body);
    expect(first.status).toBe(409);
    expect(errorCode(first)).toBe('NOTES_SOLD_OUT');
    expect(await keyRow(scope, key)).toMatchObject({ state: 'completed', recovery_point: 'finished' });

    const replay = await add(scope, key, body);
    expect(replay.status).toBe(409);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    const withoutStack = (r: { body: Wire }) =>
      JSON.stringify({ ...r.body.error, data: { ...r.body.error.data, stack: undefined } });
    expect(withoutStack(replay)).toBe(withoutStack(first)); // same message, errorCode
    expect(await countNotes(db, scope)).toBe(0); // the work was rolled back; only the answer was kept
  });

  it('input that failed validation stores nothing: the key stays free', async () => {
    const scope = randomUUID();
    const key = randomUUID();
    const bad = await add(scope, key, { text: 'x'.repeat(500) });
    expect(bad.status).toBe(400);
    expect(await keyRow(scope, key)).toBeUndefined();
    // Fixed and sent again with the same key: it runs (not a 422, not a replay of the 400).
    const fixed = await add(scope, key);
    expect(fixed.status).toBe(200);
    expect(await countNotes(db, scope)).toBe(1);
  });

  it('an unexpected error stores nothing: a retry with the same key runs the procedure again', async () => {
    const scope = randomUUID();
    const key = randomUUID();
    planFault({ scope, boundary: 'executed', action: 'fail' });
    const crashed = await add(scope, key);
    expect(crashed.status).toBe(500);
    const retried = await add(scope, key);
    expect(retried.status).toBe(200);
    expect(retried.headers.get('idempotent-replayed')).toBeNull();
    expect(await countNotes(db, scope)).toBe(1);
  });
});

describe('rule 10: keys expire, and a reaper deletes them', () => {
  it('after expiry the same key is a new request', async () => {
    const scope = randomUUID();
    const key = randomUUID();
    await add(scope, key);
    await sql`update idempotency_keys set expires_at = now() - interval '1 second' where scope = ${scope}`;
    const again = await add(scope, key, OTHER); // would be a 422 if the key were still live
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBeNull();
    expect(await countNotes(db, scope)).toBe(2);
  });

  it('an expired key reused with input that fails for a business reason gets that failure, executed once', async () => {
    const scope = randomUUID();
    const key = randomUUID();
    await add(scope, key);
    await sql`update idempotency_keys set expires_at = now() - interval '1 second' where scope = ${scope}`;
    const seen: DecisionEvent[] = [];
    const stop = onDecision((e) => e.scope === scope && seen.push(e));
    try {
      const res = await add(scope, key, { text: 'again', outcome: 'conflict' });
      expect(res.status).toBe(409);
      expect(errorCode(res)).toBe('NOTES_SOLD_OUT'); // the business answer, not IDEMPOTENCY_KEY_IN_USE
      expect(seen.map((e) => e.decision)).toEqual(['expired', 'failure_stored']);
      const replay = await add(scope, key, { text: 'again', outcome: 'conflict' });
      expect(replay.headers.get('idempotent-replayed')).toBe('true');
      expect(errorCode(replay)).toBe('NOTES_SOLD_OUT');
    } finally {
      stop();
    }
  });

  it('an expired key whose stored answer was a business failure is a new request too', async () => {
    const scope = randomUUID();
    const key = randomUUID();
    expect((await add(scope, key, { text: 'x', outcome: 'conflict' })).status).toBe(409);
    await sql`update idempotency_keys set expires_at = now() - interval '1 second' where scope = ${scope}`;
    const again = await add(scope, key, OTHER);
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBeNull();
    expect(await countNotes(db, scope)).toBe(1);
  });

  it('an expired key of a phased procedure is a new request: a new key row, so a new outside call', async () => {
    const scope = randomUUID();
    const key = randomUUID();
    const first = await app.http('calls.make', { scope, key, body: { amount: 7 } });
    expect(first.status).toBe(200);
    await sql`update idempotency_keys set expires_at = now() - interval '1 second' where scope = ${scope}`;
    const again = await app.http('calls.make', { scope, key, body: { amount: 8 } });
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBeNull();
    expect(again.body.result.data.callId).not.toBe(first.body.result.data.callId);
    expect(await countNotes(db, scope)).toBe(2);
  });

  it('the reaper deletes expired keys in batches, keeps live ones, and keeps the notes', async () => {
    const scope = randomUUID();
    const keys = Array.from({ length: 7 }, () => randomUUID());
    for (const key of keys) await add(scope, key);
    await sql`update idempotency_keys set expires_at = now() - interval '1 hour' where scope = ${scope} and key in
      ${sql(keys.slice(0, 5))}`;

    // batches of 2: 2 + 2 + 1, plus any other test's expired keys
    const deleted = await reapExpiredKeys(db, { batchSize: 2 });
    expect(deleted).toBeGreaterThanOrEqual(5);
    const [left] = await sql<{ n: number }[]>`select count(*)::int as n from idempotency_keys where scope = ${scope}`;
    expect(left!.n).toBe(2);
    expect(await countNotes(db, scope)).toBe(7);
  });
});

describe('the reaper is paced', () => {
  it('rests after each batch for restFactor times as long as the batch took, and stops when aborted', async () => {
    const scope = randomUUID();
    const keys = Array.from({ length: 6 }, () => randomUUID());
    for (const key of keys) await add(scope, key);
    await sql`update idempotency_keys set expires_at = now() - interval '1 hour' where scope = ${scope}`;

    const started = performance.now();
    const marks: number[] = [];
    const stop = new AbortController();
    await reapExpiredKeys(db, {
      batchSize: 2,
      restFactor: 20,
      signal: stop.signal,
      onBatch: () => {
        marks.push(performance.now());
        if (marks.length === 2) stop.abort(); // after the second batch: no third
      },
    });
    expect(marks).toHaveLength(2);
    const firstBatch = marks[0]! - started;
    // The rest is 20x the batch as the reaper timed it. Seen from here the batch looks a little longer
    // (the call itself, a pause of this process), and a timer may fire up to a millisecond early on the
    // event loop's cached clock, so the check asks for 15x: still more than the default factor (9),
    // and far more than no rest at all (about 1x).
    expect(marks[1]! - marks[0]!).toBeGreaterThanOrEqual(15 * firstBatch);
    const [left] = await sql<{ n: number }[]>`select count(*)::int as n from idempotency_keys where scope = ${scope}`;
    expect(left!.n).toBeGreaterThan(0); // aborted before the last of them
  });
});

describe('rule 11: the keys table enforces its own limits', () => {
  it('has the unique claim index and the reaper index', async () => {
    const indexes = await sql<
      { indexdef: string }[]
    >`select indexdef from pg_indexes where tablename = 'idempotency_keys'`;
    const defs = indexes.map((i) => i.indexdef).join('\n');
    expect(defs).toMatch(/UNIQUE INDEX idempotency_keys_scope_procedure_key_idx .*\(scope, procedure, key\)/);
    expect(defs).toMatch(/idempotency_keys_expires_at_idx .*\(expires_at\)/);
  });

  it.each([
    ['an empty scope', { scope: '' }, 'idempotency_keys_scope_length'],
    ['a scope over 128 characters', { scope: 's'.repeat(129) }, 'idempotency_keys_scope_length'],
    ['an empty procedure', { procedure: '' }, 'idempotency_keys_procedure_length'],
    ['a procedure over 128 characters', { procedure: 'p'.repeat(129) }, 'idempotency_keys_procedure_length'],
    ['an empty key', { key: '' }, 'idempotency_keys_key_length'],
    ['a key over 255 characters', { key: 'k'.repeat(256) }, 'idempotency_keys_key_length'],
    ['a fingerprint in capitals', { fingerprint: 'A'.repeat(64) }, 'idempotency_keys_fingerprint_sha256'],
    ['a fingerprint one digit short', { fingerprint: 'a'.repeat(63) }, 'idempotency_keys_fingerprint_sha256'],
    ['a fingerprint one digit long', { fingerprint: 'a'.repeat(65) }, 'idempotency_keys_fingerprint_sha256'],
    ['an empty recovery point', { recovery_point: '' }, 'idempotency_keys_recovery_point_length'],
    [
      'a recovery point over 64 characters',
      { recovery_point: 'r'.repeat(65) },
      'idempotency_keys_recovery_point_length',
    ],
    ['a completed state with no stored result', { state: 'completed' }, 'idempotency_keys_completed_has_result'],
  ])('refuses %s, naming the rule', async (_name, override, rule) => {
    const row = {
      scope: randomUUID(),
      procedure: 'p',
      key: 'k',
      fingerprint: 'a'.repeat(64),
      state: 'started',
      recovery_point: 'started',
      ...override,
    };
    await expect(
      sql`insert into idempotency_keys (scope, procedure, key, fingerprint, state, recovery_point, expires_at)
          values (${row.scope}, ${row.procedure}, ${row.key}, ${row.fingerprint}, ${row.state},
                  ${row.recovery_point}, now())`,
    ).rejects.toMatchObject({ code: '23514', constraint_name: rule }); // check_violation
  });

  it('accepts every rule at its limit (the bounds above are the rules, not narrower)', async () => {
    const scope = randomUUID().padEnd(128, 's');
    const [row] = await sql<{ id: string }[]>`
      insert into idempotency_keys (scope, procedure, key, fingerprint, recovery_point, expires_at)
      values (${scope}, ${'p'.repeat(128)}, ${'k'.repeat(255)}, ${'0123456789abcdef'.repeat(4)}, ${'r'.repeat(64)},
              now() + interval '1 hour')
      returning id`;
    expect(row!.id).toMatch(/^[0-9a-f-]{36}$/);
    await sql`delete from idempotency_keys where id = ${row!.id}`;
  });

  it('refuses a bad value written by an UPDATE too (a phased step moving the recovery point)', async () => {
    const [row] = await sql<{ id: string }[]>`
      insert into idempotency_keys (scope, procedure, key, fingerprint, expires_at)
      values (${randomUUID()}, 'p', 'k', ${'b'.repeat(64)}, now() + interval '1 hour') returning id`;
    await expect(
      sql`update idempotency_keys set recovery_point = ${'r'.repeat(65)} where id = ${row!.id}`,
    ).rejects.toMatchObject({ code: '23514', constraint_name: 'idempotency_keys_recovery_point_length' });
    await sql`delete from idempotency_keys where id = ${row!.id}`;
  });
});

describe('rule 12: one decision per request, reported without the key', () => {
  it('every decision the layer can make is reported: all eleven, each for the request that made it', async () => {
    const seen: DecisionEvent[] = [];
    const stop = onDecision((e) => seen.push(e));
    try {
      const scope = randomUUID();
      await makeEveryDecision(db, scope);
      const decisions = new Set(seen.filter((e) => e.scope === scope).map((e) => e.decision));
      expect([...decisions].sort()).toEqual([...DECISIONS].sort());
    } finally {
      stop();
    }
  });

  it('reports executed, replayed, reused, missing and invalid, without the key', async () => {
    const seen: DecisionEvent[] = [];
    const stop = onDecision((e) => seen.push(e));
    try {
      const scope = randomUUID();
      const key = randomUUID();
      await add(scope, key);
      await add(scope, key);
      await add(scope, key, OTHER);
      await add(scope, null);
      await add(scope, '');
      const mine = seen.filter((l) => l.scope === scope);
      expect(mine.map((l) => l.decision)).toEqual([
        'executed',
        'replayed',
        'reused_with_different_input',
        'missing',
        'invalid',
      ]);
      expect(JSON.stringify(mine)).not.toContain(key);
      expect(mine.every((l) => l.procedure === 'notes.add')).toBe(true);
    } finally {
      stop();
    }
  });
});

describe('concurrency', () => {
  it(
    'a storm: 50 concurrent requests with one key give exactly 1 note and 50 identical bodies, 49 ' + 'replayed',
    async () => {
      const scope = randomUUID();
      const key = randomUUID();
      const results = await Promise.all(Array.from({ length: 50 }, () => add(scope, key)));
      expect(results.map((r) => r.status)).toEqual(Array(50).fill(200));
      expect(new Set(results.map((r) => JSON.stringify(r.body))).size).toBe(1);
      expect(results.filter((r) => r.headers.get('idempotent-replayed') === 'true')).toHaveLength(49);
      expect(await countNotes(db, scope)).toBe(1);
    },
  );

  it(
    'the unique index is the last word: a row for the key committed without the lock while the work ran ' +
      'rolls the work back, and the request answers with that row',
    async () => {
      const scope = randomUUID();
      const key = randomUUID();
      const k = { scope, procedure: 'notes.add', key };
      const resHeaders = new Headers();
      let ran = 0;
      const result = await runIdempotent<typeof db, Execution>({
        db,
        scope,
        procedure: 'notes.add',
        rawInput: NOTE,
        headers: new Headers({ 'idempotency-key': key }),
        resHeaders,
        options: { ttlMs: 3_600_000, waitMs: 1_000 },
        execute: async (tx, keyId) => {
          ran++;
          await tx.execute(
            drizzleSql`insert into idempotency_test_notes (scope, key_id, text) values (${scope}, ${keyId}, 'mine')`,
          );
          // Meanwhile, outside this transaction and without the lock, the key gets an answer of its own.
          const other = {
            ok: false as const,
            error: { code: 'CONFLICT' as const, errorCode: 'NOTES_SOLD_OUT', message: 'No more notes today.' },
          };
          await insertCompletedFailure(db, k, fingerprint('notes.add', NOTE), 409, other, 3_600_000);
          return { ok: true, data: 'mine' };
        },
        replay: (data) => ({ ok: true, data }),
      }).catch((err: unknown) => err as { errorCode?: string });
      expect(ran).toBe(1); // the next round found the committed row: the work did not run again
      expect(result).toMatchObject({ errorCode: 'NOTES_SOLD_OUT' }); // the row that won, replayed
      expect(resHeaders.get('idempotent-replayed')).toBe('true');
      expect(await countNotes(db, scope)).toBe(0); // the work rolled back with the refused row
    },
  );

  it('1,000 requests over 100 keys at concurrency 20 give exactly 100 notes, one per key', async () => {
    const scope = randomUUID();
    const keys = Array.from({ length: 100 }, () => randomUUID());
    const requests = Array.from({ length: 1_000 }, (_, i) => keys[i % 100]!).sort(() => Math.random() - 0.5);
    const answers = new Map<string, Set<string>>();
    let next = 0;
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        while (next < requests.length) {
          const key = requests[next++]!;
          const res = await add(scope, key);
          expect(res.status).toBe(200);
          answers.set(key, (answers.get(key) ?? new Set()).add(noteId(res)));
        }
      }),
    );
    expect(await countNotes(db, scope)).toBe(100);
    expect([...answers.values()].every((ids) => ids.size === 1)).toBe(true);
  });
});
