'use client';
/** One scenario: the story, the prediction, the two Run buttons, and the run it shows. */
import { useMutation } from '@tanstack/react-query';
import type { inferRouterOutputs } from '@trpc/server';
import { useId, useState } from 'react';
import type { AppRouter } from '@/server/routers/_app';
import { useTRPC } from '../components/trpc';
import { type Prediction, RunView } from './run-view';

type ScenarioCardData = inferRouterOutputs<AppRouter>['lab']['scenarios'][number];

const LABELS: Record<string, string> = {
  orders: 'Orders',
  charges: 'Charges',
  quantity: 'Mugs in the cart',
  refunded: 'Dollars refunded',
};

export function ScenarioCard({ scenario, number }: { scenario: ScenarioCardData; number: number }) {
  const trpc = useTRPC();
  const id = useId();
  const [prediction, setPrediction] = useState<Prediction>({});
  const [run, setRun] = useState<{ runId: string; variant: 'safe' | 'unsafe' } | null>(null);
  const start = useMutation(trpc.lab.start.mutationOptions());

  const go = (variant: 'safe' | 'unsafe') =>
    start.mutate({ scenario: scenario.id, variant }, { onSuccess: ({ runId }) => setRun({ runId, variant }) });

  return (
    <article className="card lab-card" data-testid={`scenario-${scenario.id}`} aria-labelledby={`${id}-title`}>
      <h2 id={`${id}-title`}>
        {number}. {scenario.title}
      </h2>
      <p>{scenario.story}</p>
      <fieldset>
        <legend>Predict first: {scenario.question}</legend>
        {scenario.counts.map((c) => (
          <label key={c} className="prediction">
            {LABELS[c]}{' '}
            <input
              type="number"
              min={0}
              max={50}
              value={prediction[c] ?? ''}
              onChange={(e) =>
                setPrediction({ ...prediction, [c]: e.target.value === '' ? undefined : Number(e.target.value) })
              }
              data-testid={`predict-${scenario.id}-${c}`}
            />
          </label>
        ))}
      </fieldset>
      <p className="lab-buttons">
        <button
          type="button"
          onClick={() => go('safe')}
          disabled={!scenario.available || start.isPending}
          data-testid={`run-safe-${scenario.id}`}
        >
          Run it
        </button>{' '}
        <button
          type="button"
          className="secondary"
          onClick={() => go('unsafe')}
          disabled={!scenario.available || start.isPending}
          data-testid={`run-unsafe-${scenario.id}`}
        >
          Run the unsafe twin
        </button>
      </p>
      <p className="muted">
        <strong>Safeguard:</strong> {scenario.safeguard}
        <br />
        <strong>Unsafe twin:</strong> {scenario.twin}
      </p>
      {!scenario.available && (
        <p className="muted">This scenario needs the payment simulator (it scripts the provider&apos;s faults).</p>
      )}
      {start.isError && (
        <p role="alert" className="notice error">
          {start.error.message}
        </p>
      )}
      {run && (
        <RunView
          key={run.runId}
          runId={run.runId}
          variant={run.variant}
          counts={scenario.counts}
          prediction={prediction}
          testId={`run-${scenario.id}`}
        />
      )}
    </article>
  );
}
