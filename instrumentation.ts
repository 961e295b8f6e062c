/**
 * Next runs `register()` once when a server process starts, before it serves a request: the place
 * for work that belongs to the process, not to a request (server/start.ts).
 */
export async function register() {
  if (process.env.NEXT_RUNTIME !== 'nodejs') return; // the edge runtime has no database
  const { startServerProcess } = await import('./server/start');
  startServerProcess();
}
