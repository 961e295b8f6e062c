/** `npm run db:reap`: deletes expired idempotency keys now (the servers also do it on a timer). */
import { main } from '../server/idempotency/reaper';

await main();
