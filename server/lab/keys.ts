/**
 * The lab's own statements about key rows: what it shows beside its timeline, the clock it moves
 * forward instead of making a learner wait, and the broken store its unsafe twins use. None of this is
 * part of the idempotency layer: it works on the layer's exported table, and no request path calls it.
 */
import { and, eq, gt, inArray, sql } from 'drizzle-orm';
import type { DbOrTx } from '../../db/client';
import { type IdempotencyKey, idempotencyKeys } from '../idempotency';

/** One key: its owner, its procedure and the client's value. */
export interface LabKey {
  scope: string;
  procedure: string;
  key: string;
}

const sameKey = (k: LabKey) =>
  and(eq(idempotencyKeys.scope, k.scope), eq(idempotencyKeys.procedure, k.procedure), eq(idempotencyKeys.key, k.key));

/** The key's live row, if one is committed (what a twin that looks before it works finds). */
export async function liveKeyRow(db: DbOrTx, k: LabKey): Promise<IdempotencyKey | undefined> {
  const [row] = await db
    .select()
    .from(idempotencyKeys)
    .where(and(sameKey(k), gt(idempotencyKeys.expiresAt, sql`now()`)))
    .limit(1);
  return row;
}

/**
 * Moves one key's clock forward instead of waiting. `lease`: `seconds` pass for its holder's lease
 * (it lapses if it was shorter); `expiry`: it expires now (as it would a day later); `age`: the key
 * is made `seconds` older, and kept live (a resume that late, with its row still there).
 * The lab says so in its timeline; no request path calls this.
 */
export async function fastForwardKey(
  db: DbOrTx,
  k: LabKey,
  what: 'lease' | 'expiry' | 'age',
  seconds = 0,
): Promise<void> {
  const back = sql`make_interval(secs => ${seconds})`;
  await db
    .update(idempotencyKeys)
    .set(
      what === 'lease'
        ? { lockedUntil: sql`${idempotencyKeys.lockedUntil} - ${back}` }
        : what === 'expiry'
          ? { expiresAt: sql`now() - interval '1 millisecond'` }
          : { createdAt: sql`${idempotencyKeys.createdAt} - ${back}`, expiresAt: sql`now() + interval '1 hour'` },
    )
    .where(sameKey(k));
}

/** The key rows of some scopes, oldest first (what the lab shows beside its timeline). */
export async function keyRowsOf(db: DbOrTx, scopes: string[]): Promise<IdempotencyKey[]> {
  if (scopes.length === 0) return [];
  return db
    .select()
    .from(idempotencyKeys)
    .where(inArray(idempotencyKeys.scope, scopes))
    .orderBy(idempotencyKeys.createdAt);
}

/**
 * For the unsafe twins: stores an answer for a key that was never claimed (after the work,
 * in a statement of its own). ON CONFLICT DO NOTHING: when another copy stored first, this one is lost.
 */
export async function storeAnswerAfterTheFact(
  db: DbOrTx,
  k: LabKey,
  fingerprint: string,
  body: { ok: true; data: unknown },
  ttlMs: number,
): Promise<void> {
  await db
    .insert(idempotencyKeys)
    .values({
      ...k,
      fingerprint,
      state: 'completed',
      recoveryPoint: 'finished',
      responseStatus: 200,
      responseBody: body,
      completedAt: sql`now()`,
      expiresAt: sql`now() + make_interval(secs => ${ttlMs / 1000})`,
    })
    .onConflictDoNothing();
}
