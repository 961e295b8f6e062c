/**
 * pipelinedTransaction: the same all-or-nothing as db.transaction, with BEGIN and COMMIT sent along
 * with the first and last statements; against the real Postgres.
 */
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fenceTransactions, type KeyTransaction, pipelinedTransaction } from './db';

// Pools of the test's own, as any app would open them: the layer takes any Drizzle database on postgres.js.
const client = postgres(process.env.DATABASE_URL!, { max: 2, onnotice: () => {} });
const db = drizzle(client);
const admin = { sql: postgres(process.env.DATABASE_URL!, { max: 1 }) };
const table = `pipelined_${randomUUID().replaceAll('-', '')}`;
const count = async (tag: string) =>
  (await client.unsafe<{ n: number }[]>(`select count(*)::int as n from ${table} where tag = $1`, [tag]))[0]!.n;
const insert = (tag: string) => sql.raw(`insert into ${table} (tag) values ('${tag}') returning tag`);

beforeAll(() => client.unsafe(`create table ${table} (tag text not null)`));
afterAll(async () => {
  await client.unsafe(`drop table if exists ${table}`);
  await client.end();
  await admin.sql.end();
});

describe('pipelinedTransaction', () => {
  it('commits the first statement, the work and the last statement together', async () => {
    const tag = randomUUID();
    const out = await pipelinedTransaction(db, insert(tag), async (tx, rows) => {
      await tx.execute(insert(tag));
      return { commit: rows.length, last: insert(tag) };
    });
    expect(out).toBe(1);
    expect(await count(tag)).toBe(3);
  });

  it('keeps nothing when the last statement fails: the COMMIT sent behind it rolls back', async () => {
    const tag = randomUUID();
    const failing = pipelinedTransaction(db, insert(tag), async (tx) => {
      await tx.execute(insert(tag));
      return { commit: 'no', last: sql.raw(`insert into ${table} (tag) values (null)`) }; // NOT NULL
    });
    await expect(failing).rejects.toMatchObject({ code: '23502' });
    expect(await count(tag)).toBe(0);
  });

  it('keeps nothing when the body throws or asks for a rollback', async () => {
    const thrown = randomUUID();
    await expect(
      pipelinedTransaction(db, insert(thrown), async () => {
        throw new Error('the work failed');
      }),
    ).rejects.toThrow('the work failed');
    const rolled = randomUUID();
    expect(await pipelinedTransaction(db, insert(rolled), async () => ({ rollback: 'rolled back' }))).toBe(
      'rolled back',
    );
    expect(await count(thrown)).toBe(0);
    expect(await count(rolled)).toBe(0);
  });

  it(
    'a transaction the body left failed is not reported committed: a COMMIT answered ROLLBACK is an ' + 'error',
    async () => {
      const tag = randomUUID();
      const swallowed = pipelinedTransaction(db, insert(tag), async (tx) => {
        // fails; the transaction is now aborted
        await tx.execute(sql.raw(`insert into ${table} (tag) values (null)`)).catch(() => {});
        return { commit: 'committed?' };
      });
      await expect(swallowed).rejects.toThrow(/rolled back at COMMIT/);
      expect(await count(tag)).toBe(0);
    },
  );

  it(
    "once it is over, the body's handle sends nothing more: a late statement fails instead of landing in another " +
      'transaction',
    async () => {
      let kept: KeyTransaction | undefined;
      await pipelinedTransaction(db, sql`select 1 as one`, async (tx) => {
        kept = tx;
        return { commit: null };
      });
      const tag = randomUUID();
      // Drizzle wraps the refusal: "Failed query: …", caused by ours.
      await expect(kept!.execute(insert(tag))).rejects.toSatisfy((err: unknown) =>
        /transaction is over/.test(String((err as { cause?: Error }).cause?.message)),
      );
      expect(await count(tag)).toBe(0);
    },
  );

  it(
    'sends BEGIN with the first statement and COMMIT with the last: two writes to the socket where db.transaction ' +
      'makes four or more',
    async () => {
      // Behind a transaction pooler (the third pass of .ci/run) statements cannot be prepared, so each
      // with parameters goes in two steps: still fewer writes than db.transaction, not two.
      const pooled = process.env.DATABASE_POOL_MODE === 'transaction';
      const writes: number[] = [];
      const write = net.Socket.prototype.write;
      const counting = function (this: net.Socket, ...args: unknown[]) {
        writes.push(1);
        return (write as (...a: unknown[]) => boolean).apply(this, args);
      };
      const tag = randomUUID();
      // parameters: the case that needs preparing
      const withParameters = (t: string) => sql`insert into ${sql.raw(table)} (tag) values (${t})`;
      const pipelined = () =>
        pipelinedTransaction(db, withParameters(tag), async () => ({ commit: 1, last: withParameters(tag) }));
      const plain = () =>
        db.transaction(async (tx) => {
          await tx.execute(withParameters(tag));
          await tx.execute(withParameters(tag));
        });
      await pipelined(); // the first use on a connection prepares the statements: not what is counted
      await pipelined();
      try {
        net.Socket.prototype.write = counting as typeof write;
        await pipelined();
        const pipelinedWrites = writes.length;
        writes.length = 0;
        await plain();
        const plainWrites = writes.length;
        expect(plainWrites).toBeGreaterThanOrEqual(4);
        if (pooled) expect(pipelinedWrites).toBeLessThan(plainWrites);
        else expect(pipelinedWrites).toBe(2);
      } finally {
        net.Socket.prototype.write = write;
      }
      expect(await count(tag)).toBe(8);
    },
  );

  it('a connection that dies mid-transaction fails it (never hangs), keeps nothing, and the pool goes on', async () => {
    const tag = randomUUID();
    const dying = pipelinedTransaction(db, sql.raw(`select pg_backend_pid() as pid`), async (tx, rows) => {
      await tx.execute(insert(tag));
      await admin.sql`select pg_terminate_backend(${rows[0]!.pid as number})`;
      const until = Date.now() + 300;
      while (Date.now() < until); // the close arrives while this process is busy, as after a pause
      return { commit: 'committed', last: insert(tag) };
    });
    const settled = await Promise.race([
      dying.then(
        () => 'resolved',
        () => 'rejected',
      ),
      new Promise((r) => setTimeout(() => r('hung'), 5_000)),
    ]);
    expect(settled).toBe('rejected');
    expect(await count(tag)).toBe(0);
    // The next transactions run (postgres.js may fail one query on a pool whose connection just died).
    let ok = 0;
    for (let i = 0; i < 4; i++)
      ok += await pipelinedTransaction(db, sql`select 1 as one`, async (_tx, rows) => ({ commit: rows.length })).catch(
        () => 0,
      );
    expect(ok).toBeGreaterThanOrEqual(3);
  });
});

