/**
 * The server's log: one line per event, through pino. Every line has the time, the level, the
 * process id and the instance name (INSTANCE_NAME, else the host name), so lines from several
 * instances can be told apart. `npm run dev` prints them for people (pino-pretty); anywhere else
 * they are JSON, for machines.
 */
import os from 'node:os';
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import { getEnv } from '../env.js';

const cache = globalThis as unknown as { __log?: Logger };

/** The longest a line waits in memory before it is written (outside development). */
export const FLUSH_MS = 100;

export function log(): Logger {
  if (!cache.__log) {
    const env = getEnv();
    const options = {
      level: env.LOG_LEVEL,
      base: { pid: process.pid, instance: env.INSTANCE_NAME ?? os.hostname() },
      timestamp: pino.stdTimeFunctions.isoTime,
    };
    // Synchronous pretty-printing in development: no worker thread for the dev server to juggle.
    // Elsewhere, JSON written asynchronously and in batches: lines gather in memory and go out in one
    // write once 4 KiB are queued, or every FLUSH_MS, whichever comes first. A write per line is a
    // system call, and a wake-up of whatever reads the pipe, on the CPU the requests need; batched,
    // a line costs a copy (docs/reference/costs.md has the figures). pino flushes what is queued when
    // the process exits; a process killed outright loses the lines still waiting (normally those of
    // its last 100-200 ms: a line can wait a little past FLUSH_MS behind a write in progress), never a
    // decision's effect, which is in Postgres. While idle, the timer's flush is an empty write.
    cache.__log =
      env.NODE_ENV === 'development'
        ? pino(options, pretty({ sync: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' }))
        : pino(options, pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: FLUSH_MS }));
  }
  return cache.__log;
}
