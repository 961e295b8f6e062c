/**
 * Before the browser tests: the payment simulator sends its webhooks to the server they test, as
 * Stripe sends them to an endpoint set in its dashboard.
 */
import type { FullConfig } from '@playwright/test';

export default async function globalSetup(config: FullConfig) {
  const sim = process.env.STRIPE_API_BASE;
  if (!sim) return; // real Stripe: its CLI or dashboard points the webhooks at the app
  const app = config.projects[0]?.use.baseURL; // the server under test, on the port chosen for this run
  if (!app) throw new Error('the Playwright config names no baseURL: where is the app?');
  const res = await fetch(`${sim}/__sim/webhooks`, {
    method: 'POST',
    body: JSON.stringify({ url: new URL('/api/webhooks/stripe', app).href }),
  });
  if (!res.ok) throw new Error(`could not register the webhook endpoint: ${res.status}`);
}