/**
 * A transaction body that runs on after its connection died, as a body awaiting something else does:
 * `late` is what its last statement got. The pool has one connection, and a query waits for it, so
 * the pool opens that connection again at once.
 */
async function bodyOutlivingItsConnection(
  pool: postgres.Sql,
  tag: string,
): Promise<{ transaction: string; late: string; waiting: string }> {
  const fenceable = drizzle(pool);
  let late: Promise<string> | undefined;
  const transaction = fenceable.transaction(async (tx) => {
    const [row] = await tx.execute<{ pid: number }>(sql`select pg_backend_pid() as pid`);
    await admin.sql`select pg_terminate_backend(${row!.pid})`;
    const later = new Promise<string>((resolve) =>
      setTimeout(
        () =>
          resolve(
            tx.execute(insert(tag)).then(
              () => 'written',
              (err: Error) => ((err.cause as Error | undefined) ?? err).message, // Drizzle wraps it
            ),
          ),
        300,
      ),
    );
    late = later;
    await later;
  });
  const waiting = pool`select 'the next query' as q`.then(
    () => 'answered',
    (err: Error) => err.message,
  );
  const outcome = await transaction.then(
    () => 'committed',
    (err: Error) => `rejected: ${err.message}`,
  );
  return { transaction: outcome, late: await late!, waiting: await waiting };
}

