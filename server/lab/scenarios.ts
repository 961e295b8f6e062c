/**
 * The lab's scenarios: each a short story of something that goes wrong between a customer and the
 * shop, played twice: with every safeguard (safe), and by its unsafe twin, which turns exactly one
 * safeguard off (server/lab/twins.ts) and says which (`removes`). The faults are scripted, never
 * random, so a scenario plays the same way every time. A scenario, its browser test (e2e/lab.spec.ts)
 * and its walkthrough chapter (docs/) share one id.
 *
 * A card asks before it tells: the page shows `story` and `question` (with an input for each count and,
 * where the answer is not a count, a choice); `safeguard`, `twin` and `removes` appear once the learner
 * has run it or asked to see them.
 */
import { and, eq } from 'drizzle-orm';
import { orderItems, orders, refunds } from '../../db/schema';
import { keyTooOld } from '../../shared/key-age';
import { idempotencyOptions } from '../env.js';
import { runCompleter } from '../jobs/completer';
import { settleWaiting } from '../jobs/settle';
import { keyRowsOf } from './keys';
import type { Check, Counts, LabSession } from './session';
import { handleWebhookNotForwardOnly, twins } from './twins';

export type Variant = 'safe' | 'unsafe';

/** A question whose answer is not a count: one of a few options. */
export interface Choice {
  label: string;
  options: { value: string; label: string }[];
}

/** What a scenario's play found, beyond what the runner counts itself. */
export interface Played {
  checks?: Check[];
  /** The answer to the scenario's choice, read from the records. */
  choice?: string;
  /** Counts only the scenario can make (answers that name the wrong order). */
  counts?: Counts;
}

export interface Scenario {
  id: string;
  title: string;
  /** The story, in a few sentences: what happens, not what it leads to. */
  story: string;
  /** What the learner is asked to predict before running it. */
  question: string;
  /** What the verdict counts, and so what the learner predicts. */
  counts: (keyof Counts)[];
  /** A question that is not a count, when there is one. */
  choice?: Choice;
  /** The outcome every safeguard guarantees. */
  expected: Counts & { choice?: string };
  /** The safeguard at work, in one line (shown after a run). */
  safeguard: string;
  /** The one safeguard the unsafe twin takes away, in a few words. */
  removes: string;
  /** What the unsafe twin does without it, in one line (shown after a run). */
  twin: string;
  /** The walkthrough chapter that explains it. */
  chapter: string;
  /** How many customers the run needs (A, B). */
  customers?: number;
  /** Needs the payment simulator (its scripted provider faults). */
  needsSimulator?: boolean;
  play(lab: LabSession, variant: Variant): Promise<Played | undefined>;
}

const MUG_ORDER = { items: [{ productId: 'travel-mug', quantity: 1 }] };
const MUG_PURCHASE = { ...MUG_ORDER, paymentMethod: 'pm_card_visa' };
const BEANS_ORDER = { items: [{ productId: 'espresso-beans', quantity: 2 }] };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const LEASE_SECONDS = () => idempotencyOptions().leaseMs / 1000;
// biome-ignore lint/suspicious/noExplicitAny: an answer off the wire; a field or two is read
type Answer = { status: number; body: any } | null;
const orderIdOf = (a: Answer): string | undefined => a?.body?.result?.data?.id;

/** The products of an order, from the database (what was really ordered). */
async function productsOf(lab: LabSession, orderId: string): Promise<string[]> {
  const rows = await lab.db
    .select({ productId: orderItems.productId })
    .from(orderItems)
    .where(eq(orderItems.orderId, orderId));
  return rows.map((r) => r.productId).sort();
}

/** The key row's id, for the provider key derived from it. */
async function keyRowId(lab: LabSession, procedure: string, key: string): Promise<string> {
  const [row] = (await keyRowsOf(lab.db, [lab.customer])).filter((r) => r.procedure === procedure && r.key === key);
  if (!row) throw new Error(`no key row for ${procedure}`);
  return row.id;
}

