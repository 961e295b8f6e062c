/** Prometheus metrics (server/observability/metrics.ts does the work). */
import { handleMetrics } from '@/server/observability/metrics';

export { handleMetrics as GET };
// Figures of this moment, never a cached page.
export const dynamic = 'force-dynamic';
