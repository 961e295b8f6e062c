/**
 * Where the app writes at run time on a developer's machine: the embedded Postgres clusters, the
 * payment simulator's ledger, chaos histories, the cluster tool's nginx folder. One folder, so it is
 * one thing to ignore, to back up, or to delete for a fresh start.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** `.data/<parts>` in the project (git-ignored). */
export function statePath(...parts: string[]): string {
  return path.join(PROJECT_ROOT, '.data', ...parts);
}
