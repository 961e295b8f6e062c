/**
 * The walkthrough in docs/ is kept true: every reference it makes to the project is checked against
 * the project itself, so a renamed file, symbol, test, script or lab scenario fails here, naming the
 * chapter and the line, instead of leaving a reader with a tutorial that no longer matches the code.
 *
 * What a chapter may write, and what is checked:
 *   `server/idempotency/store.ts`                     a repository path: it exists
 *   `claimKey` in `server/idempotency/store.ts`       the symbol is defined or exported in that file
 *   `e2e/checkout.spec.ts` › "exact test name"        a test (or describe) of that name is in that file
 *   npm run reconcile                                 the script is in package.json
 *   npx vitest run <file> -t "<pattern>"              the file exists and the pattern selects a test in it
 *   npm run test:e2e -- <file> -g "<pattern>"         the same, for the browser tests
 *   lab:double-click                                  the scenario exists (server/lab/scenarios.ts)
 *   [text](../README.md#anchor)                       the file exists, and so does the heading
 * and, the other way round, every lab scenario is named (as lab:<id>) in the chapter it points at.
 * Each chapter (docs/NN-*.md) opens with its questions (## Predict), then the idea, the lab, the code and at most
 * four tests.
 *
 * The checker is plain functions over text, so the last tests can feed it a made-up chapter and see
 * it catch every kind of drift.
 */
import fs from 'node:fs';
import path from 'node:path';
import { TRPCError } from '@trpc/server';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import { describe, expect, it } from 'vitest';
import { scenarios } from '../server/lab/scenarios';
import { PROJECT_ROOT } from './state';

// ---------------------------------------------------------------------------------------------
// The project, as the checker sees it.

interface Project {
  exists(relPath: string): boolean;
  /** A file's text, or undefined when there is no such file. */
  read(relPath: string): string | undefined;
  scripts: Set<string>;
  /** Lab scenario ids and the chapter each points at. */
  scenarios: { id: string; chapter: string }[];
}

function projectAt(root: string): Project {
  const full = (p: string) => path.join(root, p);
  const pkg = JSON.parse(fs.readFileSync(full('package.json'), 'utf8')) as { scripts?: Record<string, string> };
  return {
    exists: (p) => fs.existsSync(full(p)),
    read: (p) =>
      fs.existsSync(full(p)) && fs.statSync(full(p)).isFile() ? fs.readFileSync(full(p), 'utf8') : undefined,
    scripts: new Set(Object.keys(pkg.scripts ?? {})),
    scenarios: scenarios.map((s) => ({ id: s.id, chapter: s.chapter })),
  };
}

interface Problem {
  file: string;
  line: number;
  message: string;
}

/** How many references of each kind were checked (a checker that finds nothing proves nothing). */
type Counts = Record<'paths' | 'symbols' | 'tests' | 'scripts' | 'commands' | 'labs' | 'links', number>;
const noCounts = (): Counts => ({ paths: 0, symbols: 0, tests: 0, scripts: 0, commands: 0, labs: 0, links: 0 });

// ---------------------------------------------------------------------------------------------
// Reading a source file: what it defines, and the names of its tests.

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Whether `source` defines or exports `name` (one identifier). */
function definesName(source: string, name: string): boolean {
  const n = escapeRegExp(name);
  const patterns = [
    // function, class, interface, type, enum, const, let, var (exported or not)
    new RegExp(`\\b(?:function\\s*\\*?|class|interface|type|enum|const|let|var)\\s+${n}\\b`),
    // a method in an object literal or a class: `name(…) {`, `async name<T>(…): R {`, or its
    // parameters on the lines below: `async name(`
    new RegExp(
      `^\\s*(?:(?:public|private|protected|static|readonly|override|async|get|set)\\s+)*${n}\\s*` +
        `(?:<[^>]*>)?\\s*\\((?:.*\\{)?\\s*$`,
      'm',
    ),
    // a method signature in an interface: `name(…): R;`
    new RegExp(`^\\s*(?:readonly\\s+)?${n}\\s*(?:<[^>]*>)?\\s*\\(.*\\)\\s*:[^=]*;\\s*$`, 'm'),
    // a property in an object literal or an interface: `name: …`, `readonly name?: …`
    new RegExp(`^\\s*(?:readonly\\s+)?['"]?${n}['"]?\\??\\s*:`, 'm'),
    // export { a, name as b }
    new RegExp(`export\\s*(?:type\\s*)?\\{[^}]*\\b${n}\\b[^}]*\\}`),
  ];
  return patterns.some((p) => p.test(source));
}

/** A symbol as the walkthrough writes it: `name`, or `object.member` (a method of an exported object). */
function definesSymbol(source: string, symbol: string): boolean {
  return symbol.split('.').every((part) => definesName(source, part));
}

/**
 * The names of the tests and describes in a test file: the string that opens a call and is followed
 * by a function, as in it('name', async () => …), describe('name', () => …), it.each(…)('%s: …', …),
 * test(`lab: ${scenario.id}`, …). A name with placeholders (%s, ${…}) is a template.
 */
function testNamesIn(source: string): string[] {
  const names: string[] = [];
  // A name may be split over lines as 'first part ' + 'second part'.
  const literal = String.raw`'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*"|\`(?:\\.|[^\`\\])*\``;
  const re = new RegExp(
    String.raw`\(\s*((?:${literal})(?:\s*\+\s*(?:${literal}))*)\s*,\s*(?:async\s*)?(?:\(|function\b)`,
    'g',
  );
  for (const m of source.matchAll(re)) {
    const parts = [...m[1]!.matchAll(new RegExp(literal, 'g'))].map((p) => p[0].slice(1, -1).replace(/\\(.)/g, '$1'));
    names.push(parts.join(''));
  }
  return names;
}

