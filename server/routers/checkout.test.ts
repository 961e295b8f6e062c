/**
 * The shop's keyed checkout (`checkout.placeOrder`, one transaction) through the real HTTP handler
 * and a real server process: what the idempotency layer's own tests (server/idempotency/) prove on
 * a tiny procedure, shown on the order the shop really writes.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AppServer, startAppServer } from '../../dev/app-server';
import { listenerPort } from '../../dev/ports';
import { getDatabase } from '../db';
import { getEnv } from '../env.js';
import { newLabCustomers } from '../lab/session';
import { countOrders, customerCookie, type HttpResult, http, planServerFault } from '../testing';

const { sql } = getDatabase();
const MUG = { items: [{ productId: 'travel-mug', quantity: 1 }] };

const checkout = (customerId: string, key: string, body: unknown = MUG) =>
  http('POST', 'checkout.placeOrder', {
    headers: { cookie: customerCookie(customerId), 'idempotency-key': key },
    body,
  });
const orderId = (r: HttpResult): string => r.body.result.data.id;

describe('checkout.placeOrder is keyed', () => {
  it('the order references its key row, committed with the stored answer; a retry replays it', async () => {
    const customer = randomUUID();
    const key = randomUUID();
    const first = await checkout(customer, key);
    const again = await checkout(customer, key);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(JSON.stringify(again.body)).toBe(JSON.stringify(first.body));
    const [row] =
      await sql`select id, state, response_body from idempotency_keys where scope = ${customer} and key = ${key}`;
    const [order] = await sql`select idempotency_key_id from orders where id = ${orderId(first)}`;
    expect(order!.idempotency_key_id).toBe(row!.id);
    expect(row!.response_body).toEqual({ ok: true, data: first.body.result.data });
    expect(await countOrders(customer)).toBe(1);
  });

  it('a completed key sent again with invalid input: 400 VALIDATION_FAILED naming the field, never 422', async () => {
    const customer = randomUUID();
    const key = randomUUID();
    expect((await checkout(customer, key)).status).toBe(200);
    const res = await checkout(customer, key, { items: [{ productId: 'travel-mug', quantity: 0 }] });
    expect(res.status).toBe(400);
    expect(res.body.error.data.errorCode).toBe('VALIDATION_FAILED');
    expect(res.body.error.message).toBe('items[0].quantity: must be from 1 to 99');
  });

  it('new keys expire 24 hours after creation by default', async () => {
    const customer = randomUUID();
    await checkout(customer, randomUUID());
    const [row] = await sql<{ hours: number }[]>`
      select extract(epoch from expires_at - created_at) / 3600 as hours from idempotency_keys where scope =
        ${customer}`;
    expect(Number(row!.hours)).toBeCloseTo(24, 3);
  });

  it('a storm: 50 concurrent checkouts with one key give exactly 1 order', async () => {
    const customer = randomUUID();
    const key = randomUUID();
    const results = await Promise.all(Array.from({ length: 50 }, () => checkout(customer, key)));
    expect(results.map((r) => r.status)).toEqual(Array(50).fill(200));
    expect(new Set(results.map((r) => orderId(r))).size).toBe(1);
    expect(await countOrders(customer)).toBe(1);
  });

  it("negative control: the same storm against the lab's twin without a key makes more than one order", async () => {
    const [customer] = await newLabCustomers(getDatabase().db, 1);
    const results = await Promise.all(
      Array.from({ length: 50 }, () =>
        http('POST', 'lab.placeOrderWithoutKey', { headers: { cookie: customerCookie(customer!) }, body: MUG }),
      ),
    );
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(await countOrders(customer!)).toBeGreaterThan(1);
  });
});

describe('rule 9: a server process killed while it holds a key leaves nothing blocked', () => {
  let PORT = 0; // a free port, chosen before the first start (dev/ports.ts)
  let server: AppServer | undefined;
  beforeAll(async () => {
    PORT = await listenerPort();
  });
  afterAll(() => server?.kill('SIGKILL'));

  const post = (url: string, customerId: string, key: string) =>
    fetch(`${url}/api/trpc/checkout.placeOrder`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie: customerCookie(customerId), 'idempotency-key': key },
      body: JSON.stringify(MUG),
    });

  /** Waits until `check` holds, polling the database; fails after `ms`. */
  async function until(check: () => Promise<boolean>, ms = 15_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error('condition not reached in time');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** A backend of the app that has written an order and sits in its open transaction. */
  const holdingTransaction = async () =>
    (
      await sql`select 1 from pg_stat_activity
                where datname = current_database() and state = 'idle in transaction'
                  and query ilike 'insert into "order_items"%'`
    ).length > 0;

  it(
    'a frozen holder (SIGSTOP) lets go of its key within the bound; woken up (SIGCONT), it writes ' + 'nothing',
    async () => {
      const env = {
        DATABASE_URL: getEnv().DATABASE_URL,
        COOKIE_SECRET: getEnv().COOKIE_SECRET,
        ENABLE_TEST_HOOKS: '1',
        DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: '2000', // the bound under test (10 s by default)
      };
      server = await startAppServer({ port: PORT, env });
      const customer = randomUUID();
      const key = randomUUID();
      await planServerFault(server.url, { scope: customer, boundary: 'executed', action: 'delay', ms: 4_000 });
      const frozen = post(server.url, customer, key).then(
        (r) => r.status,
        () => 0,
      );
      await until(holdingTransaction); // it holds the key: an open transaction with the order in it
      process.kill(-server.process.pid!, 'SIGSTOP'); // paused, as a frozen VM or a long GC pause: its socket stays open

      // A retry through another instance: the claim waits on the frozen transaction until Postgres ends it.
      const started = Date.now();
      const retry = await checkout(customer, key);
      expect(retry.status).toBe(200);
      expect(retry.headers.get('idempotent-replayed')).toBeNull(); // it ran: the frozen one had stored nothing
      expect(Date.now() - started).toBeLessThan(6_000); // the 2 s bound, not the 10 s wait of a duplicate

      process.kill(-server.process.pid!, 'SIGCONT'); // it wakes up and carries on into a connection Postgres has closed
      expect(await frozen).toBe(500);
      expect(await countOrders(customer)).toBe(1);
      const [row] = await sql`select response_body from idempotency_keys where scope = ${customer}`;
      expect(row!.response_body.data.id).toBe(orderId(retry));
      await server.kill();
    },
  );

  it('SIGKILL mid-checkout, restart: a retry with the same key succeeds, with exactly one order in total', async () => {
    // Same database and cookie secret as this test process, so its signed cookies are valid there.
    const env = { DATABASE_URL: getEnv().DATABASE_URL, COOKIE_SECRET: getEnv().COOKIE_SECRET, ENABLE_TEST_HOOKS: '1' };
    server = await startAppServer({ port: PORT, env });
    const customer = randomUUID();
    const key = randomUUID();

    // The order is written, the answer not yet stored: the request stays there for 20 s.
    await planServerFault(server.url, { scope: customer, boundary: 'executed', action: 'delay', ms: 20_000 });
    const inFlight = post(server.url, customer, key).then(
      () => 'answered',
      () => 'connection lost',
    );
    await until(holdingTransaction); // the order row exists, uncommitted; the key is claimed
    await server.kill('SIGKILL');
    expect(await inFlight).toBe('connection lost');

    // Postgres notices the dead connection and rolls its transaction back: claim and order vanish.
    await until(async () => !(await holdingTransaction()));
    expect(await countOrders(customer)).toBe(0);
    expect(await sql`select 1 from idempotency_keys where scope = ${customer}`).toHaveLength(0);

    server = await startAppServer({ port: PORT, env });
    const retry = await post(server.url, customer, key);
    expect(retry.status).toBe(200);
    expect(retry.headers.get('idempotent-replayed')).toBeNull(); // it ran: nothing had been stored
    const again = await post(server.url, customer, key);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(await countOrders(customer)).toBe(1);
  });
});
