'use client';
import Link from 'next/link';
import { useRouter } from 'next/navigation';
import { useMutation, useQuery } from '@tanstack/react-query';
import { useCart } from '../components/cart';
import { formatMoney } from '../components/money';
import { useTRPC } from '../components/trpc';

export default function CheckoutPage() {
  const trpc = useTRPC();
  const router = useRouter();
  const cart = useCart();
  const catalog = useQuery(trpc.catalog.list.queryOptions());
  const placeOrder = useMutation(
    trpc.checkout.placeOrder.mutationOptions({
      onSuccess: (order) => {
        cart.clear();
        router.push(`/orders/${order.id}`);
      },
    }),
  );

  const products = new Map(catalog.data?.map((p) => [p.id, p]));
  const currency = catalog.data?.[0]?.currency ?? 'USD';
  // Shown to the customer only; the server computes the total it charges from its own prices.
  const estimate = cart.lines.reduce((sum, l) => sum + (products.get(l.productId)?.priceCents ?? 0) * l.quantity, 0);

  if (cart.ready && cart.lines.length === 0) {
    return (
      <>
        <h1>Checkout</h1>
        <p data-testid="empty-cart">Your cart is empty. <Link href="/">Go shopping</Link>.</p>
      </>
    );
  }

  return (
    <>
      <h1>Checkout</h1>
      <table data-testid="cart">
        <thead><tr><th>Product</th><th>Quantity</th><th>Price</th><th /></tr></thead>
        <tbody>
          {cart.lines.map((l) => {
            const p = products.get(l.productId);
            return (
              <tr key={l.productId} data-testid={`cart-line-${l.productId}`}>
                <td>{p?.name ?? l.productId}</td>
                <td>
                  <label>
                    <span className="visually-hidden">Quantity of {p?.name ?? l.productId}</span>
                    <input
                      type="number" min={1} max={99} value={l.quantity}
                      data-testid={`qty-${l.productId}`}
                      onChange={(e) => cart.setQuantity(l.productId, Math.max(1, Math.min(99, Number(e.target.value) || 1)))}
                    />
                  </label>
                </td>
                <td>{p ? formatMoney(p.priceCents * l.quantity, p.currency) : '…'}</td>
                <td><button type="button" className="secondary" onClick={() => cart.remove(l.productId)}>Remove</button></td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <p>Total: <strong data-testid="cart-total">{formatMoney(estimate, currency)}</strong></p>
      <button
        type="button"
        data-testid="pay"
        disabled={placeOrder.isPending}
        onClick={() => placeOrder.mutate({ items: cart.lines })}
      >
        {placeOrder.isPending ? 'Placing your order…' : 'Place order'}
      </button>
      {placeOrder.isError && <p role="alert" className="notice error">{placeOrder.error.message}</p>}
    </>
  );
}
