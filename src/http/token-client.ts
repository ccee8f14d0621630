// The client a token request names, read before oidc-provider handles the request: from the Basic
// credentials, else from the form body (client_id, or the subject of a client_assertion). The
// body is read here (within the library's own size limit) and handed back to the library intact,
// as if unread: oidc-provider reads the request stream itself and must see every byte.
import { parse as parseForm } from 'node:querystring';
import type { Context } from 'koa';
import { decodeJwt } from 'jose';

// oidc-provider's own limit for form bodies (lib/shared/selective_body.js).
const LIBRARY_BODY_LIMIT = 56 * 1024;
const MAX_CLIENT_ID = 255;

export async function claimedClientId(ctx: Context): Promise<string | undefined> {
  const basic = /^Basic ([A-Za-z0-9+/]+=*)$/i.exec(ctx.get('authorization'));
  if (basic) return basicClientId(basic[1]);
  if (!ctx.is('application/x-www-form-urlencoded') || !ctx.req.readable) return undefined;
  const declared = ctx.request.length;
  if (declared !== undefined && declared > LIBRARY_BODY_LIMIT) return undefined;
  const raw = await readBounded(ctx);
  if (!raw) return undefined;
  const form = parseForm(raw.toString('utf8'));
  const clientId = typeof form.client_id === 'string' ? form.client_id : assertionSubject(form.client_assertion);
  return clientId && clientId.length <= MAX_CLIENT_ID ? clientId : undefined;
}

function basicClientId(encoded: string): string | undefined {
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  try {
    const clientId = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '));
    return clientId.length <= MAX_CLIENT_ID ? clientId : undefined;
  } catch {
    return undefined;
  }
}

// Unverified: it only picks the budget to check; the library verifies the assertion.
function assertionSubject(assertion: unknown): string | undefined {
  if (typeof assertion !== 'string') return undefined;
  try {
    const { sub } = decodeJwt(assertion);
    return typeof sub === 'string' ? sub : undefined;
  } catch {
    return undefined;
  }
}

// Reads the whole body, then makes the request stream replay it. Over the library's limit, the
// request is refused here as the library would refuse it.
async function readBounded(ctx: Context): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let received = 0;
  try {
    for await (const chunk of ctx.req.iterator({ destroyOnReturn: false })) {
      received += (chunk as Buffer).length;
      if (received > LIBRARY_BODY_LIMIT) ctx.throw(400, 'failed to parse the request body');
      chunks.push(chunk as Buffer);
    }
  } catch (error) {
    if ((error as { status?: number }).status === 400) throw error;
    ctx.throw(400, 'failed to parse the request body');
  }
  const raw = Buffer.concat(chunks, received);
  let replayed = false;
  Object.defineProperty(ctx.req, 'readable', { configurable: true, get: () => !replayed });
  Object.defineProperty(ctx.req, 'iterator', {
    configurable: true,
    value: async function* replay() {
      replayed = true;
      if (raw.length) yield raw;
    },
  });
  return raw;
}
