'use client';
import { useQuery } from '@tanstack/react-query';
import { useCart } from './components/cart';
import { formatMoney } from './components/money';
import { useTRPC } from './components/trpc';

export default function ShopPage() {
  const trpc = useTRPC();
  const catalog = useQuery(trpc.catalog.list.queryOptions());
  const cart = useCart();

  return (
    <>
      <h1>Shop</h1>
      {catalog.isPending && <p>Loading the catalog…</p>}
      {catalog.isError && <p role="alert" className="notice error">Could not load the catalog: {catalog.error.message}</p>}
      <ul className="grid" data-testid="catalog">
        {catalog.data?.map((p) => {
          const inCart = cart.lines.find((l) => l.productId === p.id)?.quantity ?? 0;
          return (
            <li key={p.id} className="card" data-testid={`product-${p.id}`}>
              <h2>{p.name}</h2>
              <p className="muted">{p.description}</p>
              <p><strong>{formatMoney(p.priceCents, p.currency)}</strong></p>
              <button type="button" onClick={() => cart.add(p.id)} disabled={p.soldOut} data-testid={`add-${p.id}`} aria-label={`Add ${p.name} to cart`}>
                {p.soldOut ? 'Sold out' : 'Add to cart'}
              </button>
              {inCart > 0 && <span className="muted" data-testid={`in-cart-${p.id}`}> {inCart} in cart</span>}
            </li>
          );
        })}
      </ul>
    </>
  );
}
