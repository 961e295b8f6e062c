'use client';
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { useCart } from './components/cart';
import { formatMoney } from './components/money';
import { useTRPC } from './components/trpc';

export default function ShopPage() {
  const trpc = useTRPC();
  const catalog = useQuery(trpc.catalog.list.queryOptions());
  const cart = useCart();
  // Said to screen readers when the cart changes: a silent badge in the header is not enough.
  const [announcement, setAnnouncement] = useState('');

  return (
    <>
      <title>Shop · Retry-safe coffee</title>
      <h1>Shop</h1>
      <p role="status" aria-live="polite" className="visually-hidden" data-testid="cart-announcement">
        {announcement}
      </p>
      {catalog.isPending && <p>Loading the catalog…</p>}
      {catalog.isError && (
        <p role="alert" className="notice error">
          Could not load the catalog: {catalog.error.message}
        </p>
      )}
      <ul className="grid" data-testid="catalog">
        {catalog.data?.map((p) => {
          const inCart = cart.lines.find((l) => l.productId === p.id)?.quantity ?? 0;
          return (
            <li key={p.id} className="card" data-testid={`product-${p.id}`}>
              <h2>{p.name}</h2>
              <p className="muted">{p.description}</p>
              <p>
                <strong>{formatMoney(p.priceCents, p.currency)}</strong>
              </p>
              <button
                type="button"
                onClick={() => {
                  cart.add(p.id);
                  setAnnouncement(`${p.name} added: ${inCart + 1} in your cart`);
                }}
                disabled={p.soldOut}
                data-testid={`add-${p.id}`}
                // The name said aloud starts with the words on the button (WCAG 2.5.3, label in name), so a
                // voice user who says "click Add to cart" reaches it; the product tells the buttons apart.
                aria-label={`${p.soldOut ? 'Sold out' : 'Add to cart'}: ${p.name}`}
              >
                {p.soldOut ? 'Sold out' : 'Add to cart'}
              </button>
              {inCart > 0 && (
                <span className="muted" data-testid={`in-cart-${p.id}`}>
                  {' '}
                  {inCart} in cart
                </span>
              )}
            </li>
          );
        })}
      </ul>
    </>
  );
}
