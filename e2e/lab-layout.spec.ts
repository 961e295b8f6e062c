/**
 * The lab reads on any screen: a run's tables fit a 1280 px window without a sideways scroll, and on a
 * 390 px phone each row stacks into "column: value" lines, with nothing off-screen. An empty ledger says
 * so, and the app has a favicon.
 */
import type { Page } from '@playwright/test';
import { expect, test } from './fixtures';

async function playSafe(page: Page, id: string) {
  const card = page.getByTestId(`scenario-${id}`);
  await card.getByTestId(`run-safe-${id}`).click();
  const run = card.getByTestId(`run-${id}`);
  await expect(run).toHaveAttribute('data-status', 'done', { timeout: 30_000 });
  return run;
}

/** Each table of the run, as wide as it is drawn and as wide as the room it has. */
const tableWidths = (page: Page, id: string) =>
  page.getByTestId(`run-${id}`).evaluate((run) =>
    [...run.querySelectorAll('table')].map((t) => ({
      table: t.getAttribute('data-testid'),
      scroll: t.scrollWidth,
      room: (t.parentElement as HTMLElement).clientWidth,
    })),
  );

test('at 1280 px every table of a run fits its card; an empty ledger says so', async ({ page }) => {
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto('/lab');
  await playSafe(page, 'counter-keys'); // two orders, four columns of keys: the widest key rows
  const widths = await tableWidths(page, 'counter-keys');
  expect(widths).toHaveLength(3);
  for (const w of widths) expect(w.scroll, JSON.stringify(w)).toBeLessThanOrEqual(w.room + 1);
  await expect(page.getByTestId('run-counter-keys-ledger-empty')).toHaveText(
    'No payment at the provider for this run.',
  );
});

test('at 390 px the tables stack: every column is on screen, named', async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto('/lab');
  const run = await playSafe(page, 'double-click');
  const widths = await tableWidths(page, 'double-click');
  for (const w of widths) expect(w.scroll, JSON.stringify(w)).toBeLessThanOrEqual(w.room + 1);
  expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
  const decision = run.getByTestId('run-double-click-timeline').locator('td[data-label="Server\'s decision"]').first();
  await decision.scrollIntoViewIfNeeded();
  await expect(decision).toBeInViewport();
  const box = await decision.boundingBox();
  expect(box!.x + box!.width).toBeLessThanOrEqual(390);
});

test('the app has a favicon', async ({ request }) => {
  const res = await request.get('/favicon.ico');
  expect(res.status()).toBe(200);
});
