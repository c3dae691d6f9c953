/**
 * The auth matrix of the overview API and of /metrics, every cell against a
 * real app: JWTs (HS256 secret, RS256 and ES256 public keys; scopes in
 * `scope` or `permissions`; `exp` enforced), static tokens stored as SHA-256,
 * no credentials configured (refused), and the loud opt-out.
 */
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { SignJWT, base64url } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from '../src/app.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { errorBody } from '../src/errors.js';
import { createTestApp, makeToken, type TestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { createTestRedis, type TestRedis } from './helpers/redis.js';

const SECRET = 'an-hs256-secret-of-at-least-32-characters!';
const OVERVIEW = '/api/ops/overview';
const NOW_S = () => Math.floor(Date.now() / 1000);

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const otherRsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const pem = (k: KeyObject) => k.export({ type: 'spki', format: 'pem' }).toString();

type Claims = Record<string, unknown>;

async function jwt(claims: Claims, key: KeyObject | Uint8Array, alg: string, opts: { exp?: number | null; header?: Record<string, unknown> } = {}): Promise<string> {
  const signer = new SignJWT(claims).setProtectedHeader({ alg, ...opts.header }).setIssuedAt().setSubject('tester');
  if (opts.exp !== null) signer.setExpirationTime(opts.exp ?? NOW_S() + 300);
  return signer.sign(key);
}

const hs = (claims: Claims, opts?: { exp?: number | null }) => jwt(claims, new TextEncoder().encode(SECRET), 'HS256', opts);

/** An unsigned token ("alg": "none"). */
function unsigned(claims: Claims): string {
  const enc = (o: unknown) => base64url.encode(JSON.stringify(o));
  return `${enc({ alg: 'none', typ: 'JWT' })}.${enc({ ...claims, exp: NOW_S() + 300 })}.`;
}

let db: TestDatabase;
let redis: TestRedis;
const apps: TestApp[] = [];

async function appWith(env: Record<string, string | undefined>): Promise<TestApp> {
  const t = await createTestApp('auth', { db, redis, env });
  await t.app.collection.collectAll();
  apps.push(t);
  return t;
}

async function get(t: TestApp, authorization?: string, url = OVERVIEW) {
  return t.app.inject({ method: 'GET', url, headers: authorization === undefined ? {} : { authorization } });
}

beforeAll(async () => {
  db = await createTestDatabase('auth');
  db.admin.on('error', () => undefined);
  redis = await createTestRedis('auth');
});

afterAll(async () => {
  for (const t of apps) await t.app.close();
  await db?.drop();
  await redis?.cleanup();
});

const UNAUTHORIZED = errorBody('OPS_UNAUTHORIZED');
const FORBIDDEN = errorBody('OPS_FORBIDDEN');

describe('static tokens and HS256 JWTs', () => {
  const wildcard = makeToken('admin', ['ops:*']);
  const reader = makeToken('reader', ['other:thing', 'ops:overview:read']);
  const noScope = makeToken('billing', ['billing:read']);
  const empty = makeToken('empty', []);
  let t: TestApp;

  beforeAll(async () => {
    t = await appWith({
      OPS_API_TOKENS: JSON.stringify([wildcard.entry, reader.entry, noScope.entry, empty.entry]),
      OPS_JWT_SECRET: SECRET,
    });
  });

  const cases: Array<[string, () => Promise<string | undefined> | string | undefined, 200 | 401 | 403]> = [
    ['no Authorization header', () => undefined, 401],
    ['an empty header', () => '', 401],
    ['"Bearer" without a credential', () => 'Bearer', 401],
    ['"Bearer " and spaces', () => 'Bearer    ', 401],
    ['two credentials', () => `Bearer ${reader.token} ${reader.token}`, 401],
    ['Basic auth', () => `Basic ${Buffer.from('admin:admin').toString('base64')}`, 401],
    ['another scheme', () => `Token ${reader.token}`, 401],
    ['8 KiB of garbage', () => `Bearer ${'x'.repeat(8192)}`, 401],
    ['static token with ops:overview:read', () => `Bearer ${reader.token}`, 200],
    ['static token with ops:*', () => `Bearer ${wildcard.token}`, 200],
    ['the scheme in lower case', () => `bearer ${reader.token}`, 200],
    ['static token without the scope', () => `Bearer ${noScope.token}`, 403],
    ['static token with no scopes', () => `Bearer ${empty.token}`, 403],
    ['unknown static token', () => `Bearer ${makeToken('x', []).token}`, 401],
    ['static token with a character changed', () => `Bearer ${reader.token.slice(0, -1)}${reader.token.endsWith('A') ? 'B' : 'A'}`, 401],
    ['the SHA-256 of a token instead of the token', () => `Bearer ${reader.entry.sha256}`, 401],
    ['JWT, scope "ops:overview:read"', () => hs({ scope: 'ops:overview:read' }).then((j) => `Bearer ${j}`), 200],
    ['JWT, scope "openid ops:*"', () => hs({ scope: 'openid ops:*' }).then((j) => `Bearer ${j}`), 200],
    ['JWT, permissions ["ops:overview:read"]', () => hs({ permissions: ['ops:overview:read'] }).then((j) => `Bearer ${j}`), 200],
    ['JWT, permissions ["x", "ops:*"]', () => hs({ permissions: ['x', 'ops:*'] }).then((j) => `Bearer ${j}`), 200],
    ['JWT, scope "ops:overview:write"', () => hs({ scope: 'ops:overview:write' }).then((j) => `Bearer ${j}`), 403],
    ['JWT, scope "ops:overview:readonly" (no prefix match)', () => hs({ scope: 'ops:overview:readonly' }).then((j) => `Bearer ${j}`), 403],
    ['JWT, scope "ops" (no wildcard of its own)', () => hs({ scope: 'ops ops:overview' }).then((j) => `Bearer ${j}`), 403],
    ['JWT without any scope', () => hs({}).then((j) => `Bearer ${j}`), 403],
    ['JWT, scope as an array (not the format)', () => hs({ scope: ['ops:*'] }).then((j) => `Bearer ${j}`), 403],
    ['JWT, permissions as a string (not the format)', () => hs({ permissions: 'ops:*' }).then((j) => `Bearer ${j}`), 403],
    ['expired JWT', () => hs({ scope: 'ops:*' }, { exp: NOW_S() - 60 }).then((j) => `Bearer ${j}`), 401],
    ['JWT without exp', () => hs({ scope: 'ops:*' }, { exp: null }).then((j) => `Bearer ${j}`), 401],
    ['JWT not valid before a future nbf', () => new SignJWT({ scope: 'ops:*' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(NOW_S() + 600).setNotBefore(NOW_S() + 300).sign(new TextEncoder().encode(SECRET)).then((j) => `Bearer ${j}`), 401],
    ['JWT signed with another secret', () => jwt({ scope: 'ops:*' }, new TextEncoder().encode(`${SECRET}-other`), 'HS256').then((j) => `Bearer ${j}`), 401],
    ['JWT with alg "none"', () => `Bearer ${unsigned({ scope: 'ops:*' })}`, 401],
    ['JWT with its payload swapped (signature of another)', async () => {
      const [h, , s] = (await hs({ scope: 'billing:read' })).split('.');
      return `Bearer ${h}.${base64url.encode(JSON.stringify({ scope: 'ops:*', exp: NOW_S() + 300 }))}.${s}`;
    }, 401],
    ['JWT signed HS512 with the right secret (algorithm not allowed)', () => jwt({ scope: 'ops:*' }, new TextEncoder().encode(SECRET), 'HS512').then((j) => `Bearer ${j}`), 401],
    ['RS256 JWT when only a secret is configured', () => jwt({ scope: 'ops:*' }, rsa.privateKey, 'RS256').then((j) => `Bearer ${j}`), 401],
  ];

  it.each(cases)('%s → %i', async (_name, header, status) => {
    const res = await get(t, await header());
    expect(res.statusCode).toBe(status);
    if (status === 200) {
      expect(res.json()).toHaveProperty('coreNodes');
      return;
    }
    // One body per status whatever went wrong: nothing says which check failed.
    expect(res.json()).toEqual(status === 401 ? UNAUTHORIZED : FORBIDDEN);
    if (status === 401) expect(res.headers['www-authenticate']).toBe('Bearer realm="ops-overview"');
  });

  it('answers the alias route with the same rules', async () => {
    expect((await get(t, undefined, '/api/ops/platform-overview')).statusCode).toBe(401);
    expect((await get(t, `Bearer ${noScope.token}`, '/api/ops/platform-overview')).statusCode).toBe(403);
    expect((await get(t, `Bearer ${reader.token}`, '/api/ops/platform-overview')).statusCode).toBe(200);
  });

  it('leaves /metrics, /healthz and /readyz open (off by default)', async () => {
    for (const url of ['/metrics', '/healthz', '/readyz']) expect((await get(t, undefined, url)).statusCode).toBe(200);
  });
});

describe('public-key JWTs', () => {
  it('RS256: accepts the configured key, refuses another key and the HS256 algorithm-confusion trick', async () => {
    const t = await appWith({ OPS_API_TOKENS: undefined, OPS_JWT_PUBLIC_KEY: pem(rsa.publicKey) });
    expect((await get(t, `Bearer ${await jwt({ scope: 'ops:overview:read' }, rsa.privateKey, 'RS256')}`)).statusCode).toBe(200);
    expect((await get(t, `Bearer ${await jwt({ permissions: ['ops:*'] }, rsa.privateKey, 'RS256')}`)).statusCode).toBe(200);
    expect((await get(t, `Bearer ${await jwt({ scope: 'nope' }, rsa.privateKey, 'RS256')}`)).statusCode).toBe(403);
    expect((await get(t, `Bearer ${await jwt({ scope: 'ops:*' }, otherRsa.privateKey, 'RS256')}`)).statusCode).toBe(401);
    expect((await get(t, `Bearer ${await jwt({ scope: 'ops:*' }, rsa.privateKey, 'RS256', { exp: NOW_S() - 10 })}`)).statusCode).toBe(401);
    expect((await get(t, `Bearer ${await jwt({ scope: 'ops:*' }, rsa.privateKey, 'PS256')}`)).statusCode).toBe(401);
    // The public key's PEM used as an HMAC secret: refused, RS256 only.
    const confused = await jwt({ scope: 'ops:*' }, new TextEncoder().encode(pem(rsa.publicKey)), 'HS256');
    expect((await get(t, `Bearer ${confused}`)).statusCode).toBe(401);
  });

  it('ES256: accepts the configured P-256 key only', async () => {
    const t = await appWith({ OPS_API_TOKENS: undefined, OPS_JWT_PUBLIC_KEY: pem(ec.publicKey) });
    expect((await get(t, `Bearer ${await jwt({ scope: 'ops:*' }, ec.privateKey, 'ES256')}`)).statusCode).toBe(200);
    expect((await get(t, `Bearer ${await jwt({ scope: 'x' }, ec.privateKey, 'ES256')}`)).statusCode).toBe(403);
    const otherEc = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect((await get(t, `Bearer ${await jwt({ scope: 'ops:*' }, otherEc.privateKey, 'ES256')}`)).statusCode).toBe(401);
    expect((await get(t, `Bearer ${await jwt({ scope: 'ops:*' }, rsa.privateKey, 'RS256')}`)).statusCode).toBe(401);
  });

  it('checks the issuer and audience when they are configured', async () => {
    const t = await appWith({ OPS_API_TOKENS: undefined, OPS_JWT_SECRET: SECRET, OPS_JWT_ISSUER: 'https://idp.example', OPS_JWT_AUDIENCE: 'ops-overview' });
    const sign = (iss: string, aud: string) =>
      new SignJWT({ scope: 'ops:*' }).setProtectedHeader({ alg: 'HS256' }).setIssuer(iss).setAudience(aud).setExpirationTime(NOW_S() + 60).sign(new TextEncoder().encode(SECRET));
    expect((await get(t, `Bearer ${await sign('https://idp.example', 'ops-overview')}`)).statusCode).toBe(200);
    expect((await get(t, `Bearer ${await sign('https://evil.example', 'ops-overview')}`)).statusCode).toBe(401);
    expect((await get(t, `Bearer ${await sign('https://idp.example', 'grafana')}`)).statusCode).toBe(401);
    expect((await get(t, `Bearer ${await hs({ scope: 'ops:*' })}`)).statusCode).toBe(401);
  });

  it.each([
    ['an RSA key under 2048 bits', pem(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey), /at least 2048 bits/],
    ['an EC key on P-384', pem(generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey), /P-256/],
    ['an Ed25519 key', pem(generateKeyPairSync('ed25519').publicKey), /RSA \(RS256\) or EC P-256/],
    ['a PEM with a corrupt body', '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n', /not a readable PEM/],
  ])('refuses to start with %s, naming OPS_JWT_PUBLIC_KEY', async (_name, key, problem) => {
    const config = loadConfig({ DATABASE_URL: db.readerUrl, OPS_JWT_PUBLIC_KEY: key, LOG_LEVEL: 'silent' });
    const error = await build({ config, startCollection: false }).then(
      () => null,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe('OPS_JWT_PUBLIC_KEY');
    expect((error as ConfigError).message).toMatch(problem);
  });
});

describe('with no credentials configured', () => {
  it('refuses every API request (503, never open by default) and says so in the log', async () => {
    const t = await appWith({ OPS_API_TOKENS: undefined });
    for (const header of [undefined, 'Bearer anything', `Bearer ${await hs({ scope: 'ops:*' })}`]) {
      const res = await get(t, header);
      expect(res.statusCode).toBe(503);
      expect(res.json()).toEqual(errorBody('OPS_AUTH_NOT_CONFIGURED'));
    }
    expect(t.logs.lines().some((l) => l.level === 40 && /refuses every request/.test(String(l.msg)))).toBe(true);
  });

  it('answers without credentials only with OPS_API_AUTH_DISABLED=true, and warns loudly', async () => {
    const t = await appWith({ OPS_API_TOKENS: undefined, OPS_API_AUTH_DISABLED: 'true' });
    expect((await get(t)).statusCode).toBe(200);
    expect((await get(t, 'Bearer whatever')).statusCode).toBe(200);
    const warning = t.logs.lines().find((l) => /OPS_API_AUTH_DISABLED=true/.test(String(l.msg)));
    expect(warning?.level).toBe(40);
    expect(String(warning?.msg)).toMatch(/WITHOUT authentication/);
  });
});

describe('/metrics protection (off by default)', () => {
  const scrapeToken = makeToken('prometheus', []);
  const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');

  it('bearer token: 401 without or with a wrong token, 200 with it; the API token does not open /metrics', async () => {
    const t = await appWith({ OPS_METRICS_BEARER_SHA256: scrapeToken.entry.sha256 });
    expect((await get(t, undefined, '/metrics')).statusCode).toBe(401);
    const wrong = await get(t, 'Bearer wrong-token', '/metrics');
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json()).toEqual(UNAUTHORIZED);
    expect(wrong.headers['www-authenticate']).toBe('Bearer realm="ops-overview"');
    expect((await get(t, t.authorization, '/metrics')).statusCode).toBe(401);
    const ok = await get(t, `Bearer ${scrapeToken.token}`, '/metrics');
    expect(ok.statusCode).toBe(200);
    expect(ok.body).toContain('ops_source_up');
    // Health endpoints stay open for probes.
    expect((await get(t, undefined, '/healthz')).statusCode).toBe(200);
  });

  it('basic auth: right user and password only', async () => {
    const t = await appWith({ OPS_METRICS_BASIC_USER: 'prometheus', OPS_METRICS_BASIC_PASSWORD_SHA256: sha('s3cret:with:colons') });
    expect((await get(t, basic('prometheus', 's3cret:with:colons'), '/metrics')).statusCode).toBe(200);
    expect((await get(t, basic('prometheus', 's3cret'), '/metrics')).statusCode).toBe(401);
    expect((await get(t, basic('grafana', 's3cret:with:colons'), '/metrics')).statusCode).toBe(401);
    expect((await get(t, `Basic ${Buffer.from('no-colon').toString('base64')}`, '/metrics')).statusCode).toBe(401);
    expect((await get(t, 'Basic !!!not-base64', '/metrics')).statusCode).toBe(401);
    const res = await get(t, undefined, '/metrics');
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Basic realm="ops-overview"');
  });

  it('both configured: either credential opens it', async () => {
    const t = await appWith({
      OPS_METRICS_BEARER_SHA256: scrapeToken.entry.sha256,
      OPS_METRICS_BASIC_USER: 'prometheus',
      OPS_METRICS_BASIC_PASSWORD_SHA256: sha('pw'),
    });
    expect((await get(t, `Bearer ${scrapeToken.token}`, '/metrics')).statusCode).toBe(200);
    expect((await get(t, basic('prometheus', 'pw'), '/metrics')).statusCode).toBe(200);
    expect((await get(t, basic('prometheus', 'nope'), '/metrics')).statusCode).toBe(401);
  });
});
