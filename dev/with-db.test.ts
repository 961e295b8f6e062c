/** The launcher's switch: which database source a set of flags chooses, and which flags cannot go together. */
import { describe, expect, it } from 'vitest';
import { chooseSource } from './with-db';

describe('chooseSource', () => {
  it('picks the embedded Postgres by default, your own with DATABASE_URL, and a cluster when asked', () => {
    expect(chooseSource({ pgbouncer: false })).toBe('embedded');
    expect(chooseSource({ pgbouncer: true })).toBe('embedded');
    expect(chooseSource({ pgbouncer: false, databaseUrl: 'postgres://u@h/db' })).toBe('own-url');
    expect(chooseSource({ pgbouncer: false, replicated: true })).toBe('replicated');
    expect(chooseSource({ pgbouncer: false, ha: true })).toBe('ha');
    expect(chooseSource({ pgbouncer: true, ha: true })).toBe('ha'); // HAProxy has one address: PgBouncer can front it
  });

  it('refuses flags that contradict each other, naming them', () => {
    expect(() => chooseSource({ pgbouncer: false, ha: true, replicated: true })).toThrow(/--ha and --replicated/);
    expect(() => chooseSource({ pgbouncer: false, ha: true, databaseUrl: 'postgres://u@h/db' })).toThrow(
      /--ha starts its own Postgres, and DATABASE_URL names another/,
    );
    expect(() => chooseSource({ pgbouncer: false, replicated: true, databaseUrl: 'postgres://u@h/db' })).toThrow(
      /--replicated starts its own Postgres/,
    );
    expect(() => chooseSource({ pgbouncer: true, replicated: true })).toThrow(/PgBouncer cannot stand in front/);
  });
});
