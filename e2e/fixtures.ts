/**
 * Fixtures for the checkout specs: a database handle to count what really happened, the keys the
 * browser sent, and a guard that fails any test whose page logged an error.
 */
import { type BrowserContext, test as base, expect, type Page } from '@playwright/test';
import postgres from 'postgres';
import type { LoggedRequest } from '../simulator/stripe';

const CHECKOUT_REQUEST = /\/api\/trpc\/checkout\.purchase(\?|$)/;
const REFUND_REQUEST = /\/api\/trpc\/orders\.refund(\?|$)/;

/** A refund as the provider has it (the simulator's ledger). */
export interface ProviderRefund {
  id: string;
  amount: number;
  status: string;
  metadata: Record<string, string>;
}

export interface Shop {
  /** Idempotency-Key header of every checkout request the page sent, in order ('(none)' when absent). */
  keys: string[];
  /** The same, for every refund request. */
  refundKeys: string[];
  /** The customer id of a browser context, from its signed cookie. */
  customerOf(context: BrowserContext): Promise<string>;
  /** Ids of the customer's orders, from the database. */
  ordersOf(customerId: string): Promise<string[]>;
  /** The customer's successful charges, from the payment provider's ledger (the simulator). */
  chargesOf(customerId: string): Promise<{ id: string; amount: number; metadata: Record<string, string> }[]>;
  /** The order's refunds in the database, oldest first, and what the order counts as refunded. */
  refundsOf(orderId: string): Promise<{ rows: { amount: number; status: string }[]; refundedCents: number }>;
  /** The order's refunds at the payment provider (the simulator's ledger), whatever their state. */
  providerRefundsOf(orderId: string): Promise<ProviderRefund[]>;
  /** Every refund request that reached the provider for this order (the simulator's request log). */
  refundCallsOf(orderId: string): Promise<{ idempotencyKey: string | null; status: number | null }[]>;
  /**
   * Scripts a fault at the provider for the next refund request of this order (simulator/stripe.ts):
   * `auth_error` refuses it for good, `refund_held` leaves it pending until settled by `settleRefund`.
   */
  scriptRefundFault(orderId: string, fault: 'auth_error' | 'refund_held'): Promise<void>;
  /** Settles a refund the provider holds, and sends its event to the shop as the provider would. */
  settleRefund(providerRefundId: string, outcome: 'succeeded' | 'failed'): Promise<void>;
  /** Puts these lines in the tab's cart (as if added earlier) and opens the checkout. */
  checkoutWith(page: Page, lines: { productId: string; quantity: number }[], path?: string): Promise<void>;
  /**
   * Makes the server slow for this page's customer: its next purchase holds its key for `ms` after
   * the charge is recorded, before answering (a planned fault, server/idempotency/faults.ts); or, with
   * `at`, its next request to that procedure, at that boundary.
   */
  slowDown(page: Page, ms: number, at?: { procedure: string; boundary: string }): Promise<void>;
}

