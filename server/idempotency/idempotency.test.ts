/**
 * The idempotency contract, rule by rule (numbers as in the README), against the real Postgres and,
 * where the wire matters, through the real Next route handler.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { getDatabase } from '../../db/client';
import { countOrders, customerCookie, http, type HttpResult } from '../testing';
import { MAX_KEY_LENGTH } from './key';
import { runIdempotent, type Execution } from './middleware';
import { reapExpiredKeys } from './reaper';

const { sql, db } = getDatabase();
const MUG = { items: [{ productId: 'travel-mug', quantity: 1 }] };
const BEANS = { items: [{ productId: 'espresso-beans', quantity: 2 }] };

function checkout(customerId: string, key: string | null, body: unknown, extra: Record<string, string> = {}) {
  const headers: Record<string, string> = { cookie: customerCookie(customerId), ...extra };
  if (key !== null) headers['idempotency-key'] = key;
  return http('POST', 'checkout.placeOrder', { headers, body });
}

const orderId = (r: HttpResult): string => r.body.result.data.id;
const errorCode = (r: HttpResult): string => r.body.error.data.errorCode;

async function keyRow(customerId: string, key: string) {
  const [row] = await sql`select * from idempotency_keys where scope = ${customerId} and key = ${key}`;
  return row;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('rule 1: the key travels in the Idempotency-Key header', () => {
  it('a bare key and the same key as an IETF structured-field string are one key', async () => {
    const customer = randomUUID();
    const key = randomUUID();
    const first = await checkout(customer, key, MUG);
    const again = await checkout(customer, `"${key}"`, MUG);
    expect(first.status).toBe(200);
    expect(again.status).toBe(200);
    expect(orderId(again)).toBe(orderId(first));
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(await countOrders(customer)).toBe(1);
  });
});

describe('rule 2: the handler writes in the transaction that stores the answer', () => {
  it('the order references its key row, and both were committed together', async () => {
    const customer = randomUUID();
    const key = randomUUID();
    const res = await checkout(customer, key, MUG);
    const row = await keyRow(customer, key);
    const [order] = await sql`select idempotency_key_id from orders where id = ${orderId(res)}`;
    expect(order!.idempotency_key_id).toBe(row!.id);
    expect(row!.state).toBe('completed');
    expect(row!.response_body).toEqual({ ok: true, data: res.body.result.data });
  });

  it('a failure after the order was written rolls back the order and the claim together', async () => {
    const customer = randomUUID();
    const key = randomUUID();
    const failed = await checkout(customer, key, MUG, { 'x-test-fail-after-write': '1' });
    expect(failed.status).toBe(500);
    expect(await countOrders(customer)).toBe(0);
    expect(await keyRow(customer, key)).toBeUndefined();
  });
});

describe('rule 3: keys are scoped per customer', () => {
  it("the same key from another customer is another key and never returns the first customer's order", async () => {
    const alice = randomUUID();
    const bob = randomUUID();
    const key = randomUUID();
    const hers = await checkout(alice, key, MUG);
    const his = await checkout(bob, key, MUG);
    expect(his.status).toBe(200);
    expect(his.headers.get('idempotent-replayed')).toBeNull();
    expect(orderId(his)).not.toBe(orderId(hers));
    expect(await countOrders(alice)).toBe(1);
    expect(await countOrders(bob)).toBe(1);
  });
});

describe('rule 4: same key, different input is 422 IDEMPOTENCY_KEY_REUSED', () => {
  it('refuses the second request without running it, with a message to use a new key', async () => {
    const customer = randomUUID();
    const key = randomUUID();
    await checkout(customer, key, MUG);
    const reused = await checkout(customer, key, BEANS);
    expect(reused.status).toBe(422);
    expect(errorCode(reused)).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(reused.body.error.message).toMatch(/Use a new key for a new request/);
    expect(await countOrders(customer)).toBe(1);
  });

  it('the fingerprint is over canonical JSON: the same input with keys in another order is the same request', async () => {
    const customer = randomUUID();
    const key = randomUUID();
    const first = await http('POST', 'checkout.placeOrder', {
      headers: { cookie: customerCookie(customer), 'idempotency-key': key },
      rawBody: '{"items":[{"productId":"travel-mug","quantity":1}]}',
    });
    const reordered = await http('POST', 'checkout.placeOrder', {
      headers: { cookie: customerCookie(customer), 'idempotency-key': key },
      rawBody: '{ "items": [ { "quantity": 1, "productId": "travel-mug" } ] }',
    });
    expect(reordered.status).toBe(200);
    expect(orderId(reordered)).toBe(orderId(first));
  });

  it('ordinary invalid input stays a 400 VALIDATION_FAILED, never a 422', async () => {
    const res = await checkout(randomUUID(), randomUUID(), { items: [{ productId: 'travel-mug', quantity: 0 }] });
    expect(res.status).toBe(400);
    expect(errorCode(res)).toBe('VALIDATION_FAILED');
  });
});

describe('rule 5: missing or malformed keys are 400s with their own codes', () => {
  it('no key: 400 IDEMPOTENCY_KEY_REQUIRED, nothing written', async () => {
    const customer = randomUUID();
    const res = await checkout(customer, null, MUG);
    expect(res.status).toBe(400);
    expect(errorCode(res)).toBe('IDEMPOTENCY_KEY_REQUIRED');
    expect(await countOrders(customer)).toBe(0);
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
    const customer = randomUUID();
    const res = await http('POST', 'checkout.placeOrder', {
      headers: [
        ['cookie', customerCookie(customer)],
        ['idempotency-key', Buffer.from(key, 'utf8').toString('latin1')], // raw bytes, as on the wire
      ],
      body: MUG,
    });
    expect(res.status).toBe(400);
    expect(errorCode(res)).toBe('IDEMPOTENCY_KEY_INVALID');
    expect(await countOrders(customer)).toBe(0);
  });

  it('the header sent twice: 400 IDEMPOTENCY_KEY_INVALID (we cannot tell which key was meant)', async () => {
    const customer = randomUUID();
    const key = randomUUID();
    const res = await http('POST', 'checkout.placeOrder', {
      headers: [
        ['cookie', customerCookie(customer)],
        ['idempotency-key', key],
        ['idempotency-key', key],
      ],
      body: MUG,
    });
    expect(res.status).toBe(400);
    expect(errorCode(res)).toBe('IDEMPOTENCY_KEY_INVALID');
  });

  it(`a key of exactly ${MAX_KEY_LENGTH} printable characters is accepted`, async () => {
    const res = await checkout(randomUUID(), `~${'x'.repeat(MAX_KEY_LENGTH - 2)}!`, MUG);
    expect(res.status).toBe(200);
  });
});

describe('rule 6: a completed key replays its stored answer without running the procedure', () => {
  it('same order id, same body byte for byte, Idempotent-Replayed: true, still one order', async () => {
    const customer = randomUUID();
    const key = randomUUID();
    const first = await checkout(customer, key, MUG);
    const replay = await checkout(customer, key, MUG);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(JSON.stringify(replay.body)).toBe(JSON.stringify(first.body));
    expect(await countOrders(customer)).toBe(1);
  });

  it('a replay sends one read-only statement: no transaction, no write', async () => {
    const customer = randomUUID();
    const key = randomUUID();
    await checkout(customer, key, MUG);
    const statements: string[] = [];
    const { createDatabase } = await import('../../db/client');
    const counted = createDatabase(process.env.DATABASE_URL!, { max: 1, onQuery: (q) => statements.push(q) });
    try {
      await counted.sql`select 1`; // open the connection first: its one-time setup queries are not the request's
      statements.length = 0;
      const headers = new Headers({ 'idempotency-key': key });
      await runIdempotent({
        db: counted.db,
        scope: customer,
        procedure: 'checkout.placeOrder',
        rawInput: MUG,
        headers,
        resHeaders: new Headers(),
        options: { ttlMs: 3_600_000, waitMs: 1_000 },
        execute: async () => ({ ok: true, data: 'must not run' }),
        replay: (data) => ({ ok: true, data }),
      });
      expect(statements).toHaveLength(1);
      expect(statements[0]).toMatch(/^select/i);
    } finally {
      await counted.sql.end();
    }
  });
});

describe('rule 7: a duplicate of an in-flight request waits for it, within a bound', () => {
  it('waits for the first request and answers with its result (one order)', async () => {
    const customer = randomUUID();
    const key = randomUUID();
    const slow = checkout(customer, key, MUG, { 'x-test-delay-ms': '1500' });
    await new Promise((r) => setTimeout(r, 300)); // the first has claimed the key and is sleeping
    const duplicate = await checkout(customer, key, MUG);
    const first = await slow;
    expect(duplicate.status).toBe(200);
    expect(duplicate.headers.get('idempotent-replayed')).toBe('true');
    expect(orderId(duplicate)).toBe(orderId(first));
    expect(await countOrders(customer)).toBe(1);
  });

  /** Runs the layer directly with a chosen bound and a procedure that holds the key for `holdMs`. */
  function direct(scope: string, key: string, waitMs: number, holdMs: number, resHeaders = new Headers()) {
    return runIdempotent<Execution>({
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

  it('strict mode (bound 0): 409 at once, as the IETF draft says', async () => {
    const scope = randomUUID();
    const key = randomUUID();
    const holder = direct(scope, key, 5_000, 1_500);
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    await expect(direct(scope, key, 0, 0)).rejects.toMatchObject({ errorCode: 'IDEMPOTENCY_KEY_IN_USE' });
    expect(Date.now() - started).toBeLessThan(200);
    await holder;
  });
});

describe('rule 8: what is stored when the procedure fails', () => {
  it('a deliberate business failure (sold out, 409) is stored and replayed like a success', async () => {
    const customer = randomUUID();
    const key = randomUUID();
    const body = { items: [{ productId: 'cold-brew-tower', quantity: 1 }] };
    const first = await checkout(customer, key, body);
    expect(first.status).toBe(409);
    expect(errorCode(first)).toBe('PRODUCT_SOLD_OUT');
    expect((await keyRow(customer, key))!.state).toBe('completed');

    const replay = await checkout(customer, key, body);
    expect(replay.status).toBe(409);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    const withoutStack = (r: HttpResult) => JSON.stringify({ ...r.body.error, data: { ...r.body.error.data, stack: undefined } });
    expect(withoutStack(replay)).toBe(withoutStack(first)); // same message, errorCode, fieldErrors
    expect(errorCode(replay)).toBe('PRODUCT_SOLD_OUT');
    expect(await countOrders(customer)).toBe(0);
  });

  it('input that failed validation stores nothing: the key stays free', async () => {
    const customer = randomUUID();
    const key = randomUUID();
    const bad = await checkout(customer, key, { items: [{ productId: 'travel-mug', quantity: 500 }] });
    expect(bad.status).toBe(400);
    expect(await keyRow(customer, key)).toBeUndefined();
    // Fixed and sent again with the same key: it runs (not a 422, not a replay of the 400).
    const fixed = await checkout(customer, key, MUG);
    expect(fixed.status).toBe(200);
    expect(await countOrders(customer)).toBe(1);
  });

  it('an unexpected error stores nothing: a retry with the same key runs the procedure again', async () => {
    const customer = randomUUID();
    const key = randomUUID();
    const crashed = await checkout(customer, key, MUG, { 'x-test-fail-after-write': '1' });
    expect(crashed.status).toBe(500);
    expect(crashed.body.error.message).not.toMatch(/test hook/); // internals are not sent to clients
    const retried = await checkout(customer, key, MUG);
    expect(retried.status).toBe(200);
    expect(retried.headers.get('idempotent-replayed')).toBeNull();
    expect(await countOrders(customer)).toBe(1);
  });
});

describe('rule 10: keys expire, and a reaper deletes them', () => {
  it('after expiry the same key is a new request', async () => {
    const customer = randomUUID();
    const key = randomUUID();
    await checkout(customer, key, MUG);
    await sql`update idempotency_keys set expires_at = now() - interval '1 second' where scope = ${customer}`;
    const again = await checkout(customer, key, BEANS); // would be a 422 if the key were still live
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBeNull();
    expect(await countOrders(customer)).toBe(2);
  });

  it('the reaper deletes expired keys in batches, keeps live ones, and keeps the orders', async () => {
    const customer = randomUUID();
    const keys = Array.from({ length: 7 }, () => randomUUID());
    for (const key of keys) await checkout(customer, key, MUG);
    await sql`update idempotency_keys set expires_at = now() - interval '1 hour' where scope = ${customer} and key in ${sql(keys.slice(0, 5))}`;

    const deleted = await reapExpiredKeys(db, 2); // batches of 2: 2 + 2 + 1, plus any other test's expired keys
    expect(deleted).toBeGreaterThanOrEqual(5);
    const [left] = await sql<{ n: number }[]>`select count(*)::int as n from idempotency_keys where scope = ${customer}`;
    expect(left!.n).toBe(2);
    const orders = await sql`select idempotency_key_id from orders where customer_id = ${customer}`;
    expect(orders).toHaveLength(7);
    expect(orders.filter((o) => o.idempotency_key_id === null)).toHaveLength(5);
  });

  it('new keys expire 24 hours after creation by default', async () => {
    const customer = randomUUID();
    const key = randomUUID();
    await checkout(customer, key, MUG);
    const [row] = await sql<{ hours: number }[]>`
      select extract(epoch from expires_at - created_at) / 3600 as hours from idempotency_keys where scope = ${customer}`;
    expect(Number(row!.hours)).toBeCloseTo(24, 3);
  });
});

describe('rule 11: the keys table enforces its own limits', () => {
  it('has the unique claim index and the reaper index', async () => {
    const indexes = await sql<{ indexdef: string }[]>`select indexdef from pg_indexes where tablename = 'idempotency_keys'`;
    const defs = indexes.map((i) => i.indexdef).join('\n');
    expect(defs).toMatch(/UNIQUE INDEX idempotency_keys_scope_procedure_key_idx .*\(scope, procedure, key\)/);
    expect(defs).toMatch(/idempotency_keys_expires_at_idx .*\(expires_at\)/);
  });

  it.each([
    ['a key over 255 characters', { key: 'k'.repeat(256) }],
    ['a fingerprint that is not SHA-256 hex', { fingerprint: 'abc' }],
    ['a completed state with no stored result', { state: 'completed' }],
  ])('refuses %s', async (_name, override) => {
    const row = { scope: randomUUID(), procedure: 'p', key: 'k', fingerprint: 'a'.repeat(64), state: 'started', ...override };
    await expect(
      sql`insert into idempotency_keys (scope, procedure, key, fingerprint, state, expires_at)
          values (${row.scope}, ${row.procedure}, ${row.key}, ${row.fingerprint}, ${row.state}, now())`,
    ).rejects.toMatchObject({ code: '23514' }); // check_violation
  });
});

describe('rule 12: one structured log line per decision, with no secrets', () => {
  it('logs executed, replayed, reused, missing and invalid, without the key or the cookie', async () => {
    const lines: Record<string, unknown>[] = [];
    vi.spyOn(console, 'info').mockImplementation((line: unknown) => {
      lines.push(JSON.parse(String(line)) as Record<string, unknown>);
    });
    const customer = randomUUID();
    const key = randomUUID();
    await checkout(customer, key, MUG);
    await checkout(customer, key, MUG);
    await checkout(customer, key, BEANS);
    await checkout(customer, null, MUG);
    await checkout(customer, '', MUG);

    const mine = lines.filter((l) => l.msg === 'idempotency' && l.scope === customer);
    expect(mine.map((l) => l.decision)).toEqual(['executed', 'replayed', 'reused_with_different_input', 'missing', 'invalid']);
    const text = JSON.stringify(mine);
    expect(text).not.toContain(key);
    expect(text).not.toContain(customerCookie(customer).split('.')[1]);
    expect(mine.every((l) => l.procedure === 'checkout.placeOrder')).toBe(true);
  });
});

describe('concurrency', () => {
  it('a storm: 50 concurrent requests with one key give exactly 1 order and 50 identical bodies, 49 replayed', async () => {
    const customer = randomUUID();
    const key = randomUUID();
    const results = await Promise.all(Array.from({ length: 50 }, () => checkout(customer, key, MUG)));
    expect(results.map((r) => r.status)).toEqual(Array(50).fill(200));
    expect(new Set(results.map((r) => JSON.stringify(r.body))).size).toBe(1);
    expect(results.filter((r) => r.headers.get('idempotent-replayed') === 'true')).toHaveLength(49);
    expect(await countOrders(customer)).toBe(1);
  });

  it('1,000 requests over 100 keys at concurrency 20 give exactly 100 orders, one per key', async () => {
    const customer = randomUUID();
    const keys = Array.from({ length: 100 }, () => randomUUID());
    const requests = Array.from({ length: 1_000 }, (_, i) => keys[i % 100]!).sort(() => Math.random() - 0.5);
    const answers = new Map<string, Set<string>>();
    let next = 0;
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        while (next < requests.length) {
          const key = requests[next++]!;
          const res = await checkout(customer, key, MUG);
          expect(res.status).toBe(200);
          answers.set(key, (answers.get(key) ?? new Set()).add(orderId(res)));
        }
      }),
    );
    expect(await countOrders(customer)).toBe(100);
    expect([...answers.values()].every((ids) => ids.size === 1)).toBe(true);
  });

  it('negative control: the same storm against the unprotected variant makes more than one order', async () => {
    const customer = randomUUID();
    const results = await Promise.all(
      Array.from({ length: 50 }, () =>
        http('POST', 'checkout.placeOrderUnprotected', { headers: { cookie: customerCookie(customer) }, body: MUG }),
      ),
    );
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(await countOrders(customer)).toBeGreaterThan(1);
  });
});
