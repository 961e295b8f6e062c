/**
 * Ports chosen at run time, never taken for granted: any program may hold a fixed one.
 *
 * - `freePort()`: the kernel's choice, for a helper that listens once and lives as long as the run.
 * - `listenerPort()`: a free port below the range the system lends to outgoing connections, for a
 *   server this run kills and starts again on the same port (app instances, Postgres nodes, etcd).
 *   While it is down, a port from the kernel's range can be taken by any client socket opening a
 *   connection (the chaos run opens thousands), and the restart would find it in use; a port below
 *   that range is never lent that way.
 */
import fs from 'node:fs';
import net from 'node:net';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

// Linux lends 32768-60999 unless told otherwise; other systems start at 49152. Below the lower bound,
// from 20000 up: clear of the well-known ports of common servers (5432, 6379, 8080, 9090...).
const LOWEST = 20_000;

function ephemeralStart(): number {
  try {
    const [low] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low && low > LOWEST + 1000) return low;
  } catch {}
  return 32_768;
}

/** Whether nothing listens on the loopback port: we can bind it ourselves. */
export function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Ports handed out by this process, so that two calls never return the same one before it is bound. */
const given = new Set<number>();

/** A free port below the system's range for outgoing connections (see the header). */
export async function listenerPort(): Promise<number> {
  const top = ephemeralStart();
  for (let i = 0; i < 200; i++) {
    const port = LOWEST + Math.floor(Math.random() * (top - LOWEST));
    if (given.has(port)) continue;
    if (await isFree(port)) {
      given.add(port);
      return port;
    }
  }
  throw new Error(`no free port found between ${LOWEST} and ${top} after 200 tries`);
}

/** `port` when it is free (a port a person expects, such as 8080), otherwise a free one. */
export async function preferredPort(port: number): Promise<number> {
  if (given.has(port) || !(await isFree(port))) return listenerPort();
  given.add(port);
  return port;
}
