/**
 * Where a first execution's Node time goes (`npx tsx dev/with-db.ts --test -- tsx tools/bench-profile.ts`):
 * the plain order and a keyed first execution, each called by 20 concurrent callers through the app's
 * own tRPC handler in this process (no Next server, no sockets for HTTP), each under V8's sampling
 * profiler. It prints each kind's rate and CPU per request, its write and read system calls and bytes
 * per request (from /proc/self/io, where there is one), and the places whose self time grew most per
 * request, grouped by package or file. docs/reference/costs.md quotes a run of it.
 *
 * Self time is time on the CPU or waiting for it: a thread taken off the CPU inside a system call is
 * counted in that call, so the socket writes include the waits they cause.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { Session } from 'node:inspector/promises';
import { pathToFileURL } from 'node:url';
import { createDatabase } from '../db/client';
import { installDatabase } from '../server/db';
import { parseFlags } from './args';

const BODY = JSON.stringify({ items: [{ productId: 'travel-mug', quantity: 1 }] });
const CALLERS = 20;

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Where a sample's function lives: its npm package, or its file in this repo, or what V8 calls it. */
function place(node: ProfileNode): string {
  const { url, functionName } = node.callFrame;
  if (!url) return functionName || '(anonymous)';
  const inPackage = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/);
  if (inPackage) return inPackage[1]!;
  if (url.startsWith('node:')) return url;
  return url.replace(/^file:\/\//, '').replace(`${process.cwd()}/`, '');
}

/** Self time per place, in microseconds per request. */
function selfTime(profile: Profile, requests: number): Map<string, number> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const out = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const where = place(byId.get(id)!);
    out.set(where, (out.get(where) ?? 0) + (profile.timeDeltas[i] ?? 0) / requests);
  });
  return out;
}

function ioCounters(): Record<string, number> | undefined {
  if (!fs.existsSync('/proc/self/io')) return undefined;
  return Object.fromEntries(
    fs
      .readFileSync('/proc/self/io', 'utf8')
      .trim()
      .split('\n')
      .map((line) => line.split(': '))
      .map(([k, v]) => [k!, Number(v)]),
  );
}

async function main() {
  const flags = parseFlags('tsx tools/bench-profile.ts', {
    seconds: { type: 'number', default: 6, min: 1, max: 120, help: 'seconds of each kind under the profiler' },
    top: { type: 'number', default: 25, min: 1, max: 200, help: 'how many places to print' },
  });
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('run through dev/with-db.ts (it provides DATABASE_URL)');
  const env = process.env as Record<string, string>;
  env.NODE_ENV = 'production'; // as the benchmark's server runs: JSON log lines, no test hooks
  env.COOKIE_SECRET ??= 'local-bench-profile-cookie-secret-32-chars';
  env.ENABLE_BENCH_BASELINE = '1'; // the plain order's procedure
  installDatabase(createDatabase(url, { max: CALLERS }));
  const { handleApiRequest } = await import('../server/http');
  const { DECISION_LISTENERS } = await import('../server/start');
  const { setDecisionListeners } = await import('../server/idempotency');
  setDecisionListeners(DECISION_LISTENERS); // each decision logged and counted, as in a server

  const ping = await handleApiRequest(new Request('http://localhost/api/trpc/health.ping'));
  const cookie = ping.headers.get('set-cookie')!.split(';')[0]!;
  const call = async (keyed: boolean) => {
    const headers = new Headers({ 'content-type': 'application/json', cookie });
    if (keyed) headers.set('idempotency-key', randomUUID());
    const path = keyed ? 'checkout.placeOrder' : 'bench.placeOrder';
    const res = await handleApiRequest(
      new Request(`http://localhost/api/trpc/${path}`, { method: 'POST', headers, body: BODY }),
    );
    if (res.status !== 200) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    await res.text();
  };
  const load = async (keyed: boolean, seconds: number) => {
    let done = 0;
    const until = performance.now() + seconds * 1000;
    await Promise.all(
      Array.from({ length: CALLERS }, async () => {
        while (performance.now() < until) {
          await call(keyed);
          done++;
        }
      }),
    );
    return done;
  };

  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  const kinds = [
    { name: 'plain order', keyed: false },
    { name: 'first execution', keyed: true },
  ];
  const measured = [];
  for (const kind of kinds) {
    await load(kind.keyed, 2); // warm: connections, prepared statements, the JIT
    const io = ioCounters();
    const cpu = process.cpuUsage();
    await session.post('Profiler.start');
    const requests = await load(kind.keyed, flags.seconds);
    const { profile } = await session.post('Profiler.stop');
    const used = process.cpuUsage(cpu);
    const ioAfter = ioCounters();
    const per = (k: string, digits = 2) =>
      io && ioAfter ? ((ioAfter[k]! - io[k]!) / requests).toFixed(digits) : 'n/a';
    console.log(
      `${kind.name}: ${(requests / flags.seconds).toFixed(0)} requests/s, ` +
        `${((used.user + used.system) / requests).toFixed(0)} µs CPU/request, ` +
        `writes ${per('syscw')} (${per('wchar', 0)} bytes), reads ${per('syscr')} per request`,
    );
    measured.push(selfTime(profile as Profile, requests));
  }
  const [plain, keyed] = measured as [Map<string, number>, Map<string, number>];
  const places = [...new Set([...plain.keys(), ...keyed.keys()])].map((where) => ({
    where,
    plain: plain.get(where) ?? 0,
    keyed: keyed.get(where) ?? 0,
  }));
  places.sort((a, b) => b.keyed - b.plain - (a.keyed - a.plain));
  const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  console.log(
    `\nself time per request, µs: plain ${total(plain).toFixed(0)}, first ${total(keyed).toFixed(0)}` +
      ' (on the CPU, or waiting for it; "(idle)": the event loop waiting for an answer)\n',
  );
  console.log('| where | plain order | first execution | added |');
  console.log('| --- | ---: | ---: | ---: |');
  for (const p of places.slice(0, flags.top)) {
    console.log(`| ${p.where} | ${p.plain.toFixed(1)} | ${p.keyed.toFixed(1)} | ${(p.keyed - p.plain).toFixed(1)} |`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
