// Part of `npm run lint`: no line of code is wider than 120 characters. The formatter keeps to that
// width wherever it can break a line; this catches what it cannot break (a long string, a comment).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

const MAX = 120;
const tracked = execFileSync('git', ['ls-files', '-co', '--exclude-standard'], { encoding: 'utf8' }).split('\n');
const checked = tracked.filter((f) => /\.(ts|tsx|mjs|js|css|jsonc)$/.test(f) || f.startsWith('.ci/'));
/** @type {string[]} */
const wide = [];
for (const file of checked) {
  if (!fs.existsSync(file)) continue;
  fs.readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (line.length > MAX) wide.push(`${file}:${i + 1}: ${line.length} characters`);
    });
}
if (wide.length > 0) {
  console.error(`${wide.length} line(s) wider than ${MAX} characters:\n${wide.join('\n')}`);
  process.exit(1);
}
console.log(`line width: ${checked.length} files, no line wider than ${MAX} characters`);
