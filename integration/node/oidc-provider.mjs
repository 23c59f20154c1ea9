// A real OpenID provider for gitgate's end-to-end tests: the npm package `oidc-provider`,
// configured as an identity provider of agents and reviewers would be.
//
//   node oidc-provider.mjs <config.json>
//
// The config file (written by integration/src/oidc.rs) names the issuer URL and port, the
// gateway's audience, the agent clients, the reviewer client and the users. The admin token
// comes from the environment (GITGATE_OIDC_ADMIN_TOKEN), never from the file.
//
// What it issues:
// - agents: the client-credentials grant, a JWT access token for the gateway's resource
//   (RFC 8707 resource indicator, RFC 9068 JWT profile) that says whom the agent acts for in
//   the RFC 8693 shape: `sub` is the person, `act.sub` the agent (the client). It also carries
//   `groups`, a session id `sid` (one per agent registration: one agent run) and `jti`;
// - reviewers: the authorization code flow with PKCE. The login step asks for no password: it
//   signs in the `login_hint` of the authorization request, the `?login=<name>` of the
//   interaction page, or the name typed into its one-field form, and grants the reviewer
//   client's scopes without a consent page. The ID token has `name`, `groups` and `roles`.
//
// Test-only admin endpoints (Bearer admin token):
//   POST /admin/agents              {client_id, acting_for?, groups?, session?} -> {client_id, client_secret}
//   POST /admin/rotate              a new signing key goes first; the old ones stay published
//   POST /admin/retire              only the newest key stays published
//   POST /admin/unpublished-token   {client_id} -> {token} signed with a key never published
//
// Keys live in memory only. Rotation builds a new Provider around the new key set and swaps it
// in behind the same HTTP server, so the issuer URL and the port stay the same.

import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';
import { SignJWT, importJWK } from 'jose';

const configPath = process.argv[2];
if (!configPath) {
  console.error('usage: node oidc-provider.mjs <config.json>');
  process.exit(2);
}
const config = JSON.parse(readFileSync(configPath, 'utf8'));
const adminToken = process.env.GITGATE_OIDC_ADMIN_TOKEN;
if (!adminToken) {
  console.error('gitgate-oidc: GITGATE_OIDC_ADMIN_TOKEN is not set');
  process.exit(2);
}

// The gateway as a resource server: what agents' tokens are for.
const RESOURCE = config.resource;
const AUDIENCE = config.audience;
const AGENT_SCOPE = 'git';
const TOKEN_TTL = config.token_ttl_seconds ?? 600;

/** One RS256 signing key as a private JWK with its kid. */
function newSigningKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };
}

/** Agents by client id: whom each acts for, its groups and its session. */
const agents = new Map();
/** Published signing keys, newest first (the provider signs with the first). */
let keys = [newSigningKey()];

function agentMetadata(clientId, clientSecret) {
  return {
    client_id: clientId,
    client_secret: clientSecret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_post',
    scope: AGENT_SCOPE,
  };
}

const reviewer = config.reviewer;
const users = config.users ?? {};

