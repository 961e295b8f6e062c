// postinstall: guards postgres.js 3.4.9 against a crash when a connection dies mid-transaction.
//
// Upstream bug (porsager/postgres#1154, #1208; fixes proposed in #1168, #1209, not released as of
// 3.4.9): a small write is deferred with setImmediate; if the socket closes first, `closed()`
// sets it to null and the deferred write calls `null.write(...)`, an uncaught TypeError that kills
// the whole server. Our fault tests cut a transaction's connection on purpose and hit it every time.
//
// The guard: when the socket is gone, drop the buffered bytes and fail the waiting queries with
// CONNECTION_CLOSED (catchable, so the transaction rolls back and the key is released), leaving no
// query marked as running (else `sql.end()` would wait for its answer forever); and let
// the teardown paths forget their timer, so a later write can be scheduled again.
//
// A second bug, found by the fault tests too: when a backend dies with a FATAL error (a terminated
// backend, a restart), postgres.js keeps that error as the answer it is waiting for and never clears
// it, nor the rows read so far. The pool reopens the connection for the next query waiting, and the
// first answer on the new connection hands that query the dead backend's error: a query that never
// ran fails with "terminating connection due to administrator command" (10 times in 10, see
// server/idempotency/db.test.ts). The guard forgets both when the socket closes.
//
// A third: a connection taken with `sql.reserve()` and released after `sql.end()` began goes back to
// the pool's open connections, which nothing ends, and `sql.end()` waits for it forever (every
// transaction of this project runs on a reserved connection). The guard closes it instead.
// Idempotent: running it twice changes nothing (each edit is skipped once it is in). If the code it
// patches has changed (a new postgres.js), the install fails with a message instead of going on
// unguarded.
// Remove it when postgres.js ships the fix.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
let root = '';
try {
  root = path.dirname(require.resolve('postgres')); // its exports hide package.json: walk up to it
  const isRoot = (/** @type {string} */ dir) =>
    fs.existsSync(path.join(dir, 'package.json')) &&
    JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).name === 'postgres';
  while (!isRoot(root)) root = path.dirname(root);
} catch {
  process.exit(0); // not installed (yet): nothing to patch
}
const { version } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

/** @type {[string, string][]} */
const edits = [
  [
    '  function nextWrite(fn) {\n    const x = socket.write(chunk, fn)',
    '  function nextWrite(fn) {\n    if (!socket) { // patched: the connection closed while this write waited\n      ' +
      "chunk = nextWriteTimer = null\n      error(Errors.connection('CONNECTION_CLOSED', options, socket))\n      " +
      'return false\n    }\n    const x = socket.write(chunk, fn)',
  ],
  [
    '    errored(err)\n    while (sent.length)\n      queryError(sent.shift(), err)\n  }',
    '    errored(err)\n    while (sent.length)\n      queryError(sent.shift(), err)\n    query = null // patched: ' +
      'every query failed above, so none is running (else sql.end() waits for one forever)\n  }',
  ],
  [
    "    clearImmediate(nextWriteTimer)\n    socket.removeListener('data', data)",
    '    clearImmediate(nextWriteTimer)\n    chunk = nextWriteTimer = null // patched\n    ' +
      "socket.removeListener('data', data)",
  ],
  [
    '    socket.removeAllListeners()\n    socket = null\n',
    '    socket.removeAllListeners()\n    socket = null\n    errorResponse = results = null // patched: the dead ' +
      "backend's error and rows die with it\n    result = new Result()\n    rows = 0\n",
  ],
];

/** @type {[string, string][]} In index.js: a reserved connection released while the pool ends is closed. */
const indexEdits = [
  [
    '    sql.release = () => {\n      c.reserved = null\n      onopen(c)\n    }',
    '    sql.release = () => {\n      c.reserved = null\n      ending ? c.terminate() : onopen(c) // patched: ' +
      'the pool is ending (else sql.end() waits for it forever)\n    }',
  ],
];

let patched = 0;
for (const file of ['src/connection.js', 'cjs/src/connection.js', 'src/index.js', 'cjs/src/index.js']) {
  const full = path.join(root, file);
  let text = fs.readFileSync(full, 'utf8');
  const before = text;
  for (const [from, to] of file.endsWith('index.js') ? indexEdits : edits) {
    if (text.includes(to)) continue; // this edit is in already (the script ran before)
    if (!text.includes(from)) {
      // Loud on purpose: without the guard, a dropped connection mid-transaction can kill the server.
      console.error(
        `[patch-postgres] postgres ${version}: ${file} no longer contains the code this guard patches.\n` +
          '  Check whether upstream fixed porsager/postgres#1154; if it did, delete tools/patch-postgres.mjs and ' +
          'its\n' +
          '  postinstall line in package.json; if not, update the guard to the new code.',
      );
      process.exit(1);
    }
    text = text.replace(from, to);
  }
  if (text === before) continue;
  fs.writeFileSync(full, text);
  patched++;
}
if (patched)
  console.log(
    `[patch-postgres] guarded postgres ${version} against writes to a closed socket and stale errors ` +
      `(${patched} files)`,
  );
