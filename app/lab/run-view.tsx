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
import { plural } from './legend';

/** What the learner predicted: a number per count, and `choice` for a question that is not a count. */
export interface Prediction {
  counts: Partial<Record<string, number>>;
  choice?: string;
}

/** One line of a run's timeline, as the server's `lab.run` answers it. */
type TimelineRow = inferRouterOutputs<AppRouter>['lab']['run']['timeline'][number];

interface Props {
  runId: string;
  variant: 'safe' | 'unsafe';
  /** The scenario's title: each run's regions are named after it, so no two share a name. */
  title: string;
  counts: string[];
  choice?: { label: string; options: { value: string; label: string }[] };
  prediction: Prediction;
  testId: string;
}

export function RunView({ runId, variant, title, counts, choice, prediction, testId }: Props) {
  const trpc = useTRPC();
  const run = useQuery({
    ...trpc.lab.run.queryOptions({ runId }),
    // Live while it runs; still once the verdict is in.
    refetchInterval: (q) => (q.state.data?.status === 'running' ? 300 : false),
  });
  const data = run.data;
  const verdict = data?.verdict;
  const which = variant === 'safe' ? 'with every safeguard' : 'unsafe twin';
  const region = (what: string) => `${what}: ${title} (${which})`;
  const optionLabel = (value: string | undefined) =>
    choice?.options.find((o) => o.value === value)?.label ?? (value === undefined ? 'nothing' : value);
  const predicted = counts.filter((c) => prediction.counts[c] !== undefined);

  return (
    <section
      className="lab-run"
      data-testid={testId}
      data-run-id={runId}
      data-variant={variant}
      data-status={data?.status ?? 'starting'}
      aria-label={region('Run')}
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
            {verdict.choice && (
              <p>
                {verdict.choice.actual === verdict.choice.expected ? '✓' : '✗'} {choice?.label}{' '}
                {optionLabel(verdict.choice.actual)}
                {verdict.choice.actual === verdict.choice.expected
                  ? ''
                  : ` (every safeguard gives: ${optionLabel(verdict.choice.expected)})`}
                .
              </p>
            )}
            {(predicted.length > 0 || prediction.choice !== undefined) && (
              <p data-testid={`${testId}-prediction`}>
                You predicted{' '}
                {[
                  ...predicted.map((c) => plural(prediction.counts[c]!, c)),
                  ...(prediction.choice !== undefined && choice ? [`"${optionLabel(prediction.choice)}"`] : []),
                ].join(', ')}
                ; the records hold{' '}
                {[
                  ...predicted.map((c) => plural(verdict.counts[c as keyof typeof verdict.counts] ?? 0, c)),
                  ...(prediction.choice !== undefined && verdict.choice
                    ? [`"${optionLabel(verdict.choice.actual)}"`]
                    : []),
                ].join(', ')}
                .{' '}
                {predicted.every((c) => prediction.counts[c] === verdict.counts[c as keyof typeof verdict.counts]) &&
                (prediction.choice === undefined || prediction.choice === verdict.choice?.actual)
                  ? 'Your prediction matches the records.'
                  : 'Your prediction differs from the records.'}
              </p>
            )}
          </div>
        ) : null}
      </div>

      <h4>Timeline</h4>
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a sideways-scrolling region must take keyboard focus */}
      <section className="scroll" tabIndex={0} aria-label={region('Timeline')}>
        <table data-testid={`${testId}-timeline`}>
          <thead>
            <tr>
              <th scope="col">ms</th>
              <th scope="col">Attempt</th>
              <th scope="col">Network</th>
              <th scope="col">Server&apos;s decision</th>
              <th scope="col">Answer</th>
              <th scope="col">Key row after</th>
              <th scope="col">Orders after</th>
              <th scope="col">Provider calls</th>
            </tr>
          </thead>
          <tbody>
            {data?.timeline.map((e: TimelineRow, i) =>
              e.kind === 'note' ? (
                // biome-ignore lint/suspicious/noArrayIndexKey: the timeline only grows at its end (place = id)
                <tr key={i} className="note">
                  <td data-label="ms">{e.t}</td>
                  <td colSpan={7}>
                    <em>{e.text}</em>
                  </td>
                </tr>
              ) : (
                // biome-ignore lint/suspicious/noArrayIndexKey: as above
                <tr key={i}>
                  <td data-label="ms">{e.t}</td>
                  <td data-label="Attempt">
                    #{e.attempt} {e.who} {e.procedure}
                    <br />
                    <span className="muted">key {e.key ?? 'none'}</span>
                  </td>
                  <td data-label="Network">{e.network}</td>
                  <td data-label="Server's decision">{e.decisions?.length ? e.decisions.join(', ') : '—'}</td>
                  <td data-label="Answer">
                    {e.answer ?? '—'}
                    {e.replayed ? ' (replayed)' : ''}
                  </td>
                  <td data-label="Key row after">
                    {e.keyAfter
                      ? `${e.keyAfter.state}, recovery point ${e.keyAfter.recoveryPoint}, ` +
                        `lease token ${e.keyAfter.leaseToken}`
                      : '—'}
                  </td>
                  <td data-label="Orders after">{e.ordersAfter ?? '—'}</td>
                  <td data-label="Provider calls">
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
      <section className="scroll" tabIndex={0} aria-label={region('Key rows')}>
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
            {data && data.keys.length === 0 && (
              <tr>
                <td colSpan={9}>No key rows for this run (nothing was sent with a key, or the key was dropped).</td>
              </tr>
            )}
            {data?.keys.map((k) => (
              <tr key={`${k.customer}-${k.procedure}-${k.key}`}>
                <td data-label="Customer">{k.customer}</td>
                <td data-label="Procedure">{k.procedure}</td>
                <td data-label="Key">{k.key}</td>
                <td data-label="State">{k.state}</td>
                <td data-label="Recovery point">{k.recoveryPoint}</td>
                <td data-label="Lease token">{k.leaseToken}</td>
                <td data-label="Lease until">
                  {k.lockedUntil ? new Date(k.lockedUntil).toLocaleTimeString('en-US') : '—'}
                </td>
                <td data-label="Fingerprint">{k.fingerprint}…</td>
                <td data-label="Expires">
                  {new Date(k.expiresAt).toLocaleString('en-US', { dateStyle: 'short', timeStyle: 'short' })}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>

      <h4>The provider&apos;s ledger</h4>
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a sideways-scrolling region must take keyboard focus */}
      <section className="scroll" tabIndex={0} aria-label={region("The provider's ledger")}>
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
                <td data-label="Customer">{p.customer}</td>
                <td data-label="Payment intent">{p.id}</td>
                <td data-label="Amount (cents)">{p.amount}</td>
                <td data-label="Status">{p.status}</td>
                <td data-label="Order">{p.order}</td>
                <td data-label="Key row">{p.keyRow}</td>
              </tr>
            ))}
            {data && data.ledger.length === 0 && (
              <tr>
                <td colSpan={6} data-testid={`${testId}-ledger-empty`}>
                  No payment at the provider for this run.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </section>
    </section>
  );
}
