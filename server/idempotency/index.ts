/**
 * The idempotency layer's public face: everything an app uses, and the only file it imports. The
 * folder imports nothing of the app around it (only its own files and npm packages), so it can be
 * copied into another tRPC app whole; README.md in this folder is the guide.
 */

// 6. THE KEY ITSELF: the header, its parsing, the fingerprint and a one-way tag for logs.
export { canonicalJson } from './canonical-json';
export {
  type AbandonedKey,
  COMPLETER_BACKOFF_BASE_SECONDS,
  COMPLETER_MAX_RUNS,
  type CompleterConfig,
  type CompleterFlow,
  type CompleterOutcome,
  type CompleterRun,
  createCompleter,
} from './completer';
export {
  fenceTransactions,
  type KeyDatabase,
  type KeyDatabaseOrTransaction,
  type KeyTransaction,
  pipelinedTransaction,
  type Statement,
  type TransactionEnd,
  type TransactionOf,
} from './db';
// 4. ERRORS: each with a machine-readable `errorCode`; map them in your error formatter.
export {
  errorCodeOf,
  fieldOf,
  IdempotencyError,
  type IdempotencyErrorCode,
  idempotencyErrors,
} from './errors';
// 7. OPTIONAL, FOR TESTS AND TEACHING: fault injection at the named boundaries of a request's life,
//    the runners without tRPC (a broken twin can be built from them), the database types, and the
//    claim, the key row and the pipelined transaction they travel in (the benchmark times each).
export {
  clearFaults,
  FAULT_ACTIONS,
  type FaultAction,
  type FaultPlan,
  installFaultInjection,
  planFault,
} from './faults';
// 5. WHAT IT TELLS THE WORLD: one decision per keyed request (log it, count it), and the two reads
//    an app's metrics and reconciliation may want.
export {
  type BoundaryEvent,
  DECISIONS,
  type Decision,
  type DecisionEvent,
  type DecisionListener,
  isProcessGone,
  logDecisionLine,
  onDecision,
  ProcessGone,
  reached,
  setDecisionListeners,
} from './hooks';
export { fingerprint, IDEMPOTENCY_HEADER, keyTag, MAX_KEY_LENGTH, type ParsedKey, parseIdempotencyKey } from './key';
export { type IdempotentCall, runIdempotent } from './one-transaction';
export type { Json, JsonSafe, Steps } from './phased';
export { type PhasedCall, runPhased } from './phased';
// 3. THE JOBS: the reaper deletes expired keys; the completer finishes phased keys whose client
//    never came back, through the flows you register.
export { REAP_BATCH_SIZE, REAP_REST_FACTOR, type ReapOptions, reapExpiredKeys } from './reaper';
export type { Execution } from './request';
// 1. THE TABLE: the Drizzle schema (re-export it from your schema file) and, for apps without
//    drizzle-kit, idempotency_keys.sql in this folder.
export { type IdempotencyKey, idempotencyKeys } from './schema';
export { claimStatement, completeKeyStatement, countKeysInFlight, keyStatesOf } from './store';
// 2. THE tRPC BUILDERS: join them to your procedures with `.concat()`, after `.input()`; call the
//    batch guard from createContext.
export { createIdempotency, type IdempotencyOptions, type KeyedContext, refuseKeyedBatch } from './trpc';
