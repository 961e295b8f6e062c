/**
 * The tools' flags are parsed strictly: a typo or a value out of range stops the tool with its usage
 * (exit 2) instead of running a default nobody asked for.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseFlags } from './args';

const SPEC = {
  intents: { type: 'number', default: 1000, min: 1, max: 100_000, help: 'how many checkouts' },
  unsafe: { type: 'boolean', help: 'the unprotected twin' },
} as const;

class Exit extends Error {
  constructor(readonly code: number | undefined) {
    super(`exit ${code}`);
  }
}

afterEach(() => vi.restoreAllMocks());

/** Runs the parser; returns what it printed and the exit code it asked for, or its result. */
function parse(argv: string[]) {
  const printed: string[] = [];
  vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => void printed.push(args.join(' ')));
  vi.spyOn(process, 'exit').mockImplementation((code) => {
    throw new Exit(code as number | undefined);
  });
  try {
    return { flags: parseFlags('tsx tools/chaos.ts', SPEC, argv), printed: printed.join('\n') };
  } catch (err) {
    if (err instanceof Exit) return { exit: err.code, printed: printed.join('\n') };
    throw err;
  }
}

describe('parseFlags', () => {
  it('reads numbers and switches, and fills in defaults', () => {
    expect(parse(['--intents', '250', '--unsafe']).flags).toEqual({ intents: 250, unsafe: true });
    expect(parse([]).flags).toEqual({ intents: 1000, unsafe: false });
  });

  it.each([
    ['a misspelt flag', ['--intent', '100'], /Unknown option '--intent'/],
    ['a flag without its value', ['--intents'], /--intents <value>' argument missing/],
    [
      'a value that is not a number',
      ['--intents', 'many'],
      /--intents must be a number from 1 to 100000 \(got 'many'\)/,
    ],
    ['a value out of range', ['--intents', '0'], /--intents must be a number from 1 to 100000 \(got '0'\)/],
    ['a stray word', ['100'], /positional|Unexpected argument/i],
  ])('%s stops the tool with exit 2 and prints the problem and the usage', (_name, argv, problem) => {
    const result = parse(argv);
    expect(result.exit).toBe(2);
    expect(result.printed).toMatch(problem);
    expect(result.printed).toContain('usage: tsx tools/chaos.ts [flags]');
    expect(result.printed).toContain('--intents <n>  how many checkouts (1 to 100000, default 1000)');
  });
});
