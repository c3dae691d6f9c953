/**
 * The API's rate limits: the budget of authenticated use belongs to the
 * credential (token name or JWT subject), so anonymous floods and other
 * clients behind the same address never spend it; failed authentications
 * (401 and 403) are limited per client address apart; behind a reverse proxy
 * named in OPS_TRUST_PROXY, the client address comes from X-Forwarded-For.
 */
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { errorBody } from '../src/errors.js';
import { createTestApp, makeToken, type TestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { createTestRedis, type TestRedis } from './helpers/redis.js';

const OVERVIEW = '/api/ops/overview';
const JWT_SECRET = 'rate-limit-test-secret-0123456789abcdef';

let db: TestDatabase;
let redis: TestRedis;
const apps: TestApp[] = [];

const reader = makeToken('reader', ['ops:overview:read']);
const other = makeToken('other-reader', ['ops:*']);
const noScope = makeToken('billing', ['billing:read']);

async function appWith(env: Record<string, string | undefined>): Promise<TestApp> {
  const t = await createTestApp('ratelimit', {
    db,
    redis,
    env: { OPS_API_TOKENS: JSON.stringify([reader.entry, other.entry, noScope.entry]), OPS_JWT_SECRET: JWT_SECRET, ...env },
  });
  await t.app.collection.collectAll();
  apps.push(t);
  return t;
}

function get(t: TestApp, remoteAddress: string, headers: Record<string, string> = {}, url = OVERVIEW) {
  return t.app.inject({ method: 'GET', url, remoteAddress, headers });
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const jwtFor = (sub: string) =>
  new SignJWT({ scope: 'ops:*' }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime('5m').sign(new TextEncoder().encode(JWT_SECRET));

beforeAll(async () => {
  db = await createTestDatabase('ratelimit');
  db.admin.on('error', () => undefined);
  redis = await createTestRedis('ratelimit');
});

afterAll(async () => {
  for (const t of apps) await t.app.close();
  await db?.drop();
  await redis?.cleanup();
});

describe('with the defaults (120 a minute per credential, 30 failed authentications a minute per address)', () => {
  it('150 anonymous requests from the real client address: 30 × 401, then 429; the real client still gets 200 with its whole budget', async () => {
    const t = await appWith({});
    const statuses: number[] = [];
    for (let i = 0; i < 150; i++) statuses.push((await get(t, '10.1.0.1')).statusCode);
    expect(statuses.filter((s) => s === 401)).toHaveLength(30);
    expect(statuses.slice(30).every((s) => s === 429)).toBe(true);
    const limited = await get(t, '10.1.0.1', bearer('wrong'));
    expect(limited.statusCode).toBe(429);
    expect(limited.json()).toEqual(errorBody('OPS_RATE_LIMITED'));
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);

    const real = await get(t, '10.1.0.1', bearer(reader.token));
    expect(real.statusCode).toBe(200);
    expect(real.headers['x-ratelimit-limit']).toBe('120');
    expect(real.headers['x-ratelimit-remaining']).toBe('119');
    // Another address's failures have their own count.
    expect((await get(t, '10.1.0.2')).statusCode).toBe(401);
  });
});

describe('with small limits', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await appWith({ OPS_API_RATE_LIMIT_PER_MINUTE: '3', OPS_API_AUTH_FAILURES_PER_MINUTE: '2' });
  });

  it('the budget is per credential, from any address', async () => {
    for (let i = 0; i < 3; i++) expect((await get(t, '10.2.0.1', bearer(reader.token))).statusCode).toBe(200);
    expect((await get(t, '10.2.0.1', bearer(reader.token))).statusCode).toBe(429);
    expect((await get(t, '10.2.0.9', bearer(reader.token))).statusCode).toBe(429);
    // Another token from the same address has its own budget.
    const otherRes = await get(t, '10.2.0.1', bearer(other.token));
    expect(otherRes.statusCode).toBe(200);
    expect(otherRes.headers['x-ratelimit-remaining']).toBe('2');
  });

  it('JWTs are counted per subject', async () => {
    const alice = await jwtFor('alice');
    const bob = await jwtFor('bob');
    for (let i = 0; i < 3; i++) expect((await get(t, '10.3.0.1', bearer(alice))).statusCode).toBe(200);
    expect((await get(t, '10.3.0.1', bearer(alice))).statusCode).toBe(429);
    expect((await get(t, '10.3.0.1', bearer(await jwtFor('alice')))).statusCode).toBe(429);
    expect((await get(t, '10.3.0.1', bearer(bob))).statusCode).toBe(200);
  });

  it('401 and 403 are failed attempts of the address: limited together, without touching any credential budget', async () => {
    expect((await get(t, '10.4.0.1', bearer('guess'))).statusCode).toBe(401);
    expect((await get(t, '10.4.0.1', bearer(noScope.token))).statusCode).toBe(403);
    const third = await get(t, '10.4.0.1', bearer(noScope.token));
    expect(third.statusCode).toBe(429);
    expect(third.json()).toEqual(errorBody('OPS_RATE_LIMITED'));
    expect(third.headers['www-authenticate']).toBeUndefined();
    expect((await get(t, '10.4.0.1')).statusCode).toBe(429);
    // A valid credential from that address is served, and spends only its own budget.
    const jwt = await jwtFor('carol');
    const ok = await get(t, '10.4.0.1', bearer(jwt));
    expect(ok.statusCode).toBe(200);
    expect(ok.headers['x-ratelimit-remaining']).toBe('2');
  });

  it('/metrics is not limited when open', async () => {
    for (let i = 0; i < 10; i++) expect((await get(t, '10.5.0.1', {}, '/metrics')).statusCode).toBe(200);
  });

  it('by default X-Forwarded-For is ignored: the address is the connection peer', async () => {
    for (const xff of ['203.0.113.1', '203.0.113.2']) expect((await get(t, '10.6.0.1', { 'x-forwarded-for': xff })).statusCode).toBe(401);
    expect((await get(t, '10.6.0.1', { 'x-forwarded-for': '203.0.113.3' })).statusCode).toBe(429);
  });
});