export const scenarios: Scenario[] = [
  {
    id: 'double-click',
    title: 'A double-click on Pay',
    story: 'The customer clicks Pay twice, 80 ms apart. Both clicks reach the server before either is answered.',
    question: 'How many orders, and how many charges?',
    counts: ['orders', 'charges'],
    expected: { orders: 1, charges: 1 },
    safeguard: 'Both clicks carry the key of one intent: the second waits for the first and gets its answer.',
    removes: 'one key per intent (the client makes a key per click)',
    twin: 'Each click makes a new key, so to the server each click is a new purchase.',
    chapter: 'docs/01-retries-happen.md',
    async play(lab, variant) {
      const first = lab.newKey();
      const second = variant === 'safe' ? first : lab.newKey();
      await Promise.all([
        lab.send({ procedure: 'checkout.purchase', input: MUG_PURCHASE, key: first }),
        sleep(80).then(() => lab.send({ procedure: 'checkout.purchase', input: MUG_PURCHASE, key: second })),
      ]);
      return undefined;
    },
  },
  {
    id: 'lost-response',
    title: 'The answer is lost',
    story:
      'The server places the order and charges the card, but its answer never reaches the browser. The client ' +
      'retries with the same key.',
    question: 'How many orders, and how many charges?',
    counts: ['orders', 'charges'],
    expected: { orders: 1, charges: 1 },
    safeguard: 'The key row keeps the answer: the retry is answered from it instead of running again.',
    removes: 'the stored answer (the key is dropped once answered)',
    twin:
      'The key only guards the request while it runs, and is dropped once answered (a lock, not a record): the ' +
      'retry finds no key and purchases again.',
    chapter: 'docs/01-retries-happen.md',
    async play(lab, variant) {
      const key = lab.newKey();
      const procedure = variant === 'safe' ? 'checkout.purchase' : 'lab.purchaseForgettingAnswers';
      await lab.send({ procedure, input: MUG_PURCHASE, key, network: 'lose-response' });
      await lab.send({ procedure, input: MUG_PURCHASE, key });
      return undefined;
    },
  },
  {
    id: 'naturally-idempotent',
    title: 'Set to 2, or add one?',
    story:
      'The cart holds 1 travel mug; the customer wants 2. The request is "set the quantity to 2" (or, in the twin, ' +
      '"add one"); its answer is lost and it is sent again, without a key.',
    question: 'How many mugs end up in the cart?',
    counts: ['quantity'],
    expected: { quantity: 2 },
    safeguard: 'Setting a quantity is idempotent by nature: once or twice, the cart holds 2. It needs no key.',
    removes: 'an operation idempotent by nature ("add one" instead of "set to 2")',
    twin: '"Add one" is not idempotent: sent twice, it adds twice. Such an operation needs a key.',
    chapter: 'docs/02-idempotent-by-nature.md',
    async play(lab, variant) {
      await twins.setCartQuantity(lab.db, lab.customer, 'travel-mug', 1);
      await lab.note('The cart holds 1 travel mug.');
      const input = { productId: 'travel-mug', ...(variant === 'safe' ? { quantity: 2 } : {}) };
      const procedure = variant === 'safe' ? 'lab.setCartQuantity' : 'lab.addOneToCart';
      await lab.send({ procedure, input, key: null, network: 'lose-response' });
      await lab.send({ procedure, input, key: null });
      return undefined;
    },
  },
  {
    id: 'counter-keys',
    title: 'Keys from a counter',
    story:
      'The client numbers its keys checkout-1, checkout-2, … and its counter starts again at each page load. The ' +
      'customer buys a travel mug, reloads the page, and orders espresso beans: two intents.',
    question: 'How many orders?',
    counts: ['orders'],
    expected: { orders: 2 },
    safeguard: 'Each intent gets a random key (a UUID): two intents never share one.',
    removes: 'random keys (the client counts from 1 after every reload)',
    twin:
      'Both intents are sent as checkout-1: the server sees one key with another cart, and refuses the beans ' +
      '(422): they are never ordered.',
    chapter: 'docs/03-one-key-one-answer.md',
    async play(lab, variant) {
      const keys = variant === 'safe' ? [lab.newKey(), lab.newKey()] : ['checkout-1', 'checkout-1'];
      const mug = await lab.send({ procedure: 'checkout.placeOrder', input: MUG_ORDER, key: keys[0]! });
      await lab.note('The customer reloads the page and starts a new checkout.');
      const beans = await lab.send({ procedure: 'checkout.placeOrder', input: BEANS_ORDER, key: keys[1]! });
      const own = orderIdOf(beans) && orderIdOf(beans) !== orderIdOf(mug);
      return {
        checks: [
          {
            label: 'The second intent gets an order of its own',
            ok: Boolean(own),
            detail: own
              ? 'The beans were ordered under a key of their own.'
              : `The beans got ${beans?.status} ${beans?.body?.error?.data?.errorCode ?? ''}: the key was taken.`,
          },
        ],
      };
    },
  },
  {
    id: 'key-expires',
    title: 'A retry a day later',
    story:
      'The answer to a purchase is lost, and the customer comes back to the tab a day later. The shop keeps keys ' +
      '24 h.',
    question: 'How many orders, and how many charges?',
    counts: ['orders', 'charges'],
    expected: { orders: 1, charges: 1 },
    safeguard:
      'The client knows how long the server keeps keys (every answer says so) and never sends an older key: it ' +
      'asks the customer instead.',
    removes: "the client's age check on its key",
    twin: 'The client resends the day-old key; its row has expired, so to the server it is a new request.',
    chapter: 'docs/04-keeping-keys.md',
    async play(lab, variant) {
      const key = lab.newKey();
      const madeAt = Date.now();
      await lab.send({ procedure: 'checkout.purchase', input: MUG_PURCHASE, key, network: 'lose-response' });
      await lab.fastForward(
        'checkout.purchase',
        key,
        'expiry',
        'A day passes: the key row expires, and the server would treat the key as new',
      );
      const aDayLater = madeAt + 25 * 3_600_000;
      if (variant === 'safe' && keyTooOld({ createdAt: madeAt }, idempotencyOptions().ttlMs, aDayLater)) {
        await lab.note(
          'The client: this key is 25 h old and the server keeps keys 24 h. It is not sent; the customer is shown ' +
            'their recent orders instead.',
        );
        return undefined;
      }
      await lab.send({ procedure: 'checkout.purchase', input: MUG_PURCHASE, key });
      return undefined;
    },
  },
  {
    id: 'stored-500',
    title: 'A passing failure',
    story:
      'The first attempt fails with a 500 (the database restarted under it). The client waits a second and retries ' +
      'with the same key.',
    question: 'How many orders?',
    counts: ['orders'],
    expected: { orders: 1 },
    safeguard:
      'Only answers are stored: a 500 is not one. The failure rolls the claim back with the work, and the retry ' +
      'runs.',
    removes: 'not storing 5xx (every answer is stored, a 500 too)',
    twin: "The 500 is stored as the key's answer: the retry gets it replayed, and the customer never gets an order.",
    chapter: 'docs/04-keeping-keys.md',
    async play(lab, variant) {
      const key = lab.newKey();
      const procedure = variant === 'safe' ? 'checkout.placeOrder' : 'lab.placeOrderStoringEveryAnswer';
      lab.fault({ boundary: 'executed', action: 'fail', procedure });
      await lab.send({ procedure, input: MUG_ORDER, key });
      await lab.wait(1_000, 'The client waits 1 s, then retries with the same key.');
      await lab.send({ procedure, input: MUG_ORDER, key });
      return undefined;
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
      'The claim is atomic: Postgres gives the key to one copy at a time (a lock on its hash), and the others wait ' +
      'for its answer.',
    removes: 'the atomic claim (check, then insert)',
    twin: 'Each copy looks for the key, finds none, works, and only then stores it.',
    chapter: 'docs/05-races.md',
    async play(lab, variant) {
      const key = lab.newKey();
      const procedure = variant === 'safe' ? 'checkout.placeOrder' : 'lab.placeOrderCheckThenInsert';
      await Promise.all(Array.from({ length: 20 }, () => lab.send({ procedure, input: MUG_ORDER, key })));
      return undefined;
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
    removes: 'the atomic claim (check, then insert)',
    twin: 'The second request finds no stored key yet, and places its own order.',
    chapter: 'docs/05-races.md',
    async play(lab, variant) {
      const key = lab.newKey();
      const procedure = variant === 'safe' ? 'checkout.placeOrder' : 'lab.placeOrderCheckThenInsert';
      lab.fault({ boundary: 'executed', action: 'delay', ms: 1_500, procedure });
      await Promise.all([
        lab.send({ procedure, input: MUG_ORDER, key }),
        sleep(300).then(() => lab.send({ procedure, input: MUG_ORDER, key })),
      ]);
      return undefined;
    },
  },
  {
    id: 'memory-keys-behind-balancer',
    title: 'Two servers behind a balancer',
    story:
      'The shop runs two instances behind a load balancer. The answer to an order is lost; the client retries with ' +
      'the same key, and the balancer sends the retry to the other instance.',
    question: 'How many orders?',
    counts: ['orders'],
    expected: { orders: 1 },
    safeguard: 'Keys live in the database every instance shares (and commit with the order): any instance finds them.',
    removes: 'a shared key store (each instance keeps keys in its memory)',
    twin: 'Instance 2 has never seen the key (instance 1 keeps it in its memory) and places the order again.',
    chapter: 'docs/05-races.md',
    async play(lab, variant) {
      const key = lab.newKey();
      const procedure = variant === 'safe' ? 'checkout.placeOrder' : 'lab.placeOrderWithMemoryKeys';
      const to = (instance: string) => ({ 'x-lab-instance': instance });
      await lab.note('The balancer sends the first attempt to instance 1.');
      await lab.send({ procedure, input: MUG_ORDER, key, network: 'lose-response', headers: to('1') });
      await lab.note('The balancer sends the retry to instance 2.');
      await lab.send({ procedure, input: MUG_ORDER, key, headers: to('2') });
      return undefined;
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
    removes: 'one transaction for claim, work and answer (the claim commits on its own first)',
    twin:
      'The claim is still atomic but commits on its own; the order commits, the answer is never stored. The retry ' +
      'finds the key claimed with no answer, takes it for a failed request, and orders again.',
    chapter: 'docs/06-crash-between-work-and-record.md',
    async play(lab, variant) {
      const key = lab.newKey();
      const procedure = variant === 'safe' ? 'checkout.placeOrder' : 'lab.placeOrderClaimCommittedApart';
      lab.fault({ boundary: 'executed', action: 'vanish', procedure });
      await lab.send({ procedure, input: MUG_ORDER, key, network: 'no-answer' });
      await lab.note('The client retries with the same key.');
      await lab.send({ procedure, input: MUG_ORDER, key });
      return undefined;
    },
  },
  {
    id: 'stuck-in-progress',
    title: 'The server dies holding the key',
    story:
      'A purchase claims its key, then its server dies before the order is written. The key stays "started". The ' +
      'customer retries with the same key once the lease time has passed.',
    question: 'How many orders, and how many charges?',
    counts: ['orders', 'charges'],
    expected: { orders: 1, charges: 1 },
    safeguard:
      'A started key is held by a lease (30 s, renewed at each step): a dead holder stops renewing it, and a retry ' +
      'takes the key over once it lapses.',
    removes: 'the lease (a started key is held for ever)',
    twin:
      'The key stays "in progress" for ever: every retry waits, then gets 409 "in use", and the customer cannot ' +
      'buy.',
    chapter: 'docs/06-crash-between-work-and-record.md',
    async play(lab, variant) {
      const key = lab.newKey();
      const procedure = variant === 'safe' ? 'checkout.purchase' : 'lab.purchaseWithEndlessLease';
      lab.fault({ boundary: 'inside:order_created', action: 'vanish', procedure });
      await lab.send({ procedure, input: MUG_PURCHASE, key, network: 'no-answer' });
      await lab.fastForward(procedure, key, 'lease', `${LEASE_SECONDS()} s pass: the dead server renews nothing`, {
        seconds: LEASE_SECONDS(),
      });
      await lab.send({ procedure, input: MUG_PURCHASE, key });
      return undefined;
    },
  },
  {
    id: 'provider-timeout',
    title: 'The provider charges, and its answer is lost',
    story:
      'The payment provider charges the card, then the connection to it breaks before its answer arrives (twice: the ' +
      'Stripe SDK retries once by itself). The shop answers 503; the client retries.',
    question: 'How many orders, and how many charges?',
    counts: ['orders', 'charges'],
    expected: { orders: 1, charges: 1 },
    safeguard:
      'The provider call carries a key derived from the key row: the retry repeats it, and the provider returns the ' +
      'first charge.',
    removes: 'the derived provider key (a random one per call)',
    twin: 'The retry sends the provider a new key, and the provider charges again.',
    chapter: 'docs/07-outside-effects.md',
    needsSimulator: true,
    async play(lab, variant) {
      const key = lab.newKey();
      const procedure = variant === 'safe' ? 'checkout.purchase' : 'lab.purchaseWithRandomProviderKeys';
      await lab.providerFault('reset_after_charge', 2);
      await lab.send({ procedure, input: MUG_PURCHASE, key });
      await lab.send({ procedure, input: MUG_PURCHASE, key });
      return undefined;
    },
  },
  {
    id: 'killed-mid-payment',
    title: 'The server dies after charging',
    story:
      'The server records charge_attempted, charges the card, and dies before recording the charge. Once its lease ' +
      'lapses, a retry takes the key over and resumes from the recovery point.',
    question: 'How many orders, and how many charges?',
    counts: ['orders', 'charges'],
    expected: { orders: 1, charges: 1 },
    safeguard:
      'The resume repeats the charge with the derived key: the provider returns the charge the dead server made.',
    removes: 'the derived provider key (a random one per call)',
    twin: 'The resumed flow sends a new key, and the provider charges again.',
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
        `${LEASE_SECONDS()} s pass: the dead server never renews its lease, so it lapses`,
        { seconds: LEASE_SECONDS() },
      );
      await lab.send({ procedure, input: MUG_PURCHASE, key });
      return undefined;
    },
  },
  {
    id: 'abandoned-checkout',
    title: 'A checkout nobody comes back to',
    story:
      'The order is written, then the database connection drops before the card is charged: the customer sees an ' +
      'error and closes the tab. Nobody retries.',
    question: 'How many orders are still waiting for a payment at the end, and how many charges?',
    counts: ['orders', 'waiting', 'charges'],
    expected: { orders: 1, waiting: 0, charges: 0 },
    safeguard:
      'The completer finds checkouts abandoned mid-way; before charge_attempted no charge can exist, so it cancels ' +
      'the order (and gives back what it held).',
    removes: 'the completer (no job knows this flow)',
    twin: 'No job comes back for the checkout: its order waits for a payment for ever, holding its stock.',
    chapter: 'docs/07-outside-effects.md',
    needsSimulator: true,
    async play(lab, variant) {
      const key = lab.newKey();
      const procedure = variant === 'safe' ? 'checkout.purchase' : 'lab.purchaseNoCompleterKnows';
      lab.fault({ boundary: 'inside:charge_attempted', action: 'drop-db', procedure });
      await lab.send({ procedure, input: MUG_PURCHASE, key });
      await lab.note(
        'The customer closes the tab. The completer runs every few minutes, for keys left a while (fast-forwarded: ' +
          'its round runs now).',
      );
      const outcomes = await runCompleter(lab.db, { delaySeconds: 0, customerId: lab.customer, backoffBaseSeconds: 0 });
      await lab.note(`The completer's round: ${JSON.stringify(outcomes)}.`);
      return undefined;
    },
  },
  {
    id: 'provider-forgets',
    title: 'The provider forgets its key',
    story:
      'The provider charges the card, and its answer is lost (the shop answers 503). The customer comes back 25 h ' +
      'later and retries; the provider keeps idempotency keys for 24 h.',
    question: 'How many orders, and how many charges?',
    counts: ['orders', 'charges'],
    expected: { orders: 1, charges: 1 },
    safeguard:
      'A flow resumed after the provider may have forgotten its key looks the payment up by its metadata first, ' +
      'and records the charge it finds.',
    removes: 'the lookup before charging again',
    twin: 'The resume charges with the same derived key; the provider has forgotten it, and charges again.',
    chapter: 'docs/07-outside-effects.md',
    needsSimulator: true,
    async play(lab, variant) {
      const key = lab.newKey();
      const procedure = variant === 'safe' ? 'checkout.purchase' : 'lab.purchaseWithoutLookup';
      await lab.providerFault('timeout_after_charge');
      await lab.send({ procedure, input: MUG_PURCHASE, key });
      await lab.forgetProviderKey(`${await keyRowId(lab, procedure, key)}:charge`);
      await lab.fastForward(
        procedure,
        key,
        'age',
        '25 h pass: the provider forgets its key, and the key row is a day old (kept while its checkout is ' +
          'unfinished)',
        { seconds: 25 * 3_600 },
      );
      await lab.send({ procedure, input: MUG_PURCHASE, key });
      return undefined;
    },
  },
  {
    id: 'different-cart',
    title: 'One key, two different carts',
    story: 'A buggy client sends the key of an earlier checkout (a travel mug) with a different cart (espresso beans).',
    question: 'Is the second cart ordered?',
    counts: ['orders', 'misanswered'],
    choice: {
      label: 'The second cart (espresso beans) is…',
      options: [
        { value: 'ordered', label: 'ordered' },
        { value: 'refused', label: 'refused, with an error saying the key was used for another request' },
        { value: 'wrong-order', label: "answered with the first cart's order, and never ordered" },
      ],
    },
    expected: { orders: 1, misanswered: 0, choice: 'refused' },
    safeguard:
      'The key row holds the fingerprint of the first request: other input with the same key is refused with 422.',
    removes: 'the fingerprint',
    twin: "The key alone decides: the second cart is answered with the first cart's order, and never ordered.",
    chapter: 'docs/08-same-key-other-request.md',
    async play(lab, variant) {
      const key = lab.newKey();
      const procedure = variant === 'safe' ? 'checkout.placeOrder' : 'lab.placeOrderWithoutFingerprint';
      await lab.send({ procedure, input: MUG_ORDER, key });
      const second = await lab.send({ procedure, input: BEANS_ORDER, key });
      const named = orderIdOf(second);
      const products = named ? await productsOf(lab, named) : [];
      const choice = !named ? 'refused' : products.includes('espresso-beans') ? 'ordered' : 'wrong-order';
      return {
        choice,
        counts: { misanswered: choice === 'wrong-order' ? 1 : 0 },
        checks: [
          {
            label: 'No answer names an order of another cart',
            ok: choice !== 'wrong-order',
            detail:
              choice === 'wrong-order'
                ? `The beans got 200 with order ${named!.slice(0, 8)}, which holds ${products.join(', ')}.`
                : `The beans got ${second?.status} ${second?.body?.error?.data?.errorCode ?? ''}.`,
          },
        ],
      };
    },
  },
  {
    id: 'two-customers',
    title: 'Two customers, one key',
    story: 'Customer A places an order with a key. Customer B, by a bad random generator, sends the very same key.',
    question: 'How many orders, and whose order is B shown?',
    counts: ['orders'],
    choice: {
      label: 'B is shown…',
      options: [
        { value: 'B', label: "B's own order" },
        { value: 'A', label: "A's order" },
        { value: '', label: 'an error' },
      ],
    },
    expected: { orders: 2, choice: 'B' },
    safeguard: "A key belongs to its customer: B's key is B's, whatever its value, and B never sees A's answer.",
    removes: 'the customer scope of keys',
    twin: "Keys are shared by everyone: B is answered with A's order (A's data leaks), and has none.",
    chapter: 'docs/08-same-key-other-request.md',
    customers: 2,
    async play(lab, variant) {
      const key = lab.newKey();
      const procedure = variant === 'safe' ? 'checkout.placeOrder' : 'lab.placeOrderWithoutScope';
      await lab.send({ procedure, input: MUG_ORDER, key, as: 0 });
      const b = await lab.send({ procedure, input: MUG_ORDER, key, as: 1 });
      return { choice: await lab.ownerOf(orderIdOf(b)) };
    },
  },
  {
    id: 'one-key-two-operations',
    title: 'One key, an order and a payment',
    story:
      'A client uses one key for two operations: it places an order (checkout.placeOrder), then buys with the same ' +
      'key (checkout.purchase).',
    question: 'How many orders and charges, and what does the purchase get back?',
    counts: ['orders', 'charges'],
    choice: {
      label: 'The purchase gets back…',
      options: [
        { value: 'paid', label: 'a paid order of its own' },
        { value: 'order', label: "the first operation's answer (an unpaid order)" },
        { value: 'refused', label: 'an error: the key is already used' },
      ],
    },
    expected: { orders: 2, charges: 1, choice: 'paid' },
    safeguard: 'The procedure is part of the key: the same value on another operation is another key.',
    removes: 'the procedure in the key',
    twin: 'One key names one request whatever the operation: the purchase finds it used, and is refused (422).',
    chapter: 'docs/08-same-key-other-request.md',
    needsSimulator: true,
    async play(lab, variant) {
      const key = lab.newKey();
      const safe = variant === 'safe';
      await lab.send({ procedure: safe ? 'checkout.placeOrder' : 'lab.placeOrderOneKeyForAll', input: MUG_ORDER, key });
      const paid = await lab.send({
        procedure: safe ? 'checkout.purchase' : 'lab.purchaseOneKeyForAll',
        input: MUG_PURCHASE,
        key,
      });
      const id = orderIdOf(paid);
      let choice = 'refused';
      if (id) {
        const [row] = await lab.db.select({ status: orders.status }).from(orders).where(eq(orders.id, id));
        choice = row?.status === 'paid' ? 'paid' : 'order';
      }
      return { choice };
    },
  },
  {
    id: 'webhook-twice',
    title: 'The provider tells one failure twice',
    story:
      'Two refunds of $10 went through on a $39.90 order. A third, of $10, is accepted by the provider and later ' +
      'refused by the bank. The provider tells the shop as two events (refund.updated, then refund.failed), and ' +
      'delivers refund.failed a second time.',
    question: 'How many dollars does the order show as refunded at the end?',
    counts: ['refunded'],
    expected: { refunded: 20 },
    safeguard:
      'The refund moves forward only (pending -> failed, once): the second telling finds it failed already and ' +
      'changes nothing. (Event ids are recorded too: the redelivery is a duplicate.)',
    removes: 'the forward-only move (event ids are still recorded)',
    twin:
      'Each event is applied as it says: refund.updated and refund.failed are two ids, so the record lets both ' +
      'through, and the $10 is given back twice.',
    chapter: 'docs/11-webhooks.md',
    needsSimulator: true,
    async play(lab, variant) {
      const purchase = { items: [{ productId: 'travel-mug', quantity: 2 }], paymentMethod: 'pm_card_visa' };
      const bought = await lab.send({ procedure: 'checkout.purchase', input: purchase, key: lab.newKey() });
      const orderId = orderIdOf(bought);
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
      await lab.note('The bank refuses the third refund: the provider makes refund.updated and refund.failed.');
      const ofHeld = (e: { event: { data: { object: { id: string; status?: string } } } }) =>
        e.event.data.object.id === held.providerRefundId && e.event.data.object.status === 'failed';
      const [updated] = (await lab.providerEvents('refund.updated')).filter(ofHeld);
      const [failed] = (await lab.providerEvents('refund.failed')).filter(ofHeld);
      if (!updated || !failed) throw new Error('the provider did not make both events');
      const handler =
        // the shop's own endpoint, as the provider reaches it, or the twin's
        variant === 'safe' ? lab.handlers.webhook : (req: Request) => handleWebhookNotForwardOnly(lab.db, req);
      const answers = [];
      for (const e of [updated, failed, failed]) answers.push(await lab.deliverWebhook(e.signed, handler));
      const acknowledged = answers.every((a) => a.status === 200);
      return {
        checks: [
          {
            label: 'Every delivery is answered 200, so the provider stops sending',
            ok: acknowledged,
            detail: `The deliveries were answered ${answers
              .map((a) => `${a.status} (${a.body.outcome ?? a.body.error})`)
              .join(', ')}.`,
          },
        ],
      };
    },
  },
  {
    id: 'webhook-late',
    title: 'The webhook comes late',
    story:
      'A payment is "processing" (a bank debit): the order waits. The money arrives at the provider, but its ' +
      'payment_intent.succeeded event is late: it has still not arrived at the end of this run (providers retry for ' +
      'days).',
    question: 'How many paid orders does the shop have at the end?',
    counts: ['orders', 'paid'],
    expected: { orders: 1, paid: 1 },
    safeguard:
      'The settle job does not wait for webhooks: for a payment waiting over a minute, it asks the provider, and ' +
      'moves the order on (forward only, so the late event later changes nothing).',
    removes: 'the settle job (the shop waits for the webhook)',
    twin: 'The shop only learns from webhooks: the paid order stays "processing" until the late event comes.',
    chapter: 'docs/11-webhooks.md',
    needsSimulator: true,
    async play(lab, variant) {
      const purchase = { ...MUG_ORDER, paymentMethod: 'pm_card_processing' };
      await lab.providerFault('payment_held');
      const bought = await lab.send({ procedure: 'checkout.purchase', input: purchase, key: lab.newKey() });
      const orderId = orderIdOf(bought);
      if (!orderId) throw new Error(`the purchase failed: ${bought?.status}`);
      const [order] = await lab.db
        .select({ paymentIntentId: orders.paymentIntentId })
        .from(orders)
        .where(eq(orders.id, orderId));
      if (!order?.paymentIntentId) throw new Error('the order has no payment at the provider');
      await lab.settleHeldPayment(order.paymentIntentId);
      await lab.note('The money arrives at the provider; its payment_intent.succeeded event is not delivered yet.');
      if (variant === 'safe') {
        await lab.note('A minute passes (fast-forwarded): the settle job asks the provider about waiting payments.');
        await settleWaiting(lab.db, { olderThanSeconds: 0, customerIds: lab.customers });
      } else await lab.note('A minute passes: no job asks; the shop waits for the webhook.');
      return undefined;
    },
  },
];

export const scenarioById = (id: string) => scenarios.find((s) => s.id === id);
