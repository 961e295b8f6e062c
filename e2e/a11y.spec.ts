/**
 * Accessibility: every page of the shop and the lab, checked with axe (axe-core 4.14, its default
 * rules, label-in-name among them) in a real browser, in the states a customer meets them (a cart with
 * a sold-out line, an order with its refund form, a refund listed and a refund refused, the history
 * with refunds, two finished lab runs). No serious or critical violation is allowed; on the lab page, no
 * moderate one either.
 */
import AxeBuilder from '@axe-core/playwright';
import type { Page } from '@playwright/test';
import { expect, test } from './fixtures';
import { Confirmation } from './pages';

async function expectNoSeriousViolations(page: Page, also: 'moderate' | null = null) {
  const results = await new AxeBuilder({ page }).analyze();
  const serious = results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical' || (also !== null && v.impact === also))
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
  await expect(page.getByTestId('refund')).toBeVisible(); // the refund form, before any refund
  await expectNoSeriousViolations(page);
  titles.add(await page.title());

  // A refund listed, its answer shown; then the form again with a refused amount and its message.
  await page.getByTestId('refund-part').check();
  await page.getByTestId('refund-amount').fill('5.00');
  await page.getByTestId('refund').click();
  await expect(page.getByTestId('refund-row')).toContainText('Refunded');
  await expectNoSeriousViolations(page);
  await page.getByTestId('refund-again').click();
  await page.getByTestId('refund-part').check();
  await page.getByTestId('refund-amount').fill('500');
  await page.getByTestId('refund').click();
  await expect(page.getByTestId('refund-error')).toHaveAttribute('data-error-code', 'REFUND_EXCEEDS_PAYMENT');
  await expectNoSeriousViolations(page);

  await page.goto('/orders');
  await expect(page.getByTestId('order-refunds').first()).toHaveText('$5.00 refunded');
  await expectNoSeriousViolations(page);
  titles.add(await page.title());

  // The lab with two runs on the page (their regions must not share names) and the legend open: nothing
  // serious, and nothing moderate either (landmark-unique is moderate).
  await page.goto('/lab');
  for (const id of ['double-click', 'two-customers']) {
    const card = page.getByTestId(`scenario-${id}`);
    await card.getByTestId(`run-unsafe-${id}`).click();
    await expect(card.getByTestId(`run-${id}`)).toHaveAttribute('data-status', 'done', { timeout: 30_000 });
  }
  await page.getByTestId('lab-legend').locator('summary').click();
  await expectNoSeriousViolations(page, 'moderate');
  titles.add(await page.title());

  expect(titles.size).toBe(5); // shop, checkout, confirmation, history, lab: each says where you are
});

test('each button is named by its visible words, then its product; adding to the cart is announced', async ({
  page,
}) => {
  await page.goto('/');
  await expect(page.getByRole('button', { name: 'Sold out: Cold brew tower', exact: true })).toBeDisabled();
  await page.getByRole('button', { name: 'Add to cart: Travel mug', exact: true }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Travel mug added: 1 in your cart' })).toBeVisible();
});