describe('fenceTransactions', () => {
  const pool = fenceTransactions(postgres(process.env.DATABASE_URL!, { max: 1, onnotice: () => {} }));
  const fencedDb = drizzle(pool);
  afterAll(() => pool.end());

  it('a body that goes on after its connection died sends nothing more: its late INSERT is kept nowhere', async () => {
    const tag = randomUUID();
    const seen = await bodyOutlivingItsConnection(pool, tag);
    expect(seen.transaction).toMatch(/^rejected/);
    expect(seen.late).toMatch(/nothing more is sent on it/);
    expect(await count(tag)).toBe(0);
    // the pool goes on: the waiting query was answered (or failed once with the dead connection),
    // and the next transaction commits
    expect(['answered', expect.stringMatching(/CONNECTION|terminat/)]).toContainEqual(seen.waiting);
    await fencedDb.transaction((tx) => tx.execute(insert(tag)));
    expect(await count(tag)).toBe(1);
  });

  it('a nested transaction is a savepoint: its failure rolls back only itself', async () => {
    const [kept, undone, after] = [randomUUID(), randomUUID(), randomUUID()];
    await fencedDb.transaction(async (tx) => {
      await tx.execute(insert(kept));
      await tx
        .transaction(async (inner) => {
          await inner.execute(insert(undone));
          throw new Error('the inner work failed');
        })
        .catch(() => {});
      await tx.transaction((inner) => inner.execute(insert(after)));
    });
    expect([await count(kept), await count(undone), await count(after)]).toEqual([1, 0, 1]);
  });

  it('a COMMIT that Postgres answers with ROLLBACK is an error, not a success', async () => {
    const tag = randomUUID();
    const swallowed = fencedDb.transaction(async (tx) => {
      await tx.execute(insert(tag));
      await tx.execute(sql`select 1 / 0`).catch(() => {}); // the transaction has failed; the body says nothing
    });
    await expect(swallowed).rejects.toThrow(/rolled back at COMMIT \(ROLLBACK\)/);
    expect(await count(tag)).toBe(0);
  });

  it('a raw query built inside the transaction and first awaited after it is refused, not sent', async () => {
    const [inside, late] = [randomUUID(), randomUUID()];
    let lazy: PromiseLike<unknown> | undefined;
    await pool.begin(async (tx) => {
      await tx.unsafe(`insert into ${table} (tag) values ($1)`, [inside]);
      lazy = tx.unsafe(`insert into ${table} (tag) values ($1)`, [late]); // postgres.js sends it when awaited
    });
    const outcome = await Promise.resolve(lazy).then(
      () => 'sent',
      (err: Error) => err.message,
    );
    expect(outcome).toMatch(/nothing more is sent on it/);
    expect([await count(inside), await count(late)]).toEqual([1, 0]);
  });

  it('sql.end() called while a transaction runs returns once it is over (the guard closes it)', async () => {
    const ending = fenceTransactions(postgres(process.env.DATABASE_URL!, { max: 1, onnotice: () => {} }));
    const tag = randomUUID();
    const running = ending.begin(async (tx) => {
      await tx`select pg_sleep(0.2)`;
      await tx.unsafe(`insert into ${table} (tag) values ($1)`, [tag]);
      return 'committed';
    });
    await new Promise((r) => setTimeout(r, 50));
    const ended = ending.end().then(() => 'ended');
    expect(await running).toBe('committed');
    expect(await Promise.race([ended, new Promise((r) => setTimeout(() => r('still waiting after 5 s'), 5_000))])).toBe(
      'ended',
    );
    expect(await count(tag)).toBe(1);
  });

  it('commits, rolls back on a throw, and fences a pool only once', async () => {
    const [committed, thrown] = [randomUUID(), randomUUID()];
    expect(await fencedDb.transaction(async (tx) => (await tx.execute(insert(committed))).length)).toBe(1);
    await expect(
      fencedDb.transaction(async (tx) => {
        await tx.execute(insert(thrown));
        throw new Error('the work failed');
      }),
    ).rejects.toThrow('the work failed');
    expect([await count(committed), await count(thrown)]).toEqual([1, 0]);
    const begin = pool.begin;
    expect(fenceTransactions(pool).begin).toBe(begin);
  });
});

describe('a connection that dies under a query (the install-time guard, tools/patch-postgres.mjs)', () => {
  it("a query waiting for the pool runs on the reopened connection, not failed with the dead one's error", async () => {
    const pool = postgres(process.env.DATABASE_URL!, { max: 1, onnotice: () => {} });
    try {
      const outcomes: string[] = [];
      for (let i = 0; i < 5; i++) {
        const held = await pool.reserve(); // the pool's one connection: the next query waits for it
        const cut = held`select pg_terminate_backend(pg_backend_pid())`.catch(() => 'cut');
        const next = pool`select 'answered' as v`.then(
          (rows) => rows[0]!.v as string,
          (err: Error & { code?: string }) => `failed: ${err.code} ${err.message}`,
        );
        await cut;
        outcomes.push(await next);
      }
      expect(outcomes).toEqual(Array(5).fill('answered'));
    } finally {
      await pool.end({ timeout: 1 });
    }
  });
});

describe('a connection that dies while rows arrive (the install-time guard)', () => {
  it('the next query on the reopened connection gets its own rows, with no holes left by the dead one', async () => {
    // fetch_types off: nothing else runs on the reopened connection first to reset the row count
    const pool = postgres(process.env.DATABASE_URL!, { max: 1, onnotice: () => {}, fetch_types: false });
    try {
      const [{ pid }] = (await pool`select pg_backend_pid() as pid`) as unknown as [{ pid: number }];
      const streaming = pool`select g, repeat('x', 20000) as pad, pg_sleep(0.1) from generate_series(1, 20) g`.catch(
        () => 'cut',
      );
      await new Promise((r) => setTimeout(r, 300));
      await admin.sql`select pg_terminate_backend(${pid})`;
      expect(await streaming).toBe('cut');
      const next = await pool`select 1 as x`;
      expect([next.length, next[0]]).toEqual([1, { x: 1 }]);
    } finally {
      await pool.end({ timeout: 1 });
    }
  });
});
