/**
 * The example, through real HTTP on a real Postgres: its server on a free loopback port, the stand-in
 * provider on another, and for the crash tests its server in a child process that SIGKILLs itself at
 * a named point of a request's life. The database is the one vitest's setup gives (DATABASE_URL).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTables, openDatabase } from './db';
import { type Provider, startProvider } from './provider';
import { createMessageCompleter, createServer } from './server';

const { db, sql } = openDatabase(process.env.DATABASE_URL!);
let provider: Provider;
let server: ReturnType<typeof createServer>;
let base: string;

beforeAll(async () => {
  await createTables(sql);
  provider = await startProvider();
  server = createServer(db, provider.url);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await provider.close();
  await sql.end();
});

/** An answer off the wire; `json` is read field by field by each test. */
// biome-ignore lint/suspicious/noExplicitAny: its shape is what each test asserts
type Answer = { status: number; replayed: string | null; text: string; json: any };

/** One POST, as any HTTP client sends it. */
async function post(
  at: string,
  procedure: string,
  request: { user: string; key?: string; input?: unknown; batch?: boolean },
): Promise<Answer> {
  const url = request.batch ? `${at}/trpc/${procedure},${procedure}?batch=1` : `${at}/trpc/${procedure}`;
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-user-id': request.user,
      ...(request.key ? { 'idempotency-key': request.key } : {}),
    },
    body: JSON.stringify(request.batch ? { 0: request.input, 1: request.input } : request.input),
  });
  const text = await res.text();
  return { status: res.status, replayed: res.headers.get('idempotent-replayed'), text, json: JSON.parse(text) };
}

const hello = { to: '+15550100', body: 'Hello' };
const rows = async (user: string) =>
  sql<{ status: string; provider_message_id: string | null }[]>`
    select status, provider_message_id from example_messages where user_id = ${user}`;
const sentTo = (user: string) => provider.sent.filter((m) => m.body === `for ${user}`);

describe('messages.save (one transaction)', () => {
  it('without a key: 400 IDEMPOTENCY_KEY_REQUIRED, nothing written', async () => {
    const user = randomUUID();
    const answer = await post(base, 'messages.save', { user, input: hello });
    expect(answer.status).toBe(400);
    expect(answer.json.error.data.errorCode).toBe('IDEMPOTENCY_KEY_REQUIRED');
    expect(await rows(user)).toHaveLength(0);
  });

  it('a retry with the same key gets the first answer, byte for byte, marked Idempotent-Replayed', async () => {
    const user = randomUUID();
    const key = randomUUID();
    const first = await post(base, 'messages.save', { user, key, input: hello });
    const retry = await post(base, 'messages.save', { user, key, input: hello });
    expect(first.status).toBe(200);
    expect(first.replayed).toBeNull();
    expect(retry.status).toBe(200);
    expect(retry.replayed).toBe('true');
    expect(retry.text).toBe(first.text);
    expect(await rows(user)).toHaveLength(1);
  });

  it('the same key with another input: 422 IDEMPOTENCY_KEY_REUSED, nothing more written', async () => {
    const user = randomUUID();
    const key = randomUUID();
    await post(base, 'messages.save', { user, key, input: hello });
    const other = await post(base, 'messages.save', { user, key, input: { ...hello, body: 'Bye' } });
    expect(other.status).toBe(422);
    expect(other.json.error.data.errorCode).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(await rows(user)).toHaveLength(1);
  });

  it('the same key from another user is another key: both run', async () => {
    const [alice, bob] = [randomUUID(), randomUUID()];
    const key = randomUUID();
    const a = await post(base, 'messages.save', { user: alice, key, input: hello });
    const b = await post(base, 'messages.save', { user: bob, key, input: hello });
    expect([a.status, b.status, a.replayed, b.replayed]).toEqual([200, 200, null, null]);
    expect(b.json.result.data.id).not.toBe(a.json.result.data.id);
    expect(await rows(alice)).toHaveLength(1);
    expect(await rows(bob)).toHaveLength(1);
  });

  it('20 copies at once: the work runs once and all 20 get the same answer', async () => {
    const user = randomUUID();
    const key = randomUUID();
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => post(base, 'messages.save', { user, key, input: hello })),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(20).fill(200));
    expect(new Set(answers.map((a) => a.text)).size).toBe(1);
    expect(answers.filter((a) => a.replayed === null)).toHaveLength(1); // the one that ran
    expect(await rows(user)).toHaveLength(1);
  });

  it('a keyed batch is refused before any call runs: 400 IDEMPOTENCY_BATCH_REFUSED', async () => {
    const user = randomUUID();
    const answer = await post(base, 'messages.save', { user, key: randomUUID(), input: hello, batch: true });
    expect(answer.status).toBe(400);
    expect(answer.text).toContain('IDEMPOTENCY_BATCH_REFUSED');
    expect(await rows(user)).toHaveLength(0);
  });
});

