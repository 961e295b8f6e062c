/**
 * One checkout intent, one order: whatever the customer's clicks, the network or a reload do.
 * Each test counts the customer's orders in the database and checks the page shows that order.
 */

import { expect, test } from './fixtures';
import { Confirmation } from './pages';

const MUG = [{ productId: 'travel-mug', quantity: 1 }];
const PLACE_ORDER = '**/api/trpc/checkout.purchase';

test.describe('one intent, one order', () => {
  test('1. a double-click and a triple-click on pay each make one order', async ({ page, context, shop }, testInfo) => {
    await shop.checkoutWith(page, MUG);
    const customer = await shop.customerOf(context);
    await page.getByTestId('pay').dblclick();
    const first = await new Confirmation(page).orderId();
    await page.screenshot({ path: testInfo.outputPath('confirmation.png') });
    await testInfo.attach('confirmation', { path: testInfo.outputPath('confirmation.png'), contentType: 'image/png' });
    expect(await shop.ordersOf(customer)).toEqual([first]);
    expect(shop.keys.length).toBeGreaterThanOrEqual(2); // both clicks reached the server...
    expect(new Set(shop.keys).size).toBe(1); // ...with one key

    await shop.checkoutWith(page, [{ productId: 'espresso-beans', quantity: 3 }]);
    await page.getByTestId('pay').click({ clickCount: 3 });
    const second = await new Confirmation(page).orderId();
    expect(await shop.ordersOf(customer)).toEqual([first, second]); // a new intent: a new order, only one
    const secondKeys = shop.keys.slice(-3);
    expect(new Set(secondKeys).size).toBe(1);
    expect(secondKeys[0]).not.toBe(shop.keys[0]); // the next purchase got a new key
  });

  test('2. a second click while the server is slow waits for the first and shows its order', async ({
    page,
    context,
    shop,
  }) => {
    await shop.checkoutWith(page, MUG);
    await shop.slowDown(page, 1500);
    await page.getByTestId('pay').click();
    await expect(page.getByTestId('pay')).toHaveText('Placing your order…');
    await page.getByTestId('pay').click();
    const id = await new Confirmation(page).orderId();
    expect(await shop.ordersOf(await shop.customerOf(context))).toEqual([id]);
    expect(shop.keys).toHaveLength(2);
    expect(new Set(shop.keys).size).toBe(1);
  });

  test('3. the first response is lost after the server processed it: the retry shows the same order, replayed', async ({
    page,
    context,
    shop,
  }) => {
    let lost = false;
    await page.route(PLACE_ORDER, async (route) => {
      if (lost) return route.continue();
      lost = true;
      await route.fetch(); // the server places the order...
      await route.abort('connectionreset'); // ...and the answer never reaches the browser
    });
    await shop.checkoutWith(page, MUG);
    await page.getByTestId('pay').click();
    const id = await new Confirmation(page).orderId();
    await expect(page.getByTestId('replay-notice')).toHaveText(
      'We found your earlier order; you were not charged twice.',
    );
    const customer = await shop.customerOf(context);
    expect(await shop.ordersOf(customer)).toEqual([id]);
    const charges = await shop.chargesOf(customer); // and the card was charged once
    expect(charges.map((c) => c.metadata.order_id)).toEqual([id]);
    expect(shop.keys).toHaveLength(2);
    expect(new Set(shop.keys).size).toBe(1);
  });

  test('4. the network drops during submit and comes back: the retry lands on one order', async ({
    page,
    context,
    shop,
  }) => {
    let dropped = false;
    await page.route(PLACE_ORDER, async (route) => {
      if (dropped) return route.continue();
      dropped = true;
      await route.fetch(); // processed by the server
      await context.setOffline(true); // then the connection is gone
      await route.abort('internetdisconnected');
    });
    await shop.checkoutWith(page, MUG);
    await page.getByTestId('pay').click();
    await expect(page.getByTestId('pay-status')).toContainText('You are offline');
    await context.setOffline(false);
    const id = await new Confirmation(page).orderId();
    expect(await shop.ordersOf(await shop.customerOf(context))).toEqual([id]);
    expect(new Set(shop.keys).size).toBe(1);
  });

  test('5. a reload during an in-flight request resumes the intent and shows the one order', async ({
    page,
    context,
    shop,
  }) => {
    await shop.checkoutWith(page, MUG);
    await shop.slowDown(page, 2000);
    const sent = page.waitForRequest(PLACE_ORDER);
    await page.getByTestId('pay').click();
    await sent;
    await page.reload();
    const id = await new Confirmation(page).orderId();
    await expect(page.getByTestId('replay-notice')).toBeVisible();
    expect(await shop.ordersOf(await shop.customerOf(context))).toEqual([id]);
    expect(shop.keys).toHaveLength(2);
    expect(new Set(shop.keys).size).toBe(1);
  });

  test('6. two tabs of one customer check out their own carts: two intents, two orders', async ({
    page,
    context,
    shop,
  }) => {
    const other = await context.newPage();
    await shop.checkoutWith(page, MUG);
    await shop.checkoutWith(other, [{ productId: 'burr-grinder', quantity: 1 }]);
    await Promise.all([page.getByTestId('pay').click(), other.getByTestId('pay').click()]);
    const [a, b] = await Promise.all([new Confirmation(page).orderId(), new Confirmation(other).orderId()]);
    expect(a).not.toBe(b);
    expect((await shop.ordersOf(await shop.customerOf(context))).sort()).toEqual([a, b].sort());
    expect(new Set(shop.keys).size).toBe(2); // keys are per intent, not per customer
  });

  test('7. changing the cart after a failed attempt uses a new key and orders the new cart only', async ({
    page,
    context,
    shop,
  }) => {
    // The tower sold out after it went into the cart: the attempt fails with a business error.
    await shop.checkoutWith(page, [...MUG, { productId: 'cold-brew-tower', quantity: 1 }]);
    await page.getByTestId('pay').click();
    const error = page.getByTestId('checkout-error');
    await expect(error).toContainText('This product is sold out');
    await expect(error).toHaveAttribute('data-error-code', 'PRODUCT_SOLD_OUT');
    await expect(error).toBeFocused();
    const customer = await shop.customerOf(context);
    expect(await shop.ordersOf(customer)).toEqual([]); // the failed attempt left no order

    await page.getByTestId('remove-cold-brew-tower').click();
    await page.getByTestId('pay').click();
    const id = await new Confirmation(page).orderId();
    await expect(page.getByTestId('confirmation')).toContainText('$19.95');
    await expect(page.getByTestId('replay-notice')).toHaveCount(0);
    expect(await shop.ordersOf(customer)).toEqual([id]);
    expect(shop.keys).toHaveLength(2);
    expect(shop.keys[0]).not.toBe(shop.keys[1]);
  });
});

