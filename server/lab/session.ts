/**
 * One lab run: a scripted client that sends real requests to this server's API (in process, through
 * the same handler HTTP requests reach), plays the network (an answer delivered, lost, or never
 * coming), plans faults through the one fault-injection mechanism, and writes down, attempt by
 * attempt, what happened: the decision the server made, the key row after it, the calls the payment
 * provider received. The verdict is counted from the database and the provider, never from what the
 * client was told.
 *
 * Runs are kept in `lab_runs`, so a page polling for progress may reach any server instance.
 */
import { randomUUID } from 'node:crypto';
import { eq, inArray, sql } from 'drizzle-orm';
import type { Db } from '../../db/client';
import { labCustomers, labRuns, orders } from '../../db/schema';
import type { InProcessHandlers } from '../context';
import { signCustomerId } from '../customer';
import { getEnv } from '../env.js';
import { type FaultPlan, onDecision, planFault } from '../idempotency';
import { providerIntentsOf } from '../services/payments';
import { fastForwardKey, keyRowsOf } from './keys';
import { LAB_DECISION_HEADER } from './twins';

export type Network = 'deliver' | 'lose-response' | 'no-answer';

export interface TimelineEntry {
  /** Milliseconds since the run started. */
  t: number;
  kind: 'attempt' | 'note';
  text?: string;
  attempt?: number;
  /** Which of the run's customers sent it (A, B). */
  who?: string;
  procedure?: string;
  key?: string | null;
  network?: string;
  status?: number;
  answer?: string;
  replayed?: boolean;
  decisions?: string[];
  keyAfter?: { state: string; recoveryPoint: string; leaseToken: number } | null;
  /** Orders of the run's customers in the database once the attempt ended (work the client may not know of). */
  ordersAfter?: number;
  provider?: { path: string; key: string | null; replayed: boolean; status: number | null }[];
}

export interface Counts {
  orders?: number;
  charges?: number;
  quantity?: number;
  /** Dollars the run's orders show as refunded. */
  refunded?: number;
  /** Orders still waiting for their payment (pending_payment): a checkout nobody finished. */
  waiting?: number;
  /** Orders that are paid. */
  paid?: number;
  /** Answers that name an order of another request (counted by the scenario from the order's items). */
  misanswered?: number;
}

export interface Check {
  label: string;
  ok: boolean;
  detail: string;
}

export interface Verdict {
  counts: Counts;
  expected: Counts;
  /** The answer to a question that is not a count, read from the records, and the one promised. */
  choice?: { actual: string; expected: string };
  checks: Check[];
  ok: boolean;
}

// The lab's client gives up on an attempt that got no answer after this long, and really waits it
// (the shop's own client waits 15 s; the lab does not make a learner wait that long for the same lesson).
export const LAB_ATTEMPT_TIMEOUT_MS = 2_000;
const WHO = ['A', 'B'];

const short = (key: string | null | undefined) => (key ? `${key.slice(0, 8)}…` : null);

/** Registers fresh customers as the lab's own. */
export async function newLabCustomers(db: Db, n: number): Promise<string[]> {
  const ids = Array.from({ length: n }, () => randomUUID());
  await db.insert(labCustomers).values(ids.map((id) => ({ id })));
  return ids;
}

export async function isLabCustomer(db: Db, id: string): Promise<boolean> {
  const [row] = await db.select({ id: labCustomers.id }).from(labCustomers).where(eq(labCustomers.id, id));
  return row !== undefined;
}

/** An event the provider made, and its payload signed as the provider sends it. */
export interface ProviderEvent {
  event: { id: string; type: string; data: { object: { id: string; status?: string } } };
  signed: { payload: string; header: string };
}

export class LabSession {
  readonly started = Date.now();
  private readonly timeline: TimelineEntry[] = [];
  private attempts = 0;
  /** Provider calls already shown, by their place in the simulator's log. */
  private readonly providerSeen = new Set<number>();
  private readonly decisions = new Map<string, string[]>();
  private readonly stopListening: () => void;
  private saving: Promise<unknown> = Promise.resolve();

  constructor(
    readonly db: Db,
    readonly runId: string,
    readonly customers: string[],
    /** The shop's own HTTP handlers: every scripted request goes through the path a real one takes. */
    readonly handlers: InProcessHandlers,
  ) {
    // Every request of this run carries an id of its own (x-request-id): its decisions are the ones
    // tagged with it, whatever scope a twin filed the key under.
    const prefix = this.requestPrefix;
    this.stopListening = onDecision((e) => {
      if (typeof e.requestId !== 'string' || !e.requestId.startsWith(prefix)) return;
      this.decisions.set(e.requestId, [...(this.decisions.get(e.requestId) ?? []), e.decision]);
    });
  }

