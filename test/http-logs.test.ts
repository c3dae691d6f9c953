/**
 * Request logs never carry a token that travelled in the URL: in a query
 * value, as a bare query word, as a query key, or as a path segment (plain,
 * percent-encoded, or after a `;`), on known and unknown routes, at trace
 * level. What is logged still says which route was asked for.
 */
import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logUrl } from '../src/app.js';
import { createTestApp, type TestApp } from './helpers/app.js';

let t: TestApp;

beforeAll(async () => {
  t = await createTestApp('httplogs', { env: { LOG_LEVEL: 'trace' } });
  await t.app.collection.collectAll();
});

afterAll(async () => {
  await t?.close();
});

describe('logUrl', () => {
  it.each([
    ['/metrics', '/metrics'],
    ['/api/ops/overview', '/api/ops/overview'],
    ['/metrics?token=abc&x&y=1', '/metrics?token=***&***&y=***'],
    ['/metrics?', '/metrics?'],
    ['/wp-admin/setup.php', '/wp-admin/setup.php'],
    ['/api/ops/overview/eyJhbGciOiJIUzI1NiJ9', '/api/ops/overview/***'],
    ['/t/ops_Zm9vYmFyYmF6cXV4MTIzNDU2', '/t/***'],
    ['/a/%65yJhbGciOi', '/a/***'],
    ['/api/ops/overview;jsessionid=abc', '/api/ops/***'],
    ['/x?abcdef0123456789abcdef=1', '/x?***=***'],
    [`/${'a/'.repeat(20)}`, `/${'a/'.repeat(10)}a/…`],
  ])('%s → %s', (url, logged) => {
    expect(logUrl(url)).toBe(logged);
  });
});

describe('request logs at trace level', () => {
  it('carry no token from any part of the URL', async () => {
    const jwt = await new SignJWT({ scope: 'ops:*' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode('x'.repeat(32)));
    const token = `ops_${randomBytes(24).toString('base64url')}`;
    const hex = randomBytes(16).toString('hex');
    const words = 'Correct-Horse-Battery';
    const secrets = [jwt, jwt.split('.')[1]!, jwt.split('.')[2]!, token, token.slice(4), hex, words];
    const urls = [
      `/api/ops/overview?access_token=${jwt}`,
      `/api/ops/overview?${token}`,
      `/metrics?${hex}=1`,
      `/metrics?token=${words}`,
      `/api/ops/overview/${jwt}`,
      `/metrics/${token}`,
      `/${hex}`,
      `/api/ops/overview;token=${token}`,
      `/api/ops/${encodeURIComponent(jwt).replace(/e/g, '%65')}`,
      `/%zz${token}`,
      `/metrics?${'a=1&'.repeat(30)}t=${token}`,
      `/readyz?${words}`,
    ];
    t.logs.clear();
    for (const url of urls) {
      for (const headers of [{}, { authorization: t.authorization }]) {
        const res = await t.app.inject({ method: 'GET', url, headers });
        expect(res.statusCode, url).toBeLessThan(500);
      }
    }
    const text = t.logs.text();
    for (const secret of secrets) expect(text, secret).not.toContain(secret);
    // The requests were logged, with their routes (/metrics and /readyz log at warn only; Fastify
    // answers a malformed URL without logging it).
    const logged = t.logs.lines().filter((l) => l.msg === 'incoming request').map((l) => (l as { req?: { url?: string } }).req?.url);
    expect(logged).toEqual(
      ['/api/ops/overview?access_token=***', '/api/ops/overview?***', '/api/ops/overview/***', '/metrics/***', '/***', '/api/ops/***', '/api/ops/***'].flatMap((u) => [u, u]),
    );
  });
});
