/**
 * Rule 9: a server process killed while it holds a key leaves no key blocked.
 * A real production server (`next start`) is SIGKILLed in the middle of a checkout: after the
 * order was written, before the transaction committed (a test-only delay holds it there).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { startAppServer, type AppServer } from '../../tools/app-server';
import { getDatabase } from '../../db/client';
import { getEnv } from '../env.js';
import { countOrders, customerCookie } from '../testing';

const PORT = 3211;
const { sql } = getDatabase();
let server: AppServer | undefined;

afterAll(() => server?.kill('SIGKILL'));

function checkout(url: string, customerId: string, key: string, extra: Record<string, string> = {}) {
  return fetch(`${url}/api/trpc/checkout.placeOrder`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie: customerCookie(customerId), 'idempotency-key': key, ...extra },
    body: JSON.stringify({ items: [{ productId: 'travel-mug', quantity: 1 }] }),
  });
}

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

describe('rule 9: crash while holding a key', () => {
  it('SIGKILL mid-checkout, restart: a retry with the same key succeeds, with exactly one order in total', async () => {
    // Same database and cookie secret as this test process, so its signed cookies are valid there.
    const env = { DATABASE_URL: getEnv().DATABASE_URL, COOKIE_SECRET: getEnv().COOKIE_SECRET, ENABLE_TEST_HOOKS: '1' };
    server = await startAppServer({ port: PORT, env });
    const customer = randomUUID();
    const key = randomUUID();

    const inFlight = checkout(server.url, customer, key, { 'x-test-delay-ms': '20000' }).then(
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
    const retry = await checkout(server.url, customer, key);
    expect(retry.status).toBe(200);
    expect(retry.headers.get('idempotent-replayed')).toBeNull(); // it ran: nothing had been stored
    const again = await checkout(server.url, customer, key);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(await countOrders(customer)).toBe(1);
  });
});