  private get requestPrefix(): string {
    return `lab-${this.runId.slice(0, 8)}-`;
  }

  get customer(): string {
    return this.customers[0]!;
  }

  /** A new key, as the shop's client makes one per intent. */
  newKey(): string {
    return randomUUID();
  }

  /** Writes a line of narration into the timeline ("30 s pass"). */
  note(text: string): Promise<void> {
    this.timeline.push({ t: Date.now() - this.started, kind: 'note', text });
    return this.save();
  }

  /** Plans a fault for this run's customer (the only scope the lab may plan faults for). */
  fault(plan: Omit<FaultPlan, 'scope'>, as = 0): void {
    planFault({ ...plan, scope: this.customers[as]! });
  }

  /** Scripts a provider fault at the simulator for this run's customer's next call(s). */
  async providerFault(fault: string, times = 1): Promise<void> {
    const base = getEnv().STRIPE_API_BASE;
    if (!base) throw new Error('this scenario needs the payment simulator');
    await fetch(`${base}/__sim/faults`, {
      method: 'POST',
      body: JSON.stringify({ metadata: { customer_id: this.customer }, fault, times }),
    });
  }

  /**
   * Moves a key's clock forward instead of waiting (`seconds` pass for its lease, it expires, or it
   * ages), and says so in the timeline: every fast-forward is narrated as one.
   */
  async fastForward(
    procedure: string,
    key: string,
    what: 'lease' | 'expiry' | 'age',
    text: string,
    options: { seconds?: number; as?: number } = {},
  ): Promise<void> {
    await fastForwardKey(this.db, { scope: this.customers[options.as ?? 0]!, procedure, key }, what, options.seconds);
    await this.note(`${text} (fast-forwarded: no real time passes)`);
  }

  /** Really waits `ms`, and says so in the timeline first. */
  async wait(ms: number, text: string): Promise<void> {
    await this.note(text);
    await new Promise((r) => setTimeout(r, ms));
  }

  /** Makes the payment simulator forget one of its idempotency keys, as it does 24 h after first use. */
  async forgetProviderKey(providerKey: string): Promise<void> {
    const base = getEnv().STRIPE_API_BASE;
    if (!base) throw new Error('this scenario needs the payment simulator');
    const res = await fetch(`${base}/__sim/keys/forget`, {
      method: 'POST',
      body: JSON.stringify({ key: providerKey }),
    });
    if (!res.ok) throw new Error(`the simulator did not forget the key: ${res.status}`);
  }

  /** Settles a held payment at the provider; its event is made and not delivered (it is late). */
  async settleHeldPayment(paymentIntentId: string): Promise<void> {
    const base = getEnv().STRIPE_API_BASE;
    if (!base) throw new Error('this scenario needs the payment simulator');
    const res = await fetch(`${base}/__sim/payment_intents/${paymentIntentId}/settle`, {
      method: 'POST',
      body: JSON.stringify({ outcome: 'succeeded', deliver: false }),
    });
    if (!res.ok) throw new Error(`the simulator did not settle ${paymentIntentId}: ${res.status}`);
  }

  /** Orders of the run's customers with each status, from the database. */
  async orderStatuses(): Promise<string[]> {
    const rows = await this.db
      .select({ status: orders.status })
      .from(orders)
      .where(inArray(orders.customerId, this.customers));
    return rows.map((r) => r.status);
  }

  /** Which of the run's customers (A, B) an order belongs to, from the database; '' when there is none. */
  async ownerOf(orderId: unknown): Promise<string> {
    if (typeof orderId !== 'string' || !/^[0-9a-f-]{36}$/.test(orderId)) return '';
    const [row] = await this.db.select({ customerId: orders.customerId }).from(orders).where(eq(orders.id, orderId));
    return row ? (WHO[this.customers.indexOf(row.customerId)] ?? 'someone else') : '';
  }

