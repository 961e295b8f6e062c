import { expect, test } from '@playwright/test';
import { Checkout, History, Shop } from './pages';

test('browse, add to cart, check out, see the confirmation and the order in history', async ({ page, browser }) => {
  const shop = new Shop(page);
  await shop.open();
  await shop.add('espresso-beans', 2);
  await shop.add('travel-mug');

  const checkout = new Checkout(page);
  await checkout.open();
  await expect(page.getByTestId('cart-total')).toHaveText('$67.95'); // 2 × 24.00 + 19.95
  const orderId = await checkout.placeOrder();
  await expect(page.getByTestId('confirmation')).toContainText('$67.95');

  const history = new History(page);
  await history.open();
  await expect(history.rows()).toHaveCount(1);
  await expect(history.rows().first()).toHaveAttribute('data-order-id', orderId);

  // Another browser context is another customer: it must not see the order.
  const other = await browser.newContext();
  const otherPage = await other.newPage();
  const otherHistory = new History(otherPage);
  await otherHistory.open();
  await expect(otherPage.getByTestId('no-orders')).toBeVisible();
  await expect(otherHistory.rows()).toHaveCount(0);
  await other.close();
});
