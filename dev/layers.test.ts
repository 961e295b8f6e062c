/**
 * The import layers, kept true: each folder may import only from the folders below it, so that the
 * data layer knows nothing of the server, the server nothing of the pages, the idempotency folder
 * nothing of the shop, and the browser no runtime code of the server.
 *
 *   server/idempotency          the liftable layer                          -> nothing of the project
 *   shared                      pure rules and helpers, browser-safe
 *   db                          schema, client, migrations, seed            -> shared, server/idempotency
 *   server                      the API                                     -> server/idempotency, db, shared
 *   simulator                   the payment provider stand-in               -> shared
 *   app (pages, components)     the browser                                 -> shared, and types only from server
 *   app/api, instrumentation.ts server entry points                         -> server, shared
 *   dev                         launchers and harness                       -> all of the above
 *   tools, e2e                  commands and browser tests                  -> anything
 *   examples                    second apps built on the layer              -> server/idempotency/index.ts only
 * A test (`*.test.ts`) may also use the dev harness and the simulator (to sign or script what the provider
 * would send); a browser test may call the real server.
 *
 * The idempotency folder is a library with one public face: outside it, every import of it names the
 * folder itself (its index.ts), never a file inside; only the folder's own tests reach deeper. Inside
 * it, no file but a test imports anything of the project: it can be copied into another app whole.
 * An example app (`examples/*`) is what a forker builds: of the project it imports the folder's face alone
 * (its own files aside), tests included.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from './state';

type Layer =
  | 'shared'
  | 'db'
  | 'idempotency'
  | 'server'
  | 'simulator'
  | 'browser'
  | 'entry'
  | 'dev'
  | 'tools'
  | 'e2e'
  | 'examples';

const ALLOWED: Record<Layer, Layer[]> = {
  shared: [],
  db: ['shared', 'idempotency'],
  idempotency: [],
  server: ['idempotency', 'db', 'shared'],
  simulator: ['shared'],
  browser: ['shared'],
  entry: ['server', 'idempotency', 'db', 'shared'],
  dev: ['server', 'idempotency', 'db', 'shared', 'simulator'],
  tools: ['dev', 'server', 'idempotency', 'db', 'shared', 'simulator', 'browser', 'entry'],
  e2e: ['dev', 'server', 'idempotency', 'db', 'shared', 'simulator', 'browser', 'entry', 'tools'],
  examples: ['idempotency'], // and only its index.ts: the last test below
};

function layerOf(file: string): Layer | undefined {
  const rel = path.relative(PROJECT_ROOT, file).split(path.sep).join('/');
  if (rel.startsWith('shared/')) return 'shared';
  if (rel.startsWith('db/')) return 'db';
  if (rel === 'server/idempotency' || rel.startsWith('server/idempotency/')) return 'idempotency';
  if (rel.startsWith('server/')) return 'server';
  if (rel.startsWith('simulator/')) return 'simulator';
  if (rel.startsWith('app/api/') || rel === 'instrumentation.ts') return 'entry';
  if (rel.startsWith('app/')) return 'browser';
  if (rel.startsWith('dev/')) return 'dev';
  if (rel.startsWith('tools/')) return 'tools';
  if (rel.startsWith('e2e/')) return 'e2e';
  if (rel.startsWith('examples/')) return 'examples';
  return undefined;
}

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const full = path.join(dir, d.name);
    if (d.isDirectory()) return d.name === 'node_modules' || d.name.startsWith('.') ? [] : sources(full);
    return /\.(ts|tsx|js|mjs)$/.test(d.name) && !d.name.endsWith('.d.ts') ? [full] : [];
  });
}

/** Every project import of a file: its target file and whether it is `import type` only. */
function importsOf(file: string): { target: string; typeOnly: boolean; line: string }[] {
  const text = fs.readFileSync(file, 'utf8');
  const found: { target: string; typeOnly: boolean; line: string }[] = [];
  const re = /^(import|export)\s+(type\s+)?[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/gm;
  for (const m of text.matchAll(re)) {
    const spec = m[3] ?? m[4]!;
    let target: string | undefined;
    if (spec.startsWith('@/')) target = path.join(PROJECT_ROOT, spec.slice(2));
    else if (spec.startsWith('.')) target = path.resolve(path.dirname(file), spec);
    if (!target) continue; // a package
    found.push({ target, typeOnly: Boolean(m[2]), line: m[0] });
  }
  return found;
}

describe('import layers', () => {
  const roots = ['shared', 'db', 'server', 'simulator', 'app', 'dev', 'tools', 'e2e', 'examples'].map((d) =>
    path.join(PROJECT_ROOT, d),
  );
  const files = [...roots.flatMap(sources), path.join(PROJECT_ROOT, 'instrumentation.ts')];

  it('finds the project files it checks', () => {
    expect(files.length).toBeGreaterThan(50);
    expect(files.some((f) => f.endsWith('server/idempotency/one-transaction.ts'))).toBe(true);
    expect(files.some((f) => f.endsWith('examples/standalone/router.ts'))).toBe(true);
  });

  it('no import runs from a lower layer up to a higher one, and the browser takes only types from the server', () => {
    const violations: string[] = [];
    for (const file of files) {
      const from = layerOf(file)!;
      const isTest = /\.(test|spec)\.tsx?$/.test(file);
      for (const imp of importsOf(file)) {
        const to = layerOf(imp.target);
        if (!to || to === from) continue;
        const allowed =
          ALLOWED[from].includes(to) ||
          (isTest && from !== 'examples' && (to === 'dev' || to === 'simulator')) ||
          // The folder's own tests open their pools the way the app does (through PgBouncer too).
          (isTest && from === 'idempotency' && to === 'db') ||
          (isTest && from === 'browser' && to === 'server') ||
          (from === 'browser' && imp.typeOnly && (to === 'server' || to === 'idempotency'));
        if (!allowed)
          violations.push(
            `${path.relative(PROJECT_ROOT, file)} (${from}) -> ${path.relative(PROJECT_ROOT, imp.target)} (${to}): ` +
              `${imp.line}`,
          );
      }
    }
    expect(violations).toEqual([]);
  });

  it('the import map has no circle (static, dynamic and type-only imports alike)', () => {
    const resolve = (target: string): string | undefined => {
      for (const candidate of [target, `${target}.ts`, `${target}.tsx`, path.join(target, 'index.ts')]) {
        if (files.includes(candidate)) return candidate;
      }
      return target.endsWith('.js') ? resolve(target.slice(0, -3)) : undefined;
    };
    const edges = new Map(files.map((f) => [f, importsOf(f).flatMap((i) => resolve(i.target) ?? [])]));
    const circles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const visit = (file: string, trail: string[]) => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'open') {
        const from = trail.indexOf(file);
        circles.push([...trail.slice(from), file].map((f) => path.relative(PROJECT_ROOT, f)).join(' -> '));
        return;
      }
      state.set(file, 'open');
      for (const next of edges.get(file) ?? []) visit(next, [...trail, file]);
      state.set(file, 'done');
    };
    for (const file of files) visit(file, []);
    expect([...edges.values()].flat().length).toBeGreaterThan(200); // it resolved the imports
    expect(circles).toEqual([]);
  });

  it('the idempotency folder is entered through its index only; inside, only tests import the project', () => {
    const folder = path.join(PROJECT_ROOT, 'server', 'idempotency');
    const inFolder = (f: string) => f.startsWith(`${folder}${path.sep}`);
    const deep: string[] = [];
    const outward: string[] = [];
    let faceImports = 0;
    for (const file of files) {
      const isTest = /\.(test|spec)\.tsx?$/.test(file);
      for (const imp of importsOf(file)) {
        const target = imp.target.replace(/\.(ts|tsx|js|mjs)$/, '');
        if (!inFolder(file)) {
          if (target === folder || target === path.join(folder, 'index')) faceImports++;
          else if (inFolder(target)) deep.push(`${path.relative(PROJECT_ROOT, file)}: ${imp.line}`);
        } else if (!isTest && !inFolder(target) && target !== folder) {
          outward.push(`${path.relative(PROJECT_ROOT, file)}: ${imp.line}`);
        }
      }
    }
    expect(faceImports).toBeGreaterThan(10); // it really looked
    expect(deep, 'imports of a file inside server/idempotency/ from outside it').toEqual([]);
    expect(outward, 'imports of the project from inside server/idempotency/').toEqual([]);
  });
});
