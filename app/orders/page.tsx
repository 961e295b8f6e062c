'use client';
import { useQuery } from '@tanstack/react-query';
import Link from 'next/link';
import { formatMoney } from '../components/money';
import { paymentWords, refundSummary } from '../components/order-words';
import { useTRPC } from '../components/trpc';

export default function OrderHistoryPage() {
  const trpc = useTRPC();
  const history = useQuery(trpc.orders.history.queryOptions());
  return (
    <>
      <title>Your orders · Retry-safe coffee</title>
      <h1>Your orders</h1>
      {history.isPending && <p>Loading your orders…</p>}
      {history.isError && (
        <p role="alert" className="notice error">
          Could not load your orders: {history.error.message}
        </p>
      )}
      {history.data?.length === 0 && <p data-testid="no-orders">You have not placed any orders yet.</p>}
      {history.data && history.data.length > 0 && (
        <table data-testid="order-history">
          <thead>
            <tr>
              <th scope="col">Order</th>
              <th scope="col">Placed</th>
              <th scope="col">Items</th>
              <th scope="col">Total</th>
              <th scope="col">Payment</th>
              <th scope="col">Refunds</th>
            </tr>
          </thead>
          <tbody>
            {history.data.map((o) => (
              <tr key={o.id} data-testid="order-row" data-order-id={o.id}>
                <td>
                  <Link href={`/orders/${o.id}`}>{o.id.slice(0, 8)}</Link>
                </td>
                <td>{new Date(o.createdAt).toLocaleString('en-US')}</td>
                <td>{o.items.map((i) => `${i.quantity} × ${i.name}`).join(', ')}</td>
                <td>{formatMoney(o.totalCents, o.currency)}</td>
                <td data-testid="order-payment">{paymentWords(o.status)}</td>
                <td data-testid="order-refunds">{refundSummary(o)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