  /**
   * Sends one request as customer `as`, with `key` (none when null), and plays the network. Returns
   * what the client got: the answer, or nothing when the network lost it.
   */
  async send(options: {
    procedure: string;
    input: unknown;
    key: string | null;
    network?: Network;
    as?: number;
    query?: boolean;
    /** Extra request headers (the instance a balancer picked, in one twin). */
    headers?: Record<string, string>;
    // biome-ignore lint/suspicious/noExplicitAny: an answer off the wire; the scenarios read a field or two of it
  }): Promise<{ status: number; body: any } | null> {
    const as = options.as ?? 0;
    const customer = this.customers[as]!;
    const attempt = ++this.attempts;
    const requestId = `${this.requestPrefix}${attempt}`;
    const t = Date.now() - this.started;
    const headers = new Headers({
      cookie: `customer=${signCustomerId(customer, getEnv().COOKIE_SECRET)}`,
      'x-request-id': requestId,
      ...options.headers,
    });
    if (options.key) headers.set('idempotency-key', options.key);
    let req: Request;
    if (options.query) {
      req = new Request(
        `http://lab/api/trpc/${options.procedure}?input=${encodeURIComponent(JSON.stringify(options.input))}`,
        { headers },
      );
    } else {
      headers.set('content-type', 'application/json');
      req = new Request(`http://lab/api/trpc/${options.procedure}`, {
        method: 'POST',
        headers,
        body: JSON.stringify(options.input),
      });
    }
    const res = await this.handlers.api(req);
    const text = await res.text();
    // biome-ignore lint/suspicious/noExplicitAny: an answer off the wire, as above
    let body: any;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    const network = options.network ?? 'deliver';
    const replayed = res.headers.get('idempotent-replayed') === 'true';
    // The key row this request touched: under its procedure, or under the name a twin filed it as.
    const [row] = options.key
      ? (await keyRowsOf(this.db, this.customers))
          .filter((r) => r.key === options.key && r.scope === customer)
          .sort((a, b) => Number(b.procedure === options.procedure) - Number(a.procedure === options.procedure))
      : [];
    const twinSaid = res.headers.get(LAB_DECISION_HEADER);
    // A request that failed before any decision (a crash, a lost connection) says so, whatever it was.
    const failedBefore = res.status >= 500 && !twinSaid && !this.decisions.get(requestId)?.length;
    this.timeline.push({
      t,
      kind: 'attempt',
      attempt,
      who: WHO[as],
      procedure: options.procedure,
      key: short(options.key),
      network:
        network === 'deliver'
          ? 'delivered'
          : network === 'lose-response'
            ? 'answer lost on the way back'
            : 'no answer: the connection died with the server',
      status: network === 'deliver' ? res.status : undefined,
      answer: network === 'deliver' ? summarize(res.status, body) : undefined,
      replayed: network === 'deliver' ? replayed : undefined,
      decisions: [
        ...(this.decisions.get(requestId) ?? []),
        ...(twinSaid ? twinSaid.split(/,\s*/) : []),
        ...(options.key === null ? ['no key: ran it'] : []),
        ...(failedBefore ? [`failed before deciding: ${summarize(res.status, body)}`] : []),
      ],
      keyAfter: row ? { state: row.state, recoveryPoint: row.recoveryPoint, leaseToken: row.leaseToken } : null,
      ordersAfter: await this.orderCount(),
      provider: await this.newProviderCalls(row?.id),
    });
    await this.save();
    if (network === 'no-answer') {
      // The client hears nothing, and gives up on this attempt only once its timeout has passed.
      const left = this.started + t + LAB_ATTEMPT_TIMEOUT_MS - Date.now();
      if (left > 0) await new Promise((r) => setTimeout(r, left));
      await this.note(
        `No answer after ${LAB_ATTEMPT_TIMEOUT_MS / 1000} s: the client gives up on attempt #${attempt}.`,
      );
    }
    return network === 'deliver' ? { status: res.status, body } : null;
  }

  /**
   * Settles a refund the provider holds (the `refund_held` fault): it makes its event but does not
   * send it, so that the scenario delivers it, and as often as it likes.
   */
  async settleHeldRefund(providerRefundId: string, outcome: 'succeeded' | 'failed'): Promise<void> {
    const base = getEnv().STRIPE_API_BASE;
    if (!base) throw new Error('this scenario needs the payment simulator');
    const res = await fetch(`${base}/__sim/refunds/${providerRefundId}/settle`, {
      method: 'POST',
      body: JSON.stringify({ outcome, deliver: false }),
    });
    if (!res.ok) throw new Error(`the simulator did not settle ${providerRefundId}: ${res.status} ${await res.text()}`);
  }

  /** The provider's events about this run's first customer, of one type, each signed as the provider sends it. */
  async providerEvents(type: string): Promise<ProviderEvent[]> {
    const base = getEnv().STRIPE_API_BASE;
    if (!base) throw new Error('this scenario needs the payment simulator');
    const { events } = (await (await fetch(`${base}/__sim/events?customer_id=${this.customer}`)).json()) as {
      events: ProviderEvent[];
    };
    return events.filter((e) => e.event.type === type);
  }

