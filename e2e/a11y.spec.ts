/**
 * Accessibility: every page of the shop and the lab, checked with axe in a real browser, in the
 * states a customer meets them (a cart with a sold-out line, an order, a finished lab run). No
 * serious or critical violation is allowed.
 */
import AxeBuilder from '@axe-core/playwright';
import type { Page } from '@playwright/test';
import { expect, test } from './fixtures';
import { Confirmation } from './pages';

async function expectNoSeriousViolations(page: Page) {
  const results = await new AxeBuilder({ page }).analyze();
  const serious = results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  expect(serious).toEqual([]);
}

test('every page has a title of its own and no serious accessibility violation', async ({ page, shop }) => {
  const titles = new Set<string>();
  await shop.checkoutWith(page, [
    { productId: 'travel-mug', quantity: 1 },
    { productId: 'cold-brew-tower', quantity: 1 },
  ]);
  await expectNoSeriousViolations(page);
  titles.add(await page.title());

  await page.goto('/');
  await expect(page.getByTestId('catalog').getByRole('listitem').first()).toBeVisible();
  await expectNoSeriousViolations(page);
  titles.add(await page.title());

  await shop.checkoutWith(page, [{ productId: 'travel-mug', quantity: 1 }]);
  await page.getByTestId('pay').click();
  await new Confirmation(page).orderId();
  await expectNoSeriousViolations(page);
  titles.add(await page.title());

  await page.goto('/orders');
  await expect(page.getByTestId('order-history')).toBeVisible();
  await expectNoSeriousViolations(page);
  titles.add(await page.title());

  await page.goto('/lab');
  const card = page.getByTestId('scenario-double-click');
  await card.getByTestId('run-safe-double-click').click();
  await expect(card.getByTestId('run-double-click')).toHaveAttribute('data-status', 'done', { timeout: 30_000 });
  await expectNoSeriousViolations(page);
  titles.add(await page.title());

  expect(titles.size).toBe(5); // shop, checkout, confirmation, history, lab: each says where you are
});

test('the sold-out button says the product is sold out, and adding to the cart is announced', async ({ page }) => {
  await page.goto('/');
  await expect(page.getByRole('button', { name: 'Cold brew tower is sold out' })).toBeDisabled();
  await page.getByRole('button', { name: 'Add Travel mug to cart' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Travel mug added: 1 in your cart' })).toBeVisible();
});