const PLACEHOLDER = /%[sdifjo#]|\$\{[^}]*\}/g;
const HAS_PLACEHOLDER = /%[sdifjo#]|\$\{[^}]*\}/;

/** The string literals of a file: what a template's placeholder may stand for (it.each tables). */
function literalsIn(source: string): Set<string> {
  const out = new Set<string>();
  for (const m of source.matchAll(/(['"`])((?:\\.|(?!\1)[^\\\n])*)\1/g)) out.add(m[2]!.replace(/\\(.)/g, '$1'));
  return out;
}

/** Every concrete name a file's tests can have: literal names, and templates filled with known values. */
function concreteTestNames(source: string, scenarioIds: string[]): string[] {
  const values = [...new Set([...scenarioIds, ...literalsIn(source)])];
  const out: string[] = [];
  for (const name of testNamesIn(source)) {
    if (!HAS_PLACEHOLDER.test(name)) out.push(name);
    // A template: its first placeholder filled with each known value (any further one stays a placeholder).
    else for (const v of values) out.push(name.replace(HAS_PLACEHOLDER, v));
  }
  return out;
}

/**
 * Whether `name` is the name of a test or describe in `source` (a template matches when its placeholders are
 * known values).
 */
function hasTestNamed(source: string, name: string, scenarioIds: string[]): boolean {
  const values = new Set([...scenarioIds, ...literalsIn(source)]);
  return testNamesIn(source).some((candidate) => {
    if (candidate === name) return true;
    if (!HAS_PLACEHOLDER.test(candidate)) return false;
    const pattern = candidate.split(PLACEHOLDER).map(escapeRegExp).join('(.+?)');
    const m = new RegExp(`^${pattern}$`).exec(name);
    return m?.slice(1).every((v) => values.has(v));
  });
}

/** Whether a -t / -g pattern (a regular expression, as vitest and Playwright read it) selects some test in `source`. */
function patternSelects(source: string, pattern: string, scenarioIds: string[]): boolean {
  let re: RegExp;
  try {
    re = new RegExp(pattern);
  } catch {
    return false;
  }
  return concreteTestNames(source, scenarioIds).some((n) => re.test(n.replace(PLACEHOLDER, 'x')));
}

// ---------------------------------------------------------------------------------------------
// Reading a chapter.

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/`/g, '')
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchorsOf(markdown: string): Set<string> {
  const out = new Set<string>();
  let fence = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) fence = !fence;
    const h = !fence && /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!h) continue;
    const base = slug(h[1]!);
    let s = base;
    for (let i = 1; out.has(s); i++) s = `${base}-${i}`;
    out.add(s);
  }
  return out;
}

// A backticked repository path: folders and a file name with a known extension (or a folder ending
// in /). Not an URL path (/api/…), not a placeholder (<id>), not a command (spaces).
const REPO_PATH = /^(?![./])[\w@.[\]-]+(?:\/[\w@.[\]-]+)*(?:\.(?:ts|tsx|js|mjs|json|md|sql|css|yml|yaml)|\/)$/;
const looksLikePath = (s: string) => s.includes('/') && REPO_PATH.test(s);

const CHAPTER_PARTS = ['Predict', 'The idea', 'See it in the lab', 'The code', 'The proof'];
const MAX_TESTS_PER_CHAPTER = 4;

/**
 * Checks one Markdown file of the walkthrough. `file` is its path from the project root (links are
 * resolved from its folder). Returns the problems found, and adds what it checked to `counts`.
 */
function checkMarkdown(file: string, text: string, project: Project, counts: Counts = noCounts()): Problem[] {
  const problems: Problem[] = [];
  const ids = project.scenarios.map((s) => s.id);
  const lines = text.split('\n');
  let fence: string | null = null; // the language of the fenced block we are in, if any

  const problem = (line: number, message: string) => problems.push({ file, line, message });

  const testFile = (line: number, p: string): string | undefined => {
    const source = project.read(p);
    if (source === undefined) problem(line, `no such test file: ${p}`);
    return source;
  };

  lines.forEach((raw, i) => {
    const n = i + 1;
    const open = /^\s*(```|~~~)\s*([\w-]*)/.exec(raw);
    if (open) {
      fence = fence === null ? (open[2] ?? '') : null;
      return;
    }
    if (fence === 'mermaid') return; // a diagram: labels, not references

    // Commands, in prose and in code blocks alike.
    for (const m of raw.matchAll(/\bnpm run ([\w:.-]+)/g)) {
      counts.scripts++;
      if (!project.scripts.has(m[1]!)) problem(n, `npm run ${m[1]}: no such script in package.json`);
    }
    for (const m of raw.matchAll(/\bnpm (start)\b/g)) {
      counts.scripts++;
      if (!project.scripts.has(m[1]!)) problem(n, `npm ${m[1]}: no such script in package.json`);
    }
    for (const m of raw.matchAll(/\bnpx vitest run ([^\s`"]+)(?:\s+-t\s+"([^"]+)")?/g)) {
      counts.commands++;
      const source = testFile(n, m[1]!);
      if (source !== undefined && m[2] !== undefined && !patternSelects(source, m[2], ids)) {
        problem(n, `npx vitest run ${m[1]} -t "${m[2]}": the pattern selects no test in that file`);
      }
    }
    for (const m of raw.matchAll(/\bnpm run test:e2e -- ([^\s`"]+)(?:\s+-g\s+"([^"]+)")?/g)) {
      counts.commands++;
      const source = testFile(n, m[1]!);
      if (source !== undefined && m[2] !== undefined && !patternSelects(source, m[2], ids)) {
        problem(n, `npm run test:e2e -- ${m[1]} -g "${m[2]}": the pattern selects no test in that file`);
      }
    }
    if (fence !== null) return; // the rest is about prose

    // Lab scenarios.
    for (const m of raw.matchAll(/\blab:([A-Za-z0-9_-]+)/g)) {
      counts.labs++;
      if (!ids.includes(m[1]!)) problem(n, `lab:${m[1]}: no such lab scenario in server/lab/scenarios.ts`);
    }

    // The two references below may wrap onto the next line: each is read from the line it starts on.
    const next = lines[i + 1] ?? '';
    const here = /^\s*(```|~~~)/.test(next) ? raw : `${raw}\n${next}`;
    const startsHere = (m: RegExpMatchArray) => (m.index ?? 0) < raw.length;

    // `symbol` in `path`
    for (const m of here.matchAll(/`([A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*)` in\s+`([^`]+)`/g)) {
      const [, symbol, p] = m as unknown as [string, string, string];
      if (!startsHere(m) || !looksLikePath(p)) continue;
      counts.symbols++;
      const source = project.read(p);
      if (source !== undefined && !definesSymbol(source, symbol)) problem(n, `\`${symbol}\` is not defined in ${p}`);
    }

    // `path` › "test name"
    for (const m of here.matchAll(/`([^`]+)`\s+›\s+"([^"]+)"/g)) {
      const [, p, wrapped] = m as unknown as [string, string, string];
      if (!startsHere(m)) continue;
      const name = wrapped.replace(/\s*\n\s*/g, ' ');
      counts.tests++;
      const source = testFile(n, p);
      if (source !== undefined && !hasTestNamed(source, name, ids)) problem(n, `no test named "${name}" in ${p}`);
    }

    // Every backticked repository path exists.
    for (const m of raw.matchAll(/`([^`\s]+)`/g)) {
      const p = m[1]!;
      if (!looksLikePath(p)) continue;
      counts.paths++;
      if (!project.exists(p.replace(/\/$/, ''))) problem(n, `no such file or folder: ${p}`);
    }

    // Relative links to other files (and their anchors, for Markdown files).
    for (const m of raw.matchAll(/\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      const target = m[1]!;
      if (/^[a-z][a-z+.-]*:/i.test(target)) continue; // http:, mailto:
      counts.links++;
      const [ref, anchor] = target.split('#') as [string, string | undefined];
      const rel = ref === '' ? file : path.posix.normalize(path.posix.join(path.posix.dirname(file), ref));
      if (ref !== '' && !project.exists(rel.replace(/\/$/, ''))) {
        problem(n, `broken link: ${target} (no ${rel})`);
        continue;
      }
      if (anchor && rel.endsWith('.md')) {
        const markdown = rel === file ? text : (project.read(rel) ?? '');
        if (!anchorsOf(markdown).has(anchor)) problem(n, `broken link: ${target} (no heading #${anchor} in ${rel})`);
      }
    }
  });

  if (/^docs\/\d\d-[^/]+\.md$/.test(file)) problems.push(...checkChapterShape(file, lines));
  return problems;
}

/**
 * A chapter asks before it tells: "## Predict" (its situation and numbered questions) comes first, then the
 * explanation, the lab scenario to run, the code, and at most four tests with a command that runs one alone.
 */
function checkChapterShape(file: string, lines: string[]): Problem[] {
  const problems: Problem[] = [];
  const at = CHAPTER_PARTS.map((part) => lines.findIndex((l) => l.trim() === `## ${part}`));
  CHAPTER_PARTS.forEach((part, i) => {
    if (at[i] === -1) problems.push({ file, line: 1, message: `missing the part "## ${part}"` });
  });
  if (at.some((x) => x === -1)) return problems;
  const firstPart = lines.findIndex((l) => /^## /.test(l));
  if (firstPart !== at[0])
    problems.push({ file, line: firstPart + 1, message: `the first part is not "## ${CHAPTER_PARTS[0]}"` });
  for (let i = 1; i < at.length; i++) {
    if (at[i]! < at[i - 1]!)
      problems.push({
        file,
        line: at[i]! + 1,
        message: `"## ${CHAPTER_PARTS[i]}" comes before "## ${CHAPTER_PARTS[i - 1]}"`,
      });
  }
  const section = (i: number) => {
    const end = lines.findIndex((l, j) => j > at[i]! && /^## /.test(l));
    return lines.slice(at[i]!, end === -1 ? lines.length : end).join('\n');
  };
  const need = (i: number, what: string, re: RegExp) => {
    if (!re.test(section(i)))
      problems.push({ file, line: at[i]! + 1, message: `"## ${CHAPTER_PARTS[i]}" has no ${what}` });
  };
  need(0, 'numbered question', /^1\. .*\S/m);
  need(2, 'lab scenario (lab:<id>)', /\blab:[\w-]+/);
  need(3, 'code reference (`symbol` in `path`)', /`[\w$.]+` in `[^`]+\/[^`]+`/);
  need(4, 'test reference (`file` › "name")', /`[^`]+` › "[^"]+"/);
  need(4, 'command that runs a test alone', /npx vitest run \S+ -t "|npm run test:e2e -- \S+ -g "/);
  const tests = section(4).match(/`[^`]+`\s+›\s+"[^"]+"/g) ?? [];
  if (tests.length > MAX_TESTS_PER_CHAPTER)
    problems.push({
      file,
      line: at[4]! + 1,
      message: `"## The proof" names ${tests.length} tests (at most ${MAX_TESTS_PER_CHAPTER})`,
    });
  return problems;
}

/** Every scenario is named in the chapter it points at, and the index lists every chapter. */
function checkCoverage(docs: Map<string, string>, project: Project): Problem[] {
  const problems: Problem[] = [];
  for (const s of project.scenarios) {
    const chapter = docs.get(s.chapter);
    if (chapter === undefined)
      problems.push({
        file: s.chapter,
        line: 1,
        message: `lab scenario ${s.id} points at ${s.chapter}, which does not exist`,
      });
    else if (!new RegExp(`\\blab:${escapeRegExp(s.id)}\\b(?!-)`).test(chapter)) {
      problems.push({
        file: s.chapter,
        line: 1,
        message: `lab scenario ${s.id} points at this chapter, which never names lab:${s.id}`,
      });
    }
  }
  const index = docs.get('docs/README.md');
  if (index === undefined) problems.push({ file: 'docs/README.md', line: 1, message: 'the walkthrough has no index' });
  else {
    for (const file of docs.keys()) {
      const inDocs = /^docs\/[^/]+\.md$/.test(file);
      if (inDocs && file !== 'docs/README.md' && !index.includes(`](${path.posix.basename(file)})`)) {
        problems.push({
          file: 'docs/README.md',
          line: 1,
          message: `the index does not link to ${path.posix.basename(file)}`,
        });
      }
    }
  }
  return problems;
}

/** The whole walkthrough: every docs/*.md, checked, and the scenarios covered. */
function checkWalkthrough(docs: Map<string, string>, project: Project): { problems: Problem[]; counts: Counts } {
  const counts = noCounts();
  const problems = [...docs].flatMap(([file, text]) => checkMarkdown(file, text, project, counts));
  problems.push(...checkCoverage(docs, project));
  return { problems, counts };
}

// ---------------------------------------------------------------------------------------------
// The values the text states: durations, counts, limits, ports, statuses with their error codes.

/** The values the code holds, read from its source (so a drifted project is read the same way). */
interface CodeValues {
  /** Defaults of the environment variables (server/env.js), as numbers where they are numbers. */
  env: Record<string, number | string>;
  /** Exported numeric constants, by name. */
  constants: Record<string, number>;
  /** HTTP status of every deliberate error code (server/errors.ts, server/idempotency/errors.ts). */
  errors: Record<string, number>;
}

/** Where each constant the docs state lives. */
const CONSTANT_FILES: Record<string, string> = {
  MAX_KEY_LENGTH: 'server/idempotency/key.ts',
  RETRY_AFTER_SECONDS: 'server/idempotency/request.ts',
  REAP_BATCH_SIZE: 'server/idempotency/reaper.ts',
  REAP_REST_FACTOR: 'server/idempotency/reaper.ts',
  COMPLETER_MAX_RUNS: 'server/idempotency/completer.ts',
  COMPLETER_BACKOFF_BASE_SECONDS: 'server/idempotency/completer.ts',
  PROVIDER_KEY_RETENTION_HOURS: 'server/services/payments.ts',
  LOOK_UP_AFTER_MS: 'server/services/payments.ts',
  WEBHOOK_TOLERANCE_SECONDS: 'server/services/payments.ts',
  SETTLE_AFTER_SECONDS: 'server/jobs/settle.ts',
  OUTBOX_MAX_ATTEMPTS: 'server/jobs/outbox.ts#MAX_ATTEMPTS',
  CLIENT_MAX_ATTEMPTS: 'app/components/use-idempotent-mutation.ts#MAX_ATTEMPTS',
  MAX_RETRY_WINDOW_MS: 'app/components/use-idempotent-mutation.ts',
  ATTEMPT_TIMEOUT_MS: 'app/components/use-idempotent-mutation.ts',
  MAX_QUANTITY: 'shared/shop-rules.ts',
  DECISION_COUNT: 'server/idempotency/hooks.ts#DECISIONS.length',
};

const HTTP_STATUS: Record<string, number> = Object.fromEntries(
  (
    [
      'BAD_REQUEST',
      'UNAUTHORIZED',
      'PAYMENT_REQUIRED',
      'FORBIDDEN',
      'NOT_FOUND',
      'CONFLICT',
      'UNPROCESSABLE_CONTENT',
      'TOO_MANY_REQUESTS',
      'INTERNAL_SERVER_ERROR',
      'SERVICE_UNAVAILABLE',
    ] as const
  ).map((code) => [code, getHTTPStatusCodeFromError(new TRPCError({ code }))]),
);

/** A numeric expression of a constant's source (`24`, `1_000`, `(A - 1) * 3_600_000`), or undefined. */
function evaluate(expr: string, known: Record<string, number>): number | undefined {
  const replaced = expr.replace(/[A-Z][A-Z0-9_]*/g, (name) => (name in known ? String(known[name]) : 'NaN'));
  if (!/^[\d\s_*+\-/().NaN]+$/.test(replaced)) return undefined;
  const value = Number(new Function(`return (${replaced.replace(/(\d)_(\d)/g, '$1$2')});`)());
  return Number.isFinite(value) ? value : undefined;
}

function codeValuesOf(project: Project): CodeValues {
  const source = (p: string) => {
    const text = project.read(p);
    if (text === undefined) throw new Error(`the value check reads ${p}, which does not exist`);
    return text;
  };
  // Environment defaults: `NAME: z.… .default(value)`, the chain possibly over several lines.
  const env: Record<string, number | string> = {};
  const envSource = source('server/env.js');
  const starts = [...envSource.matchAll(/^\s*([A-Z][A-Z0-9_]+): z\b/gm)];
  starts.forEach((m, i) => {
    const chunk = envSource.slice(m.index, starts[i + 1]?.index ?? envSource.length);
    const raw = /\.default\(([^)]*)\)/.exec(chunk)?.[1]?.trim();
    if (raw !== undefined) env[m[1]!] = evaluate(raw, {}) ?? raw.replace(/^'|'$/g, '');
  });
  const constants: Record<string, number> = {};
  for (const [name, where] of Object.entries(CONSTANT_FILES)) {
    const [file, member] = where.split('#') as [string, string | undefined];
    const text = source(file);
    if (member === 'DECISIONS.length') {
      const list = /export const DECISIONS[^=]*=\s*\[([\s\S]*?)\]/.exec(text)?.[1] ?? '';
      constants[name] = (list.match(/'[^']+'/g) ?? []).length;
      continue;
    }
    const own: Record<string, number> = {};
    for (const m of text.matchAll(/export const ([A-Z][A-Z0-9_]*)\s*(?::[^=]+)?=\s*([^;]+);/g)) {
      const v = evaluate(m[2]!, own);
      if (v !== undefined) own[m[1]!] = v;
    }
    const v = own[member ?? name];
    if (v === undefined) throw new Error(`the value check found no numeric constant ${member ?? name} in ${file}`);
    constants[name] = v;
  }
  const errors: Record<string, number> = {};
  for (const file of ['server/errors.ts', 'server/idempotency/errors.ts']) {
    for (const m of source(file).matchAll(/^\s*([A-Z][A-Z_]+): \{\s*code: '([A-Z_]+)'/gm)) {
      const status = HTTP_STATUS[m[2]!];
      if (status !== undefined) errors[m[1]!] = status;
    }
  }
  return { env, constants, errors };
}

/** A number as the text writes it: `1,000`, `10_000`, or a word (`a`, `five`, `eleven`). */
const WORDS: Record<string, number> = {
  a: 1,
  an: 1,
  one: 1,
  two: 2,
  three: 3,
  four: 4,
  five: 5,
  six: 6,
  seven: 7,
  eight: 8,
  nine: 9,
  ten: 10,
  eleven: 11,
  twelve: 12,
};
const numberOf = (s: string) => WORDS[s.toLowerCase()] ?? Number(s.replace(/[,_]/g, ''));

/** Seconds in one of each unit the text uses. */
const UNIT_SECONDS: Record<string, number> = {
  ms: 0.001,
  s: 1,
  second: 1,
  seconds: 1,
  minute: 60,
  minutes: 60,
  min: 60,
  h: 3600,
  hour: 3600,
  hours: 3600,
  day: 86_400,
  days: 86_400,
};
/** The unit of an environment variable, from its name. */
const envUnitSeconds = (name: string) =>
  name.endsWith('_MS') ? 0.001 : name.endsWith('_SECONDS') ? 1 : name.endsWith('_HOURS') ? 3600 : undefined;

const NUM = String.raw`(\d[\d,_]*(?:\.\d+)?|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)`;
const UNIT = `(ms|seconds?|minutes?|min|hours?|days?|s|h)`;

/**
 * Sentences that state a constant's value. Each pattern captures the number, and a unit where the constant is
 * a duration (the constant's own unit is read from its name: _MS, _SECONDS, _HOURS).
 */
const STATED: { constant: string; pattern: RegExp }[] = [
  { constant: 'MAX_KEY_LENGTH', pattern: /1 to (\d+)\s+printable ASCII/g },
  { constant: 'MAX_KEY_LENGTH', pattern: /over (\d+)\s+characters/g },
  { constant: 'RETRY_AFTER_SECONDS', pattern: /Retry-After`?:?\s*`?(?:`\s*)?(\d+)`/g },
  { constant: 'REAP_BATCH_SIZE', pattern: /(?:batches of|deleted) (\d[\d,]*)(?: at a time)?/g },
  { constant: 'REAP_REST_FACTOR', pattern: new RegExp(`rests ${NUM} times as long`, 'g') },
  { constant: 'COMPLETER_MAX_RUNS', pattern: /after (\d+) (?:failed )?tries/g },
  { constant: 'COMPLETER_BACKOFF_BASE_SECONDS', pattern: /\((\d+) s x \(2\^n - 1\)/g },
  {
    constant: 'PROVIDER_KEY_RETENTION_HOURS',
    pattern: /(?:Stripe|the provider) (?:forgets|keeps) (?:its )?keys (?:after|for)(?: at least)? (\d+) (hours)/g,
  },
  { constant: 'LOOK_UP_AFTER_MS', pattern: /(?:later than|or more after|resumed) (\d+) (hours)(?: or more)? after/g },
  { constant: 'WEBHOOK_TOLERANCE_SECONDS', pattern: new RegExp(`older[ -]than[ -]${NUM}[ -]${UNIT}`, 'g') },
  {
    constant: 'SETTLE_AFTER_SECONDS',
    pattern: new RegExp(`(?:waiting|settled) (?:for more than |after )${NUM} ${UNIT}`, 'g'),
  },
  { constant: 'OUTBOX_MAX_ATTEMPTS', pattern: /set aside after (\d+) failures/g },
  { constant: 'CLIENT_MAX_ATTEMPTS', pattern: /at most (\d+) attempts within/g },
  { constant: 'MAX_RETRY_WINDOW_MS', pattern: new RegExp(`attempts within ${NUM} ${UNIT}`, 'g') },
  { constant: 'ATTEMPT_TIMEOUT_MS', pattern: new RegExp(String.raw`timeouts \(${NUM} ${UNIT} per attempt`, 'g') },
  { constant: 'MAX_QUANTITY', pattern: /must be from 1 to (\d+)/g },
  { constant: 'DECISION_COUNT', pattern: new RegExp(`(?:the|all) ${NUM} decisions`, 'gi') },
  { constant: 'DECISION_COUNT', pattern: new RegExp(String.raw`There are ${NUM}\.`, 'g') },
];

/** The seconds a constant stands for, when it is a duration (by its name). */
function constantSeconds(name: string, value: number): number | undefined {
  if (name.endsWith('_MS')) return value / 1000;
  if (name.endsWith('_SECONDS')) return value;
  if (name.endsWith('_HOURS')) return value * 3600;
  return undefined;
}

/** Prose only: fenced blocks (timelines, commands, diagrams) are pictures, not statements. */
function proseOf(text: string): string {
  return text.replace(/^\s*(```|~~~)[\s\S]*?^\s*\1\s*$/gm, (block) => block.replace(/[^\n]/g, ' '));
}

/**
 * Checks every value the text states against the code. Returns the problems, and adds to `checked` how many
 * statements of each kind it compared (a check that finds nothing proves nothing).
 */
function checkValues(
  file: string,
  text: string,
  code: CodeValues,
  checked: Map<string, number> = new Map(),
): Problem[] {
  const problems: Problem[] = [];
  const prose = proseOf(text);
  // The same sentence may wrap: search a copy with each line break and the indent after it turned into one
  // space, keeping the line each of its characters came from.
  let flat = '';
  const lines: number[] = [];
  let line = 1;
  for (let i = 0; i < prose.length; i++) {
    if (prose[i] === '\n') {
      line++;
      while (prose[i + 1] === ' ' || prose[i + 1] === '\t') i++;
      flat += ' ';
    } else flat += prose[i];
    lines.push(line);
  }
  const lineAt = (index: number) => lines[index] ?? line;
  const count = (what: string) => checked.set(what, (checked.get(what) ?? 0) + 1);
  const differs = (index: number, what: string, stated: string, actual: string) =>
    problems.push({ file, line: lineAt(index), message: `${what}: the text says ${stated}, the code ${actual}` });

  // 1. A status with its error code: `409 IDEMPOTENCY_KEY_IN_USE`.
  for (const m of flat.matchAll(/\b([1-5]\d\d)`?\s+`?([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\b/g)) {
    const [, status, errorCode] = m as unknown as [string, string, string];
    if (code.env[errorCode] !== undefined) continue; // an environment variable, not an error
    count('status codes');
    const actual = code.errors[errorCode];
    if (actual === undefined) differs(m.index!, errorCode, `${status} ${errorCode}`, 'has no such error code');
    else if (String(actual) !== status) differs(m.index!, errorCode, `status ${status}`, `answers ${actual}`);
  }

  // 2. An environment variable's default, in a configuration table: | `NAME` | `default` | …
  for (const m of flat.matchAll(/\|\s*`([A-Z][A-Z0-9_]+)`\s*\|\s*`([^`]+)`\s*\|/g)) {
    const [, name, stated] = m as unknown as [string, string, string];
    const actual = code.env[name];
    if (actual === undefined) continue;
    count('defaults');
    if (String(actual) !== stated.replace(/[,_]/g, '')) differs(m.index!, name, `default ${stated}`, String(actual));
  }

  // 3. A port, in a ports table: | 25432 | … | `NAME` |
  for (const m of flat.matchAll(/\|\s*(\d{4,5})\s*\|[^|]*\|\s*`([A-Z][A-Z0-9_]*PORT)`/g)) {
    const [, stated, name] = m as unknown as [string, string, string];
    const actual = code.env[name];
    if (actual === undefined) continue;
    count('ports');
    if (String(actual) !== stated) differs(m.index!, name, `port ${stated}`, String(actual));
  }

  // 4. A duration or a port written next to the variable that sets it: "10 seconds (`IDEMPOTENCY_WAIT_MS`)",
  // "(`IDEMPOTENCY_LEASE_MS`, 30 s)", "port 25432 (`EMBEDDED_PG_PORT`)".
  const near = [
    new RegExp(String.raw`(?:port )?${NUM}(?: ${UNIT})?(?:[^.\x60|]{0,16}?)\x60([A-Z][A-Z0-9_]+)\x60`, 'g'),
    new RegExp(String.raw`\x60([A-Z][A-Z0-9_]+)\x60,? ${NUM}(?: ${UNIT})?\b`, 'g'),
  ];
  near.forEach((re, i) => {
    for (const m of flat.matchAll(re)) {
      const [n, unit, name] = (i === 0 ? [m[1], m[2], m[3]] : [m[2], m[3], m[1]]) as [string, string, string];
      const actual = code.env[name];
      if (typeof actual !== 'number') continue;
      const seconds = envUnitSeconds(name);
      if (name.endsWith('PORT')) {
        if (unit !== undefined || !/^\d{4,5}$/.test(n)) continue;
        count('ports');
        if (Number(n) !== actual) differs(m.index!, name, `port ${n}`, String(actual));
      } else if (seconds !== undefined && unit !== undefined) {
        count('durations');
        const stated = numberOf(n) * UNIT_SECONDS[unit]!;
        if (Math.abs(stated - actual * seconds) > 1e-9) differs(m.index!, name, `${n} ${unit}`, `${actual}`);
      }
    }
  });

  // 5. Sentences that state one of the code's constants.
  for (const { constant, pattern } of STATED) {
    for (const m of flat.matchAll(pattern)) {
      const actual = code.constants[constant]!;
      const stated = numberOf(m[1]!);
      const unit = m[2];
      const seconds = constantSeconds(constant, actual);
      count(constant);
      const same =
        unit !== undefined && seconds !== undefined
          ? Math.abs(stated * UNIT_SECONDS[unit]! - seconds) < 1e-9
          : stated === actual;
      if (!same) differs(m.index!, constant, m[0].trim(), String(actual));
    }
  }
  return problems;
}

const format = (ps: Problem[]) => ps.map((p) => `${p.file}:${p.line}: ${p.message}`).join('\n');

// ---------------------------------------------------------------------------------------------

/** The Markdown the checks read: the chapters, the glossary and the index, docs/reference/, and the README. */
function readDocs(root: string): Map<string, string> {
  const files = [
    ...fs
      .readdirSync(path.join(root, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .map((f) => `docs/${f}`),
    ...fs
      .readdirSync(path.join(root, 'docs/reference'))
      .filter((f) => f.endsWith('.md'))
      .map((f) => `docs/reference/${f}`),
    'README.md',
  ].sort();
  return new Map(files.map((f) => [f, fs.readFileSync(path.join(root, f), 'utf8')] as const));
}

const isChapter = (file: string) => /^docs\/\d\d-[^/]+\.md$/.test(file);

/** Words a reader reads: code blocks left out. */
const wordsIn = (markdown: string) =>
  proseOf(markdown)
    .split(/\s+/)
    .filter((w) => /[\p{L}\p{N}]/u.test(w)).length;

/** The text of one `## part` of a chapter. */
function partOf(markdown: string, part: string): string {
  const start = markdown.indexOf(`\n## ${part}\n`);
  if (start === -1) return '';
  const end = markdown.indexOf('\n## ', start + 1);
  return markdown.slice(start, end === -1 ? undefined : end);
}

const LIMITS = { chapter: 900, chapters: 7_000, idea: 250, readme: 1_500 };

describe('the walkthrough (docs/) matches the code', () => {
  const project = projectAt(PROJECT_ROOT);
  const docs = readDocs(PROJECT_ROOT);

  it(
    'every file, symbol, test, script, command, scenario and link it names exists, and every scenario has its ' +
      'chapter',
    () => {
      const { problems, counts } = checkWalkthrough(docs, project);
      expect(format(problems)).toBe('');
      // It really looked: each kind of reference is there to check.
      for (const [kind, n] of Object.entries(counts)) expect(n, `${kind} checked`).toBeGreaterThan(0);
      console.info(`[docs] ${docs.size} files; references checked: ${JSON.stringify(counts)}`);
    },
  );

  it("every value the text states (durations, counts, limits, ports, statuses and error codes) is the code's", () => {
    const code = codeValuesOf(project);
    const checked = new Map<string, number>();
    const problems = [...docs].flatMap(([file, text]) => checkValues(file, text, code, checked));
    expect(format(problems)).toBe('');
    // Every kind of statement, and every constant the checker knows, was found somewhere and compared.
    for (const kind of ['status codes', 'defaults', 'ports', 'durations', ...STATED.map((x) => x.constant)])
      expect(checked.get(kind) ?? 0, `${kind} checked`).toBeGreaterThan(0);
    console.info(`[docs] values checked: ${JSON.stringify(Object.fromEntries(checked))}`);
  });

  it('the chapters keep their word limits, the README its own, and each chapter links the glossary', () => {
    const chapters = [...docs].filter(([file]) => isChapter(file));
    expect(chapters.length).toBe(11);
    const over: string[] = [];
    let total = 0;
    for (const [file, text] of chapters) {
      const words = wordsIn(text);
      total += words;
      if (words > LIMITS.chapter) over.push(`${file}: ${words} words (at most ${LIMITS.chapter})`);
      const idea = wordsIn(partOf(text, 'The idea')) - 3; // less the heading
      if (idea > LIMITS.idea) over.push(`${file}: "The idea" has ${idea} words (at most ${LIMITS.idea})`);
      if (!/\]\(glossary\.md#[\w-]+\)/.test(text)) over.push(`${file}: never links a term to the glossary`);
    }
    if (total > LIMITS.chapters) over.push(`the chapters: ${total} words (at most ${LIMITS.chapters})`);
    const readme = wordsIn(docs.get('README.md')!);
    if (readme > LIMITS.readme) over.push(`README.md: ${readme} words (at most ${LIMITS.readme})`);
    expect(over.join('\n')).toBe('');
    console.info(`[docs] chapters ${total} words; README ${readme} words`);
  });
});

describe('the checker catches drift', () => {
  const project = projectAt(PROJECT_ROOT);

  const GOOD = [
    '# A sample',
    '',
    'See `server/idempotency/store.ts` and `server/jobs/`; the claim is `claimKey` in `server/idempotency/store.ts`,',
    'a provider call is `stripeProvider.charge` in `server/services/payments.ts`.',
    '`server/idempotency/idempotency.test.ts` › "no key: 400 IDEMPOTENCY_KEY_REQUIRED, nothing written"',
    '`server/lab/lab.test.ts` › "double-click: its unsafe twin shows the damage"',
    '`e2e/lab.spec.ts` › "lab: storm-of-20"',
    '`server/services/purchase.test.ts` › "in charge_attempted: a 500, then the retry ends with one order and one ' +
      'charge"',
    'Run `npx vitest run server/idempotency/idempotency.test.ts -t "a storm"` or `npm run test:e2e -- ' +
      'e2e/lab.spec.ts -g "lab: slow-server"`,',
    'then `npm run reconcile`, and play lab:double-click. Read [the design ' +
      'note](../server/idempotency/README.md#one-key-row).',
  ].join('\n');

  it('a correct sample passes', () => {
    const counts = noCounts();
    expect(format(checkMarkdown('docs/sample.md', GOOD, project, counts))).toBe('');
    expect(counts).toEqual({ paths: 8, symbols: 2, tests: 4, scripts: 2, commands: 2, labs: 1, links: 1 });
  });

  it('reports a made-up file, symbol, test, script, command pattern, scenario and link, each with its line', () => {
    const BAD = [
      'See `server/idempotency/stor.ts`.', // 1: no such file
      'The claim is `claimKeys` in `server/idempotency/store.ts`.', // 2: no such symbol
      '`server/idempotency/idempotency.test.ts` › "a storm of 51 requests"', // 3: no such test
      '`e2e/lab.spec.ts` › "lab: stampede"', // 4: no such scenario behind the test name
      'Then `npm run reconcile-all`.', // 5: no such script
      'Run `npx vitest run server/idempotency/idempotency.test.ts -t "a hurricane"`.', // 6: selects nothing
      'Run `npx vitest run server/idempotency/nothing.test.ts`.', // 7: no such test file
      'Play lab:stampede.', // 8: no such scenario
      // 9: two broken links
      'Read [the note](../server/idempotency/NOTE.md) and [its rows](../server/idempotency/README.md#no-such-part).',
      'Run `npm run test:e2e -- e2e/lab.spec.ts -g "lab: stampede"`.', // 10: selects nothing
      'A reference may wrap: `claimKeys` in', // 11: no such symbol, its path on the next line
      '`server/idempotency/store.ts`.',
    ].join('\n');
    const found = checkMarkdown('docs/sample.md', BAD, project).map((p) => `${p.line}: ${p.message}`);
    expect(found).toEqual([
      '1: no such file or folder: server/idempotency/stor.ts',
      '2: `claimKeys` is not defined in server/idempotency/store.ts',
      '3: no test named "a storm of 51 requests" in server/idempotency/idempotency.test.ts',
      '4: no test named "lab: stampede" in e2e/lab.spec.ts',
      '5: npm run reconcile-all: no such script in package.json',
      '6: npx vitest run server/idempotency/idempotency.test.ts -t "a hurricane": the pattern selects no test in ' +
        'that file',
      '7: no such test file: server/idempotency/nothing.test.ts',
      '8: lab:stampede: no such lab scenario in server/lab/scenarios.ts',
      '9: broken link: ../server/idempotency/NOTE.md (no server/idempotency/NOTE.md)',
      '9: broken link: ../server/idempotency/README.md#no-such-part (no heading #no-such-part in ' +
        'server/idempotency/README.md)',
      '10: npm run test:e2e -- e2e/lab.spec.ts -g "lab: stampede": the pattern selects no test in that file',
      '11: `claimKeys` is not defined in server/idempotency/store.ts',
    ]);
  });

  /** The project as it would be after a change: some files edited or removed, scripts or scenarios replaced. */
  function drifted(
    base: Project,
    change: { files?: Record<string, string | null>; scripts?: string[]; scenarios?: Project['scenarios'] },
  ): Project {
    const files = change.files ?? {};
    return {
      exists: (p) => (p in files ? files[p] !== null : base.exists(p)),
      read: (p) => (p in files ? (files[p] ?? undefined) : base.read(p)),
      scripts: change.scripts ? new Set(change.scripts) : base.scripts,
      scenarios: change.scenarios ?? base.scenarios,
    };
  }

  it(
    'the real walkthrough fails when the code it names drifts: a renamed symbol, test, script or scenario, a ' +
      'removed file',
    () => {
      const docs = readDocs(PROJECT_ROOT);
      const read = (p: string) => project.read(p)!;
      const after = drifted(project, {
        files: {
          'server/idempotency/store.ts': read('server/idempotency/store.ts').replaceAll(
            'claimKey',
            'claimIdempotencyKey',
          ),
          'server/idempotency/idempotency.test.ts': read('server/idempotency/idempotency.test.ts').replace(
            'after expiry the same key is a new request',
            'after expiry the key is new',
          ),
          'server/security.test.ts': null,
        },
        scripts: [...project.scripts].filter((s) => s !== 'reconcile'),
        scenarios: project.scenarios.map((s) => (s.id === 'key-expires' ? { ...s, id: 'late-retry' } : s)),
      });
      const found = checkWalkthrough(docs, after).problems.map((p) => p.message);
      expect(found).toContain('`claimKey` is not defined in server/idempotency/store.ts');
      expect(found).toContain(
        'no test named "after expiry the same key is a new request" in server/idempotency/idempotency.test.ts',
      );
      expect(found).toContain('no such test file: server/security.test.ts');
      expect(found).toContain('no such file or folder: server/security.test.ts');
      expect(found).toContain('npm run reconcile: no such script in package.json');
      expect(found).toContain('lab:key-expires: no such lab scenario in server/lab/scenarios.ts');
      expect(found).toContain('lab scenario late-retry points at this chapter, which never names lab:late-retry');
    },
  );

  it('the real text fails when a value it states drifts in the code: a duration, a limit, a count, a status', () => {
    const docs = readDocs(PROJECT_ROOT);
    const code = codeValuesOf(project);
    const drift: CodeValues = {
      env: { ...code.env, IDEMPOTENCY_KEY_TTL_HOURS: 48, IDEMPOTENCY_LEASE_MS: 45_000, EMBEDDED_PG_PORT: 25431 },
      constants: { ...code.constants, MAX_KEY_LENGTH: 64, DECISION_COUNT: 12, RETRY_AFTER_SECONDS: 2 },
      errors: { ...code.errors, IDEMPOTENCY_KEY_REUSED: 409 },
    };
    const found = [...docs].flatMap(([file, text]) => checkValues(file, text, drift)).map((p) => p.message);
    expect(found).toContain('IDEMPOTENCY_KEY_TTL_HOURS: the text says 24 hours, the code 48');
    expect(found).toContain('IDEMPOTENCY_LEASE_MS: the text says 30 seconds, the code 45000');
    expect(found).toContain('IDEMPOTENCY_KEY_TTL_HOURS: the text says default 24, the code 48');
    expect(found).toContain('EMBEDDED_PG_PORT: the text says port 25432, the code 25431');
    expect(found).toContain('MAX_KEY_LENGTH: the text says 1 to 255 printable ASCII, the code 64');
    expect(found).toContain('DECISION_COUNT: the text says There are eleven., the code 12');
    expect(found).toContain('RETRY_AFTER_SECONDS: the text says Retry-After: 1`, the code 2');
    expect(found).toContain('IDEMPOTENCY_KEY_REUSED: the text says status 422, the code answers 409');
    // And a code the code does not have is named as such.
    const made = checkValues('docs/x.md', 'It answers `409 IDEMPOTENCY_KEY_TAKEN`.', code).map((p) => p.message);
    expect(made).toEqual([
      'IDEMPOTENCY_KEY_TAKEN: the text says 409 IDEMPOTENCY_KEY_TAKEN, the code has no such error code',
    ]);
  });

  it('reports a chapter that tells before it asks or lists too many tests, and a scenario it does not name', () => {
    const chapter = ['# 01 A chapter', '## The idea', 'Retries happen.', '## Predict', 'What happens?'].join('\n');
    const shape = checkMarkdown('docs/01-sample.md', chapter, project).map((p) => p.message);
    expect(shape).toContain('missing the part "## See it in the lab"');
    expect(shape).toContain('missing the part "## The proof"');
    const told = [
      '# 01 A chapter',
      '## The idea',
      'Retries happen.',
      '## Predict',
      'What happens?',
      '## See it in the lab',
      'lab:double-click',
      '## The code',
      '`claimKey` in `server/idempotency/store.ts`',
      '## The proof',
      ...Array.from({ length: 5 }, () => '`server/lab/lab.test.ts` › "double-click: its unsafe twin shows the damage"'),
      '`npx vitest run server/lab/lab.test.ts -t "double-click"`',
    ].join('\n');
    const toldFirst = checkMarkdown('docs/01-sample.md', told, project).map((p) => p.message);
    expect(toldFirst).toContain('the first part is not "## Predict"');
    expect(toldFirst).toContain('"## The idea" comes before "## Predict"');
    expect(toldFirst).toContain('"## Predict" has no numbered question');
    expect(toldFirst).toContain('"## The proof" names 5 tests (at most 4)');

    const docs = new Map([
      ['docs/README.md', '[one](01-retries-happen.md)'],
      ['docs/01-retries-happen.md', 'Only lab:double-click here.'],
    ]);
    const coverage = checkCoverage(docs, project).map((p) => p.message);
    expect(coverage).toContain(
      'lab scenario lost-response points at this chapter, which never names lab:lost-response',
    );
    expect(coverage).toContain('lab scenario storm-of-20 points at docs/05-races.md, which does not exist');
    expect(coverage).not.toContain(
      'lab scenario double-click points at this chapter, which never names lab:double-click',
    );
  });
});
