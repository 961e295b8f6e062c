/**
 * One refund intent, one refund: whatever the customer's clicks or the network do, on the order page.
 * Each test counts the refunds in the database and at the payment provider (the simulator's ledger and
 * its request log), and checks the page says what happened.
 */
import type { Page } from '@playwright/test';
import { expect, type Shop, test } from './fixtures';
import { Confirmation, History } from './pages';

const MUG = [{ productId: 'travel-mug', quantity: 1 }]; // $19.95
const REFUND = '**/api/trpc/orders.refund';

/** Buys a travel mug by card and stays on its order page, where the refund form is. */
async function paidOrder(page: Page, shop: Shop): Promise<string> {
  await shop.checkoutWith(page, MUG);
  await page.getByTestId('pay').click();
  const id = await new Confirmation(page).orderId();
  await expect(page.getByTestId('order-payment')).toHaveText('Payment: Paid');
  return id;
}

async function askForPart(page: Page, dollars: string) {
  await page.getByTestId('refund-part').check();
  await page.getByTestId('refund-amount').fill(dollars);
}

test.describe('one refund intent, one refund', () => {
  test('a double-clicked refund refunds once; asking for more after it is a new refund with a new key', async ({
    page,
    shop,
  }) => {
    const id = await paidOrder(page, shop);
    await askForPart(page, '5.00');
    await page.getByTestId('refund').dblclick();
    await expect(page.getByTestId('refund-done')).toHaveText(/\$5\.00 refunded to your card\./);
    await expect(page.getByTestId('refund-row')).toHaveCount(1);
    await expect(page.getByTestId('refund-row')).toContainText('Refunded');
    expect(shop.refundKeys.length).toBeGreaterThanOrEqual(2); // both clicks reached the server...
    expect(new Set(shop.refundKeys).size).toBe(1); // ...with one key
    expect(await shop.refundsOf(id)).toEqual({ rows: [{ amount: 500, status: 'succeeded' }], refundedCents: 500 });
    expect((await shop.providerRefundsOf(id)).map((r) => r.amount)).toEqual([500]);

    // The rest, on purpose: a new intent, so a new key, and a second refund.
    await page.getByTestId('refund-again').click();
    await expect(page.getByText('$14.95 can still be refunded.')).toBeVisible();
    await page.getByTestId('refund').click();
    await expect(page.getByTestId('refund-done')).toHaveText(/\$14\.95 refunded to your card\./);
    await expect(page.getByTestId('refund-row')).toHaveCount(2);
    expect(new Set(shop.refundKeys).size).toBe(2);
    expect((await shop.providerRefundsOf(id)).map((r) => r.amount)).toEqual([500, 1495]);
    expect((await shop.refundsOf(id)).refundedCents).toBe(1995);
    await expect(page.getByTestId('refund-again')).toHaveCount(0); // nothing is left to refund

    const history = new History(page);
    await history.open();
    const row = history.rows().filter({ has: page.locator(`a[href="/orders/${id}"]`) });
    await expect(row.getByTestId('order-payment')).toHaveText('Paid');
    await expect(row.getByTestId('order-refunds')).toHaveText('$19.95 refunded');
  });

  test('a refund whose answer is lost refunds once, and the page shows it', async ({ page, shop }) => {
    const id = await paidOrder(page, shop);
    let lost = false;
    await page.route(REFUND, async (route) => {
      if (lost) return route.continue();
      lost = true;
      await route.fetch(); // the server refunds...
      await route.abort('connectionreset'); // ...and the answer never reaches the browser
    });
    await page.getByTestId('refund').click(); // all of it
    await expect(page.getByTestId('refund-done')).toContainText(
      'We found your earlier refund request; nothing was refunded twice. $19.95 refunded to your card.',
    );
    await expect(page.getByTestId('refund-row')).toHaveCount(1);
    await expect(page.getByTestId('refund-row')).toContainText('$19.95');
    expect(shop.refundKeys).toHaveLength(2); // the retry...
    expect(new Set(shop.refundKeys).size).toBe(1); // ...with the same key
    expect(await shop.refundsOf(id)).toEqual({ rows: [{ amount: 1995, status: 'succeeded' }], refundedCents: 1995 });
    expect((await shop.providerRefundsOf(id)).map((r) => r.amount)).toEqual([1995]);
    expect(await shop.refundCallsOf(id)).toHaveLength(1); // the replay did not call the provider again
  });

  test('a refund the provider refuses for good says so, refunds nothing, and may be asked for again', async ({
    page,
    shop,
  }) => {
    const id = await paidOrder(page, shop);
    await shop.scriptRefundFault(id, 'auth_error');
    await page.getByTestId('refund').click();
    const error = page.getByTestId('refund-error');
    await expect(error).toHaveAttribute('data-error-code', 'REFUND_REFUSED_BY_PROVIDER');
    await expect(error).toHaveText(
      'The payment provider refused this refund, so nothing was refunded. You can ask again later, or contact ' +
        'the shop.',
    );
    await expect(error).toBeFocused();
    await expect(page.getByTestId('refund-row')).toHaveAttribute('data-status', 'failed');
    await expect(page.getByTestId('refund-row')).toContainText('Refused');
    expect(await shop.refundsOf(id)).toEqual({ rows: [{ amount: 1995, status: 'failed' }], refundedCents: 0 });
    expect(await shop.providerRefundsOf(id)).toEqual([]);
    expect((await shop.refundCallsOf(id)).map((c) => c.status)).toEqual([401]);

    // A final answer ends the intent: asking again is a new one, with a new key, and goes through.
    await page.getByTestId('refund').click();
    await expect(page.getByTestId('refund-done')).toHaveText(/\$19\.95 refunded to your card\./);
    expect(shop.refundKeys).toHaveLength(2);
    expect(new Set(shop.refundKeys).size).toBe(2);
    expect((await shop.providerRefundsOf(id)).map((r) => r.amount)).toEqual([1995]);
    expect((await shop.refundsOf(id)).refundedCents).toBe(1995);
  });

  test(
    'a refund larger than what is left is refused with a message naming the problem, and nothing is sent to the ' +
      'provider',
    async ({ page, shop }) => {
      const id = await paidOrder(page, shop);
      await askForPart(page, '5.00');
      await page.getByTestId('refund').click();
      await expect(page.getByTestId('refund-done')).toBeVisible();
      await page.getByTestId('refund-again').click();

      await askForPart(page, 'five dollars'); // not an amount: the form says so and sends nothing
      await page.getByTestId('refund').click();
      await expect(page.getByTestId('refund-amount-problem')).toHaveText('Enter an amount in dollars, like 5.00.');
      expect(shop.refundKeys).toHaveLength(1);

      await page.getByTestId('refund-amount').fill('20.00'); // $14.95 is left
      await page.getByTestId('refund').click();
      const error = page.getByTestId('refund-error');
      await expect(error).toHaveAttribute('data-error-code', 'REFUND_EXCEEDS_PAYMENT');
      await expect(error).toHaveText(
        'That is more than is left to refund on this order: at most $14.95 can still be refunded.',
      );
      expect(shop.refundKeys).toHaveLength(2);
      expect(await shop.refundsOf(id)).toEqual({ rows: [{ amount: 500, status: 'succeeded' }], refundedCents: 500 });
      expect((await shop.refundCallsOf(id)).map((c) => c.status)).toEqual([200]); // the first refund's only
      expect((await shop.providerRefundsOf(id)).map((r) => r.amount)).toEqual([500]);
    },
  );

  test('a page reloaded while its refund is on its way picks it up, and a click meanwhile sends its key again', async ({
    page,
    shop,
  }) => {
    const id = await paidOrder(page, shop);
    // The server reserves the refund, then waits 4 s before asking the provider.
    await shop.slowDown(page, 4_000, { procedure: 'orders.refund', boundary: 'after:refund_reserved' });
    await askForPart(page, '5.00');
    const sent = page.waitForRequest(REFUND);
    await page.getByTestId('refund').click();
    await sent;
    await page.reload();
    // The reloaded page shows $5.00 reserved ($14.95 left), and resumes the $5.00 refund with its key. A
    // click now must continue it, not read the form (which offers all that is left) as a new refund.
    await expect(page.getByTestId('refund-status')).toHaveText(
      'Picking up the refund you asked for before the page reloaded…',
    );
    await page.getByTestId('refund').click();
    await expect(page.getByTestId('refund-done')).toContainText('$5.00 refunded to your card.');
    expect(shop.refundKeys.length).toBeGreaterThanOrEqual(3); // the first request, the resumed one, the click
    expect(new Set(shop.refundKeys).size).toBe(1);
    expect(await shop.refundsOf(id)).toEqual({ rows: [{ amount: 500, status: 'succeeded' }], refundedCents: 500 });
    expect((await shop.providerRefundsOf(id)).map((r) => r.amount)).toEqual([500]);
  });

  test('a pending refund shows as pending, and the page updates by itself once the provider settles it', async ({
    page,
    shop,
  }) => {
    const id = await paidOrder(page, shop);
    await shop.scriptRefundFault(id, 'refund_held');
    await page.getByTestId('refund').click();
    await expect(page.getByTestId('refund-done')).toContainText('it is pending until the bank confirms it');
    const row = page.getByTestId('refund-row');
    await expect(row).toHaveAttribute('data-status', 'pending');
    await expect(page.getByTestId('refunds-status')).toContainText('This page updates by itself');
    expect(await shop.refundsOf(id)).toEqual({ rows: [{ amount: 1995, status: 'pending' }], refundedCents: 1995 });

    const [atProvider] = await shop.providerRefundsOf(id);
    expect(atProvider?.status).toBe('pending');
    await shop.settleRefund(atProvider!.id, 'succeeded'); // the bank confirms; the provider tells the shop
    await expect(row).toHaveAttribute('data-status', 'succeeded', { timeout: 20_000 }); // no reload
    await expect(row).toContainText('Refunded');
    await expect(page.getByTestId('refunds-status')).toHaveText('');
    expect((await shop.refundsOf(id)).rows).toEqual([{ amount: 1995, status: 'succeeded' }]);
  });
});
