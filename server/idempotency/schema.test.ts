/**
 * The plain SQL a forker runs (idempotency_keys.sql) makes the very table the Drizzle schema describes
 * (schema.ts, which the shop's migrations create): same columns, types, defaults, nullability, checks
 * and indexes. The SQL runs in a schema of its own, and the two tables are compared as Postgres
 * describes them.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../../db/client';

const { sql } = createDatabase(process.env.DATABASE_URL!, { max: 1 });
const lifted = `lift_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
const generated = `kit_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
const SQL_FILE = fs.readFileSync(new URL('./idempotency_keys.sql', import.meta.url), 'utf8');
const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');
afterAll(async () => {
  await sql.unsafe(`drop schema if exists ${lifted} cascade`);
  await sql.unsafe(`drop schema if exists ${generated} cascade`);
  await sql.end();
});

/** The table as Postgres describes it, with the schema's name taken out. */
async function describeTable(schema: string) {
  const columns = await sql`
    select column_name, data_type, domain_name, is_nullable,
           replace(column_default, ${`${schema}.`}, '') as column_default
    from information_schema.columns
    where table_schema = ${schema} and table_name = 'idempotency_keys'
    order by column_name`;
  // The rules five columns carry in their domains (schema.ts says why they are not CHECKs on the table).
  const domainRules = await sql`
    select d.typname as domain, b.typname as base, c.conname, pg_get_constraintdef(c.oid) as definition
    from pg_constraint c join pg_type d on d.oid = c.contypid join pg_type b on b.oid = d.typbasetype
    join pg_namespace n on n.oid = d.typnamespace
    where n.nspname = ${schema} and d.typname like 'idempotency\_keys\_%'
    order by d.typname, c.conname`;
  const constraints = await sql`
    select conname, pg_get_constraintdef(c.oid) as definition
    from pg_constraint c join pg_class t on t.oid = c.conrelid join pg_namespace n on n.oid = t.relnamespace
    where n.nspname = ${schema} and t.relname = 'idempotency_keys'
    order by conname`;
  const indexes = await sql`
    select indexname, replace(indexdef, ${`${schema}.`}, '') as definition
    from pg_indexes where schemaname = ${schema} and tablename = 'idempotency_keys'
    order by indexname`;
  return { columns: [...columns], domainRules: [...domainRules], constraints: [...constraints], indexes: [...indexes] };
}

/** Runs each SQL text in turn, in one transaction, with `schema` first on the search path. */
async function runIn(schema: string, ...texts: string[]) {
  await sql.begin(async (tx) => {
    await tx.unsafe(`set local search_path = ${schema}, public`);
    for (const text of texts) await tx.unsafe(text);
  });
}

/**
 * `drizzle-kit generate` in a temporary folder: `schemaSource` is its schema file, and its migrations
 * folder starts as a copy of `migrations` (or empty). What it printed, and each file it left there.
 */
function drizzleKitGenerate(schemaSource: string, migrations?: string) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'idempotency-kit-'));
  try {
    fs.writeFileSync(path.join(dir, 'schema.ts'), schemaSource);
    if (migrations) fs.cpSync(migrations, path.join(dir, 'out'), { recursive: true });
    // Relative paths: drizzle-kit prefixes "./" to the folder when it reads earlier snapshots.
    fs.writeFileSync(
      path.join(dir, 'drizzle.config.ts'),
      "export default { dialect: 'postgresql', schema: './schema.ts', out: './out' };\n",
    );
    const said = execFileSync(path.join(ROOT, 'node_modules/.bin/drizzle-kit'), ['generate'], {
      cwd: dir,
      encoding: 'utf8',
    });
    const out = path.join(dir, 'out');
    const files = new Map(
      fs
        .readdirSync(out)
        .filter((f) => f.endsWith('.sql'))
        .map((f) => [f, fs.readFileSync(path.join(out, f), 'utf8')]),
    );
    return { said, names: fs.readdirSync(out), files };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('idempotency_keys.sql', () => {
  it('creates the table the Drizzle schema describes: columns, defaults, checks and indexes', async () => {
    await sql.unsafe(`create schema ${lifted}`);
    await runIn(lifted, SQL_FILE);
    const fromSql = await describeTable(lifted);
    const fromMigrations = await describeTable('public');
    expect(fromSql.columns.length).toBeGreaterThan(10); // it found the table
    expect(fromSql.domainRules).toHaveLength(5); // and the five domains
    expect(fromSql).toEqual(fromMigrations);
  });

  it('runs again without harm (IF NOT EXISTS, and each domain kept if it exists)', async () => {
    await runIn(lifted, SQL_FILE);
    expect((await describeTable(lifted)).indexes).toHaveLength(3); // primary key, claim, reaper
  });

  it('the drizzle-kit path: its table, made after the domains the SQL file opens with, is the same table', async () => {
    // What the guide tells a drizzle-kit user: drizzle-kit writes the table but cannot write CREATE DOMAIN,
    // so the domain blocks that open idempotency_keys.sql go into a custom migration that runs first.
    const { files } = drizzleKitGenerate(`export { idempotencyKeys } from '${ROOT}/server/idempotency/schema';\n`);
    expect(files.size).toBe(1);
    const table = [...files.values()][0]!.replaceAll('--> statement-breakpoint', '');
    const domains = SQL_FILE.slice(0, SQL_FILE.indexOf('CREATE TABLE'));
    expect(domains.match(/^ *CREATE DOMAIN/gm)).toHaveLength(5);
    await sql.unsafe(`create schema ${generated}`);
    await runIn(generated, domains, table);
    expect(await describeTable(generated)).toEqual(await describeTable('public'));
  }, 30_000);

  it("refuses to make the table over a type of a domain's name that is not a domain over text", async () => {
    const taken = `taken_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
    await sql.unsafe(`create schema ${taken}`);
    try {
      await sql.unsafe(`create table ${taken}.idempotency_keys_fingerprint (x int)`); // its row type takes the name
      await expect(runIn(taken, SQL_FILE)).rejects.toThrow(/idempotency_keys_fingerprint must be domains over text/);
    } finally {
      await sql.unsafe(`drop schema ${taken} cascade`);
    }
  });

  it("this app's migrations are what drizzle-kit makes of its schema (generate finds nothing to add)", () => {
    const migrations = path.join(ROOT, 'db/migrations');
    const { said, names } = drizzleKitGenerate(`export * from '${ROOT}/db/schema';\n`, migrations);
    expect(said).toMatch(/No schema changes/);
    expect(names.sort()).toEqual(fs.readdirSync(migrations).sort());
  }, 30_000);
});
