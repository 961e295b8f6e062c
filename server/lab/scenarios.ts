/**
 * The lab's scenarios: each a short story of something that goes wrong between a customer and the
 * shop, played twice: with every safeguard (safe), and by its unsafe twin, which turns exactly one
 * safeguard off (server/lab/twins.ts). The faults are scripted, never random, so a scenario plays
 * the same way every time. A scenario, its browser test (e2e/lab.spec.ts) and its walkthrough
 * chapter (docs/) share one id.
 */
import { and, eq } from 'drizzle-orm';
import { refunds } from '../../db/schema';
import { keyTooOld } from '../../shared/key-age';
import { idempotencyOptions } from '../env.js';
import type { Check, Counts, LabSession } from './session';
import { handleWebhookWithoutRecord, twins } from './twins';

export type Variant = 'safe' | 'unsafe';

export interface Scenario {
  id: string;
  title: string;
  /** The story, in a few sentences. */
  story: string;
  /** What the learner is asked to predict before running it. */
  question: string;
  /** What the verdict counts, and so what the learner predicts. */
  counts: (keyof Counts)[];
  /** The outcome every safeguard guarantees. */
  expected: Counts;
  /** The safeguard at work, in one line. */
  safeguard: string;
  /** What the unsafe twin turns off, in one line. */
  twin: string;
  /** The walkthrough chapter that explains it. */
  chapter: string;
  /** Needs the payment simulator (its scripted provider faults). */
  needsSimulator?: boolean;
  play(lab: LabSession, variant: Variant): Promise<Check[] | undefined>;
}

