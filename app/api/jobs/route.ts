/** Every background job once, for a scheduler outside the process (server/jobs/http.ts does the work). */
import { handleJobsRequest } from '@/server/jobs/http';

export { handleJobsRequest as GET, handleJobsRequest as POST };
// Never cached, never prerendered: each call is work.
export const dynamic = 'force-dynamic';
// Where the platform bounds a function's time (Vercel): the budget of server/jobs/run.ts (8 s) plus one
// provider call that may still be finishing, with room to spare.
export const maxDuration = 30;
