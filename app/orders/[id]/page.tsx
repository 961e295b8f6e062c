'use client';
import { useQuery } from '@tanstack/react-query';
import Link from 'next/link';
import { useSearchParams } from 'next/navigation';
import { Suspense, use, useEffect, useRef } from 'react';
import { formatMoney } from '../../components/money';
import { paymentWords } from '../../components/order-words';
import { useTRPC } from '../../components/trpc';
import { RefundForm, RefundList } from './refunds';

export default function OrderConfirmationPage({ params }: { params: Promise<{ id: string }> }) {
  const { id } = use(params);
  return (
    <Suspense>
      <Confirmation id={id} />
    </Suspense>
  );
}

function Confirmation({ id }: { id: string }) {
  const trpc = useTRPC();
  const order = useQuery({
    ...trpc.orders.byId.queryOptions({ orderId: id }),
    // While the provider has not settled the payment (3-D Secure, a bank transfer) or a refund, look again every 2 s.
    refetchInterval: (q) =>
      q.state.data?.status === 'payment_processing' || q.state.data?.refunds.some((r) => r.status === 'pending')
        ? 2_000
        : false,
  });
  // Set by the checkout when the server answered from the stored result of an earlier request.
  const replayed = useSearchParams().get('replayed') === '1';
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    if (order.isSuccess) heading.current?.focus(); // the outcome gets the focus
  }, [order.isSuccess]);

  if (order.isPending) return <p>Loading your order…</p>;
  if (order.isError)
    return (
      <p role="alert" className="notice error">
        {order.error.message}
      </p>
    );
  const o = order.data;
  return (
    <>
      <title>Order placed · Retry-safe coffee</title>
      <h1 ref={heading} tabIndex={-1}>
        Thank you!
      </h1>
      {replayed && (
        <p className="notice info" data-testid="replay-notice">
          We found your earlier order; you were not charged twice.
        </p>
      )}
      <div className="notice ok" data-testid="confirmation">
        Order <strong data-testid="order-id">{o.id}</strong> is placed: {formatMoney(o.totalCents, o.currency)}
        {o.status === 'paid' ? ', paid by card' : ''}.
      </div>
      <p
        role="status"
        aria-live="polite"
        data-testid="payment-status"
        className={o.status === 'payment_failed' ? 'notice error' : 'muted'}
      >
        {o.status === 'payment_processing' &&
          'Your bank has not confirmed the payment yet. This page updates by itself as soon as it does.'}
        {o.status === 'payment_failed' &&
          'Your bank did not confirm the payment: nothing was charged. You can order again with another card.'}
      </p>
      <table>
        <caption className="visually-hidden">What you ordered</caption>
        <tbody>
          {o.items.map((i) => (
            <tr key={i.productId}>
              <td>{i.name}</td>
              <td>
                {i.quantity} × {formatMoney(i.unitPriceCents, o.currency)}
              </td>
              <td>{formatMoney(i.lineTotalCents, o.currency)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p data-testid="order-payment">Payment: {paymentWords(o.status)}</p>
      {o.refunds.length > 0 && <RefundList refunds={o.refunds} currency={o.currency} />}
      {o.status === 'paid' && (
        <RefundForm
          orderId={o.id}
          currency={o.currency}
          leftCents={o.totalCents - o.refundedCents}
          onAnswer={() => void order.refetch()}
        />
      )}
      <p>
        <Link href="/orders">See all your orders</Link> · <Link href="/">Keep shopping</Link>
      </p>
    </>
  );
}
