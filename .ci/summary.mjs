// Sums the JSON reports of vitest and Playwright into one line: "N passed, N failed, N skipped".
// With --total, sums lines this script printed before. CI prints the final one last.
import fs from 'node:fs';

const args = process.argv.slice(2);
const total = { passed: 0, failed: 0, skipped: 0 };
if (args[0] === '--total') {
  for (const file of args.slice(1)) {
    const m = fs.readFileSync(file, 'utf8').match(/(\d+) passed, (\d+) failed, (\d+) skipped/);
    if (!m) throw new Error(`no summary in ${file}`);
    total.passed += Number(m[1]);
    total.failed += Number(m[2]);
    total.skipped += Number(m[3]);
  }
} else {
  for (const file of args) {
    const report = JSON.parse(fs.readFileSync(file, 'utf8'));
    if ('numPassedTests' in report) {
      // vitest
      total.passed += report.numPassedTests;
      total.failed += report.numFailedTests;
      total.skipped += report.numPendingTests + report.numTodoTests;
    } else {
      // Playwright
      total.passed += report.stats.expected + report.stats.flaky;
      total.failed += report.stats.unexpected;
      total.skipped += report.stats.skipped;
    }
  }
}
console.log(`${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`);
if (total.passed === 0 || total.failed > 0) process.exit(1);
