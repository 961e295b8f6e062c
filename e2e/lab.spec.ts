/**
 * The retry lab, played as a learner plays it: read the story, predict, run, read the verdict. For
 * every scenario, the run with every safeguard must end with exactly what was promised, and its unsafe
 * twin must show its damage: both checked in the records themselves (Postgres rows and the payment
 * provider's ledger), not on the page. `npm run demo` plays this same spec with a recording
 * (e2e/demo.config.ts).
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
  waiting: number;
  paid: number;
  /** Answers (as the run's timeline row in lab_runs keeps them) naming an order without the cart asked for. */
  misanswered: number;
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
        const [row] = await sql<
          { customers: string[]; timeline: { answer?: string }[] }[]
        >`select customers, timeline from lab_runs where id = ${runId}`;
        const customers = row!.customers;
        const ordersByCustomer = await Promise.all(customers.map(async (c) => (await shop.ordersOf(c)).length));
        const charges = (await Promise.all(customers.map((c) => shop.chargesOf(c)))).flat().length;
        const [cart] = await sql<
          { quantity: number }[]
        >`select quantity from lab_cart_lines where customer_id = ${customers[0]!}`;
        const [money] = await sql<{ cents: number; waiting: number; paid: number }[]>`
          select coalesce(sum(refunded_cents), 0)::int as cents,
                 count(*) filter (where status = 'pending_payment')::int as waiting,
                 count(*) filter (where status = 'paid')::int as paid
          from orders where customer_id in ${sql(customers)}`;
        const products = await sql<{ product_id: string }[]>`
          select distinct i.product_id from order_items i join orders o on o.id = i.order_id where o.customer_id in
            ${sql(customers)}`;
        // different-cart: the second answer names an order; what does that order hold?
        let misanswered = 0;
        if (scenario.id === 'different-cart') {
          const named = /order ([0-9a-f]{8})/.exec(row!.timeline.filter((e) => e.answer).at(-1)?.answer ?? '')?.[1];
          if (named) {
            const items = await sql<{ product_id: string }[]>`
              select i.product_id from order_items i where i.order_id::text like ${`${named}%`}`;
            if (!items.some((i) => i.product_id === 'espresso-beans')) misanswered = 1;
          }
        }
        return {
          orders: ordersByCustomer.reduce((a, b) => a + b, 0),
          charges,
          quantity: cart?.quantity ?? 0,
          refunded: money!.cents / 100,
          waiting: money!.waiting,
          paid: money!.paid,
          misanswered,
          ordersByCustomer,
          productsOrdered: products.map((p) => p.product_id).sort(),
        };
      };

      await page.goto('/lab');
      const card = page.getByTestId(`scenario-${scenario.id}`);
      await expect(card).toBeVisible();
      // Asked before told: the story and the question, not the safeguard.
      await expect(card).toContainText(scenario.question);
      await expect(card.getByTestId(`explain-${scenario.id}`)).toHaveCount(0);
      await expect(card.getByRole('link', { name: /^Chapter \d+/ })).toHaveAttribute('href', `/${scenario.chapter}`);
      // The learner predicts first: what every safeguard promises.
      for (const c of scenario.counts)
        await card.getByTestId(`predict-${scenario.id}-${c}`).fill(String(scenario.expected[c]));
      if (scenario.choice)
        await card.getByTestId(`predict-${scenario.id}-choice-${scenario.expected.choice || 'none'}`).check();

      const safe = await run(card, scenario.id, 'safe');
      await expect(card.getByTestId(`explain-${scenario.id}`)).toContainText(scenario.removes);
      await expect(safe.getByTestId(`run-${scenario.id}-verdict`)).toHaveAttribute('data-ok', 'true');
      await expect(safe.getByTestId(`run-${scenario.id}-prediction`)).toContainText(
        'Your prediction matches the records.',
      );
      await safe.screenshot({ path: testInfo.outputPath(`verdict-${scenario.id}-safe.png`) });
      if (scenario.id === 'killed-mid-payment') {
        // The dead holder released nothing: the retry had to wait for its lease, then took the key over.
        const rows = safe.getByTestId(`run-${scenario.id}-timeline`).locator('tbody tr');
        await expect(rows.nth(0)).not.toContainText('released');
        await expect(safe.getByTestId(`run-${scenario.id}-timeline`)).toContainText('resumed');
      }
      const kept = await records(safe);
      for (const c of scenario.counts) expect(kept[c], `${c} in the records`).toBe(scenario.expected[c]);
      if (scenario.id === 'two-customers') expect(kept.ordersByCustomer).toEqual([1, 1]);

      const twin = await run(card, scenario.id, 'unsafe');
      await expect(twin.getByTestId(`run-${scenario.id}-verdict`)).toHaveAttribute('data-ok', 'false');
      await expect(twin.getByTestId(`run-${scenario.id}-prediction`)).toContainText(
        'Your prediction differs from the records.',
      );
      await twin.screenshot({ path: testInfo.outputPath(`verdict-${scenario.id}-unsafe.png`) });
      const broken = await records(twin);
      // The damage, in the records themselves.
      if (scenario.id === 'two-customers') {
        expect(broken.ordersByCustomer).toEqual([1, 0]); // B got A's order back, and has none of its own
      } else if (scenario.id === 'one-key-two-operations') {
        expect([broken.orders, broken.charges]).toEqual([1, 0]); // the purchase was refused: nothing paid
      } else {
        expect(
          scenario.counts.some((c) => broken[c] !== scenario.expected[c]),
          JSON.stringify(broken),
        ).toBe(true);
      }
      if (scenario.id === 'different-cart') expect(broken.productsOrdered).toEqual(['travel-mug']);
    });
  }
});