const MUG_ORDER = { items: [{ productId: 'travel-mug', quantity: 1 }] };
const MUG_PURCHASE = { ...MUG_ORDER, paymentMethod: 'pm_card_visa' };
const BEANS_ORDER = { items: [{ productId: 'espresso-beans', quantity: 2 }] };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const scenarios: Scenario[] = [
  {
    id: 'double-click',
    title: 'A double-click on Pay',
    story: 'The customer clicks Pay twice, 80 ms apart. Both clicks reach the server before either is answered.',
    question: 'How many orders, and how many charges?',
    counts: ['orders', 'charges'],
    expected: { orders: 1, charges: 1 },
    safeguard: 'Both clicks carry the key of one intent: the second waits for the first and gets its answer.',
    twin: 'Without a key kept per intent: each click makes a new key, so each click is a new purchase.',
    chapter: 'docs/01-retries-happen.md',
    async play(lab, variant) {
      const first = lab.newKey();
      const second = variant === 'safe' ? first : lab.newKey();
      await Promise.all([
        lab.send({ procedure: 'checkout.purchase', input: MUG_PURCHASE, key: first }),
        sleep(80).then(() => lab.send({ procedure: 'checkout.purchase', input: MUG_PURCHASE, key: second })),
      ]);
    },
  },
  {
    id: 'storm-of-20',
    title: 'A storm of 20 clicks',
    story:
      'Twenty copies of one request, with one key, arrive at the same moment (a stuck button, a retry loop gone wild).',
    question: 'How many orders?',
    counts: ['orders'],
    expected: { orders: 1 },
    safeguard:
      'The claim is one atomic INSERT ... ON CONFLICT DO NOTHING: one copy inserts the key, the others wait for its ' +
      'answer.',
    twin: 'Check-then-insert: each copy looks for the key, finds none, works, and only then stores it.',
    chapter: 'docs/05-races.md',
    async play(lab, variant) {
      const key = lab.newKey();
      const procedure = variant === 'safe' ? 'checkout.placeOrder' : 'lab.placeOrderCheckThenInsert';
      await Promise.all(Array.from({ length: 20 }, () => lab.send({ procedure, input: MUG_ORDER, key })));
    },
  },
  {
    id: 'lost-response',
    title: 'The answer is lost',
    story:
      'The server places the order and charges the card, but its answer never reaches the browser. The client retries.',
    question: 'How many orders, and how many charges?',
    counts: ['orders', 'charges'],
    expected: { orders: 1, charges: 1 },
    safeguard: 'The retry carries the same key: the server replays the stored answer instead of running again.',
    twin: 'The retry carries a new key: to the server it is a new purchase.',
    chapter: 'docs/01-retries-happen.md',
    async play(lab, variant) {
      const key = lab.newKey();
      await lab.send({ procedure: 'checkout.purchase', input: MUG_PURCHASE, key, network: 'lose-response' });
      await lab.send({
        procedure: 'checkout.purchase',
        input: MUG_PURCHASE,
        key: variant === 'safe' ? key : lab.newKey(),
      });
    },
  },
  {
    id: 'slow-server',
    title: 'A slow server',
    story: 'The first request takes 1.5 s. The customer clicks again after 300 ms, while the first still runs.',
    question: 'How many orders?',
    counts: ['orders'],
    expected: { orders: 1 },
    safeguard:
      'The second request finds the key claimed, waits (within a bound) for the first, then replays its answer.',
    twin: 'Check-then-insert: the second request finds no stored key yet, and places its own order.',
    chapter: 'docs/05-races.md',
    async play(lab, variant) {
      const key = lab.newKey();
      const procedure = variant === 'safe' ? 'checkout.placeOrder' : 'lab.placeOrderCheckThenInsert';
      lab.fault({ boundary: 'executed', action: 'delay', ms: 1_500, procedure });
      await Promise.all([
        lab.send({ procedure, input: MUG_ORDER, key }),
        sleep(300).then(() => lab.send({ procedure, input: MUG_ORDER, key })),
      ]);
    },
  },
  {
    id: 'crash-before-record',
    title: 'A crash between the work and the record',
    story:
      'The server writes the order, then dies before it stores the answer with the key. The client gets no answer ' +
      'and retries.',
    question: 'How many orders?',
    counts: ['orders'],
    expected: { orders: 1 },
    safeguard:
      'The claim, the order and the answer are one transaction: the crash rolls all three back, and the retry runs ' +
      'once.',
    twin:
      'The answer is stored outside the transaction: the order is committed, the answer never stored, and the ' +
      'retry orders again.',
    chapter: 'docs/06-crash-between-work-and-record.md',
    async play(lab, variant) {
      const key = lab.newKey();
      const procedure = variant === 'safe' ? 'checkout.placeOrder' : 'lab.placeOrderAnswerOutsideTransaction';
      lab.fault({ boundary: 'executed', action: 'vanish', procedure });
      await lab.send({ procedure, input: MUG_ORDER, key, network: 'no-answer' });
      await lab.note('The client waited 3 s for an answer, then retries with the same key.');
      await lab.send({ procedure, input: MUG_ORDER, key });
    },
  },
  {
    id: 'provider-timeout',
    title: 'The provider charges, and its answer is lost',
    story:
      'The payment provider charges the card, then the connection to it breaks before its answer arrives (twice: the ' +
      'Stripe SDK retries once by itself). The shop answers 503; the client retries.',
    question: 'How many charges?',
    counts: ['orders', 'charges'],
    expected: { orders: 1, charges: 1 },
    safeguard:
      'The provider call carries a key derived from the key row: the retry repeats it, and the provider returns the ' +
      'first charge.',
    twin: 'Random provider keys: the retry sends the provider a new key, and the provider charges again.',
    chapter: 'docs/07-outside-effects.md',
    needsSimulator: true,
    async play(lab, variant) {
      const key = lab.newKey();
      const procedure = variant === 'safe' ? 'checkout.purchase' : 'lab.purchaseWithRandomProviderKeys';
      await lab.providerFault('reset_after_charge', 2);
      await lab.send({ procedure, input: MUG_PURCHASE, key });
      await lab.send({ procedure, input: MUG_PURCHASE, key });
    },
  },
  {
    id: 'killed-mid-payment',
    title: 'The server dies after charging',
    story:
      'The server records charge_attempted, charges the card, and dies before recording the charge. Its lease lapses ' +
      '(30 s, fast-forwarded here); a retry takes the key over and resumes from the recovery point.',
    question: 'How many charges?',
    counts: ['orders', 'charges'],
    expected: { orders: 1, charges: 1 },
    safeguard:
      'The resume repeats the charge with the derived key: the provider returns the charge the dead server made.',
    twin: 'Random provider keys: the resumed flow charges again.',
    chapter: 'docs/07-outside-effects.md',
    needsSimulator: true,
    async play(lab, variant) {
      const key = lab.newKey();
      const procedure = variant === 'safe' ? 'checkout.purchase' : 'lab.purchaseWithRandomProviderKeys';
      lab.fault({ boundary: 'inside:charge_recorded', action: 'vanish', procedure });
      await lab.send({ procedure, input: MUG_PURCHASE, key, network: 'no-answer' });
      await lab.fastForward(
        procedure,
        key,
        'lease',
        '30 s pass: the dead server never renews its lease, so it lapses.',
      );
      await lab.send({ procedure, input: MUG_PURCHASE, key });
    },
  },
  {
    id: 'different-cart',
    title: 'One key, two different carts',
    story: 'A buggy client sends the key of an earlier checkout with a different cart.',
    question: 'How many orders, and is the second cart ordered?',
    counts: ['orders'],
    expected: { orders: 1 },
    safeguard:
      'The key row holds the fingerprint of the first request: other input with the same key is refused with 422.',
    twin:
      "No fingerprint: the key alone decides, so the second cart is answered with the first cart's order, and " +
      'never ordered.',
    chapter: 'docs/08-same-key-other-request.md',
    async play(lab, variant) {
      const key = lab.newKey();
      const procedure = variant === 'safe' ? 'checkout.placeOrder' : 'lab.placeOrderWithoutFingerprint';
      const first = await lab.send({ procedure, input: MUG_ORDER, key });
      const second = await lab.send({ procedure, input: BEANS_ORDER, key });
      const told = second?.status === 200 && second.body?.result?.data?.id === first?.body?.result?.data?.id;
      return [
        {
          label: 'The second cart is never passed off as ordered',
          ok: !told,
          detail: told
            ? `The second cart (espresso beans) got 200 with order ` +
              `${String(first?.body?.result?.data?.id).slice(0, 8)}, which is the travel mug: it was never ordered.`
            : `The second cart got ${second?.status} ${second?.body?.error?.data?.errorCode ?? ''}: the client is ` +
              `told to use a new key.`,
        },
      ];
    },
  },
  {
    id: 'key-expires',
    title: 'A retry a day later',
    story:
      'The answer to a purchase is lost, and the customer comes back to the tab a day later. The shop keeps keys 24 ' +
      "h; the key's row has expired (fast-forwarded here).",
    question: 'How many orders, and how many charges?',
    counts: ['orders', 'charges'],
    expected: { orders: 1, charges: 1 },
    safeguard:
      'The client knows how long the server keeps keys (it says so in every answer) and never sends an older key: it ' +
      'asks the customer instead.',
    twin: 'A client without the age check resends the old key; to the server it is a new request.',
    chapter: 'docs/04-keeping-keys.md',
    async play(lab, variant) {
      const key = lab.newKey();
      const madeAt = Date.now();
      await lab.send({ procedure: 'checkout.purchase', input: MUG_PURCHASE, key, network: 'lose-response' });
      await lab.fastForward(
        'checkout.purchase',
        key,
        'expiry',
        'A day passes: the key row expires, and the server would treat the key as new.',
      );
      const aDayLater = madeAt + 25 * 3_600_000;
      if (variant === 'safe' && keyTooOld({ createdAt: madeAt }, idempotencyOptions().ttlMs, aDayLater)) {
        await lab.note(
          'The client: this key is 25 h old and the server keeps keys 24 h. It is not sent; the customer is shown ' +
            'their recent orders instead.',
        );
        return;
      }
      await lab.send({ procedure: 'checkout.purchase', input: MUG_PURCHASE, key });
    },
  },
  {
    id: 'two-customers',
    title: 'One key, two procedures, two customers',
    story:
      'Customer A uses one key for an order and for a purchase; customer B, by a bad random generator, uses the same ' +
      'key.',
    question: 'How many orders, and whose order does B see?',
    counts: ['orders', 'charges'],
    expected: { orders: 3, charges: 1 },
    safeguard: "A key is unique per customer and procedure: each use is its own key, and B never sees A's answer.",
    twin: "No customer scope: keys are shared by everyone, so B gets A's order back, and has none.",
    chapter: 'docs/08-same-key-other-request.md',
    async play(lab, variant) {
      const key = lab.newKey();
      const procedure = variant === 'safe' ? 'checkout.placeOrder' : 'lab.placeOrderWithoutScope';
      const a = await lab.send({ procedure, input: MUG_ORDER, key, as: 0 });
      await lab.send({ procedure: 'checkout.purchase', input: MUG_PURCHASE, key, as: 0 });
      const b = await lab.send({ procedure, input: MUG_ORDER, key, as: 1 });
      const leaked = b?.body?.result?.data?.id !== undefined && b.body.result.data.id === a?.body?.result?.data?.id;
      return [
        {
          label: "B's answer is B's own order",
          ok: !leaked,
          detail: leaked
            ? `B was answered with order ${String(a?.body?.result?.data?.id).slice(0, 8)}, which is A's: B's request ` +
              `never ran, and A's order leaked to B.`
            : 'B got an order of its own.',
        },
      ];
    },
  },
  {
    id: 'naturally-idempotent',
    title: 'Set to 2, or add one?',
    story:
      'The cart holds 1 travel mug; the customer wants 2. Sent as "set the quantity to 2", or as "add one", and in ' +
      'both cases the answer is lost and the request retried, without a key.',
    question: 'How many mugs end up in the cart?',
    counts: ['quantity'],
    expected: { quantity: 2 },
    safeguard: 'Setting a quantity is idempotent by nature: once or twice, the cart holds 2. It needs no key.',
    twin:
      '"Add one" is not: retried, it adds twice. It needs a key, like any operation that is not idempotent by ' +
      'nature.',
    chapter: 'docs/02-idempotent-by-nature.md',
    async play(lab, variant) {
      await twins.setCartQuantity(lab.db, lab.customer, 'travel-mug', 1);
      await lab.note('The cart holds 1 travel mug.');
      const input = { productId: 'travel-mug', ...(variant === 'safe' ? { quantity: 2 } : {}) };
      const procedure = variant === 'safe' ? 'lab.setCartQuantity' : 'lab.addOneToCart';
      await lab.send({ procedure, input, key: null, network: 'lose-response' });
      await lab.send({ procedure, input, key: null });
    },
  },
  {
    id: 'webhook-twice',
    title: 'The provider sends one event twice',
    story:
      'Two refunds of $10 went through on a $39.90 order. A third, of $10, is accepted by the provider and later ' +
      'refused by the bank. The provider tells the shop with a refund.failed webhook, and, as providers do, sends it ' +
      'again.',
    question: 'How many dollars does the order show as refunded at the end?',
    counts: ['refunded'],
    expected: { refunded: 20 },
    safeguard:
      "The event's id is recorded in the transaction that applies it: the second delivery finds the record, changes " +
      'nothing, and is answered 200 so that the provider stops.',
    twin:
      'A handler that trusts each event to come once: no record of its id, and a plain subtraction, so the ' +
      'second delivery gives the $10 back again.',
    chapter: 'docs/11-webhooks.md',
    needsSimulator: true,
    async play(lab, variant) {
      const purchase = { items: [{ productId: 'travel-mug', quantity: 2 }], paymentMethod: 'pm_card_visa' };
      const bought = await lab.send({ procedure: 'checkout.purchase', input: purchase, key: lab.newKey() });
      const orderId = bought?.body?.result?.data?.id as string | undefined;
      if (!orderId) throw new Error(`the purchase failed: ${bought?.status}`);
      for (let i = 0; i < 2; i++)
        await lab.send({ procedure: 'orders.refund', input: { orderId, amountCents: 1000 }, key: lab.newKey() });
      await lab.providerFault('refund_held');
      await lab.send({ procedure: 'orders.refund', input: { orderId, amountCents: 1000 }, key: lab.newKey() });
      const [held] = await lab.db
        .select({ providerRefundId: refunds.providerRefundId })
        .from(refunds)
        .where(and(eq(refunds.orderId, orderId), eq(refunds.status, 'pending')));
      if (!held?.providerRefundId) throw new Error('the third refund is not pending at the provider');
      await lab.settleHeldRefund(held.providerRefundId, 'failed');
      await lab.note(
        'The bank refuses the third refund: the provider makes a refund.failed event, and delivers it twice.',
      );
      const [failed] = await lab.providerEvents('refund.failed');
      if (!failed) throw new Error('the provider made no refund.failed event');
      const handler =
        // the shop's own endpoint, as the provider reaches it, or the twin's
        variant === 'safe' ? lab.handlers.webhook : (req: Request) => handleWebhookWithoutRecord(lab.db, req);
      const first = await lab.deliverWebhook(failed.signed, handler);
      const second = await lab.deliverWebhook(failed.signed, handler);
      const acknowledged = first.status === 200 && second.status === 200;
      return [
        {
          label: 'Both deliveries are answered 200, so the provider stops sending',
          ok: acknowledged,
          detail:
            `The deliveries were answered ${first.status} (${first.body.outcome ?? first.body.error}) and ` +
            `${second.status} (${second.body.outcome ?? second.body.error}).`,
        },
      ];
    },
  },
];

export const scenarioById = (id: string) => scenarios.find((s) => s.id === id);
