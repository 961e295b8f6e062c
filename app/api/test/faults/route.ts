/**
 * Test-only: plans faults in this server process (server/idempotency/faults.ts), for tests that drive
 * a real server from outside. Answers 404 unless ENABLE_TEST_HOOKS=1, which production refuses.
 *
 *   POST   /api/test/faults   {"scope": "<customer id>", "boundary": "after:charge_attempted", "action": "kill"}
 *   DELETE /api/test/faults   drops every plan
 */
import { z } from 'zod';
import { getEnv } from '@/server/env.js';
import { clearFaults, FAULT_ACTIONS, planFault } from '@/server/idempotency';

const plan = z.strictObject({
  scope: z.string().min(1),
  procedure: z.string().optional(),
  boundary: z.string().min(1),
  action: z.enum(FAULT_ACTIONS),
  ms: z.number().int().min(0).optional(),
  times: z.number().int().min(1).optional(),
});

const disabled = () => new Response('Not found', { status: 404 });

export async function POST(req: Request): Promise<Response> {
  if (!getEnv().ENABLE_TEST_HOOKS) return disabled();
  const parsed = plan.safeParse(await req.json().catch(() => null));
  if (!parsed.success) return Response.json({ error: parsed.error.issues }, { status: 400 });
  planFault(parsed.data);
  return Response.json({ planned: parsed.data });
}

export async function DELETE(): Promise<Response> {
  if (!getEnv().ENABLE_TEST_HOOKS) return disabled();
  clearFaults();
  return Response.json({ cleared: true });
}
