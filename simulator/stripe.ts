/**
 * A local stand-in for Stripe: the subset of its HTTP API this app uses, spoken the way Stripe
 * speaks it (form-encoded requests, Stripe's error objects), and behaving like Stripe where retry
 * safety depends on it:
 *
 * - `Idempotency-Key`: the same key with the same parameters returns the first answer again, with
 *   `Idempotent-Replayed: true`; the same key with other parameters is an `idempotency_error`; a
 *   key whose first request is still running answers 409. Like Stripe, it forgets a key 24 hours
 *   after its first use (then the same key makes a new object); its clock can be moved forward.
 * - Search by metadata (`GET /v1/payment_intents/search?query=metadata['k']:'v'`) and refunds by
 *   payment intent, so a flow can look up what it may have made before its key was forgotten.
 * - Test payment methods: `pm_card_visa` succeeds, `pm_card_chargeDeclined` is a generic decline,
 *   `pm_card_chargeDeclinedInsufficientFunds` declines for insufficient funds.
 * - Faults: `latency:<ms>`; `error_500` (before anything happens), `rate_limit` (429),
 *   `auth_error` (401: the provider refuses the request for good); `timeout_after_charge` (the work
 *   is done and its answer never sent), `reset_after_charge` (done, then the connection is cut).
 *   Per request (the `Sim-Fault` header), per run (POST /__sim/config, as rates), or per payment
 *   (POST /__sim/faults: the next calls whose metadata match, e.g. one customer's).
 * - Control: `GET /__sim/ledger` (every payment intent and refund), `GET /__sim/requests` (every
 *   call: path, key, replayed or not), `POST /__sim/clock` (`{"advanceSeconds": n}`), and
 *   `POST /__sim/keys/forget` (`{"key": "..."}`: one key forgotten now, as 24 hours would).
 *
 * State is in memory, and with `stateFile` (as `npm run dev` uses) also saved to disk after every
 * change, so that the ledger outlives a restart as the orders in Postgres do.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { canonicalJson } from '../shared/canonical-json';
import { type WebhookConfig, WebhookSender } from './webhooks';

type Params = Record<string, unknown>;

interface PaymentIntent {
  id: string;
  object: 'payment_intent';
  amount: number;
  amount_received: number;
  currency: string;
  status: 'succeeded' | 'requires_payment_method' | 'processing' | 'requires_action';
  payment_method: string;
  latest_charge: string | null;
  metadata: Record<string, string>;
  created: number;
  last_payment_error: StripeError | null;
}

interface Refund {
  id: string;
  object: 'refund';
  amount: number;
  currency: string;
  payment_intent: string;
  status: 'pending' | 'succeeded' | 'failed';
  metadata: Record<string, string>;
  created: number;
}

interface StripeError {
  type: string;
  code?: string;
  decline_code?: string;
  message: string;
  payment_intent?: PaymentIntent;
}

export type FaultMode =
  | 'error_500'
  | 'rate_limit'
  | 'auth_error'
  | 'timeout_after_charge'
  | 'reset_after_charge'
  // A refund the provider accepts (pending) and settles later: it succeeds, or it fails; or, held,
  // only when told (POST /__sim/refunds/:id/settle).
  | 'refund_pending'
  | 'refund_fails_later'
  | 'refund_held'
  // A waiting payment (processing, requires_action) the provider settles only when told
  // (POST /__sim/payment_intents/:id/settle), not on its own a moment later.
  | 'payment_held';

/** One call the simulator received, for tests that count what reached the provider. */
export interface LoggedRequest {
  at: number;
  method: string;
  path: string;
  idempotencyKey: string | null;
  replayed: boolean;
  status: number | null;
  metadata: Record<string, string>;
}

interface KeyRecord {
  fingerprint: string;
  answer?: Answer;
  /** Simulator time of first use: the key is forgotten KEY_RETENTION_MS later. */
  createdAt: number;
}

/** A fault for the next `times` POSTs whose metadata include `metadata` (and whose path is `path`). */
export interface ScriptedFault {
  metadata: Record<string, string>;
  path?: string;
  fault: FaultMode | `latency:${number}`;
  times: number;
}

