/** The HTTP surface, through the real Next route handler: statuses, cookies, error bodies. */
import { describe, expect, it } from 'vitest';
import { getEnv } from './env.js';
import { countOrders, customerCookie, http } from './testing';

const cookieOf = (headers: Headers) => headers.get('set-cookie')?.split(';')[0];
const idOf = (cookie: string) => cookie.slice('customer='.length).split('.')[0]!;

describe('customer cookie', () => {
  it(
    'a first visit gets a signed httpOnly cookie, and sending it back places and lists orders as that ' + 'customer',
    async () => {
      const first = await http('GET', 'catalog.list');
      expect(first.status).toBe(200);
      const setCookie = first.headers.get('set-cookie')!;
      expect(setCookie).toMatch(/^customer=[0-9a-f-]{36}\.[\w-]+; Path=\/; HttpOnly; SameSite=Lax/);
      const cookie = cookieOf(first.headers)!;

      const placed = await http('POST', 'checkout.placeOrder', {
        headers: { cookie, 'idempotency-key': crypto.randomUUID() },
        body: { items: [{ productId: 'travel-mug', quantity: 2 }] },
      });
      expect(placed.status).toBe(200);
      expect(placed.headers.get('set-cookie')).toBeNull(); // a known customer is not re-issued a cookie
      const history = await http('GET', 'orders.history', { headers: { cookie } });
      expect(history.body.result.data.map((o: { id: string }) => o.id)).toEqual([placed.body.result.data.id]);
    },
  );

  it(
    "a tampered cookie is replaced and never acts as its customer: a query sees none of the victim's orders, a " +
      'mutation gets 401',
    async () => {
      const victim = crypto.randomUUID();
      const genuine = customerCookie(victim);
      await http('POST', 'checkout.placeOrder', {
        headers: { cookie: genuine, 'idempotency-key': crypto.randomUUID() },
        body: { items: [{ productId: 'travel-mug', quantity: 1 }] },
      });

      // Keep the victim's id, forge the signature.
      const forged = `customer=${victim}.${'A'.repeat(43)}`;
      const res = await http('GET', 'orders.history', { headers: { cookie: forged } });
      expect(res.status).toBe(200);
      expect(res.body.result.data).toEqual([]);
      const replacement = cookieOf(res.headers)!;
      expect(idOf(replacement)).not.toBe(victim);

      const order = await http('POST', 'checkout.placeOrder', {
        headers: { cookie: forged, 'idempotency-key': crypto.randomUUID() },
        body: { items: [{ productId: 'travel-mug', quantity: 1 }] },
      });
      expect(order.status).toBe(401);
      expect(order.body.error.data.errorCode).toBe('CUSTOMER_COOKIE_INVALID');
      expect(await countOrders(victim)).toBe(1);
    },
  );

  it(
    'a mutation without a cookie is refused with 401 and writes nothing, so a cookie-less retry cannot create a ' +
      "second customer's order",
    async () => {
      const res = await http('POST', 'checkout.placeOrder', {
        body: { items: [{ productId: 'travel-mug', quantity: 1 }] },
      });
      expect(res.status).toBe(401);
      expect(res.body.error.data.errorCode).toBe('CUSTOMER_COOKIE_MISSING');
      expect(await countOrders(idOf(cookieOf(res.headers)!))).toBe(0);
    },
  );
});

