/**
 * The chaos run's cluster starts whatever else listens on the machine: the ports it once took for
 * granted (3401 and 3402 for its instances, 8481 for nginx, 3100 for the browser tests' server) are
 * held here by other listeners while it starts, crashes and restarts an instance, and stops.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isFree } from '../dev/ports';
import { startCluster } from './cluster';

const ONCE_FIXED = [3100, 3401, 3402, 8481];

describe('the chaos cluster on a machine where its old ports are taken', () => {
  const holders: net.Server[] = [];

  beforeAll(async () => {
    for (const port of ONCE_FIXED) {
      if (!(await isFree(port))) continue; // another program holds it already: just as good
      const server = net.createServer((socket) => socket.destroy());
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
      holders.push(server);
    }
    for (const port of ONCE_FIXED) expect(await isFree(port)).toBe(false);
  });

  afterAll(async () => {
    await Promise.all(holders.map((s) => new Promise((r) => s.close(r))));
  });

  it('starts two instances and a load balancer on free ports, survives a crash, and stops them all', async () => {
    const cluster = await startCluster({
      instances: 2,
      env: {
        DATABASE_URL: process.env.DATABASE_URL!,
        STRIPE_API_BASE: process.env.STRIPE_API_BASE!,
        JOBS_INTERVAL_SECONDS: '0',
      },
    });
    try {
      const used = [...cluster.ports, Number(new URL(cluster.url).port)];
      for (const port of used) expect(ONCE_FIXED).not.toContain(port);
      expect((await fetch(`${cluster.url}/api/trpc/health.ping`)).status).toBe(200);
      await cluster.crash(0, 200);
      expect((await fetch(`http://127.0.0.1:${cluster.ports[0]}/api/trpc/health.ping`)).status).toBe(200);
    } finally {
      await cluster.stop();
    }
    for (const port of cluster.ports) expect(await isFree(port)).toBe(true);
  }, 120_000);
});