export interface SimConfig {
  /** Probability (0..1) of each fault on any POST, for chaos runs. */
  faultRates: Partial<Record<FaultMode, number>>;
  latencyMs: number;
  /** How long a payment that waits (processing, 3-D Secure) or a pending refund takes to settle; null: until told. */
  settleAfterMs: number | null;
  webhooks: WebhookConfig;
}

// Test cards, as in Stripe's docs: what a test needs to produce each outcome.
const DECLINES: Record<string, { decline_code: string; message: string }> = {
  pm_card_chargeDeclined: { decline_code: 'generic_decline', message: 'Your card was declined.' },
  pm_card_chargeDeclinedInsufficientFunds: {
    decline_code: 'insufficient_funds',
    message: 'Your card has insufficient funds.',
  },
};
const SUCCEEDS = new Set(['pm_card_visa', 'pm_card_mastercard']);
// Paid later: Stripe's 3-D Secure test card waits for the customer (requires_action); the
// simulator's own processing card waits for the bank (processing). Both settle after settleAfterMs.
const WAITS: Record<string, 'requires_action' | 'processing'> = {
  pm_card_authenticationRequired: 'requires_action',
  pm_card_processing: 'processing',
};
// A hung answer is abandoned after this long, so that a forgotten client cannot pin a socket forever.
const HANG_MS = 120_000;
// Stripe prunes idempotency keys once they are at least 24 hours old: after that the same key is a
// new request, which is why a flow resumed that late looks its payment up first.
export const KEY_RETENTION_MS = 24 * 3_600_000;
// The request log keeps the last ten thousand calls: enough for any test or lab run.
const MAX_LOGGED = 10_000;

const newId = (prefix: string) => `${prefix}_${randomBytes(12).toString('base64url')}`;

/** Stripe's form encoding (`metadata[order_id]=…`, `payment_method_types[0]=card`) into objects. */
export function decodeForm(body: string): Params {
  const out: Params = {};
  for (const [rawKey, value] of new URLSearchParams(body)) {
    const path = rawKey.replace(/\]/g, '').split('[');
    let node = out as Record<string, unknown>;
    path.forEach((part, i) => {
      if (i === path.length - 1) node[part] = value;
      else {
        node[part] ??= {};
        node = node[part] as Record<string, unknown>;
      }
    });
  }
  return out;
}

interface Answer {
  status: number;
  body: unknown;
}

export class StripeSimulator {
  readonly paymentIntents = new Map<string, PaymentIntent>();
  readonly refunds = new Map<string, Refund>();
  private readonly idempotent = new Map<string, KeyRecord>();
  readonly requests: LoggedRequest[] = [];
  /** Added to the real clock: tests move time forward to make keys expire. */
  private clockOffsetMs = 0;
  config: SimConfig = {
    faultRates: {},
    latencyMs: 0,
    settleAfterMs: 1_000,
    webhooks: { duplicates: 0, maxDelayMs: 0 },
  };
  readonly webhooks: WebhookSender;
  /** Faults scripted for the next requests whose metadata match (POST /__sim/faults). */
  private scripted: ScriptedFault[] = [];
  private server?: http.Server;
  private readonly stateFile?: string;

  /**
   * `stateFile`: where the ledger is kept across restarts (npm run dev); `webhookSecret`: what its
   * webhooks are signed with (the shop's STRIPE_WEBHOOK_SECRET).
   */
  constructor(options: { stateFile?: string; webhookSecret?: string } = {}) {
    this.stateFile = options.stateFile;
    this.webhooks = new WebhookSender(options.webhookSecret ?? 'whsec_unset');
    const stateFile = this.stateFile;
    if (stateFile && fs.existsSync(stateFile)) {
      const saved = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as {
        paymentIntents: PaymentIntent[];
        refunds: Refund[];
        idempotent: [string, KeyRecord][];
      };
      for (const pi of saved.paymentIntents) this.paymentIntents.set(pi.id, pi);
      for (const r of saved.refunds) this.refunds.set(r.id, r);
      for (const [k, v] of saved.idempotent)
        if (v.answer) this.idempotent.set(k, { ...v, createdAt: v.createdAt ?? Date.now() });
    }
  }