test('the checkout works with the keyboard alone, and focus moves to the outcome', async ({ page, shop }) => {
  await shop.checkoutWith(page, MUG);
  await page.getByTestId('pay').focus();
  await page.keyboard.press('Enter');
  await new Confirmation(page).orderId();
  await expect(page.getByRole('heading', { name: 'Thank you!' })).toBeFocused();
});

test('a declined card shows a clear decline; another card pays: one paid order, one charge', async ({
  page,
  context,
  shop,
}) => {
  await shop.checkoutWith(page, MUG);
  await page.getByTestId('card-pm_card_chargeDeclined').check();
  await page.getByTestId('pay').click();
  const error = page.getByTestId('checkout-error');
  await expect(error).toContainText('The card was declined. Choose another card and try again.');
  await expect(error).toHaveAttribute('data-error-code', 'PAYMENT_DECLINED');
  const customer = await shop.customerOf(context);
  expect(await shop.chargesOf(customer)).toEqual([]);

  await page.getByTestId('card-pm_card_visa').check();
  await page.getByTestId('pay').click();
  const id = await new Confirmation(page).orderId();
  await expect(page.getByTestId('confirmation')).toContainText('paid by card');
  const charges = await shop.chargesOf(customer);
  expect(charges.map((c) => c.metadata.order_id)).toEqual([id]);
  expect(charges[0]!.amount).toBe(1995);
  expect(new Set(shop.keys).size).toBe(2); // another card is another intent, with its own key
});