function buildProvider() {
  const provider = new Provider(config.issuer, {
    clients: [
      {
        client_id: reviewer.client_id,
        client_secret: reviewer.client_secret,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        redirect_uris: reviewer.redirect_uris,
        post_logout_redirect_uris: reviewer.post_logout_redirect_uris ?? [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys },
    cookies: { keys: [config.cookie_key] },
    claims: { openid: ['sub'], profile: ['name'], groups: ['groups', 'roles'] },
    scopes: ['openid', 'profile', 'groups', AGENT_SCOPE],
    // The reviewer pages read the name and groups from the ID token itself.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      resourceIndicators: {
        enabled: true,
        // Agents need not name the resource: the gateway is the only one.
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resourceIndicator) => {
          if (resourceIndicator !== RESOURCE) {
            throw new Error(`unknown resource ${resourceIndicator}`);
          }
          return {
            scope: AGENT_SCOPE,
            audience: AUDIENCE,
            accessTokenFormat: 'jwt',
            accessTokenTTL: TOKEN_TTL,
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    formats: {
      customizers: {
        // RFC 8693 section 4.1: the token's subject is the person; `act` names the actor.
        jwt: async (ctx, token, jwt) => {
          if (token.kind !== 'ClientCredentials') return;
          const agent = agents.get(token.clientId);
          if (!agent) return;
          if (agent.acting_for) {
            jwt.payload.sub = agent.acting_for;
            jwt.payload.act = { sub: token.clientId };
          }
          if (agent.groups.length > 0) jwt.payload.groups = agent.groups;
          jwt.payload.sid = agent.session;
        },
      },
    },
    ttl: {
      ClientCredentials: TOKEN_TTL,
      AccessToken: TOKEN_TTL,
      AuthorizationCode: 60,
      IdToken: TOKEN_TTL,
      Grant: 3600,
      Session: 3600,
      Interaction: 600,
    },
    findAccount: async (ctx, sub) => ({
      accountId: sub,
      claims: async () => ({
        sub, name: sub, groups: users[sub]?.groups ?? [], roles: users[sub]?.roles ?? [],
      }),
    }),
    // First-party reviewer client: every scope it asks for is granted without a consent page.
    loadExistingGrant: async (ctx) => {
      const { client, session } = ctx.oidc;
      if (!client || !session?.accountId) return undefined;
      const grant = new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
      grant.addOIDCScope('openid profile groups');
      grant.addOIDCClaims(['sub', 'name', 'groups', 'roles']);
      await grant.save();
      return grant;
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    renderError: async (ctx, out) => {
      ctx.type = 'text/plain; charset=utf-8';
      ctx.body = `gitgate-oidc: ${out.error}: ${out.error_description ?? ''}\n`;
    },
  });
  provider.proxy = false;
  return provider;
}

let provider = buildProvider();
let handler = provider.callback();

// Agents configured at start.
for (const agent of config.agents ?? []) {
  await registerAgent(agent);
}

async function registerAgent({
  client_id: clientId, client_secret: given, acting_for: actingFor, groups, session,
}) {
  if (typeof clientId !== 'string' || clientId === '') throw new Error('client_id is required');
  const secret = given ?? randomBytes(24).toString('hex');
  agents.set(clientId, {
    secret,
    acting_for: actingFor ?? null,
    groups: Array.isArray(groups) ? groups : [],
    session: session ?? `session-${randomUUID()}`,
  });
  await provider.Client.adapter.upsert(clientId, agentMetadata(clientId, secret));
  return { client_id: clientId, client_secret: secret };
}

/** A new Provider around the current key set, with every agent registered again. */
async function rebuild() {
  const next = buildProvider();
  for (const [clientId, agent] of agents) {
    await next.Client.adapter.upsert(clientId, agentMetadata(clientId, agent.secret));
  }
  provider = next;
  handler = next.callback();
  return { kid: keys[0].kid, published: keys.map((k) => k.kid) };
}

function rotate() {
  keys = [newSigningKey(), ...keys];
  return rebuild();
}

function retire() {
  keys = keys.slice(0, 1);
  return rebuild();
}

/** A token shaped like an agent's real one, signed with a key the provider never published. */
async function unpublishedToken(clientId) {
  const agent = agents.get(clientId);
  if (!agent) throw new Error(`unknown agent ${clientId}`);
  const stray = newSigningKey();
  const key = await importJWK(stray, 'RS256');
  const now = Math.floor(Date.now() / 1000);
  const claims = agent.acting_for
    ? { act: { sub: clientId }, sid: agent.session }
    : { sid: agent.session };
  const token = await new SignJWT({ ...claims, client_id: clientId, scope: AGENT_SCOPE })
    .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: stray.kid })
    .setIssuer(config.issuer)
    .setAudience(AUDIENCE)
    .setSubject(agent.acting_for ?? clientId)
    .setJti(randomUUID())
    .setIssuedAt(now)
    .setExpirationTime(now + TOKEN_TTL)
    .sign(key);
  return { token };
}

function readJson(req) {
  return new Promise((resolve, reject) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      text += chunk;
      if (text.length > 64 * 1024) reject(new Error('body too large'));
    });
    req.on('end', () => {
      try {
        resolve(text ? JSON.parse(text) : {});
      } catch (err) {
        reject(err);
      }
    });
    req.on('error', reject);
  });
}

function send(res, status, body, type = 'application/json') {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(type === 'application/json' ? JSON.stringify(body) : body);
}

async function admin(req, res, path) {
  if (req.method !== 'POST' || req.headers.authorization !== `Bearer ${adminToken}`) {
    return send(res, 403, { error: 'forbidden' });
  }
  const body = await readJson(req);
  switch (path) {
    case '/admin/agents':
      return send(res, 200, await registerAgent(body));
    case '/admin/rotate':
      return send(res, 200, await rotate());
    case '/admin/retire':
      return send(res, 200, await retire());
    case '/admin/unpublished-token':
      return send(res, 200, await unpublishedToken(body.client_id));
    default:
      return send(res, 404, { error: 'not found' });
  }
}

const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The login step: no password, the named user is signed in. */
async function interaction(req, res, path) {
  const details = await provider.interactionDetails(req, res);
  const url = new URL(req.url, config.issuer);
  let login = details.params.login_hint;
  if (req.method === 'POST' && path.endsWith('/login')) {
    const form = new URLSearchParams(await new Promise((resolve, reject) => {
      let text = '';
      req.setEncoding('utf8');
      req.on('data', (chunk) => { text += chunk; });
      req.on('end', () => resolve(text));
      req.on('error', reject);
    }));
    login = form.get('login');
  } else if (url.searchParams.get('login')) {
    login = url.searchParams.get('login');
  }
  if (details.prompt.name === 'login' && !login) {
    const html = `<!doctype html><title>gitgate test sign-in</title>
<form method="post" action="/interaction/${escapeHtml(details.uid)}/login">
<label>User name <input name="login" autofocus></label> <button type="submit">Sign in</button>
</form>`;
    return send(res, 200, html, 'text/html; charset=utf-8');
  }
  const accountId = login ?? details.session?.accountId;
  await provider.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: true });
  return undefined;
}

const server = createServer(async (req, res) => {
  const path = new URL(req.url, config.issuer).pathname;
  try {
    if (path.startsWith('/admin/')) return await admin(req, res, path);
    if (path.startsWith('/interaction/')) return await interaction(req, res, path);
    return handler(req, res);
  } catch (err) {
    console.error(`gitgate-oidc: ${req.method} ${path}: ${err.message}`);
    if (!res.headersSent) send(res, 400, { error: 'bad_request', error_description: err.message });
    return undefined;
  }
});

server.listen(config.port, '127.0.0.1', () => {
  console.log(`gitgate-oidc: listening on ${config.issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