  /** Delivers a signed event to a webhook handler as the provider does, and writes it into the timeline. */
  async deliverWebhook(
    signed: { payload: string; header: string },
    handler: (req: Request) => Promise<Response>,
  ): Promise<{ status: number; body: { outcome?: string; type?: string; id?: string; error?: string } }> {
    const t = Date.now() - this.started;
    const req = new Request('http://lab/api/webhooks/stripe', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'stripe-signature': signed.header },
      body: signed.payload,
    });
    const res = await handler(req);
    const body = (await res.json()) as { outcome?: string; type?: string; id?: string; error?: string };
    this.timeline.push({
      t,
      kind: 'attempt',
      attempt: ++this.attempts,
      who: 'provider',
      procedure: `webhook ${body.type ?? ''}`.trim(),
      key: short(body.id),
      network: 'delivered',
      status: res.status,
      answer: `${res.status} ${body.outcome ?? body.error ?? ''}`.trim(),
      decisions: body.outcome ? [body.outcome] : [],
      keyAfter: null,
      provider: [],
    });
    await this.save();
    return { status: res.status, body };
  }

  /**
   * Calls the payment simulator received for this run and not shown yet. A charge names its key row in
   * its metadata: it is shown with an attempt on that row, so that of two attempts in flight at once each
   * shows its own. None with real Stripe.
   */
  private async newProviderCalls(keyRowId?: string): Promise<TimelineEntry['provider']> {
    const base = getEnv().STRIPE_API_BASE;
    if (!base) return [];
    const { requests } = (await (await fetch(`${base}/__sim/requests`)).json()) as {
      requests: {
        method: string;
        path: string;
        idempotencyKey: string | null;
        replayed: boolean;
        status: number | null;
        metadata: Record<string, string>;
      }[];
    };
    const mine = new Set(this.customers);
    const fresh = requests
      .map((r, i) => ({ r, i }))
      .filter(({ r, i }) => r.method === 'POST' && mine.has(r.metadata.customer_id ?? '') && !this.providerSeen.has(i))
      // a call that names its key row (a charge) belongs to that row's attempt; others (refunds) to any
      .filter(({ r }) => !keyRowId || !r.metadata.idempotency_key_id || r.metadata.idempotency_key_id === keyRowId);
    for (const { i } of fresh) this.providerSeen.add(i);
    return fresh.map(({ r }) => ({
      path: r.path,
      key: short(r.idempotencyKey),
      replayed: r.replayed,
      status: r.status,
    }));
  }

  private async orderCount(): Promise<number> {
    const [row] = await this.db
      .select({ n: sql<number>`count(*)::int` })
      .from(orders)
      .where(inArray(orders.customerId, this.customers));
    return row!.n;
  }

  /** Orders of the run's customers, from the database; charges, from the provider. */
  async counts(): Promise<Required<Pick<Counts, 'orders' | 'charges'>>> {
    const [row] = await this.db
      .select({ n: sql<number>`count(*)::int` })
      .from(orders)
      .where(inArray(orders.customerId, this.customers));
    let charges = 0;
    for (const customer of this.customers)
      charges += (await providerIntentsOf(customer)).filter((pi) => pi.status === 'succeeded').length;
    return { orders: row!.n, charges };
  }

  /** Cents the run's orders show as refunded. */
  async refundedCents(): Promise<number> {
    const [row] = await this.db
      .select({ n: sql<number>`coalesce(sum(${orders.refundedCents}), 0)::int` })
      .from(orders)
      .where(inArray(orders.customerId, this.customers));
    return row!.n;
  }

  /** The timeline in the order things started (an attempt is written down when it ends). */
  private ordered(): TimelineEntry[] {
    return [...this.timeline].sort((a, b) => a.t - b.t || (a.attempt ?? 0) - (b.attempt ?? 0));
  }

  private save(): Promise<void> {
    const timeline = this.ordered();
    this.saving = this.saving.then(() => this.db.update(labRuns).set({ timeline }).where(eq(labRuns.id, this.runId)));
    return this.saving.then(() => {});
  }

  async finish(verdict: Verdict | null, failure?: string): Promise<void> {
    this.stopListening();
    if (failure)
      this.timeline.push({ t: Date.now() - this.started, kind: 'note', text: `The run stopped: ${failure}` });
    await this.saving;
    await this.db
      .update(labRuns)
      .set({ timeline: this.ordered(), verdict, status: failure ? 'failed' : 'done' })
      .where(eq(labRuns.id, this.runId));
  }
}

/** A short line for an answer: "200 order 1a2b3c4d, paid" or "409 IDEMPOTENCY_KEY_IN_USE". */
// biome-ignore lint/suspicious/noExplicitAny: an answer off the wire, any shape
function summarize(status: number, body: any): string {
  const data = body?.result?.data;
  if (data?.id) return `${status} order ${String(data.id).slice(0, 8)}${data.status ? `, ${data.status}` : ''}`;
  if (typeof data === 'number') return `${status} quantity ${data}`;
  const code = body?.error?.data?.errorCode;
  return `${status}${code ? ` ${code}` : ''}`;
}
