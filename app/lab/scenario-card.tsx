'use client';
/**
 * One scenario, asked before it is told: the story and the question, the prediction (a number for
 * each count, a choice where the answer is not a count), the two Run buttons, and the run it shows.
 * The safeguard and what the unsafe twin takes away appear once the learner has run it, or asks to
 * see them.
 */
import { useMutation } from '@tanstack/react-query';
import type { inferRouterOutputs } from '@trpc/server';
import { useId, useState } from 'react';
import type { AppRouter } from '@/server/routers/_app';
import { useTRPC } from '../components/trpc';
import { COUNT_LABELS, chapterHref, chapterName } from './legend';
import { type Prediction, RunView } from './run-view';

type ScenarioCardData = inferRouterOutputs<AppRouter>['lab']['scenarios'][number];

export function ScenarioCard({ scenario, number }: { scenario: ScenarioCardData; number: number }) {
  const trpc = useTRPC();
  const id = useId();
  const [prediction, setPrediction] = useState<Prediction>({ counts: {} });
  const [run, setRun] = useState<{ runId: string; variant: 'safe' | 'unsafe' } | null>(null);
  const [asked, setAsked] = useState(false);
  const start = useMutation(trpc.lab.start.mutationOptions());
  const told = asked || run !== null;

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
            {COUNT_LABELS[c]?.label ?? c}{' '}
            <input
              type="number"
              min={0}
              max={50}
              value={prediction.counts[c] ?? ''}
              onChange={(e) =>
                setPrediction({
                  ...prediction,
                  counts: { ...prediction.counts, [c]: e.target.value === '' ? undefined : Number(e.target.value) },
                })
              }
              data-testid={`predict-${scenario.id}-${c}`}
            />
          </label>
        ))}
        {scenario.choice && (
          <fieldset className="choice">
            <legend>{scenario.choice.label}</legend>
            {scenario.choice.options.map((o) => (
              <label key={o.value} className="choice-option">
                <input
                  type="radio"
                  name={`${id}-choice`}
                  value={o.value}
                  checked={prediction.choice === o.value}
                  onChange={() => setPrediction({ ...prediction, choice: o.value })}
                  data-testid={`predict-${scenario.id}-choice-${o.value || 'none'}`}
                />{' '}
                {o.label}
              </label>
            ))}
          </fieldset>
        )}
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
        </button>{' '}
        {!told && (
          <button type="button" className="link" onClick={() => setAsked(true)} data-testid={`reveal-${scenario.id}`}>
            Show the answer without running it
          </button>
        )}
      </p>
      {told && (
        <div className="explain" data-testid={`explain-${scenario.id}`}>
          <p>
            <strong>The safeguard:</strong> {scenario.safeguard}
          </p>
          <p>
            <strong>The unsafe twin takes away one safeguard, {scenario.removes}:</strong> {scenario.twin}
          </p>
        </div>
      )}
      <p className="muted">
        Read more: <a href={chapterHref(scenario.chapter)}>{chapterName(scenario.chapter)}</a> in the walkthrough.
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
          title={scenario.title}
          counts={scenario.counts}
          choice={scenario.choice ?? undefined}
          prediction={prediction}
          testId={`run-${scenario.id}`}
        />
      )}
    </article>
  );
}
