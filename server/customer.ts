/**
 * The anonymous customer: a random id in a signed, httpOnly cookie, minted on first contact.
 *
 * The cookie is `<uuid>.<HMAC-SHA256 of the uuid>`. Without the secret nobody can forge one, so a
 * customer id in a cookie that verifies was issued by this server. A cookie that does not verify is
 * never trusted: it is replaced in the response; a query is answered as the new customer and a
 * mutation refused (see `customerProcedure`), so a browser recovers on its next request.
 */
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';

export const CUSTOMER_COOKIE = 'customer';
// A year: the identity only groups this browser's orders; losing it loses the history view, nothing else.
const MAX_AGE_SECONDS = 365 * 24 * 60 * 60;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export type CustomerIdentity =
  | { status: 'presented'; id: string } // a valid cookie came with the request
  | { status: 'minted'; id: string } // no cookie came; this response sets a new one
  | { status: 'rejected'; id: string }; // a forged or damaged cookie came; `id` is the replacement

function sign(id: string, secret: string): string {
  return createHmac('sha256', secret).update(id).digest('base64url');
}

export function signCustomerId(id: string, secret: string): string {
  return `${id}.${sign(id, secret)}`;
}

/** The customer id in a cookie value, or undefined when the value is malformed or its signature is wrong. */
export function verifyCustomerCookie(value: string, secret: string): string | undefined {
  const dot = value.indexOf('.');
  if (dot < 0) return undefined;
  const id = value.slice(0, dot);
  if (!UUID.test(id)) return undefined;
  const given = Buffer.from(value.slice(dot + 1));
  const expected = Buffer.from(sign(id, secret));
  return given.length === expected.length && timingSafeEqual(given, expected) ? id : undefined;
}

/**
 * The raw value of cookie `name`, or undefined when there is none. A value that is not valid
 * percent-encoding (anyone sharing the domain can plant one) comes back as '' : present, invalid.
 */
function readCookie(header: string | null, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return '';
      }
    }
  }
  return undefined;
}

/**
 * Works out who is calling from the request's Cookie header. When the caller has no valid cookie, a
 * new identity is minted and its Set-Cookie appended to `resHeaders`.
 */
export function resolveCustomer(req: Request, resHeaders: Headers, secret: string): CustomerIdentity {
  const raw = readCookie(req.headers.get('cookie'), CUSTOMER_COOKIE);
  const verified = raw === undefined ? undefined : verifyCustomerCookie(raw, secret);
  if (verified) return { status: 'presented', id: verified };

  const id = randomUUID();
  const secure = new URL(req.url).protocol === 'https:' || req.headers.get('x-forwarded-proto') === 'https';
  const attributes = [
    'Path=/',
    'HttpOnly',
    'SameSite=Lax',
    `Max-Age=${MAX_AGE_SECONDS}`,
    ...(secure ? ['Secure'] : []),
  ];
  resHeaders.append('Set-Cookie', `${CUSTOMER_COOKIE}=${signCustomerId(id, secret)}; ${attributes.join('; ')}`);
  return { status: raw === undefined ? 'minted' : 'rejected', id };
}
