/**
 * Where the app writes at run time on a developer's machine: the embedded Postgres clusters, the
 * payment simulator's ledger, chaos histories, the cluster tool's nginx folder. One folder per
 * clone, outside the project, so that no file watcher of the dev server can ever see these writes
 * (Next offers no setting to ignore a folder of the project), and `git status` never does either.
 *
 *   CHECKOUT_STATE_DIR                  when set: exactly there
 *   as root                             /var/tmp/retry-safe-checkout/<clone>  (the postgres user
 *                                       must reach it; root's home is closed to it)
 *   otherwise                           $XDG_STATE_HOME/retry-safe-checkout/<clone>
 *                                       (~/.local/state/retry-safe-checkout/<clone> by default)
 * where <clone> is the project folder's name and a hash of its path: two clones never share.
 */
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getLauncherEnv } from '../server/env.js';

export const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The state folder of this clone (see the header). */
export function stateDir(): string {
  const env = getLauncherEnv();
  if (env.CHECKOUT_STATE_DIR) return path.resolve(env.CHECKOUT_STATE_DIR);
  const clone = `${path.basename(PROJECT_ROOT)}-${createHash('sha256').update(PROJECT_ROOT).digest('hex').slice(0, 8)}`;
  if (process.getuid?.() === 0) return path.join('/var/tmp/retry-safe-checkout', clone);
  const base = env.XDG_STATE_HOME ?? path.join(os.homedir(), '.local', 'state');
  return path.join(base, 'retry-safe-checkout', clone);
}

/** A path inside the state folder. */
export function statePath(...parts: string[]): string {
  return path.join(stateDir(), ...parts);
}
