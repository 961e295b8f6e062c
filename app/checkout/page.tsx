'use client';
import { useQuery } from '@tanstack/react-query';
import Link from 'next/link';
import { useRouter } from 'next/navigation';
import { useEffect, useRef, useState } from 'react';
import { MAX_QUANTITY, TEST_CARDS, type TestCard } from '@/shared/shop-rules';
import { useCart } from '../components/cart';
import { formatMoney } from '../components/money';
import { paymentWords } from '../components/order-words';
import { useTRPC, useTRPCClient } from '../components/trpc';
import { serverRetention, takeReplayed } from '../components/trpc-links';
import { type Classified, useIdempotentMutation } from '../components/use-idempotent-mutation';

export default function CheckoutPage() {
  return <Checkout />;
}

/** What the customer reads when an attempt did not go through, and what to do next. */
function failureText(f: Classified): string {
  switch (f.kind) {
    case 'retryable':
      return (
        "We could not reach the shop, so we don't know yet whether your order went through. Pressing “Try " +
        'again” is safe: it continues the same attempt and cannot order twice.'
      );
    case 'reused':
      return (
        'This checkout attempt was already used for a different cart. Start a fresh attempt to order what is in ' +
        'your cart now.'
      );
    case 'final':
      return `${f.message.replace(/^items\[\d+\]\.productId: /, '')}`;
  }
}

