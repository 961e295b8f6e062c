/**
 * The jobs route (app/api/jobs/route.ts): a scheduler outside the process runs every job once per
 * call (server/jobs/run.ts). GET, as Vercel Cron calls it, and POST, as most other schedulers do.
 *
 * Guarded by `Authorization: Bearer <CRON_SECRET>`, compared in constant time. Outside production,
 * without a CRON_SECRET, the route is open (as the metrics are); in production it answers 401 to every
 * call until CRON_SECRET is set, so a forgotten variable never leaves the jobs callable by anyone.
 */
import { getDatabase } from '../db';
import { getEnv } from '../env.js';
import { authorized } from '../observability/metrics';
import { runJobsOnce } from './run';

/** Whether this request may run the jobs (see the header). */
export function mayRunJobs(req: Request, env: { NODE_ENV: string; CRON_SECRET?: string }): boolean {
  if (!env.CRON_SECRET) return env.NODE_ENV !== 'production';
  return authorized(req, env.CRON_SECRET);
}

export async function handleJobsRequest(req: Request): Promise<Response> {
  const env = getEnv();
  if (!mayRunJobs(req, env)) {
    const message = env.CRON_SECRET
      ? 'send Authorization: Bearer <CRON_SECRET>'
      : 'the jobs route is closed in production until CRON_SECRET is set';
    return Response.json({ error: { code: 'UNAUTHORIZED', message } }, { status: 401 });
  }
  const run = await runJobsOnce(getDatabase().db);
  return Response.json(run, { headers: { 'cache-control': 'no-store' } });
}
