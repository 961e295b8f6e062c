/**
 * Fixtures for the checkout specs: a database handle to count what really happened, the keys the
 * browser sent, and a guard that fails any test whose page logged an error.
 */
import { type BrowserContext, test as base, expect, type Page } from '@playwright/test';
import postgres from 'postgres';

const CHECKOUT_REQUEST = /\/api\/trpc\/checkout\.purchase(\?|$)/;

export interface Shop {
  /** Idempotency-Key header of every checkout request the page sent, in order ('(none)' when absent). */
  keys: string[];
  /** The customer id of a browser context, from its signed cookie. */
  customerOf(context: BrowserContext): Promise<string>;
  /** Ids of the customer's orders, from the database. */
  ordersOf(customerId: string): Promise<string[]>;
  /** The customer's successful charges, from the payment provider's ledger (the simulator). */
  chargesOf(customerId: string): Promise<{ id: string; amount: number; metadata: Record<string, string> }[]>;
  /** Puts these lines in the tab's cart (as if added earlier) and opens the checkout. */
  checkoutWith(page: Page, lines: { productId: string; quantity: number }[], path?: string): Promise<void>;
  /**
   * Makes the server slow for this page's customer: its next purchase holds its key for `ms` after
   * the charge is recorded, before answering (a planned fault, server/idempotency/faults.ts).
   */
  slowDown(page: Page, ms: number): Promise<void>;
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
      });
    };
    watch(page);
    page.context().on('page', watch);

    await use({
      keys,
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
      async slowDown(p, ms) {
        const scope = (await p.context().cookies()).find((c) => c.name === 'customer')?.value.split('.')[0];
        expect(scope, 'the customer cookie').toBeDefined();
        const res = await p.request.post('/api/test/faults', {
          data: { scope, procedure: 'checkout.purchase', boundary: 'after:charge_recorded', action: 'delay', ms },
        });
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