describe('messages.send (phased: the provider is outside the database)', () => {
  it('sends once; a retry is a replay and does not call the provider again', async () => {
    const user = randomUUID();
    const key = randomUUID();
    const input = { to: '+15550100', body: `for ${user}` };
    const first = await post(base, 'messages.send', { user, key, input });
    const calls = provider.calls;
    const retry = await post(base, 'messages.send', { user, key, input });
    expect(first.status).toBe(200);
    expect(first.json.result.data.status).toBe('sent');
    expect(retry.replayed).toBe('true');
    expect(retry.text).toBe(first.text);
    expect(provider.calls).toBe(calls);
    expect(sentTo(user)).toHaveLength(1);
  });

  it('20 copies at once: one message sent, one row, all 20 get the same answer', async () => {
    const user = randomUUID();
    const key = randomUUID();
    const input = { to: '+15550100', body: `for ${user}` };
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => post(base, 'messages.send', { user, key, input })),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(20).fill(200));
    expect(new Set(answers.map((a) => a.text)).size).toBe(1);
    expect(sentTo(user)).toHaveLength(1);
    expect(await rows(user)).toEqual([{ status: 'sent', provider_message_id: sentTo(user)[0]!.id }]);
  });
});

describe('a server killed (SIGKILL) between the work and its stored answer, then a retry', () => {
  let child: ChildProcess | undefined;
  afterAll(() => child?.kill('SIGKILL'));

  /** The example's server in a child process (main.ts), which kills itself where told; resolves to its URL. */
  function startChild(kill?: { user: string; at: string }): Promise<string> {
    child = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'kill-server.ts')], {
      env: {
        ...process.env,
        PORT: '0',
        PROVIDER_URL: provider.url,
        LEASE_MS: '1000', // a killed holder's key may be taken over after 1 s
        KILL_USER: kill?.user ?? '',
        KILL_AT: kill?.at ?? '',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const started = child;
    return new Promise((resolve, reject) => {
      let out = '';
      started.stdout!.on('data', (chunk: Buffer) => {
        out += chunk;
        const url = /listening on (http:\/\/\S+)\/trpc/.exec(out)?.[1];
        if (url) resolve(url);
      });
      started.on('exit', (code) => reject(new Error(`the example server exited (${code}) before listening`)));
    });
  }

  /** Sends a request that kills its server; resolves once the process is gone. */
  async function killedBy(at: string, procedure: string, request: Parameters<typeof post>[2]): Promise<void> {
    const gone = new Promise((resolve) => child!.once('exit', (_code, signal) => resolve(signal)));
    await expect(post(at, procedure, request)).rejects.toThrow(); // the connection died with the server
    expect(await gone).toBe('SIGKILL');
  }

  /** Waits until the key's lease has lapsed (the dead holder's 1 s). */
  async function leaseLapsed(user: string): Promise<void> {
    for (let i = 0; i < 100; i++) {
      const [row] = await sql`select 1 from idempotency_keys where scope = ${user} and locked_until < now()`;
      if (row) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('the lease never lapsed');
  }

  it('messages.save: the killed transaction left nothing; the retry runs it, and there is one row', async () => {
    const user = randomUUID();
    const key = randomUUID();
    await killedBy(await startChild({ user, at: 'executed' }), 'messages.save', { user, key, input: hello });
    const restarted = await startChild();
    const retry = await post(restarted, 'messages.save', { user, key, input: hello });
    expect(retry.status).toBe(200);
    expect(retry.replayed).toBeNull(); // it ran: the dead server had stored nothing
    expect((await post(restarted, 'messages.save', { user, key, input: hello })).replayed).toBe('true');
    expect(await rows(user)).toHaveLength(1);
    child!.kill('SIGKILL');
  });

  it('messages.send: killed after the provider sent it; the retry resumes, and one message is sent', async () => {
    const user = randomUUID();
    const key = randomUUID();
    const input = { to: '+15550100', body: `for ${user}` };
    await killedBy(await startChild({ user, at: 'inside:sent' }), 'messages.send', { user, key, input });
    expect(sentTo(user)).toHaveLength(1); // the provider sent it; our record of that died with the server
    expect(await rows(user)).toEqual([{ status: 'sending', provider_message_id: null }]);

    const restarted = await startChild();
    await leaseLapsed(user);
    const retry = await post(restarted, 'messages.send', { user, key, input });
    expect(retry.status).toBe(200);
    expect(retry.json.result.data.providerMessageId).toBe(sentTo(user)[0]!.id); // the provider's first answer
    expect(sentTo(user)).toHaveLength(1); // called again with the same derived key: nothing sent twice
    expect(await rows(user)).toEqual([{ status: 'sent', provider_message_id: sentTo(user)[0]!.id }]);
    child!.kill('SIGKILL');
  });

  it('messages.send with no retry: the completer finishes it, and the returning client gets a replay', async () => {
    const user = randomUUID();
    const key = randomUUID();
    const input = { to: '+15550100', body: `for ${user}` };
    await killedBy(await startChild({ user, at: 'inside:sent' }), 'messages.send', { user, key, input });
    await leaseLapsed(user);

    const completer = createMessageCompleter(db, provider.url);
    expect(await completer.run({ delaySeconds: 0, scope: user, backoffBaseSeconds: 0 })).toMatchObject({ finished: 1 });
    expect(sentTo(user)).toHaveLength(1);
    expect(await rows(user)).toEqual([{ status: 'sent', provider_message_id: sentTo(user)[0]!.id }]);

    const back = await post(base, 'messages.send', { user, key, input });
    expect(back.replayed).toBe('true');
    expect(back.json.result.data.providerMessageId).toBe(sentTo(user)[0]!.id);
  });
});
