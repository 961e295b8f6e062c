/**
 * How tRPC calls travel. Queries are batched into one request; mutations never are, because a
 * batch shares one set of HTTP headers and a keyed mutation must carry its own `Idempotency-Key`.
 *
 * A mutation gets its key from the operation's context:
 *   client.checkout.placeOrder.mutate(input, { context: { idempotencyKey } })
 */
import { httpBatchLink, httpLink, splitLink, type TRPCLink } from '@trpc/client';
import type { AppRouter } from '@/server/routers/_app';

// Keys whose last answer came with `Idempotent-Replayed: true`. The tRPC client hands back only the
// data, so the link notes the header here for the code that sent the key (see takeReplayed).
const replayedKeys = new Set<string>();

// How long the server keeps idempotency keys, as every API answer says (`Idempotency-Key-Retention`,
// seconds). Kept in localStorage too, so a page that resumes an intent before its first answer knows.
const RETENTION_STORAGE = 'idempotency-key-retention-seconds';
let retentionMs: number | undefined;
const waitingForRetention: ((ms: number) => void)[] = [];

function noteRetention(header: string | null): void {
  const seconds = Number(header);
  if (!header || !Number.isFinite(seconds) || seconds <= 0) return;
  retentionMs = seconds * 1000;
  try {
    localStorage.setItem(RETENTION_STORAGE, String(seconds));
  } catch {}
  for (const resolve of waitingForRetention.splice(0)) resolve(retentionMs);
}

/** How long the server keeps keys (ms): at once if known, else when the next API answer says. */
export function serverRetention(): Promise<number> {
  if (retentionMs === undefined) {
    try {
      const saved = Number(localStorage.getItem(RETENTION_STORAGE));
      if (saved > 0) retentionMs = saved * 1000;
    } catch {}
  }
  if (retentionMs !== undefined) return Promise.resolve(retentionMs);
  return new Promise((resolve) => waitingForRetention.push(resolve));
}

/** Whether the answer for this key was a replay of a stored result; forgets the key. */
export function takeReplayed(key: string): boolean {
  const replayed = replayedKeys.has(key);
  replayedKeys.delete(key);
  return replayed;
}

export interface LinkOptions {
  url: string;
  /** For tests: where requests go. Defaults to the global fetch. */
  fetch?: typeof fetch;
}

export function createLinks({ url, fetch = globalThis.fetch }: LinkOptions): TRPCLink<AppRouter>[] {
  const noteReplays: typeof globalThis.fetch = async (input, init) => {
    const res = await fetch(input, init);
    noteRetention(res.headers.get('idempotency-key-retention'));
    const key = new Headers(init?.headers).get('idempotency-key');
    if (key && res.headers.get('idempotent-replayed') === 'true') replayedKeys.add(key);
    return res;
  };
  const noteRetentionOnly: typeof globalThis.fetch = async (input, init) => {
    const res = await fetch(input, init);
    noteRetention(res.headers.get('idempotency-key-retention'));
    return res;
  };
  return [
    splitLink({
      condition: (op) => op.type === 'mutation',
      true: httpLink({
        url,
        fetch: noteReplays,
        headers: ({ op }) => {
          const key = op.context.idempotencyKey;
          return typeof key === 'string' ? { 'Idempotency-Key': key } : {};
        },
      }),
      false: httpBatchLink({ url, fetch: noteRetentionOnly }),
    }),
  ];
}
