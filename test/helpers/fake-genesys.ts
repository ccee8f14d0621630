// A local stand-in for Genesys Cloud's login and API hosts, answering in their shapes:
// GET /oauth/authorize (the agent counts as signed in and is sent straight back), POST /oauth/token
// (Basic client authentication, PKCE), GET /api/v2/users/me (bearer token; organization and
// authorization only when expanded). Requests are recorded; failures can be ordered.
import http from 'node:http';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';

export interface GenesysRole {
  id: string;
  name: string;
}

export interface GenesysOrganization {
  id: string;
  name: string;
}

export interface FakeGenesysUser {
  id: string;
  name: string;
  email: string;
  division: { id: string; name: string };
  organization: GenesysOrganization;
  roles: GenesysRole[];
}

export interface FakeGenesysOptions {
  clientId?: string;
  clientSecret?: string;
  user?: Partial<FakeGenesysUser>;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  authorization?: string;
  form?: URLSearchParams;
}

// 'unavailable': the next requests answer 503 (Genesys down); 'access_denied': the next
// authorization ends with error=access_denied (the agent declined).
export type GenesysFailure = 'unavailable' | 'access_denied';

export interface FakeGenesys {
  url: string;
  authorizeUrl: string;
  tokenUrl: string;
  usersMeUrl: string;
  clientId: string;
  clientSecret: string;
  // Who signs in at the next authorization.
  setUser(user: Partial<FakeGenesysUser>): FakeGenesysUser;
  // path: only requests to it fail (e.g. '/api/v2/users/me'); else the next request of any kind.
  failNext(failure: GenesysFailure, path?: string): void;
  requests: RecordedRequest[];
  // The code_challenge of each authorization request, in order.
  codeChallenges: { challenge: string | null; method: string | null }[];
  stop(): Promise<void>;
}

interface IssuedCode {
  user: FakeGenesysUser;
  redirectUri: string;
  challenge: string;
  method: string;
}

export const DEFAULT_ORGANIZATION: GenesysOrganization = { id: '6f1a9b6e-0c4f-4a43-9d1e-6a3b1c2d4e5f', name: 'Contoso Support' };

export function genesysUser(overrides: Partial<FakeGenesysUser> = {}): FakeGenesysUser {
  return {
    id: randomUUID(),
    name: 'Grace Hopper',
    email: 'grace@contoso.example',
    division: { id: randomUUID(), name: 'Home' },
    organization: DEFAULT_ORGANIZATION,
    roles: [
      { id: randomUUID(), name: 'employee' },
      { id: randomUUID(), name: 'Supervisor' },
    ],
    ...overrides,
  };
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString()));
    req.on('error', reject);
  });
}

// The users/me document as Genesys Cloud answers it (trimmed to what matters here).
function usersMe(base: string, user: FakeGenesysUser, expand: Set<string>): Record<string, unknown> {
  const document: Record<string, unknown> = {
    id: user.id,
    name: user.name,
    division: { ...user.division, selfUri: `/api/v2/authorization/divisions/${user.division.id}` },
    chat: { jabberId: `${user.id.slice(0, 24)}@contoso.orgspan.com` },
    email: user.email,
    primaryContactInfo: [{ address: user.email, mediaType: 'EMAIL', type: 'PRIMARY' }],
    addresses: [],
    state: 'active',
    username: user.email,
    version: 7,
    acdAutoAnswer: false,
    selfUri: `${base}/api/v2/users/${user.id}`,
  };
  if (expand.has('organization')) {
    document.organization = { ...user.organization, defaultLanguage: 'en-us', defaultCountryCode: 'US', domain: 'contoso', version: 12, state: 'active', selfUri: `/api/v2/organizations/${user.organization.id}` };
  }
  if (expand.has('authorization')) {
    document.authorization = { roles: user.roles.map((role) => ({ ...role })), unusedRoles: [], permissions: ['directory:user:view'], permissionPolicies: [] };
  }
  return document;
}

