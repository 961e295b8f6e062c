'use client';
/**
 * A lab run as it happens: the timeline of attempts (what the network did, what the server decided,
 * the key row after it, what the provider received), the key rows and the provider's ledger of the
 * run's customers, and the verdict, counted from the records.
 */
import { useQuery } from '@tanstack/react-query';
import type { inferRouterOutputs } from '@trpc/server';
import type { AppRouter } from '@/server/routers/_app';
import { useTRPC } from '../components/trpc';

export type Prediction = Partial<Record<string, number>>;

/** One line of a run's timeline, as the server's `lab.run` answers it. */
type TimelineRow = inferRouterOutputs<AppRouter>['lab']['run']['timeline'][number];

const LABELS: Record<string, string> = { orders: 'order', charges: 'charge', quantity: 'mug' };
const plural = (n: number, what: string) =>
  what === 'refunded' ? `$${n} refunded` : `${n} ${LABELS[what] ?? what}${n === 1 ? '' : 's'}`;

interface Props {
  runId: string;
  variant: 'safe' | 'unsafe';
  counts: string[];
  prediction: Prediction;
  testId: string;
}

export function RunView({ runId, variant, counts, prediction, testId }: Props) {
  const trpc = useTRPC();
  const run = useQuery({
    ...trpc.lab.run.queryOptions({ runId }),
    // Live while it runs; still once the verdict is in.
    refetchInterval: (q) => (q.state.data?.status === 'running' ? 300 : false),
  });
  const data = run.data;
  const verdict = data?.verdict;

  return (
    <section
      className="lab-run"
      data-testid={testId}
      data-run-id={runId}
      data-variant={variant}
      data-status={data?.status ?? 'starting'}
      aria-label={`Run (${variant === 'safe' ? 'with every safeguard' : 'the unsafe twin'})`}
    >
      <h3>{variant === 'safe' ? 'Run with every safeguard' : 'Run of the unsafe twin'}</h3>
      <div
        role="status"
        aria-live="polite"
        data-testid={`${testId}-verdict`}
        data-ok={verdict ? String(verdict.ok) : ''}
      >
        {!data || data.status === 'running' ? (
          <p className="muted">Running…</p>
        ) : data.status === 'failed' ? (
          <p className="notice error">The run stopped before its end: see the last line of the timeline.</p>
        ) : verdict ? (
          <div className={`notice ${verdict.ok ? 'ok' : 'error'}`}>
            <p>
              <strong>{verdict.ok ? 'As it should be: ' : 'Damage: '}</strong>
              {counts
                .map((c) => {
                  const got = verdict.counts[c as keyof typeof verdict.counts] ?? 0;
                  const want = verdict.expected[c as keyof typeof verdict.expected] ?? 0;
                  return `${plural(got, c)}${got === want ? '' : ` (expected ${want})`}`;
                })
                .join(', ')}
              .
            </p>
            {verdict.checks.map((check) => (
              <p key={check.label}>
                {check.ok ? '✓' : '✗'} {check.label}: {check.detail}
              </p>
            ))}
            {counts.some((c) => prediction[c] !== undefined) && (
              <p data-testid={`${testId}-prediction`}>
                You predicted{' '}
                {counts
                  .filter((c) => prediction[c] !== undefined)
                  .map((c) => plural(prediction[c]!, c))
                  .join(', ')}
                ; the records hold{' '}
                {counts.map((c) => plural(verdict.counts[c as keyof typeof verdict.counts] ?? 0, c)).join(', ')}.
              </p>
            )}
          </div>
        ) : null}
      </div>

      <h4>Timeline</h4>
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a sideways-scrolling region must take keyboard focus */}
      <section className="scroll" tabIndex={0} aria-label="Timeline">
        <table data-testid={`${testId}-timeline`}>
          <thead>
            <tr>
              <th scope="col">ms</th>
              <th scope="col">Attempt</th>
              <th scope="col">Network</th>
              <th scope="col">Server&apos;s decision</th>
              <th scope="col">Answer</th>
              <th scope="col">Key row after</th>
              <th scope="col">Provider calls</th>
            </tr>
          </thead>
          <tbody>
            {data?.timeline.map((e: TimelineRow, i) =>
              e.kind === 'note' ? (
                // biome-ignore lint/suspicious/noArrayIndexKey: the timeline only grows at its end (place = id)
                <tr key={i} className="note">
                  <td>{e.t}</td>
                  <td colSpan={6}>
                    <em>{e.text}</em>
                  </td>
                </tr>
              ) : (
                // biome-ignore lint/suspicious/noArrayIndexKey: as above
                <tr key={i}>
                  <td>{e.t}</td>
                  <td>
                    #{e.attempt} {e.who} {e.procedure}
                    <br />
                    <span className="muted">key {e.key ?? 'none'}</span>
                  </td>
                  <td>{e.network}</td>
                  <td>{e.decisions?.length ? e.decisions.join(', ') : '—'}</td>
                  <td>
                    {e.answer ?? '—'}
                    {e.replayed ? ' (replayed)' : ''}
                  </td>
                  <td>
                    {e.keyAfter
                      ? `${e.keyAfter.state}, ${e.keyAfter.recoveryPoint}, token ${e.keyAfter.leaseToken}`
                      : '—'}
                  </td>
                  <td>
                    {e.provider?.length
                      ? e.provider.map((p, j) => (
                          // biome-ignore lint/suspicious/noArrayIndexKey: one attempt's calls, in the order made
                          <span key={j}>
                            {p.path.replace('/v1/', '')} key {p.key ?? 'none'}: {p.status ?? 'no answer'}
                            {p.replayed ? ' (replayed by the provider)' : ''}
                            <br />
                          </span>
                        ))
                      : '—'}
                  </td>
                </tr>
              ),
            )}
          </tbody>
        </table>
      </section>

      <h4>Key rows</h4>
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a sideways-scrolling region must take keyboard focus */}
      <section className="scroll" tabIndex={0} aria-label="Key rows">
        <table data-testid={`${testId}-keys`}>
          <thead>
            <tr>
              <th scope="col">Customer</th>
              <th scope="col">Procedure</th>
              <th scope="col">Key</th>
              <th scope="col">State</th>
              <th scope="col">Recovery point</th>
              <th scope="col">Lease token</th>
              <th scope="col">Lease until</th>
              <th scope="col">Fingerprint</th>
              <th scope="col">Expires</th>
            </tr>
          </thead>
          <tbody>
            {data?.keys.map((k) => (
              <tr key={`${k.customer}-${k.procedure}-${k.key}`}>
                <td>{k.customer}</td>
                <td>{k.procedure}</td>
                <td>{k.key}</td>
                <td>{k.state}</td>
                <td>{k.recoveryPoint}</td>
                <td>{k.leaseToken}</td>
                <td>{k.lockedUntil ? new Date(k.lockedUntil).toLocaleTimeString('en-US') : '—'}</td>
                <td>{k.fingerprint}…</td>
                <td>{new Date(k.expiresAt).toLocaleString('en-US')}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>

      <h4>The provider&apos;s ledger</h4>
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a sideways-scrolling region must take keyboard focus */}
      <section className="scroll" tabIndex={0} aria-label="The provider's ledger">
        <table data-testid={`${testId}-ledger`}>
          <thead>
            <tr>
              <th scope="col">Customer</th>
              <th scope="col">Payment intent</th>
              <th scope="col">Amount (cents)</th>
              <th scope="col">Status</th>
              <th scope="col">Order</th>
              <th scope="col">Key row</th>
            </tr>
          </thead>
          <tbody>
            {data?.ledger.map((p) => (
              <tr key={p.id}>
                <td>{p.customer}</td>
                <td>{p.id}</td>
                <td>{p.amount}</td>
                <td>{p.status}</td>
                <td>{p.order}</td>
                <td>{p.keyRow}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
    </section>
  );
}
