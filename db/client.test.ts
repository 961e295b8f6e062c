/**
 * The session settings of server/db.ts hold in every transaction, whether the URL is Postgres
 * itself or PgBouncer in transaction mode (`DATABASE_POOLER=pgbouncer npx vitest run`, the third
 * pass of .ci/run), and behind the pooler they end with their transaction.
 */
import { sql as q } from 'drizzle-orm';
import { afterAll, describe, expect, it } from 'vitest';
import { createDatabase } from './client';

const pooled = process.env.DATABASE_POOL_MODE === 'transaction';
const settings = { statement_timeout: 300, idle_in_transaction_session_timeout: 4321 };
const { db, sql } = createDatabase(process.env.DATABASE_URL!, {
  max: 2,
  transactionPooler: pooled,
  connection: settings,
});
const plain = createDatabase(process.env.DATABASE_URL!, { max: 2, transactionPooler: pooled });
afterAll(() => Promise.all([sql.end(), plain.sql.end()]));

describe(`session settings (${pooled ? 'through a transaction pooler' : 'direct'})`, () => {
  it('a transaction begun by db.transaction runs with them, and statement_timeout acts', async () => {
    const shown = await db.transaction(
      async (tx) =>
        (await tx.execute<{ t: string }>(q`select current_setting('idle_in_transaction_session_timeout') as t`))[0]!.t,
    );
    expect(shown).toBe('4321ms');
    const slow = db.transaction((tx) => tx.execute(q`select pg_sleep(2)`));
    await expect(slow).rejects.toSatisfy(
      (err: unknown) =>
        (err as { code?: string; cause?: { code?: string } }).cause?.code === '57014' ||
        (err as { code?: string }).code === '57014',
    );
  });

  it('a transaction with an isolation level runs with them too (the settings take no snapshot)', async () => {
    const seen = await db.transaction(
      async (tx) =>
        (
          await tx.execute<{ i: string; t: string }>(
            q`select current_setting('transaction_isolation') as i, current_setting('statement_timeout') as t`,
          )
        )[0]!,
      { isolationLevel: 'serializable' },
    );
    expect(seen).toEqual({ i: 'serializable', t: '300ms' });
  });

  it('a transaction opened with BEGIN on a reserved connection runs with them', async () => {
    const connection = await sql.reserve();
    try {
      const [, rows] = await Promise.all([
        connection.unsafe('begin'),
        connection.unsafe<{ t: string }[]>(`select current_setting('statement_timeout') as t`),
      ]);
      await connection.unsafe('commit');
      expect(rows[0]!.t).toBe('300ms');
    } finally {
      connection.release();
    }
  });

  it('they never reach another pool, even behind a pooler whose server sessions both pools share', async () => {
    // Many short transactions with the settings, then many reads from a pool without them. Behind
    // PgBouncer they share its server sessions, so a setting left behind by a transaction would show;
    // direct, each pool has its own sessions and this holds by construction.
    await Promise.all(Array.from({ length: 20 }, () => db.transaction((tx) => tx.execute(q`select 1`))));
    const seen = await Promise.all(
      Array.from(
        { length: 20 },
        async () => (await plain.sql`select current_setting('statement_timeout') as t`)[0]!.t as string,
      ),
    );
    expect(seen.filter((t) => t === '300ms')).toEqual([]);
  });
});

describe('the pool createDatabase opens', () => {
  it('fences its transactions: one whose statement failed is never reported committed', async () => {
    // Unfenced, postgres.js resolves this: it takes Postgres's ROLLBACK answer to the COMMIT for success.
    const swallowed = plain.db.transaction(async (tx) => {
      await tx.execute(q`select 1 / 0`).catch(() => {});
    });
    await expect(swallowed).rejects.toThrow(/rolled back at COMMIT/);
  });
});
