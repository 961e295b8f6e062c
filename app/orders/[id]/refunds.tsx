'use client';
/**
 * The order page's refunds: the list, each with its state as the provider settles it, and the form
 * that asks for one. A refund is an intent like a checkout (app/components/use-idempotent-mutation.ts):
 * its own key, kept in this tab's sessionStorage per order, sent again by a double-click, a retry or a
 * reload, and ended by a final answer.
 */
import { useEffect, useRef, useState } from 'react';
import { formatMoney } from '../../components/money';
import { REFUND_WORDS } from '../../components/order-words';
import { useTRPCClient } from '../../components/trpc';
import { serverRetention, takeReplayed } from '../../components/trpc-links';
import { type Classified, useIdempotentMutation } from '../../components/use-idempotent-mutation';

interface Refund {
  id: string;
  amountCents: number;
  status: 'pending' | 'succeeded' | 'failed';
  createdAt: string;
}

export function RefundList({ refunds, currency }: { refunds: Refund[]; currency: string }) {
  const pending = refunds.some((r) => r.status === 'pending');
  return (
    <section aria-labelledby="refunds-heading">
      <h2 id="refunds-heading">Refunds</h2>
      <table data-testid="refunds">
        <thead>
          <tr>
            <th scope="col">Asked for</th>
            <th scope="col">Amount</th>
            <th scope="col">State</th>
          </tr>
        </thead>
        <tbody>
          {refunds.map((r) => (
            <tr key={r.id} data-testid="refund-row" data-status={r.status}>
              <td>{new Date(r.createdAt).toLocaleString('en-US')}</td>
              <td>{formatMoney(r.amountCents, currency)}</td>
              <td>{REFUND_WORDS[r.status]}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p role="status" aria-live="polite" className="muted" data-testid="refunds-status">
        {pending &&
          'The payment provider has not confirmed every refund yet. This page updates by itself when it does.'}
      </p>
    </section>
  );
}

interface RefundInput {
  orderId: string;
  amountCents: number;
}

/** Dollars as typed ("5", "5.5", "5.50") into whole cents, or null when it is not an amount. */
function parseCents(text: string): number | null {
  const m = /^\s*(\d{1,7})(?:\.(\d{1,2}))?\s*$/.exec(text);
  if (!m) return null;
  const cents = Number(m[1]) * 100 + Number((m[2] ?? '').padEnd(2, '0'));
  return cents > 0 ? cents : null;
}

/** What the customer reads when a refund did not go through, and what to do next. */
function failureText(f: Classified, left: string): string {
  if (f.kind === 'retryable')
    return (
      "We could not reach the shop, so we don't know yet whether your refund went through. Pressing “Try again” " +
      'is safe: it continues the same request and cannot refund twice.'
    );
  if (f.kind === 'reused') return 'This refund request was already used for another amount. Ask for the refund again.';
  switch (f.errorCode) {
    case 'REFUND_EXCEEDS_PAYMENT':
      return `That is more than is left to refund on this order: at most ${left} can still be refunded.`;
    case 'REFUND_REFUSED_BY_PROVIDER':
      return (
        'The payment provider refused this refund, so nothing was refunded. You can ask again later, or contact ' +
        'the shop.'
      );
    default:
      return f.message;
  }
}

/** What the customer reads once the shop answered the refund. */
function doneText(done: { amountCents: number; status: Refund['status']; replayed: boolean }, currency: string) {
  const amount = formatMoney(done.amountCents, currency);
  const outcome = {
    succeeded: `${amount} refunded to your card.`,
    pending: `The payment provider accepted the refund of ${amount}; it is pending until the bank confirms it.`,
    failed: `The refund of ${amount} was refused: nothing was refunded.`,
  }[done.status];
  return done.replayed ? `We found your earlier refund request; nothing was refunded twice. ${outcome}` : outcome;
}

export function RefundForm(props: {
  orderId: string;
  currency: string;
  /** What may still be refunded, as the server last said. */
  leftCents: number;
  /** Called when the server answered, so the page reads the order and its refunds again. */
  onAnswer: () => void;
}) {
  const client = useTRPCClient();
  const [choice, setChoice] = useState<'full' | 'part'>('full');
  const [part, setPart] = useState('');
  const [invalid, setInvalid] = useState(false);
  const [done, setDone] = useState<{ amountCents: number; status: Refund['status']; replayed: boolean } | null>(null);
  const alertRef = useRef<HTMLDivElement>(null);
  const doneRef = useRef<HTMLDivElement>(null);
  const onAnswer = useRef(props.onAnswer);
  onAnswer.current = props.onAnswer;

  const refund = useIdempotentMutation({
    name: `refund:${props.orderId}`, // one slot per order: a refund of another order is another intent
    send: async (input: RefundInput, key, signal) => {
      const data = await client.orders.refund.mutate(input, { context: { idempotencyKey: key }, signal });
      return { data, replayed: takeReplayed(key) };
    },
    onSuccess: (data, { replayed }) => {
      setDone({ amountCents: data.amountCents, status: data.status, replayed });
      onAnswer.current();
    },
    retention: serverRetention,
  });

  useEffect(() => {
    if (refund.status === 'failed') {
      onAnswer.current(); // what is left, and a refused refund in the list, as the server has them now
      alertRef.current?.focus(); // the outcome gets the focus
    }
    if (refund.status === 'succeeded') doneRef.current?.focus();
  }, [refund.status]);

  const busy = refund.status === 'sending' || refund.status === 'retrying' || refund.status === 'offline';
  const left = formatMoney(props.leftCents, props.currency);

  const submit = () => {
    // A refund still unfinished (a second click, "Try again", a page reloaded mid-request) is sent
    // again as it was asked, so with its key, whatever the amount left on the page says by now.
    const unfinished = refund.unfinishedInput();
    if (unfinished) return refund.submit(unfinished);
    // The most that may be refunded is the server's to say (another tab may have refunded meanwhile):
    // the form checks only that the amount is one.
    const amountCents = choice === 'full' ? props.leftCents : parseCents(part);
    setInvalid(amountCents === null);
    if (amountCents !== null) refund.submit({ orderId: props.orderId, amountCents });
  };
  /** The customer changed the amount: whatever was asked before and not answered, this is a new intent. */
  const edited = () => {
    if (refund.unfinishedInput()) refund.startFresh();
    setInvalid(false);
  };

  if (refund.status === 'succeeded' && done) {
    return (
      <div ref={doneRef} tabIndex={-1} className="notice ok" data-testid="refund-done">
        <p>{doneText(done, props.currency)}</p>
        {props.leftCents > 0 && (
          <button
            type="button"
            className="secondary"
            data-testid="refund-again"
            onClick={() => {
              setDone(null);
              setChoice('full');
              setPart('');
              refund.startFresh();
            }}
          >
            Refund more
          </button>
        )}
      </div>
    );
  }

  if (refund.status === 'expired' && refund.expired) {
    const old = refund.expired;
    return (
      <div className="notice info" data-testid="refund-expired">
        <p>
          You asked for a refund of {formatMoney(old.input.amountCents, props.currency)} on{' '}
          {new Date(old.createdAt).toLocaleString('en-US')} and we never heard back. That was too long ago for us to
          tell whether it went through, so it was not sent again. If it is in the list above, you are all set.
        </p>
        <button type="button" className="secondary" onClick={refund.startFresh}>
          It is in the list
        </button>{' '}
        <button type="button" onClick={refund.orderAgain}>
          Ask for it now
        </button>
      </div>
    );
  }

  if (props.leftCents <= 0 && refund.status !== 'failed' && !busy) return null;

  return (
    <section aria-labelledby="refund-heading">
      <h2 id="refund-heading">Ask for a refund</h2>
      <fieldset disabled={busy}>
        <legend>How much? {left} can still be refunded.</legend>
        <label style={{ display: 'block' }}>
          <input
            type="radio"
            name="refund-amount"
            checked={choice === 'full'}
            onChange={() => {
              setChoice('full');
              edited();
            }}
            data-testid="refund-full"
          />{' '}
          All of it ({left})
        </label>
        <label style={{ display: 'block' }}>
          <input
            type="radio"
            name="refund-amount"
            checked={choice === 'part'}
            onChange={() => {
              setChoice('part');
              edited();
            }}
            data-testid="refund-part"
          />{' '}
          Part of it
        </label>
        {choice === 'part' && (
          <label style={{ display: 'block' }}>
            Amount in dollars{' '}
            <input
              type="text"
              inputMode="decimal"
              value={part}
              onChange={(e) => {
                setPart(e.target.value);
                edited();
              }}
              aria-invalid={invalid}
              aria-describedby={invalid ? 'refund-amount-problem' : undefined}
              data-testid="refund-amount"
            />
          </label>
        )}
        {invalid && (
          <p id="refund-amount-problem" className="notice error" data-testid="refund-amount-problem">
            Enter an amount in dollars, like 5.00.
          </p>
        )}
      </fieldset>
      {/* Never disabled while a request runs, like the pay button: a second click sends the same key. */}
      <button type="button" data-testid="refund" aria-busy={busy} aria-describedby="refund-status" onClick={submit}>
        {busy
          ? 'Refunding…'
          : refund.status === 'failed' && refund.failure?.kind === 'retryable'
            ? 'Try again'
            : 'Refund'}
      </button>
      <p id="refund-status" role="status" aria-live="polite" className="muted" data-testid="refund-status">
        {refund.status === 'offline' && 'You are offline. We will send the refund as soon as the connection is back.'}
        {refund.status === 'retrying' && `The shop did not answer; retrying safely (attempt ${refund.attempt}).`}
        {refund.status === 'sending' &&
          refund.resumed &&
          'Picking up the refund you asked for before the page reloaded…'}
      </p>
      {refund.status === 'failed' && refund.failure && (
        <div
          ref={alertRef}
          tabIndex={-1}
          role="alert"
          className="notice error"
          data-testid="refund-error"
          data-error-code={refund.failure.errorCode ?? ''}
        >
          {failureText(refund.failure, left)}
        </div>
      )}
    </section>
  );
}
