/**
 * The lab's scenarios, each played with every safeguard and as its unsafe twin, through the same
 * runner the /lab page uses: the safe run must end with the promised counts, and every twin must
 * show its damage (a negative control for each safeguard).
 */
import { describe, expect, it } from 'vitest';
import { getDatabase } from '../db';
import { handleApiRequest, handleStripeWebhook } from '../http';
import { readRun, startRun } from './runs';
import { scenarios } from './scenarios';

const { db } = getDatabase();

async function play(scenario: string, variant: 'safe' | 'unsafe') {
  const runId = await startRun(db, scenario, variant, { api: handleApiRequest, webhook: handleStripeWebhook });
  for (let i = 0; i < 400; i++) {
    const run = await readRun(db, runId);
    if (run && run.status !== 'running') return run;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`run ${runId} of ${scenario} did not finish in 40 s`);
}

describe('the retry lab', () => {
  it.each(scenarios.map((s) => [s.id, s]))(
    '%s: with every safeguard, the records hold exactly what was promised',
    async (_id, scenario) => {
      const run = await play(scenario.id, 'safe');
      expect(run.status, JSON.stringify(run.timeline)).toBe('done');
      expect(run.verdict!.counts).toEqual(Object.fromEntries(scenario.counts.map((c) => [c, scenario.expected[c]])));
      if (scenario.choice) expect(run.verdict!.choice?.actual).toBe(scenario.expected.choice);
      expect(run.verdict!.checks.every((c) => c.ok)).toBe(true);
      expect(run.verdict!.ok).toBe(true);
      expect(run.timeline.length).toBeGreaterThan(1);
    },
  );

  it.each(scenarios.map((s) => [s.id, s]))('%s: its unsafe twin shows the damage', async (_id, scenario) => {
    const run = await play(scenario.id, 'unsafe');
    expect(run.status, JSON.stringify(run.timeline)).toBe('done');
    expect(run.verdict!.ok).toBe(false);
    // The damage is in a number or in the choice, not only in a check: a learner's prediction can tell
    // safe from unsafe.
    const { choice, ...expected } = scenario.expected;
    const differs =
      scenario.counts.some((c) => run.verdict!.counts[c] !== expected[c]) ||
      (scenario.choice !== undefined && run.verdict!.choice?.actual !== choice);
    expect(differs, JSON.stringify(run.verdict)).toBe(true);
  });

  it("a twin refuses to run for a customer that is not the lab's own", async () => {
    const { customerCookie, http } = await import('../testing');
    const res = await http('POST', 'lab.placeOrderWithoutKey', {
      headers: { cookie: customerCookie(crypto.randomUUID()) },
      body: { items: [{ productId: 'travel-mug', quantity: 1 }] },
    });
    expect(res.status).toBe(403);
    expect(res.body.error.data.errorCode).toBe('LAB_CUSTOMER_REQUIRED');
  });
});
