/** The environment is checked once, at start: unsafe or meaningless settings stop the server with a message. */
import { describe, expect, it } from 'vitest';
import { startAppServer } from '../dev/app-server';
import { listenerPort } from '../dev/ports';
import { DEV_WEBHOOK_SECRET, getEnv, parseServerEnv, SERVER_ENV_NAMES } from './env.js';

const BASE = { DATABASE_URL: 'postgres://u@127.0.0.1:5432/db', STRIPE_API_BASE: 'http://127.0.0.1:12111' };
/** What a production server needs besides: its own cookie key and the provider's signing secret. */
const PRODUCTION = {
  NODE_ENV: 'production',
  COOKIE_SECRET: 'x'.repeat(32),
  STRIPE_WEBHOOK_SECRET: 'whsec_theShopsOwnSecret0123',
};

describe('server environment', () => {
  it('refuses ENABLE_TEST_HOOKS=1 in production: its faults can stall or kill the server', () => {
    expect(() => parseServerEnv({ ...BASE, ...PRODUCTION, ENABLE_TEST_HOOKS: '1' })).toThrow(
      /ENABLE_TEST_HOOKS: is refused in production/,
    );
    expect(parseServerEnv({ ...BASE, NODE_ENV: 'test', ENABLE_TEST_HOOKS: '1' }).ENABLE_TEST_HOOKS).toBe(true);
  });

  it("refuses a production server without the provider's webhook secret, or with the simulator's public one", () => {
    const { STRIPE_WEBHOOK_SECRET: _secret, ...withoutSecret } = PRODUCTION;
    expect(() => parseServerEnv({ ...BASE, ...withoutSecret })).toThrow(
      /STRIPE_WEBHOOK_SECRET: is required in production/,
    );
    expect(() => parseServerEnv({ ...BASE, ...PRODUCTION, STRIPE_WEBHOOK_SECRET: DEV_WEBHOOK_SECRET })).toThrow(
      /STRIPE_WEBHOOK_SECRET: is required in production/,
    );
    expect(() => parseServerEnv({ ...BASE, ...PRODUCTION, STRIPE_WEBHOOK_SECRET: 'not-a-secret' })).toThrow(
      /must look like whsec_/,
    );
    expect(parseServerEnv({ ...BASE, ...PRODUCTION }).STRIPE_WEBHOOK_SECRET).toBe(PRODUCTION.STRIPE_WEBHOOK_SECRET);
  });

  it('the lab is off in production unless ENABLE_LAB=1, and on in development and tests', () => {
    expect(parseServerEnv({ ...BASE, ...PRODUCTION }).ENABLE_LAB).toBe(false);
    expect(parseServerEnv({ ...BASE, ...PRODUCTION, ENABLE_LAB: '1' }).ENABLE_LAB).toBe(true);
    expect(parseServerEnv({ ...BASE, NODE_ENV: 'test' }).ENABLE_LAB).toBe(true);
    expect(parseServerEnv({ ...BASE, NODE_ENV: 'development' }).ENABLE_LAB).toBe(true);
  });

  it("refuses metrics in production without a token: they name customers' traffic", () => {
    expect(() => parseServerEnv({ ...BASE, ...PRODUCTION, ENABLE_METRICS: '1' })).toThrow(
      /METRICS_TOKEN: is required in production when ENABLE_METRICS=1/,
    );
    expect(parseServerEnv({ ...BASE, ...PRODUCTION }).ENABLE_METRICS).toBe(false);
    expect(
      parseServerEnv({ ...BASE, ...PRODUCTION, ENABLE_METRICS: '1', METRICS_TOKEN: 't'.repeat(16) }).ENABLE_METRICS,
    ).toBe(true);
  });

  it('refuses a provider timeout that is not shorter than the lease', () => {
    expect(() => parseServerEnv({ ...BASE, STRIPE_TIMEOUT_MS: '30000', IDEMPOTENCY_LEASE_MS: '30000' })).toThrow(
      /STRIPE_TIMEOUT_MS: must be shorter than IDEMPOTENCY_LEASE_MS/,
    );
    expect(
      parseServerEnv({ ...BASE, STRIPE_TIMEOUT_MS: '10000', IDEMPOTENCY_LEASE_MS: '30000' }).STRIPE_TIMEOUT_MS,
    ).toBe(10_000);
  });

  it('knows every variable it reads: the list the next test walks is the whole schema', () => {
    expect(SERVER_ENV_NAMES).toEqual(
      expect.arrayContaining([
        'DATABASE_URL',
        'JOBS_INTERVAL_SECONDS',
        'IDEMPOTENCY_WAIT_MS',
        'ENABLE_LAB',
        'STRIPE_TIMEOUT_MS',
      ]),
    );
    expect(SERVER_ENV_NAMES.length).toBeGreaterThan(20);
  });

  /** The parsed environment, or the error's message: an empty value must give exactly what no value gives. */
  const outcome = (env: Record<string, string>) => {
    try {
      return parseServerEnv(env) as Record<string, unknown>;
    } catch (err) {
      return (err as Error).message;
    }
  };

  it.each(SERVER_ENV_NAMES)(
    'an empty or blank %s means unset: its default (or its error when required), never 0, false or ""',
    (name) => {
      const { [name]: _given, ...rest } = { ...BASE, ...PRODUCTION, NODE_ENV: 'test' } as Record<string, string>;
      const unset = outcome(rest);
      expect(outcome({ ...rest, [name]: '' })).toEqual(unset);
      expect(outcome({ ...rest, [name]: '   ' })).toEqual(unset);
    },
  );

  it('a production server with ENABLE_TEST_HOOKS=1 does not start, and says why', async () => {
    const started = startAppServer({
      port: await listenerPort(),
      env: { ...PRODUCTION, DATABASE_URL: getEnv().DATABASE_URL, ENABLE_TEST_HOOKS: '1' },
    });
    await expect(started).rejects.toThrow(/ENABLE_TEST_HOOKS: is refused in production/);
  });
});