  private save(): void {
    if (!this.stateFile) return;
    const state = {
      paymentIntents: [...this.paymentIntents.values()],
      refunds: [...this.refunds.values()],
      idempotent: [...this.idempotent],
    };
    fs.writeFileSync(`${this.stateFile}.tmp`, JSON.stringify(state));
    fs.renameSync(`${this.stateFile}.tmp`, this.stateFile); // never a half-written file
  }

  /** The simulator's clock: the real one, plus however far tests moved it forward. */
  now(): number {
    return Date.now() + this.clockOffsetMs;
  }

  /** The live record of a key, forgetting it once it is older than Stripe keeps keys. */
  private keyRecord(key: string): KeyRecord | undefined {
    const record = this.idempotent.get(key);
    if (record && this.now() - record.createdAt > KEY_RETENTION_MS) {
      this.idempotent.delete(key);
      return undefined;
    }
    return record;
  }

  async listen(port = 0): Promise<string> {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, '127.0.0.1', resolve);
    });
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((resolve) => this.server?.close(resolve) ?? resolve(undefined));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://sim');
    const send = (a: Answer, headers: Record<string, string> = {}) => {
      res.writeHead(a.status, { 'content-type': 'application/json', 'request-id': newId('req'), ...headers });
      res.end(JSON.stringify(a.body));
    };

    if (url.pathname.startsWith('/__sim/')) return send(this.control(req.method!, url.pathname, raw, url.searchParams));
    if (!/^Bearer sk_test_\w+/.test(req.headers.authorization ?? '')) {
      return send({
        status: 401,
        body: { error: { type: 'invalid_request_error', message: 'Invalid API Key provided.' } },
      });
    }

    const params = req.method === 'POST' ? decodeForm(raw) : Object.fromEntries(url.searchParams);
    const faults = this.faultsFor(req, url.pathname, params);
    const latency = Math.max(
      this.config.latencyMs,
      Number([...faults].find((f) => f.startsWith('latency:'))?.slice(8) ?? 0),
    );
    const work = async (): Promise<Answer> => {
      if (latency > 0) await new Promise((r) => setTimeout(r, latency)); // the time the work takes
      return this.route(req.method ?? 'GET', url.pathname, params, faults);
    };

    const key = req.headers['idempotency-key'];
    const logged: LoggedRequest = {
      at: this.now(),
      method: req.method ?? 'GET',
      path: url.pathname,
      idempotencyKey: typeof key === 'string' ? key : null,
      replayed: false,
      status: null,
      metadata: (params.metadata ?? {}) as Record<string, string>,
    };
    this.requests.push(logged);
    if (this.requests.length > MAX_LOGGED) this.requests.shift();
    const reply = (a: Answer, headers: Record<string, string> = {}) => {
      logged.status = a.status;
      send(a, headers);
    };

    if (req.method === 'POST' && faults.has('error_500')) {
      return reply({
        status: 500,
        body: { error: { type: 'api_error', message: 'Simulated internal error (nothing was done).' } },
      });
    }
    if (req.method === 'POST' && faults.has('rate_limit')) {
      return reply({
        status: 429,
        body: { error: { type: 'rate_limit_error', message: 'Too many requests hit the API too quickly.' } },
      });
    }
    if (faults.has('auth_error')) {
      return reply({
        status: 401,
        body: {
          error: {
            type: 'authentication_error',
            message: 'Invalid API Key provided (simulated): the request will never succeed as it is.',
          },
        },
      });
    }

    let answer: Answer;
    let replayed = false;
    if (req.method === 'POST' && typeof key === 'string') {
      const fingerprint = createHash('sha256')
        .update(`${url.pathname}\n${canonicalJson(params)}`)
        .digest('hex');
      const seen = this.keyRecord(key);
      if (seen && seen.fingerprint !== fingerprint) {
        answer = {
          status: 400,
          body: {
            error: {
              type: 'idempotency_error',
              message:
                `Keys for idempotent requests can only be used with the same parameters they were first used ` +
                `with. Try using a key other than '${key}' if you meant to execute a different request.`,
            },
          },
        };
      } else if (seen && !seen.answer) {
        // The first request with this key is still being worked on (its latency has not passed).
        answer = {
          status: 409,
          body: {
            error: {
              type: 'idempotency_error',
              message: 'There is currently another in-progress request using this Idempotent Key.',
            },
          },
        };
      } else if (seen?.answer) {
        answer = seen.answer;
        replayed = true;
      } else {
        const entry: KeyRecord = { fingerprint, createdAt: this.now() };
        this.idempotent.set(key, entry);
        answer = await work();
        // Stripe keeps the answer of every request that ran, errors included, except server errors.
        if (answer.status < 500) entry.answer = answer;
        else this.idempotent.delete(key);
      }
    } else {
      answer = await work();
    }
    logged.replayed = replayed;
    if (req.method === 'POST') this.save();

    if (faults.has('timeout_after_charge')) {
      setTimeout(() => res.destroy(), HANG_MS).unref(); // the work is done; the answer never comes
      return;
    }
    if (faults.has('reset_after_charge')) {
      res.socket?.destroy();
      return;
    }
    reply(answer, replayed ? { 'Idempotent-Replayed': 'true' } : {});
  }

  /**
   * The faults for this request: its `Sim-Fault` header (per request), the configured rates (per
   * run), and the first scripted fault whose match fits (per payment, by its metadata).
   */
  private faultsFor(req: http.IncomingMessage, path: string, params: Params): Set<string> {
    const faults = new Set(
      String(req.headers['sim-fault'] ?? '')
        .split(',')
        .map((f) => f.trim())
        .filter(Boolean),
    );
    if (req.method !== 'POST') return faults;
    for (const [mode, rate] of Object.entries(this.config.faultRates))
      if (Math.random() < (rate ?? 0)) faults.add(mode);
    const metadata = (params.metadata ?? {}) as Record<string, string>;
    const i = this.scripted.findIndex(
      (f) => (!f.path || f.path === path) && Object.entries(f.metadata).every(([k, v]) => metadata[k] === v),
    );
    if (i >= 0) {
      const f = this.scripted[i]!;
      faults.add(f.fault);
      if (--f.times <= 0) this.scripted.splice(i, 1);
    }
    return faults;
  }

  private route(method: string, path: string, params: Params, faults: Set<string> = new Set()): Answer {
    if (method === 'POST' && path === '/v1/payment_intents') return this.createPaymentIntent(params, faults);
    if (method === 'POST' && path === '/v1/refunds') return this.createRefund(params, faults);
    if (method === 'GET' && path === '/v1/payment_intents') return this.list([...this.paymentIntents.values()], params);
    if (method === 'GET' && path === '/v1/refunds') {
      const all = [...this.refunds.values()];
      return this.list(
        params.payment_intent ? all.filter((r) => r.payment_intent === params.payment_intent) : all,
        params,
      );
    }
    if (method === 'GET' && path === '/v1/payment_intents/search') return this.search(String(params.query ?? ''));
    const pi = /^\/v1\/payment_intents\/([\w-]+)$/.exec(path);
    if (method === 'GET' && pi) {
      const found = this.paymentIntents.get(pi[1]!);
      return found ? { status: 200, body: found } : notFound(`No such payment_intent: '${pi[1]}'`);
    }
    const re = /^\/v1\/refunds\/([\w-]+)$/.exec(path);
    if (method === 'GET' && re) {
      const found = this.refunds.get(re[1]!);
      return found ? { status: 200, body: found } : notFound(`No such refund: '${re[1]}'`);
    }
    return notFound(`Unrecognized request URL (${method}: ${path}).`);
  }

  private createPaymentIntent(p: Params, faults: Set<string> = new Set()): Answer {
    const amount = Number(p.amount);
    if (!Number.isInteger(amount) || amount < 50)
      return invalid('amount', 'Amount must be at least 50 cents (an integer number of cents).');
    if (typeof p.currency !== 'string' || !/^[a-z]{3}$/.test(p.currency))
      return invalid('currency', 'Invalid currency.');
    const pm = String(p.payment_method ?? '');
    if (!SUCCEEDS.has(pm) && !DECLINES[pm] && !WAITS[pm])
      return invalid('payment_method', `No such PaymentMethod: '${pm}'`);
    if (p.confirm !== 'true') return invalid('confirm', 'This simulator only supports confirm=true.');
    const decline = DECLINES[pm];
    const waits = WAITS[pm];
    const intent: PaymentIntent = {
      id: newId('pi'),
      object: 'payment_intent',
      amount,
      amount_received: decline || waits ? 0 : amount,
      currency: p.currency,
      status: decline ? 'requires_payment_method' : (waits ?? 'succeeded'),
      payment_method: pm,
      latest_charge: decline || waits ? null : newId('ch'),
      metadata: (p.metadata as Record<string, string>) ?? {},
      created: Math.floor(this.now() / 1000),
      last_payment_error: null,
    };
    this.paymentIntents.set(intent.id, intent);
    if (decline) {
      const error: StripeError = {
        type: 'card_error',
        code: 'card_declined',
        decline_code: decline.decline_code,
        message: decline.message,
      };
      intent.last_payment_error = error;
      this.webhooks.emit('payment_intent.payment_failed', intent);
      return { status: 402, body: { error: { ...error, payment_intent: intent } } };
    }
    this.webhooks.emit(`payment_intent.${intent.status}`, intent);
    if (waits && !faults.has('payment_held')) this.settleLater(() => this.settlePaymentIntent(intent.id, 'succeeded'));
    return { status: 200, body: intent };
  }

  /** A waiting payment settles: it succeeds (the money arrived, the customer authenticated) or fails. */
  settlePaymentIntent(id: string, outcome: 'succeeded' | 'failed', deliver = true): PaymentIntent | undefined {
    const intent = this.paymentIntents.get(id);
    if (!intent || (intent.status !== 'processing' && intent.status !== 'requires_action')) return intent;
    if (outcome === 'succeeded') {
      Object.assign(intent, { status: 'succeeded', amount_received: intent.amount, latest_charge: newId('ch') });
      this.webhooks.emit('payment_intent.succeeded', intent, deliver);
    } else {
      const error: StripeError = {
        type: 'card_error',
        code: 'payment_intent_authentication_failure',
        message: 'The payment could not be completed.',
      };
      Object.assign(intent, { status: 'requires_payment_method', last_payment_error: error });
      this.webhooks.emit('payment_intent.payment_failed', intent, deliver);
    }
    this.save();
    return intent;
  }

  /** A pending refund settles: it succeeds or fails. (A succeeded one may still fail, as at Stripe.) */
  settleRefund(id: string, outcome: 'succeeded' | 'failed', deliver = true): Refund | undefined {
    const refund = this.refunds.get(id);
    if (!refund || refund.status === 'failed' || (refund.status === 'succeeded' && outcome === 'succeeded'))
      return refund;
    refund.status = outcome;
    if (outcome === 'succeeded') {
      this.webhooks.emit('refund.updated', refund, deliver);
      const intent = this.paymentIntents.get(refund.payment_intent);
      this.webhooks.emit(
        'charge.refunded',
        {
          id: intent?.latest_charge ?? refund.payment_intent,
          payment_intent: refund.payment_intent,
          metadata: intent?.metadata ?? {},
        },
        deliver,
      );
    } else {
      // Stripe tells a failure twice, as two events with two ids: the refund changed, and it failed.
      this.webhooks.emit('refund.updated', refund, deliver);
      this.webhooks.emit('refund.failed', refund, deliver);
    }
    this.save();
    return refund;
  }

  private settleLater(settle: () => void): void {
    if (this.config.settleAfterMs === null) return; // a test settles it through /__sim
    setTimeout(settle, this.config.settleAfterMs).unref();
  }

  private createRefund(p: Params, faults: Set<string>): Answer {
    const intent = this.paymentIntents.get(String(p.payment_intent ?? ''));
    if (!intent) return invalid('payment_intent', `No such payment_intent: '${String(p.payment_intent)}'`);
    if (intent.status !== 'succeeded')
      return invalid('payment_intent', 'This PaymentIntent has no successful charge to refund.');
    const refunded = [...this.refunds.values()]
      .filter((r) => r.payment_intent === intent.id && r.status !== 'failed')
      .reduce((s, r) => s + r.amount, 0);
    const amount = p.amount === undefined ? intent.amount - refunded : Number(p.amount);
    if (!Number.isInteger(amount) || amount <= 0) return invalid('amount', 'Amount must be a positive integer.');
    if (amount > intent.amount - refunded) {
      return {
        status: 400,
        body: {
          error: {
            type: 'invalid_request_error',
            code: 'amount_too_large',
            param: 'amount',
            message:
              `Refund amount (${amount}) is greater than unrefunded amount on charge ` +
              `(${intent.amount - refunded}).`,
          },
        },
      };
    }
    const refund: Refund = {
      id: newId('re'),
      object: 'refund',
      amount,
      currency: intent.currency,
      payment_intent: intent.id,
      status:
        faults.has('refund_pending') || faults.has('refund_fails_later') || faults.has('refund_held')
          ? 'pending'
          : 'succeeded',
      metadata: (p.metadata as Record<string, string>) ?? {},
      created: Math.floor(this.now() / 1000),
    };
    this.refunds.set(refund.id, refund);
    this.webhooks.emit('refund.created', refund);
    if (refund.status === 'succeeded')
      this.webhooks.emit('charge.refunded', {
        id: intent.latest_charge ?? intent.id,
        payment_intent: intent.id,
        metadata: intent.metadata,
      });
    else if (!faults.has('refund_held'))
      this.settleLater(() => this.settleRefund(refund.id, faults.has('refund_fails_later') ? 'failed' : 'succeeded'));
    return { status: 200, body: refund };
  }

  /**
   * Stripe's search, for the one form this app uses: `metadata['name']:'value'`. (Stripe's own index
   * lags writes by up to a minute; a flow only searches for payments made long before.)
   */
  private search(query: string): Answer {
    const m = /^metadata\['([\w-]+)'\]:'([^']*)'$/.exec(query.trim());
    if (!m)
      return invalid(
        'query',
        `This simulator searches by one metadata field only: metadata['name']:'value' (got ${query}).`,
      );
    const data = [...this.paymentIntents.values()].filter((pi) => pi.metadata[m[1]!] === m[2]);
    return {
      status: 200,
      body: { object: 'search_result', data, has_more: false, next_page: null, url: '/v1/payment_intents/search' },
    };
  }

  /** Stripe's list shape with cursor pagination (`limit`, `starting_after`), oldest first here. */
  private list<T extends { id: string }>(items: T[], p: Params): Answer {
    const limit = Math.min(Number(p.limit ?? 10) || 10, 100);
    const start = p.starting_after ? items.findIndex((i) => i.id === p.starting_after) + 1 : 0;
    const data = items.slice(start, start + limit);
    return { status: 200, body: { object: 'list', data, has_more: start + limit < items.length, url: '' } };
  }

  private control(method: string, path: string, raw: string, query: URLSearchParams): Answer {
    if (path === '/__sim/ledger') {
      return {
        status: 200,
        body: { payment_intents: [...this.paymentIntents.values()], refunds: [...this.refunds.values()] },
      };
    }
    if (path === '/__sim/requests') return { status: 200, body: { requests: this.requests } };
    if (method === 'POST' && path === '/__sim/clock') {
      const { advanceSeconds } = JSON.parse(raw || '{}') as { advanceSeconds?: number };
      if (typeof advanceSeconds !== 'number' || advanceSeconds < 0)
        return invalid('advanceSeconds', 'Send {"advanceSeconds": n} with n >= 0.');
      this.clockOffsetMs += advanceSeconds * 1000;
      return { status: 200, body: { now: new Date(this.now()).toISOString() } };
    }
    if (method === 'POST' && path === '/__sim/faults') {
      const f = JSON.parse(raw || '{}') as Partial<ScriptedFault>;
      if (!f.fault || typeof f.metadata !== 'object')
        return invalid('fault', 'Send {"metadata": {...}, "fault": "...", "times": n}.');
      this.scripted.push({ metadata: f.metadata, path: f.path, fault: f.fault, times: f.times ?? 1 });
      return { status: 200, body: { scripted: this.scripted } };
    }
    // Forgets one idempotency key now, as Stripe does 24 hours after its first use (POST /__sim/clock
    // moves time for every key at once; this, for one key, leaves concurrent tests alone).
    if (method === 'POST' && path === '/__sim/keys/forget') {
      const { key } = JSON.parse(raw || '{}') as { key?: string };
      if (typeof key !== 'string' || !key) return invalid('key', 'Send {"key": "..."}.');
      const forgotten = this.idempotent.delete(key);
      this.save();
      return { status: 200, body: { key, forgotten } };
    }
    if (method === 'DELETE' && path === '/__sim/faults') {
      this.scripted = [];
      return { status: 200, body: { scripted: [] } };
    }
    if (method === 'POST' && path === '/__sim/config') {
      const next = JSON.parse(raw || '{}') as Partial<SimConfig>;
      this.config = {
        faultRates: next.faultRates ?? {},
        latencyMs: next.latencyMs ?? 0,
        settleAfterMs: next.settleAfterMs === undefined ? this.config.settleAfterMs : next.settleAfterMs,
        webhooks: { ...this.config.webhooks, ...next.webhooks },
      };
      this.webhooks.config = this.config.webhooks;
      return { status: 200, body: this.config };
    }
    // Webhook endpoints: {"url": "http://127.0.0.1:3000/api/webhooks/stripe"}
    if (path === '/__sim/webhooks' && (method === 'POST' || method === 'DELETE')) {
      const { url } = JSON.parse(raw || '{}') as { url?: string };
      if (!url) return invalid('url', 'Send {"url": "..."}.');
      if (method === 'POST') this.webhooks.endpoints.add(url);
      else this.webhooks.endpoints.delete(url);
      return { status: 200, body: { endpoints: [...this.webhooks.endpoints] } };
    }
    // Events, optionally of one customer, each with its payload signed now: GET /__sim/events?customer_id=...
    if (method === 'GET' && path === '/__sim/events') {
      const customer = query.get('customer_id');
      const events = this.webhooks.events.filter((e) => !customer || e.data.object.metadata?.customer_id === customer);
      return {
        status: 200,
        body: {
          events: events.map((e) => ({ event: e, signed: this.webhooks.signed(e) })),
          deliveries: this.webhooks.deliveries,
        },
      };
    }
    const settle = /^\/__sim\/(payment_intents|refunds)\/([\w-]+)\/settle$/.exec(path);
    if (method === 'POST' && settle) {
      const { outcome, deliver = true } = JSON.parse(raw || '{}') as {
        outcome?: 'succeeded' | 'failed';
        deliver?: boolean;
      };
      if (outcome !== 'succeeded' && outcome !== 'failed')
        return invalid('outcome', 'Send {"outcome": "succeeded" | "failed"}.');
      if (typeof deliver !== 'boolean')
        return invalid('deliver', 'deliver is true (send the event to the endpoints) or false (only make it).');
      const settled =
        settle[1] === 'payment_intents'
          ? this.settlePaymentIntent(settle[2]!, outcome, deliver)
          : this.settleRefund(settle[2]!, outcome, deliver);
      return settled ? { status: 200, body: settled } : notFound(`No such object: '${settle[2]}'`);
    }
    return notFound(`No simulator control at ${path}`);
  }
}

const notFound = (message: string): Answer => ({
  status: 404,
  body: { error: { type: 'invalid_request_error', message } },
});
const invalid = (param: string, message: string): Answer => ({
  status: 400,
  body: { error: { type: 'invalid_request_error', code: 'parameter_invalid', param, message } },
});

// CLI: `tsx simulator/stripe.ts --port 12111`
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const port = Number(process.argv[process.argv.indexOf('--port') + 1]) || 12111;
  void new StripeSimulator().listen(port).then((url) => console.log(`[stripe-sim] listening on ${url}`));
}
