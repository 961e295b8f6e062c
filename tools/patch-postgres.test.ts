/**
 * The install-time guard of postgres.js (tools/patch-postgres.mjs): it patches the code it knows,
 * once, and fails the install loudly when that code has changed, instead of going on unguarded.
 * Each case runs the real script against a stand-in package in a scratch folder.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../dev/state';

const SCRATCH = fs.mkdtempSync(path.join(os.tmpdir(), 'patch-postgres-'));
afterAll(() => fs.rmSync(SCRATCH, { recursive: true, force: true }));

// The four places the guard edits, as postgres.js 3.4.9 has them.
const KNOWN = [
  '  function nextWrite(fn) {\n    const x = socket.write(chunk, fn)\n    nextWriteTimer !== null && ' +
    'clearImmediate(nextWriteTimer)\n  }\n',
  '  function error(err) {\n    errored(err)\n    while (sent.length)\n      queryError(sent.shift(), err)\n  }\n',
  "  function terminate() {\n    clearImmediate(nextWriteTimer)\n    socket.removeListener('data', data)\n  }\n",
  '  function closed(hadError) {\n    socket.removeAllListeners()\n    socket = null\n\n    if (initial)\n  }\n',
].join('\n');

// The place it edits in index.js.
const KNOWN_INDEX =
  'export default {}\n  function reserve() {\n    sql.release = () => {\n      c.reserved = null\n      onopen(c)\n' +
  '    }\n  }\n';

/** A project folder with the script and a stand-in postgres package whose connection.js is `code`. */
function project(name: string, code: string): string {
  const dir = path.join(SCRATCH, name);
  const pkg = path.join(dir, 'node_modules', 'postgres');
  for (const sub of ['src', 'cjs/src']) {
    fs.mkdirSync(path.join(pkg, sub), { recursive: true });
    fs.writeFileSync(path.join(pkg, sub, 'connection.js'), code);
  }
  for (const sub of ['src', 'cjs/src']) fs.writeFileSync(path.join(pkg, sub, 'index.js'), KNOWN_INDEX);
  fs.writeFileSync(
    path.join(pkg, 'package.json'),
    JSON.stringify({ name: 'postgres', version: '9.9.9', main: 'src/index.js' }),
  );
  fs.mkdirSync(path.join(dir, 'tools'));
  fs.copyFileSync(
    path.join(PROJECT_ROOT, 'tools', 'patch-postgres.mjs'),
    path.join(dir, 'tools', 'patch-postgres.mjs'),
  );
  return dir;
}

const run = (dir: string) =>
  spawnSync(process.execPath, ['tools/patch-postgres.mjs'], { cwd: dir, encoding: 'utf8', timeout: 30_000 });
const connection = (dir: string, sub: string) =>
  fs.readFileSync(path.join(dir, 'node_modules', 'postgres', sub, 'connection.js'), 'utf8');

describe('the postgres.js guard', () => {
  it('patches the code it knows in both builds, and a second run changes nothing', () => {
    const dir = project('known', KNOWN);
    const first = run(dir);
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toContain(
      'guarded postgres 9.9.9 against writes to a closed socket and stale errors (4 files)',
    );
    for (const sub of ['src', 'cjs/src']) {
      const text = connection(dir, sub);
      expect(text).toContain('if (!socket) { // patched: the connection closed while this write waited');
      expect(text).toContain('query = null // patched');
      expect(text).toContain('chunk = nextWriteTimer = null // patched');
      expect(text).toContain("errorResponse = results = null // patched: the dead backend's error");
      expect(fs.readFileSync(path.join(dir, 'node_modules', 'postgres', sub, 'index.js'), 'utf8')).toContain(
        'ending ? c.terminate() : onopen(c) // patched',
      );
    }
    const once = connection(dir, 'src');
    const second = run(dir);
    expect(second.status).toBe(0);
    expect(second.stdout).toBe('');
    expect(connection(dir, 'src')).toBe(once);
  });

  it(
    'fails the install with exit 1 and says what to do when the code it patches has changed, and writes ' + 'nothing',
    () => {
      // say, an upstream fix
      const changed = KNOWN.replace('    const x = socket.write(chunk, fn)', '    const x = socket?.write(chunk, fn)');
      const dir = project('changed', changed);
      const result = run(dir);
      expect(result.status).toBe(1);
      expect(result.stderr).toContain(
        '[patch-postgres] postgres 9.9.9: src/connection.js no longer contains the code this guard patches',
      );
      expect(result.stderr).toContain('porsager/postgres#1154');
      expect(connection(dir, 'src')).toBe(changed);
      expect(connection(dir, 'cjs/src')).toBe(changed);
    },
  );

  it('a project patched by the three-edit guard gets the fourth edit alone on the next install', () => {
    const dir = project('older', KNOWN);
    expect(run(dir).status).toBe(0);
    for (const sub of ['src', 'cjs/src']) {
      const full = path.join(dir, 'node_modules', 'postgres', sub, 'connection.js');
      const text = fs.readFileSync(full, 'utf8');
      // as the earlier guard left it: every edit but the last
      fs.writeFileSync(
        full,
        text.replace(
          /\n {4}errorResponse = results = null \/\/ patched[^\n]*\n {4}result = new Result\(\)\n {4}rows = 0/,
          '',
        ),
      );
    }
    expect(connection(dir, 'src').match(/\/\/ patched/g)).toHaveLength(3);
    const again = run(dir);
    expect(again.status, again.stderr).toBe(0);
    for (const sub of ['src', 'cjs/src']) expect(connection(dir, sub).match(/\/\/ patched/g)).toHaveLength(4);
  });

  it('the installed postgres.js of this project is guarded', () => {
    for (const sub of ['src', 'cjs/src']) {
      const text = fs.readFileSync(path.join(PROJECT_ROOT, 'node_modules', 'postgres', sub, 'connection.js'), 'utf8');
      expect(text.match(/\/\/ patched/g)).toHaveLength(4);
      const index = fs.readFileSync(path.join(PROJECT_ROOT, 'node_modules', 'postgres', sub, 'index.js'), 'utf8');
      expect(index.match(/\/\/ patched/g)).toHaveLength(1);
    }
  });
});
