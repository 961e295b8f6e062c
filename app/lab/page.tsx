'use client';
/**
 * The retry lab: each card tells what goes wrong, asks the learner to predict the outcome, runs the
 * scenario on this server (with every safeguard, or as its unsafe twin), and shows what happened,
 * live, with the verdict counted from the database and the payment provider.
 */
import { useQuery } from '@tanstack/react-query';
import { useTRPC } from '../components/trpc';
import { GLOSSARY_HREF, Legend } from './legend';
import { ScenarioCard } from './scenario-card';

export default function LabPage() {
  const trpc = useTRPC();
  const scenarios = useQuery(trpc.lab.scenarios.queryOptions());
  return (
    <>
      <title>The retry lab · Retry-safe coffee</title>
      <h1>The retry lab</h1>
      <p>
        Each card is something that goes wrong between a customer and this shop: a double-click, a lost answer, a crash.
        Predict what happens, then run it, with every safeguard or as its <em>unsafe twin</em>, which turns exactly one
        safeguard off. Each run uses customers the lab makes for itself; your own orders are never touched. The verdict
        is counted from the database and from the payment provider, never from what the page was told.
      </p>
      <p className="muted">
        Each card links to its chapter of the walkthrough, which explains the idea with the code and the test behind it;
        the <a href={GLOSSARY_HREF}>glossary</a> explains the words.
      </p>
      <Legend />
      {scenarios.isPending && <p>Loading the scenarios…</p>}
      {scenarios.isError && (
        <p role="alert" className="notice error">
          The lab is not available: {scenarios.error.message}
        </p>
      )}
      <ol className="lab-list">
        {scenarios.data?.map((s, i) => (
          <li key={s.id}>
            <ScenarioCard scenario={s} number={i + 1} />
          </li>
        ))}
      </ol>
    </>
  );
}
