/**
 * For the tests only: the example's server (main.ts) in a process of its own that SIGKILLs itself
 * when a request of user KILL_USER reaches the layer's boundary KILL_AT ('executed': the work done,
 * its answer not stored; 'inside:sent': the provider called, the last step not committed).
 */
import { installFaultInjection, planFault } from '../../server/idempotency/index';

installFaultInjection({ allowKill: true }); // a disposable test server: `kill` may end it
const { KILL_USER, KILL_AT } = process.env;
if (KILL_USER && KILL_AT) planFault({ scope: KILL_USER, boundary: KILL_AT, action: 'kill' });
await import('./main');
