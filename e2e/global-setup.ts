/**
 * Before the browser tests: the payment simulator sends its webhooks to the server they test, as
 * Stripe sends them to an endpoint set in its dashboard.
 */
export default async function globalSetup() {
  const sim = process.env.STRIPE_API_BASE;
  if (!sim) return; // real Stripe: its CLI or dashboard points the webhooks at the app
  const res = await fetch(`${sim}/__sim/webhooks`, {
    method: 'POST',
    body: JSON.stringify({ url: 'http://127.0.0.1:3100/api/webhooks/stripe' }),
  });
  if (!res.ok) throw new Error(`could not register the webhook endpoint: ${res.status}`);
}
