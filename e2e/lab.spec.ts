/**
 * The retry lab, played as a learner plays it: predict, run, read the verdict. For every scenario,
 * the run with every safeguard must end with exactly what was promised, and its unsafe twin must
 * show its damage: both checked in the database and at the payment provider, not only on the page.
 * `npm run demo` plays this same spec with a recording (e2e/demo.config.ts).
 */
import type { Locator } from '@playwright/test';
import { scenarios } from '../server/lab/scenarios';
import { expect, test } from './fixtures';

test.describe.configure({ mode: 'parallel' });

interface Records {
  orders: number;
  charges: number;
  quantity: number;
  /** Dollars the run's orders show as refunded. */
  refunded: number;
  ordersByCustomer: number[];
  productsOrdered: string[];
}

/** Plays one variant of a scenario from its card and returns the run's section once it is done. */
async function run(card: Locator, id: string, variant: 'safe' | 'unsafe'): Promise<Locator> {
  await card.getByTestId(`run-${variant}-${id}`).click();
  const section = card.getByTestId(`run-${id}`);
  await expect(section).toHaveAttribute('data-variant', variant);
  await expect(section).toHaveAttribute('data-status', 'done', { timeout: 45_000 });
  return section;
}

test.describe('the retry lab', () => {
  for (const scenario of scenarios) {
    test(`lab: ${scenario.id}`, async ({ page, sql, shop }, testInfo) => {
      const records = async (section: Locator): Promise<Records> => {
        const runId = (await section.getAttribute('data-run-id'))!;
        const [row] = await sql<{ customers: string[] }[]>`select customers from lab_runs where id = ${runId}`;
        const customers = row!.customers;
        const ordersByCustomer = await Promise.all(customers.map(async (c) => (await shop.ordersOf(c)).length));
        const charges = (await Promise.all(customers.map((c) => shop.chargesOf(c)))).flat().length;
        const [cart] = await sql<
          { quantity: number }[]
        >`select quantity from lab_cart_lines where customer_id = ${customers[0]!}`;
        const [refunded] = await sql<
          { cents: number }[]
        >`select coalesce(sum(refunded_cents), 0)::int as cents from orders where customer_id in ${sql(customers)}`;
        const products = await sql<{ product_id: string }[]>`
          select distinct i.product_id from order_items i join orders o on o.id = i.order_id where o.customer_id in
            ${sql(customers)}`;
        return {
          orders: ordersByCustomer.reduce((a, b) => a + b, 0),
          charges,
          quantity: cart?.quantity ?? 0,
          refunded: refunded!.cents / 100,
          ordersByCustomer,
          productsOrdered: products.map((p) => p.product_id).sort(),
        };
      };

      await page.goto('/lab');
      const card = page.getByTestId(`scenario-${scenario.id}`);
      await expect(card).toBeVisible();
      // The learner predicts first: what every safeguard promises.
      for (const c of scenario.counts)
        await card.getByTestId(`predict-${scenario.id}-${c}`).fill(String(scenario.expected[c]));

      const safe = await run(card, scenario.id, 'safe');
      await expect(safe.getByTestId(`run-${scenario.id}-verdict`)).toHaveAttribute('data-ok', 'true');
      await expect(safe.getByTestId(`run-${scenario.id}-prediction`)).toContainText('You predicted');
      await safe.screenshot({ path: testInfo.outputPath(`verdict-${scenario.id}-safe.png`) });
      if (scenario.id === 'killed-mid-payment') {
        // The dead holder released nothing: the retry had to wait for its lease, then took the key over.
        const rows = safe.getByTestId(`run-${scenario.id}-timeline`).locator('tbody tr');
        await expect(rows.nth(0)).not.toContainText('released');
        await expect(rows.nth(2)).toContainText('resumed');
      }
      const kept = await records(safe);
      for (const c of scenario.counts) expect(kept[c], `${c} in the records`).toBe(scenario.expected[c]);

      const twin = await run(card, scenario.id, 'unsafe');
      await expect(twin.getByTestId(`run-${scenario.id}-verdict`)).toHaveAttribute('data-ok', 'false');
      await twin.screenshot({ path: testInfo.outputPath(`verdict-${scenario.id}-unsafe.png`) });
      const broken = await records(twin);
      // The damage, in the records themselves.
      if (scenario.id === 'different-cart') {
        expect(broken.productsOrdered).toEqual(['travel-mug']); // the second cart was answered "ordered", and never was
      } else if (scenario.id === 'two-customers') {
        expect(broken.ordersByCustomer[1]).toBe(0); // B got A's order back, and has none of its own
      } else {
        expect(
          scenario.counts.some((c) => broken[c] !== scenario.expected[c]),
          JSON.stringify(broken),
        ).toBe(true);
      }
    });
  }
});
