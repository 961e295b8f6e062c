/**
 * Two copies of one function: the idempotency layer fingerprints requests with its own canonical JSON
 * (it imports nothing of the app), and the browser compares intents with shared/canonical-json.ts (it
 * cannot import server code). They must stay the same function: checked on many generated values.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson as shared } from '../shared/canonical-json';
import { fingerprint, keyTag, canonicalJson as layer } from './idempotency';

describe('canonical JSON', () => {
  it("the layer's and the browser's copies give the same text for any JSON-like value", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.anything(), (json, anything) => {
        expect(layer(json)).toBe(shared(json));
        expect(layer(anything)).toBe(shared(anything));
      }),
      { numRuns: 2_000 },
    );
  });

  it('keys in another order, and undefined properties, make no difference', () => {
    expect(layer({ b: 1, a: { d: [1, { f: 2, e: 3 }], c: undefined } })).toBe('{"a":{"d":[1,{"e":3,"f":2}]},"b":1}');
  });

  it(
    'the fingerprint and the key tag are pinned: a key row stored by an earlier version is still recognized, ' +
      'so a change of the hashing or of the canonical form fails here first',
    () => {
      // SHA-256 of "checkout.placeOrder", a newline and the canonical input, as every earlier version computed it.
      const input = { items: [{ quantity: 2, productId: 'travel-mug' }] };
      expect(fingerprint('checkout.placeOrder', input)).toBe(
        '1a70449db272629f53b1b311a329fbc325308f3d851600ebed64a9151b5d0c96',
      );
      expect(keyTag('8e03978e-40d5-43e8-bc93-6894a57f9324')).toBe('238c5b6ddb48');
    },
  );
});
