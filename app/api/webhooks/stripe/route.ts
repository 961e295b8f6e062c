/** Where the payment provider sends its webhooks (server/http.ts does the work). */
import { handleStripeWebhook } from '@/server/http';

export { handleStripeWebhook as POST };
