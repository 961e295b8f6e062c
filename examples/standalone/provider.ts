/**
 * A stand-in for an outside service (an SMS gateway): a tiny HTTP server with idempotency keys of
 * its own, as Stripe or Twilio have. `POST /messages` with an `Idempotency-Key` sends a message; the
 * same key again gets the first answer and sends nothing. It counts every call it receives and every
 * message it really sends, so a test can tell "called twice" from "sent twice".
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Provider {
  url: string;
  /** Every request received, retries included. */
  calls: number;
  /** Messages really sent: one per distinct key. */
  sent: { key: string; to: string; body: string; id: string }[];
  close(): Promise<void>;
}

export async function startProvider(port = 0): Promise<Provider> {
  const answers = new Map<string, string>(); // key -> the JSON answer first sent
  const provider: Provider = {
    url: '',
    calls: 0,
    sent: [],
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  const server = http.createServer(async (req, res) => {
    let text = '';
    for await (const chunk of req) text += chunk;
    provider.calls++;
    const reply = (status: number, body: string) =>
      res.writeHead(status, { 'content-type': 'application/json' }).end(body);
    const key = req.headers['idempotency-key'];
    if (req.method !== 'POST' || req.url !== '/messages') return reply(404, '{"error":"not found"}');
    if (typeof key !== 'string' || key === '') return reply(400, '{"error":"Idempotency-Key required"}');
    const stored = answers.get(key);
    if (stored) return reply(200, stored); // a retry: the first answer, nothing sent again
    const { to, body } = JSON.parse(text) as { to: string; body: string };
    const id = `msg_${randomUUID()}`;
    provider.sent.push({ key, to, body, id });
    answers.set(key, JSON.stringify({ id }));
    reply(200, answers.get(key)!);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  provider.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return provider;
}