test.describe('keys the server may have forgotten are never sent', () => {
  const DAY_MS = 24 * 3_600_000;
  /** Leaves an intent in this tab as an earlier visit would have, two days ago. */
  async function oldIntent(page: import('@playwright/test').Page, state: 'pending' | 'failed') {
    const key = crypto.randomUUID();
    await page.evaluate(
      ({ key, state, createdAt }) =>
        sessionStorage.setItem(
          'intent:checkout',
          JSON.stringify({
            key,
            input: { items: [{ productId: 'travel-mug', quantity: 1 }], paymentMethod: 'pm_card_visa' },
            createdAt,
            state,
          }),
        ),
      { key, state, createdAt: Date.now() - 2 * DAY_MS },
    );
    return key;
  }

  test('a pending intent two days old is not resent on reload: the customer is asked whether it went through', async ({
    page,
    context,
    shop,
  }) => {
    await shop.checkoutWith(page, MUG);
    const customer = await shop.customerOf(context);
    const earlier = await shop.ordersOf(customer);
    await oldIntent(page, 'pending');
    await page.reload();
    await expect(page.getByRole('heading', { name: 'Is this your order?' })).toBeFocused();
    await expect(page.getByTestId('expired-intent')).toContainText('1 × Travel mug');
    await expect(page.getByTestId('no-recent-orders')).toBeVisible();
    expect(shop.keys).toEqual([]); // nothing was sent with the old key
    expect(await shop.ordersOf(customer)).toEqual(earlier);

    // The customer finds no such order and orders now: a new intent, a new key, one order.
    await page.getByTestId('expired-order-again').click();
    const id = await new Confirmation(page).orderId();
    expect(await shop.ordersOf(customer)).toEqual([id]);
    expect(shop.keys).toHaveLength(1);
  });

  test('"Try again" on an attempt two days old sends nothing with its key', async ({ page, context, shop }) => {
    await shop.checkoutWith(page, MUG);
    const key = await oldIntent(page, 'failed');
    await page.reload();
    await expect(page.getByTestId('cart')).toBeVisible();
    await page.getByTestId('pay').click();
    await expect(page.getByTestId('expired-intent')).toBeVisible();
    expect(shop.keys).not.toContain(key);
    expect(await shop.ordersOf(await shop.customerOf(context))).toEqual([]);
  });
});

test(
  'after a decline, paying again with the same card is a new attempt with a new key, not a replay of the ' + 'decline',
  async ({ page, context, shop }) => {
    await shop.checkoutWith(page, MUG);
    await page.getByTestId('card-pm_card_chargeDeclined').check();
    await page.getByTestId('pay').click();
    await expect(page.getByTestId('checkout-error')).toHaveAttribute('data-error-code', 'PAYMENT_DECLINED');
    await page.getByTestId('pay').click();
    await expect.poll(() => shop.keys.length).toBe(2);
    expect(shop.keys[1]).not.toBe(shop.keys[0]);
    await expect(page.getByTestId('checkout-error')).toHaveAttribute('data-error-code', 'PAYMENT_DECLINED');
    const customer = await shop.customerOf(context);
    expect(await shop.ordersOf(customer)).toHaveLength(2); // two attempts, each its own order, both declined
    expect(await shop.chargesOf(customer)).toEqual([]);
  },
);

test('a card that asks for 3-D Secure: the order waits for the bank, then shows paid once the webhook says so', async ({
  page,
  context,
  shop,
}) => {
  await shop.checkoutWith(page, MUG);
  await page.getByTestId('card-pm_card_authenticationRequired').check();
  await page.getByTestId('pay').click();
  const id = await new Confirmation(page).orderId();
  // The provider settles the payment a moment later and tells the shop by webhook; the page looks again.
  await expect(page.getByTestId('confirmation')).toContainText('paid by card', { timeout: 20_000 });
  await expect(page.getByTestId('payment-status')).toHaveText('');
  const customer = await shop.customerOf(context);
  expect(await shop.ordersOf(customer)).toEqual([id]);
  expect((await shop.chargesOf(customer)).map((c) => c.metadata.order_id)).toEqual([id]);
});
