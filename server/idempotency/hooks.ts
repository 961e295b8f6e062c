/**
 * What the layer tells the world, and the one place where the world may step in.
 *
 * - Decisions: every keyed request ends in one decision (`executed`, `replayed`, ...), reported to
 *   the decision listeners (the log line, metrics). Never the key itself: a one-way tag of it.
 * - Boundaries: both runners call `reached()` at named points of a request's life ('claimed',
 *   'executed', 'inside:<step>', 'after:<step>', 'stored'). In production nobody listens and it
 *   costs nothing; tests and the lab install one observer there to delay, fail, crash or cut a
 *   request at exactly that point (server/idempotency/faults.ts). Product code never mentions it.
 *
 * Both are kept on `globalThis`: Next may evaluate this module more than once in one process
 * (instrumentation and route bundles), and they must all see the same listeners.
 */
import type { KeyTransaction } from './db';

export type Decision =
  | 'executed' // ran the procedure and stored its answer
  | 'failure_stored' // ran it; a deliberate business failure was stored
  | 'released' // ran it; bad input or an unexpected error: nothing stored, key free
  | 'replayed' // answered from the stored result
  | 'waited_then_replayed' // the first request was in flight; waited, then answered with its result
  | 'in_use' // waited past the bound: 409
  | 'reused_with_different_input' // 422
  | 'missing' // 400, no key
  | 'invalid' // 400, malformed key
  | 'expired' // an expired key was deleted; the request runs as a new one
  | 'resumed'; // phased: took over a key whose holder was gone, resuming from its recovery point

export const DECISIONS: readonly Decision[] = [
  'executed',
  'failure_stored',
  'released',
  'replayed',
  'waited_then_replayed',
  'in_use',
  'reused_with_different_input',
  'missing',
  'invalid',
  'expired',
  'resumed',
];

export interface DecisionEvent {
  decision: Decision;
  procedure: string;
  scope: string;
  /** A short one-way tag of the key: enough to correlate lines, useless to replay a request. */
  keyTag?: string;
  /** Milliseconds from the request's arrival to this decision. */
  ms?: number;
  /** The request's X-Request-Id, when it sent one: ties the decision to that request. */
  requestId?: string;
  [extra: string]: unknown;
}

export interface BoundaryEvent {
  procedure: string;
  scope: string;
  keyId?: string;
  /** 'claimed', 'executed', 'stored', or 'inside:<step>' / 'after:<step>' for phased procedures. */
  boundary: string;
  /** The open transaction at this point, if there is one. */
  tx?: KeyTransaction;
}

/**
 * Thrown by a boundary observer to play a crash inside one process: from here on the request does
 * nothing more (no release, no answer stored, no log), exactly as if its process had died. The
 * runners let it through untouched. Only fault injection throws it.
 */
// A brand, not `instanceof`: Next bundles this module more than once in one process (the fault
// injection is installed from instrumentation, the runners live in the route bundle), and each
// copy has its own class.
const GONE = Symbol.for('retry-safe-checkout.process-gone');

export class ProcessGone extends Error {
  readonly [GONE] = true;

  constructor(boundary: string) {
    super(`fault injected: the process is gone at ${boundary}`);
    this.name = 'ProcessGone';
  }
}

const gone = (err: unknown) =>
  typeof err === 'object' && err !== null && (err as Record<symbol, unknown>)[GONE] === true;
export const isProcessGone = (err: unknown): boolean => gone(err) || gone((err as { cause?: unknown } | null)?.cause);

export type DecisionListener = (event: DecisionEvent) => void;
export type BoundaryObserver = (event: BoundaryEvent) => Promise<void> | void;

const registry = globalThis as unknown as {
  __idempotencyHooks?: { decisions: Set<DecisionListener>; observer?: BoundaryObserver };
};
registry.__idempotencyHooks ??= { decisions: new Set() };
const hooks = registry.__idempotencyHooks;

/** The default listener: one JSON line per decision on stdout. */
export const logDecisionLine: DecisionListener = (event) =>
  console.info(JSON.stringify({ msg: 'idempotency', ...event }));
if (hooks.decisions.size === 0) hooks.decisions.add(logDecisionLine);

/** Adds a decision listener; returns a function that removes it. */
export function onDecision(listener: DecisionListener): () => void {
  hooks.decisions.add(listener);
  return () => hooks.decisions.delete(listener);
}

/** Replaces every decision listener (the server installs its logger and metrics here). */
export function setDecisionListeners(listeners: DecisionListener[]): void {
  hooks.decisions.clear();
  for (const l of listeners) hooks.decisions.add(l);
}

export function reportDecision(event: DecisionEvent): void {
  for (const listener of hooks.decisions) listener(event);
}

/** Installs the boundary observer (test-only and lab code does this; production never). */
export function observeBoundaries(observer: BoundaryObserver | undefined): void {
  hooks.observer = observer;
}

/** Called by the runners at each named boundary. A no-op unless an observer is installed. */
export async function reached(event: BoundaryEvent): Promise<void> {
  if (hooks.observer) await hooks.observer(event);
}
