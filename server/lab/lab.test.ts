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
import { LAB_ATTEMPT_TIMEOUT_MS } from './session';

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

  it('time is told as it passed: rows in the order they started, a wait for no answer really waited', async () => {
    const run = await play('crash-before-record', 'unsafe');
    const starts = run.timeline.map((e) => e.t);
    expect(starts).toEqual([...starts].sort((a, b) => a - b));
    const [first, retry] = run.timeline.filter((e) => e.kind === 'attempt');
    expect(retry!.t - first!.t).toBeGreaterThanOrEqual(LAB_ATTEMPT_TIMEOUT_MS);
    // the twin's rows say what the server did, and the first order shows though its answer never came
    expect(first!.decisions).toContain('claimed (committed alone)');
    expect(first!.ordersAfter).toBe(1);
    expect(retry!.decisions).toContain('found the key claimed with no answer: ran it again');
    // a wait the lab does not really make says it is fast-forwarded
    const killed = await play('killed-mid-payment', 'safe');
    const passing = killed.timeline.filter((e) => e.kind === 'note' && / pass/.test(e.text ?? ''));
    expect(passing.length).toBeGreaterThan(0);
    for (const note of passing) expect(note.text).toContain('fast-forwarded');
  });

  it('every attempt of every twin says what the server did', async () => {
    for (const id of ['double-click', 'storm-of-20', 'memory-keys-behind-balancer', 'two-customers']) {
      const run = await play(id, 'unsafe');
      for (const e of run.timeline.filter((x) => x.kind === 'attempt'))
        expect(e.decisions?.length, `${id} #${e.attempt}: ${e.answer}`).toBeGreaterThan(0);
    }
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