describe('failed attempts on a protected /metrics', () => {
  it('count per address too: 401, then 429; the right token still scrapes', async () => {
    const scrape = makeToken('prometheus', []);
    const t = await appWith({ OPS_METRICS_BEARER_SHA256: scrape.entry.sha256, OPS_API_AUTH_FAILURES_PER_MINUTE: '2' });
    expect((await get(t, '10.7.0.1', {}, '/metrics')).statusCode).toBe(401);
    expect((await get(t, '10.7.0.1', bearer('guess'), '/metrics')).statusCode).toBe(401);
    expect((await get(t, '10.7.0.1', bearer('guess'), '/metrics')).statusCode).toBe(429);
    expect((await get(t, '10.7.0.1', bearer(scrape.token), '/metrics')).statusCode).toBe(200);
  });
});

describe('behind a reverse proxy (OPS_TRUST_PROXY)', () => {
  const PROXY = '10.8.0.1';
  let t: TestApp;

  beforeAll(async () => {
    t = await appWith({ OPS_TRUST_PROXY: `${PROXY}, 192.168.0.0/16`, OPS_API_AUTH_FAILURES_PER_MINUTE: '2' });
  });

  it('each client behind the proxy has its own failure count', async () => {
    const via = (client: string, headers: Record<string, string> = {}) => get(t, PROXY, { 'x-forwarded-for': client, ...headers });
    expect((await via('198.51.100.1')).statusCode).toBe(401);
    expect((await via('198.51.100.1')).statusCode).toBe(401);
    expect((await via('198.51.100.1')).statusCode).toBe(429);
    expect((await via('198.51.100.2')).statusCode).toBe(401);
    expect((await via('198.51.100.1', bearer(reader.token))).statusCode).toBe(200);
  });

  it('a chain of trusted proxies yields the first untrusted address; an untrusted peer cannot choose its address', async () => {
    expect((await get(t, PROXY, { 'x-forwarded-for': '198.51.100.3, 192.168.4.4' })).statusCode).toBe(401);
    expect((await get(t, PROXY, { 'x-forwarded-for': '198.51.100.3' })).statusCode).toBe(401);
    expect((await get(t, PROXY, { 'x-forwarded-for': '198.51.100.3' })).statusCode).toBe(429);
    // Not a trusted proxy: its X-Forwarded-For is ignored, whatever it says.
    for (const forged of ['198.51.100.10', '198.51.100.11']) expect((await get(t, '10.9.0.1', { 'x-forwarded-for': forged })).statusCode).toBe(401);
    expect((await get(t, '10.9.0.1', { 'x-forwarded-for': '198.51.100.12' })).statusCode).toBe(429);
  });

  it('logs the client address, not the proxy', async () => {
    t.logs.clear();
    await get(t, PROXY, { 'x-forwarded-for': '198.51.100.77' });
    const incoming = t.logs.lines().find((l) => l.msg === 'incoming request') as { req?: { remoteAddress?: string } } | undefined;
    expect(incoming?.req?.remoteAddress).toBe('198.51.100.77');
  });
});

describe('OPS_TRUST_PROXY values', () => {
  const base = { DATABASE_URL: 'postgresql://u@h/db' };
  it.each([
    [undefined, false],
    ['false', false],
    ['true', true],
    ['1', 1],
    ['2', 2],
    ['10.0.0.1', ['10.0.0.1']],
    [' 10.0.0.0/8 , ::1, fd00::/8 ', ['10.0.0.0/8', '::1', 'fd00::/8']],
  ] as const)('%j → %j', (value, expected) => {
    expect(loadConfig({ ...base, OPS_TRUST_PROXY: value }).trustProxy).toEqual(expected);
  });
});
