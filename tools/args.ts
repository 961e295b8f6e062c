/**
 * Command-line flags for the tools, parsed strictly: an unknown flag, a missing value or a value
 * out of range stops the tool with its usage, instead of running with a default nobody asked for
 * (`--intent 100` once ran 10,000 intents).
 */
import { parseArgs } from 'node:util';

type Spec = Record<
  string,
  { type: 'number'; default: number; min: number; max: number; help: string } | { type: 'boolean'; help: string }
>;
type Parsed<S extends Spec> = { [K in keyof S]: S[K] extends { type: 'number' } ? number : boolean };

export function parseFlags<S extends Spec>(command: string, spec: S, argv = process.argv.slice(2)): Parsed<S> {
  const usage = [
    `usage: ${command} [flags]`,
    ...Object.entries(spec).map(([name, f]) =>
      f.type === 'number'
        ? `  --${name} <n>  ${f.help} (${f.min} to ${f.max}, default ${f.default})`
        : `  --${name}  ${f.help}`,
    ),
  ].join('\n');
  const fail = (problem: string): never => {
    console.error(`${problem}\n${usage}`);
    process.exit(2);
  };
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: Object.fromEntries(
        Object.entries(spec).map(([name, f]) => [name, { type: f.type === 'number' ? 'string' : 'boolean' }]),
      ),
    }).values as Record<string, string | boolean | undefined>;
  } catch (err) {
    return fail((err as Error).message);
  }
  const out: Record<string, number | boolean> = {};
  for (const [name, f] of Object.entries(spec)) {
    if (f.type === 'boolean') {
      out[name] = values[name] === true;
      continue;
    }
    const raw = values[name];
    if (raw === undefined) {
      out[name] = f.default;
      continue;
    }
    const n = Number(raw);
    if (!Number.isFinite(n) || n < f.min || n > f.max)
      fail(`--${name} must be a number from ${f.min} to ${f.max} (got '${String(raw)}')`);
    out[name] = n;
  }
  return out as Parsed<S>;
}
