/**
 * Your own Postgres: DATABASE_URL is used as it is. Nothing is started, so nothing is stopped; the
 * launcher still migrates and seeds it.
 */
import { getLauncherEnv } from '../server/env.js';
import type { Database, DatabaseRequest } from './database';

export async function start(_request: DatabaseRequest): Promise<Database> {
  const url = getLauncherEnv().DATABASE_URL;
  if (!url) throw new Error('dev/own-url.ts is the source for a set DATABASE_URL, and it is not set');
  console.log(`[db] using DATABASE_URL (${describeUrl(url)})`);
  return { url, env: {}, stop: async () => {} };
}

/** Host(s) and database of a URL, without its password; multi-host URLs are not WHATWG URLs. */
export function describeUrl(url: string): string {
  const rest = url.replace(/^[a-z]+:\/\//, '').replace(/^[^@]*@/, '');
  return rest.replace(/\?.*$/, '');
}
