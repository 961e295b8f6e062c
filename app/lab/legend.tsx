/**
 * The lab's words, explained once, in a learner's words: what each count means, what each column of
 * a run shows, and each state and decision that appears in it. The page shows them as a legend; the
 * walkthrough's glossary (docs/glossary.md) says more.
 */

/** What each count of a verdict is, as the prediction's inputs and the verdict name it. */
export const COUNT_LABELS: Record<string, { label: string; unit: [string, string] }> = {
  orders: { label: 'Orders', unit: ['order', 'orders'] },
  charges: { label: 'Charges', unit: ['charge', 'charges'] },
  quantity: { label: 'Mugs in the cart', unit: ['mug', 'mugs'] },
  refunded: { label: 'Dollars refunded', unit: ['dollar refunded', 'dollars refunded'] },
  waiting: { label: 'Orders waiting for a payment', unit: ['order waiting', 'orders waiting'] },
  paid: { label: 'Paid orders', unit: ['paid order', 'paid orders'] },
  misanswered: {
    label: 'Answers naming an order of another cart',
    unit: ['answer naming another cart', 'answers naming another cart'],
  },
};

export const plural = (n: number, count: string) => {
  const unit = COUNT_LABELS[count]?.unit ?? [count, count];
  return `${n} ${n === 1 ? unit[0] : unit[1]}`;
};

/** The walkthrough, as this app serves it (app/docs/[file]/route.ts). */
export const chapterHref = (chapter: string) => `/${chapter}`;
export const GLOSSARY_HREF = '/docs/glossary.md';

/** "docs/05-races.md" -> "Chapter 5: races". */
export function chapterName(chapter: string): string {
  const m = /(\d\d)-([\w-]+)\.md$/.exec(chapter);
  return m ? `Chapter ${Number(m[1])}: ${m[2]!.replace(/-/g, ' ')}` : chapter;
}

const COLUMNS: [string, string][] = [
  ['ms', 'When the attempt started, in milliseconds after the run began. Rows are in that order.'],
  [
    'Attempt',
    'Which request: its number, who sent it (customer A or B, or the provider for a webhook), what it asked for, ' +
      'and the first characters of its idempotency key.',
  ],
  [
    'Network',
    'What happened to the answer on its way back: delivered, lost (the server did the work, the browser never ' +
      'heard), or none at all (the server died).',
  ],
  ["Server's decision", 'What the server did with the key: see the decisions below.'],
  ['Answer', 'The HTTP status and what it said, as the browser got it; "(replayed)" when it came from the key row.'],
  ['Key row after', "The key's row in the database once the attempt ended: its state, recovery point and lease token."],
  ['Orders after', "How many orders the run's customers have in the database once the attempt ended."],
  ['Provider calls', 'The calls that reached the payment provider, with the key the shop sent it.'],
  ['Fingerprint', 'A hash of what the request asked for: the same key with another request is refused.'],
  ['Lease until', 'Until when the server working on a started key holds it; after that, a retry may take it over.'],
  ['Expires', 'When the key row is deleted: a key reused after that is a new request.'],
  ["The provider's ledger", 'Every payment the provider has for the run: a "succeeded" one is money taken.'],
];

const WORDS: [string, string][] = [
  ['started', 'A key claimed by a request that has not answered yet.'],
  ['completed', 'A key with its answer stored: every retry gets that answer.'],
  [
    'recovery point',
    'The last step a purchase finished (order_created, charge_attempted, charge_recorded, finished): a retry ' +
      'resumes after it.',
  ],
  ['charge_attempted', 'Written just before the card is charged: from here on a charge may exist.'],
  [
    'lease token',
    'A number that goes up each time someone takes over a key: a server that lost its lease can no longer write.',
  ],
  ['intent', 'One thing the customer means to do (one purchase), however many requests it takes.'],
  ['executed', 'The server ran the request and stored its answer.'],
  ['replayed', 'The server found the answer stored under the key and sent it again, running nothing.'],
  ['waited_then_replayed', 'Another request held the key; this one waited for it, then got its answer.'],
  ['in_use', 'Another request holds the key and did not finish in time: 409, try again later.'],
  ['released', 'The request failed unexpectedly (a 500): nothing was kept, and the key is free for a retry.'],
  ['failure_stored', 'A deliberate refusal (a declined card) stored as the answer: a retry gets it too.'],
  ['resumed', "This request took over a key whose holder was gone, and went on from the key's recovery point."],
  ['expired', 'The key was older than the shop keeps keys: it was dropped and the request treated as new.'],
  ['reused_with_different_input', 'The key came with another request: refused with 422.'],
  ['applied, stale, duplicate', 'A webhook changed something; changed nothing (old news); or was seen already.'],
];

/** The legend: every column and word a run shows, once for the page. */
export function Legend() {
  return (
    <details className="legend card" data-testid="lab-legend">
      <summary>What the columns and words of a run mean</summary>
      <h2 className="visually-hidden">Legend</h2>
      <dl>
        {[...COLUMNS, ...WORDS].map(([term, meaning]) => (
          <div key={term}>
            <dt>{term}</dt>
            <dd>{meaning}</dd>
          </div>
        ))}
      </dl>
      <p>
        More in the <a href={GLOSSARY_HREF}>glossary</a>.
      </p>
    </details>
  );
}