function Checkout() {
  const trpc = useTRPC();
  const client = useTRPCClient();
  const router = useRouter();
  const cart = useCart();
  const catalog = useQuery(trpc.catalog.list.queryOptions());
  const alertRef = useRef<HTMLDivElement>(null);
  const [card, setCard] = useState<TestCard>('pm_card_visa');

  const checkout = useIdempotentMutation({
    name: 'checkout',
    send: async (input: { items: { productId: string; quantity: number }[]; paymentMethod: TestCard }, key, signal) => {
      const data = await client.checkout.purchase.mutate(input, { context: { idempotencyKey: key }, signal });
      return { data, replayed: takeReplayed(key) };
    },
    onSuccess: (order, { replayed }) => {
      cart.clear();
      router.push(`/orders/${order.id}${replayed ? '?replayed=1' : ''}`);
    },
    retention: serverRetention,
  });

  useEffect(() => {
    if (checkout.status === 'failed') alertRef.current?.focus(); // the outcome gets the focus
  }, [checkout.status]);

  const products = new Map(catalog.data?.map((p) => [p.id, p]));
  const currency = catalog.data?.[0]?.currency ?? 'USD';
  // Shown to the customer only; the server computes the total it charges from its own prices.
  const estimate = cart.lines.reduce((sum, l) => sum + (products.get(l.productId)?.priceCents ?? 0) * l.quantity, 0);
  const busy =
    checkout.status === 'sending' ||
    checkout.status === 'retrying' ||
    checkout.status === 'offline' ||
    checkout.status === 'succeeded';

  if (checkout.status === 'expired' && checkout.expired) {
    return (
      <ExpiredIntent
        startedAt={checkout.expired.createdAt}
        items={checkout.expired.input.items}
        names={products}
        onItWasPlaced={() => {
          checkout.startFresh();
          cart.clear();
          router.push('/orders');
        }}
        onOrderAgain={checkout.orderAgain}
      />
    );
  }

  if (cart.ready && cart.lines.length === 0 && !busy) {
    return (
      <>
        <title>Checkout · Retry-safe coffee</title>
        <h1>Checkout</h1>
        <p data-testid="empty-cart">
          Your cart is empty. <Link href="/">Go shopping</Link>.
        </p>
      </>
    );
  }

  return (
    <>
      <title>Checkout · Retry-safe coffee</title>
      <h1>Checkout</h1>
      <table data-testid="cart">
        <thead>
          <tr>
            <th scope="col">Product</th>
            <th scope="col">Quantity</th>
            <th scope="col">Price</th>
            <th scope="col">
              <span className="visually-hidden">Remove</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {cart.lines.map((l) => {
            const p = products.get(l.productId);
            const name = p?.name ?? l.productId;
            return (
              <tr key={l.productId} data-testid={`cart-line-${l.productId}`}>
                <td>
                  {name}
                  {p?.soldOut && <strong> (sold out)</strong>}
                </td>
                <td>
                  <label>
                    <span className="visually-hidden">Quantity of {name}</span>
                    <input
                      type="number"
                      min={1}
                      max={MAX_QUANTITY}
                      value={l.quantity}
                      disabled={busy}
                      data-testid={`qty-${l.productId}`}
                      onChange={(e) =>
                        cart.setQuantity(l.productId, Math.max(1, Math.min(MAX_QUANTITY, Number(e.target.value) || 1)))
                      }
                    />
                  </label>
                </td>
                <td>{p ? formatMoney(p.priceCents * l.quantity, p.currency) : '…'}</td>
                <td>
                  <button
                    type="button"
                    className="secondary"
                    disabled={busy}
                    onClick={() => cart.remove(l.productId)}
                    data-testid={`remove-${l.productId}`}
                  >
                    Remove<span className="visually-hidden"> {name}</span>
                  </button>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <p>
        Total: <strong data-testid="cart-total">{formatMoney(estimate, currency)}</strong>
      </p>

      <fieldset disabled={busy}>
        <legend>Payment card (test cards: nothing real is charged)</legend>
        {(Object.entries(TEST_CARDS) as [TestCard, string][]).map(([id, label]) => (
          <label key={id} style={{ display: 'block' }}>
            <input
              type="radio"
              name="card"
              value={id}
              checked={card === id}
              onChange={() => setCard(id)}
              data-testid={`card-${id}`}
            />{' '}
            {label}
          </label>
        ))}
      </fieldset>

      {/* Never disabled while a request runs: a second click sends the same key again, and the server
          answers it with the first request's order. Correctness lives on the server, not in this button. */}
      <button
        type="button"
        data-testid="pay"
        disabled={!cart.ready}
        aria-busy={busy}
        onClick={() => checkout.submit({ items: cart.lines, paymentMethod: card })}
        aria-describedby="pay-status"
      >
        {busy
          ? 'Placing your order…'
          : checkout.status === 'failed' && checkout.failure?.kind === 'retryable'
            ? 'Try again'
            : 'Pay and place order'}
      </button>
      <p id="pay-status" role="status" aria-live="polite" className="muted" data-testid="pay-status">
        {checkout.status === 'offline' && 'You are offline. We will send your order as soon as the connection is back.'}
        {checkout.status === 'retrying' && `The shop did not answer; retrying safely (attempt ${checkout.attempt}).`}
        {checkout.status === 'sending' &&
          checkout.resumed &&
          'Picking up the order you were placing before the page reloaded…'}
      </p>

      {checkout.status === 'failed' && checkout.failure && (
        <div
          ref={alertRef}
          tabIndex={-1}
          role="alert"
          className="notice error"
          data-testid="checkout-error"
          data-error-code={checkout.failure.errorCode ?? ''}
        >
          <p>{failureText(checkout.failure)}</p>
          {checkout.failure.kind === 'reused' && (
            <button type="button" onClick={checkout.startFresh} data-testid="start-fresh">
              Start a fresh attempt
            </button>
          )}
        </div>
      )}
    </>
  );
}

/**
 * A checkout left pending for longer than the shop keeps its keys: sending its key again could be
 * taken for a new order, so nothing is sent. The customer decides, looking at their recent orders.
 */
function ExpiredIntent(props: {
  startedAt: number;
  items: { productId: string; quantity: number }[];
  names: Map<string, { name: string }>;
  onItWasPlaced: () => void;
  onOrderAgain: () => void;
}) {
  const trpc = useTRPC();
  const history = useQuery(trpc.orders.history.queryOptions());
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), []);
  const what = props.items
    .map((i) => `${i.quantity} × ${props.names.get(i.productId)?.name ?? i.productId}`)
    .join(', ');
  return (
    <section aria-labelledby="expired-heading" data-testid="expired-intent">
      <title>Is this your order? · Retry-safe coffee</title>
      <h1 id="expired-heading" ref={heading} tabIndex={-1}>
        Is this your order?
      </h1>
      <p>
        You started paying for <strong>{what}</strong> on {new Date(props.startedAt).toLocaleString('en-US')}, and we
        never heard back. That was too long ago for us to tell whether it went through, so we did not send it again.
        Your most recent orders are below: if one of them is this one, you are all set.
      </p>
      {history.isPending && <p>Loading your orders…</p>}
      {history.data && history.data.length === 0 && <p data-testid="no-recent-orders">You have no orders with us.</p>}
      {history.data && history.data.length > 0 && (
        <ul data-testid="recent-orders">
          {history.data.slice(0, 3).map((o) => (
            <li key={o.id}>
              <Link href={`/orders/${o.id}`}>{new Date(o.createdAt).toLocaleString('en-US')}</Link>:{' '}
              {o.items.map((i) => `${i.quantity} × ${i.name}`).join(', ')}, {formatMoney(o.totalCents, o.currency)} (
              {paymentWords(o.status).toLowerCase()})
            </li>
          ))}
        </ul>
      )}
      <p>
        <button type="button" onClick={props.onItWasPlaced} data-testid="expired-it-was-placed">
          Yes, it is one of these
        </button>{' '}
        <button type="button" className="secondary" onClick={props.onOrderAgain} data-testid="expired-order-again">
          No, place this order now
        </button>
      </p>
    </section>
  );
}