describe('errors on the wire', () => {
  it('invalid input is a 400 whose message and fieldErrors name the field', async () => {
    const cookie = customerCookie(crypto.randomUUID());
    const res = await http('POST', 'checkout.placeOrder', {
      headers: { cookie, 'idempotency-key': crypto.randomUUID() },
      body: { items: [{ productId: 'travel-mug', quantity: 100 }] },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toBe('items[0].quantity: must be from 1 to 99');
    expect(res.body.error.data.errorCode).toBe('VALIDATION_FAILED');
    expect(res.body.error.data.fieldErrors).toEqual({ 'items[0].quantity': 'must be from 1 to 99' });
  });

  it('a body that is not JSON is a 400, not a 500', async () => {
    const res = await http('POST', 'checkout.placeOrder', {
      headers: { cookie: customerCookie(crypto.randomUUID()), 'idempotency-key': crypto.randomUUID() },
      rawBody: '{"items": [',
    });
    expect(res.status).toBe(400);
  });
});

describe('a cookie that is not valid percent-encoding (planted by a sibling subdomain, say)', () => {
  it.each(['customer=%', 'customer=%E0%A4%A', 'customer=abc%zz.def', 'other=1; customer=%%%'])(
    '%s: a query answers and replaces it; a mutation gets 401 with a replacement',
    async (cookie) => {
      const query = await http('GET', 'orders.history', { headers: { cookie } });
      expect(query.status).toBe(200);
      expect(query.body.result.data).toEqual([]);
      expect(cookieOf(query.headers)).toMatch(/^customer=[0-9a-f-]{36}\./);

      const mutation = await http('POST', 'checkout.placeOrder', {
        headers: { cookie, 'idempotency-key': crypto.randomUUID() },
        body: { items: [{ productId: 'travel-mug', quantity: 1 }] },
      });
      expect(mutation.status).toBe(401);
      expect(mutation.body.error.data.errorCode).toBe('CUSTOMER_COOKIE_INVALID');
      const replacement = cookieOf(mutation.headers)!;
      expect(replacement).toMatch(/^customer=[0-9a-f-]{36}\./);

      // The browser recovers with the replacement on its next request.
      const again = await http('POST', 'checkout.placeOrder', {
        headers: { cookie: replacement, 'idempotency-key': crypto.randomUUID() },
        body: { items: [{ productId: 'travel-mug', quantity: 1 }] },
      });
      expect(again.status).toBe(200);
    },
  );
});

describe('batches and keyed mutations', () => {
  const MUG = { items: [{ productId: 'travel-mug', quantity: 1 }] };
  async function batch(paths: string[], inputs: unknown[], cookie: string, key: string) {
    const body = Object.fromEntries(inputs.map((input, i) => [String(i), input]));
    return http('POST', `${paths.join(',')}?batch=1`, { headers: { cookie, 'idempotency-key': key }, body });
  }

  it.each([
    [
      ['checkout.placeOrder', 'checkout.purchase'],
      [MUG, { ...MUG, paymentMethod: 'pm_card_visa' }],
    ],
    [
      ['checkout.placeOrder', 'checkout.placeOrder'],
      [MUG, MUG],
    ],
    [
      ['lab.placeOrderWithoutKey', 'checkout.placeOrder'],
      [MUG, MUG],
    ],
    [['checkout.placeOrder'], [MUG]],
  ])('a batch of %j with one Idempotency-Key is refused with 400 before anything runs', async (paths, inputs) => {
    const customer = crypto.randomUUID();
    const res = await batch(paths, inputs, customerCookie(customer), crypto.randomUUID());
    expect(res.status).toBe(400);
    const errors = (res.body as { error: { data: { errorCode: string }; message: string } }[]).map((r) => r.error);
    expect(errors).toHaveLength(paths.length);
    for (const e of errors) {
      expect(e.data.errorCode).toBe('IDEMPOTENCY_BATCH_REFUSED');
      expect(e.message).toMatch(/one request each/);
    }
    expect(await countOrders(customer)).toBe(0);
  });

  it('a keyed mutation batched without a key is refused on its own (400 KEY_REQUIRED) and writes nothing', async () => {
    const customer = crypto.randomUUID();
    const res = await http('POST', 'checkout.placeOrder,checkout.purchase?batch=1', {
      headers: { cookie: customerCookie(customer) },
      body: { 0: MUG, 1: { ...MUG, paymentMethod: 'pm_card_visa' } },
    });
    const errors = (res.body as { error: { data: { errorCode: string } } }[]).map((r) => r.error.data.errorCode);
    expect(errors).toEqual(['IDEMPOTENCY_KEY_REQUIRED', 'IDEMPOTENCY_KEY_REQUIRED']);
    expect(await countOrders(customer)).toBe(0);
  });

  it('queries still travel in batches', async () => {
    const res = await http('GET', `catalog.list,orders.history?batch=1&input=${encodeURIComponent('{}')}`, {
      headers: { cookie: customerCookie(crypto.randomUUID()) },
    });
    expect(res.status).toBe(200);
    expect(res.body).toHaveLength(2);
  });
});

describe('Idempotency-Key-Retention', () => {
  it(
    'every answer says how long a key is kept, in seconds: a first execution, its replay, a refusal and a ' + 'query',
    async () => {
      const retention = String(getEnv().IDEMPOTENCY_KEY_TTL_HOURS * 3600); // 86400 by default
      const cookie = customerCookie(crypto.randomUUID());
      const key = crypto.randomUUID();
      const order = (items: unknown) =>
        http('POST', 'checkout.placeOrder', { headers: { cookie, 'idempotency-key': key }, body: { items } });
      const first = await order([{ productId: 'travel-mug', quantity: 1 }]);
      const replay = await order([{ productId: 'travel-mug', quantity: 1 }]);
      const mismatch = await order([{ productId: 'travel-mug', quantity: 2 }]); // same key, another cart: 422
      const query = await http('GET', 'catalog.list');
      expect([first.status, replay.status, mismatch.status, query.status]).toEqual([200, 200, 422, 200]);
      expect(replay.headers.get('idempotent-replayed')).toBe('true');
      for (const res of [first, replay, mismatch, query])
        expect(res.headers.get('idempotency-key-retention')).toBe(retention);
    },
  );
});
