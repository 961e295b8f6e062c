/**
 * The peer comparison's probes (tools/bench-peers.ts), run once against the real Postgres and, when
 * redis-server is installed, a private Redis: this project's protection must give one order, no stuck
 * key, an identical replay and no leak, and each probe must still tell an unprotected order apart,
 * so the probe code cannot quietly stop measuring anything.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { setDecisionListeners } from '../server/idempotency';
import {
  type ProbeResults,
  type ProtectionName,
  peerProbes,
  peerTable,
  probeFacts,
  REDIS_MISSING,
  redisServerPath,
} from './bench-peers';

let result: Awaited<ReturnType<typeof peerProbes>>;

beforeAll(async () => {
  setDecisionListeners([]); // a few hundred decisions: not worth a log line each here
  result = await peerProbes(process.env.DATABASE_URL!);
});

const probes = (p: ProtectionName): ProbeResults => {
  const found = result.probes[p];
  if (!found) throw new Error(`no probe results for ${p}`);
  return found;
};

describe('the probes, against this project', () => {
  it('a 50-way same-key storm: one order, and all 50 callers get the same answer', () => {
    const { storm } = probes('ours');
    expect(storm.orders).toBe(1);
    expect(storm.sameAnswer).toBe(50);
    expect(storm.refused).toEqual({});
  });

  it(
    'a crash after the order is written, before its answer is stored: the retry makes one order, the key is not ' +
      'stuck',
    () => {
      expect(probes('ours').crash).toEqual({ orders: 1, refusedWith: null, stuckForMs: null });
    },
  );

  it("a lost response: the retry's answer is byte-identical, still one order", () => {
    expect(probes('ours').lostResponse).toEqual({ orders: 1, identical: true });
  });

  it("the same key from another customer: it gets its own order, never the first customer's", () => {
    expect(probes('ours').twoCustomers).toEqual({ secondGotFirstsOrder: false, ordersOfSecond: 1 });
  });
});

describe('the probes see what no protection does (else they measure nothing)', () => {
  it('unprotected: the storm makes 50 orders, a retry after a crash or a lost response makes a second one', () => {
    const p = probes('baseline');
    expect(p.storm.orders).toBe(50);
    expect(p.crash.orders).toBe(2);
    expect(p.lostResponse).toEqual({ orders: 2, identical: false });
  });

  it(
    'the library with memory storage: a restarted process has forgotten the key, the retry makes a second ' + 'order',
    () => {
      const p = probes('peer-memory');
      expect(p.storm.orders).toBe(1);
      expect(p.crash).toMatchObject({ orders: 2, refusedWith: null });
    },
  );
});

describe('the library with Redis storage', () => {
  // Decided when the file is collected, so the test's name says which of the two ran.
  const installed = redisServerPath() !== null;
  it(
    installed
      ? 'its in-progress marker outlives a crashed process: the retry is refused until the TTL, one order'
      : 'not measured: redis-server is not installed (apt-get install redis-server); the comparison says so',
    () => {
      const redis = result.probes['peer-redis'];
      if (!installed) {
        expect(redis).toBeUndefined();
        expect(result.skipped).toContain(REDIS_MISSING);
        return;
      }
      expect(redis!.storm.orders).toBe(1);
      expect(redis!.crash.orders).toBe(1);
      expect(redis!.crash.refusedWith).toBe('REQUEST_IN_PROGRESS');
      expect(redis!.crash.stuckForMs).toBeGreaterThan(0);
      expect(probeFacts(redis!).crash).toMatch(/stuck until TTL/);
    },
  );
});

describe('the table', () => {
  it('prints one row per protection, with a plain fact per probe', () => {
    const zero = { kind: '', opsPerSecond: 100, cpuUs: 0, dbUs: 0, statements: 5, p50: 1, p99: 2 };
    const rows = (Object.keys(result.probes) as ProtectionName[]).map((protection) => ({
      protection,
      label: protection,
      first: zero,
      replay: protection === 'baseline' ? null : zero,
      redisCommands: protection === 'peer-redis' ? 2 : null,
      storageCalls: protection === 'peer-memory' ? 2 : null,
      probes: probes(protection),
    }));
    const table = peerTable({
      rows,
      skipped: result.skipped,
      seconds: 1,
      rounds: 1,
      callers: 20,
      decisionsLogged: false,
      elapsedSeconds: 1,
    }).join('\n');
    expect(table).toContain('| ours | 100 | 1.00x |');
    expect(table).toContain('1 order; all 50 got the same answer');
    expect(table).toContain('1 order; retry answered, key not stuck');
    expect(table).toContain('identical (1 order)');
    expect(table).toContain('50 orders; 50 different answers');
  });
});