export const test = base.extend<{ shop: Shop }, { sql: postgres.Sql }>({
  sql: [
    // biome-ignore lint/correctness/noEmptyPattern: Playwright reads a fixture's dependencies from this pattern
    async ({}, use) => {
      const sql = postgres(process.env.DATABASE_URL!, { max: 2, onnotice: () => {} });
      await use(sql);
      await sql.end();
    },
    { scope: 'worker' },
  ],
  shop: async ({ page, sql }, use) => {
    const errors: string[] = [];
    const keys: string[] = [];
    const refundKeys: string[] = [];
    const watch = (p: Page) => {
      // Chrome reports every failed or non-2xx fetch as "Failed to load resource"; several tests cause
      // those on purpose. Anything else logged as an error is a bug in the page.
      p.on(
        'console',
        (m) => m.type() === 'error' && !m.text().startsWith('Failed to load resource') && errors.push(m.text()),
      );
      p.on('pageerror', (e) => errors.push(e.message));
      p.on('request', (r) => {
        if (r.method() === 'POST' && CHECKOUT_REQUEST.test(r.url()))
          keys.push(r.headers()['idempotency-key'] ?? '(none)');
        if (r.method() === 'POST' && REFUND_REQUEST.test(r.url()))
          refundKeys.push(r.headers()['idempotency-key'] ?? '(none)');
      });
    };
    watch(page);
    page.context().on('page', watch);

    const sim = (path: string, init?: RequestInit) => fetch(`${process.env.STRIPE_API_BASE}${path}`, init);
    await use({
      keys,
      refundKeys,
      async customerOf(context) {
        const cookie = (await context.cookies()).find((c) => c.name === 'customer');
        expect(cookie, 'the customer cookie').toBeDefined();
        return cookie!.value.split('.')[0]!;
      },
      async ordersOf(customerId) {
        const rows = await sql<
          { id: string }[]
        >`select id from orders where customer_id = ${customerId} order by created_at`;
        return rows.map((r) => r.id);
      },
      async chargesOf(customerId) {
        const res = await fetch(`${process.env.STRIPE_API_BASE}/__sim/ledger`);
        const ledger = (await res.json()) as {
          payment_intents: { id: string; status: string; amount: number; metadata: Record<string, string> }[];
        };
        return ledger.payment_intents.filter(
          (pi) => pi.status === 'succeeded' && pi.metadata.customer_id === customerId,
        );
      },
      async refundsOf(orderId) {
        const rows = await sql<{ amount: number; status: string }[]>`
          select amount_cents as amount, status from refunds where order_id = ${orderId} order by created_at, id`;
        const [order] = await sql<{ refunded: number }[]>`select refunded_cents as refunded from orders
          where id = ${orderId}`;
        return { rows: [...rows], refundedCents: order!.refunded };
      },
      async providerRefundsOf(orderId) {
        const ledger = (await (await sim('/__sim/ledger')).json()) as { refunds: ProviderRefund[] };
        return ledger.refunds.filter((r) => r.metadata.order_id === orderId);
      },
      async refundCallsOf(orderId) {
        const log = (await (await sim('/__sim/requests')).json()) as { requests: LoggedRequest[] };
        return log.requests
          .filter((r) => r.method === 'POST' && r.path === '/v1/refunds' && r.metadata.order_id === orderId)
          .map((r) => ({ idempotencyKey: r.idempotencyKey, status: r.status }));
      },
      async scriptRefundFault(orderId, fault) {
        const res = await sim('/__sim/faults', {
          method: 'POST',
          body: JSON.stringify({ metadata: { order_id: orderId }, path: '/v1/refunds', fault, times: 1 }),
        });
        expect(res.ok).toBe(true);
      },
      async settleRefund(providerRefundId, outcome) {
        const res = await sim(`/__sim/refunds/${providerRefundId}/settle`, {
          method: 'POST',
          body: JSON.stringify({ outcome }),
        });
        expect(res.ok).toBe(true);
      },
      async slowDown(p, ms, at = { procedure: 'checkout.purchase', boundary: 'after:charge_recorded' }) {
        const scope = (await p.context().cookies()).find((c) => c.name === 'customer')?.value.split('.')[0];
        expect(scope, 'the customer cookie').toBeDefined();
        const res = await p.request.post('/api/test/faults', { data: { scope, ...at, action: 'delay', ms } });
        expect(res.ok()).toBe(true);
      },
      async checkoutWith(p, lines, path = '/checkout') {
        await p.goto('/');
        await expect(p.getByTestId('catalog').getByRole('listitem').first()).toBeVisible(); // the cookie is set
        await p.evaluate((value) => sessionStorage.setItem('cart', value), JSON.stringify(lines));
        await p.goto(path);
        await expect(p.getByTestId('cart')).toBeVisible();
      },
    });
    expect(errors, 'errors logged by the page').toEqual([]);
  },
});

export { expect };