export async function startFakeGenesys(options: FakeGenesysOptions = {}): Promise<FakeGenesys> {
  const clientId = options.clientId ?? randomUUID();
  const clientSecret = options.clientSecret ?? randomBytes(24).toString('base64url');
  let user = genesysUser(options.user);
  const failures: { failure: GenesysFailure; path?: string }[] = [];
  const codes = new Map<string, IssuedCode>();
  const tokens = new Map<string, FakeGenesysUser>();
  const requests: RecordedRequest[] = [];
  const codeChallenges: FakeGenesys['codeChallenges'] = [];
  let base = '';

  function takeFailure(kind: GenesysFailure, path: string): boolean {
    const index = failures.findIndex((item) => item.failure === kind && (!item.path || item.path === path));
    if (index === -1) return false;
    failures.splice(index, 1);
    return true;
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', base);
    const recorded: RecordedRequest = { method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, authorization: req.headers.authorization };
    requests.push(recorded);
    if (req.method === 'POST') recorded.form = new URLSearchParams(await readBody(req));
    if (takeFailure('unavailable', url.pathname)) {
      res.writeHead(503, { 'content-type': 'text/html' }).end('<html><body>Service Unavailable</body></html>');
      return;
    }

    if (req.method === 'GET' && url.pathname === '/oauth/authorize') {
      const query = url.searchParams;
      const redirectUri = query.get('redirect_uri');
      if (query.get('client_id') !== clientId || !redirectUri) {
        res.writeHead(400, { 'content-type': 'text/html' }).end('<html><body>Invalid client or redirect URI</body></html>');
        return;
      }
      codeChallenges.push({ challenge: query.get('code_challenge'), method: query.get('code_challenge_method') });
      const back = new URL(redirectUri);
      const state = query.get('state');
      if (query.get('response_type') !== 'code') {
        back.searchParams.set('error', 'unsupported_response_type');
      } else if (takeFailure('access_denied', url.pathname)) {
        back.searchParams.set('error', 'access_denied');
        back.searchParams.set('error_description', 'The user denied the request');
      } else {
        const code = randomBytes(24).toString('base64url');
        codes.set(code, { user, redirectUri, challenge: query.get('code_challenge') ?? '', method: query.get('code_challenge_method') ?? 'plain' });
        back.searchParams.set('code', code);
      }
      if (state !== null) back.searchParams.set('state', state);
      res.writeHead(302, { location: back.href }).end();
      return;
    }

    if (req.method === 'POST' && url.pathname === '/oauth/token') {
      const form = recorded.form!;
      const [scheme, encoded] = (req.headers.authorization ?? '').split(' ');
      const [id, secret] = scheme === 'Basic' && encoded ? Buffer.from(encoded, 'base64').toString().split(':').map((part) => decodeURIComponent(part.replace(/\+/g, ' '))) : [];
      if (id !== clientId || secret !== clientSecret) {
        json(res, 401, { error: 'invalid_client', description: 'client not found', error_description: 'client not found' });
        return;
      }
      if (form.get('grant_type') !== 'authorization_code') {
        json(res, 400, { error: 'unsupported_grant_type', description: 'grant type not supported', error_description: 'grant type not supported' });
        return;
      }
      const code = form.get('code') ?? '';
      const issued = codes.get(code);
      codes.delete(code);
      const verifier = form.get('code_verifier') ?? '';
      const challenge = issued?.method === 'S256' ? createHash('sha256').update(verifier).digest('base64url') : verifier;
      if (!issued || issued.redirectUri !== form.get('redirect_uri') || !issued.challenge || challenge !== issued.challenge) {
        json(res, 400, { error: 'invalid_grant', description: 'authorization code is invalid', error_description: 'authorization code is invalid' });
        return;
      }
      const accessToken = randomBytes(32).toString('base64url');
      tokens.set(accessToken, issued.user);
      json(res, 200, { access_token: accessToken, token_type: 'bearer', expires_in: 86399 });
      return;
    }

    if (req.method === 'GET' && url.pathname === '/api/v2/users/me') {
      const token = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
      const owner = token ? tokens.get(token) : undefined;
      if (!owner) {
        json(res, 401, { message: 'Invalid login credentials.', code: 'bad.credentials', status: 401, contextId: randomUUID(), details: [], errors: [] });
        return;
      }
      const expand = new Set((url.searchParams.get('expand') ?? '').split(',').filter(Boolean));
      json(res, 200, usersMe(base, owner, expand));
      return;
    }

    json(res, 404, { message: 'Resource not found', code: 'not.found', status: 404 });
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: base,
    authorizeUrl: `${base}/oauth/authorize`,
    tokenUrl: `${base}/oauth/token`,
    usersMeUrl: `${base}/api/v2/users/me`,
    clientId,
    clientSecret,
    setUser(overrides) {
      user = genesysUser(overrides);
      return user;
    },
    failNext(failure, path) {
      failures.push({ failure, path });
    },
    requests,
    codeChallenges,
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
