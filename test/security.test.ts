/**
 * Security: the read-only database role (what it may and may not do, and the
 * exporter's warning when it runs as anything more), redaction of
 * secret-looking text, logs that never carry a password, token or JWT (even
 * at trace level and when connections fail), security headers, rate
 * limiting, error bodies without stacks or SQL, and TLS.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SignJWT } from 'jose';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from '../src/app.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { errorBody } from '../src/errors.js';
import { redactQuery, redactText, redactUrl, type RedactStats } from '../src/redact.js';
import { captureLogs, createTestApp, makeToken, waitFor, type TestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { clusterDatabase, READER_PASSWORD, startPgCluster, type PgCluster } from './helpers/pg-cluster.js';
import { freePort } from './helpers/ports.js';
import { createTestRedis, type TestRedis } from './helpers/redis.js';

const CONTRACT_TABLES = ['CoreNode', 'ProvisioningJob', 'ShieldEvent', 'ShieldPolicy', 'GuardianFinding', 'Backup'];

let db: TestDatabase;
let redis: TestRedis;

beforeAll(async () => {
  db = await createTestDatabase('security');
  db.admin.on('error', () => undefined);
  redis = await createTestRedis('security');
});

afterAll(async () => {
  await db?.drop();
  await redis?.cleanup();
});

describe('the read-only role (sql/readonly-role.sql)', () => {
  let reader: pg.Client;

  beforeAll(async () => {
    await db.admin.query(`CREATE TABLE "Unrelated" (secret text); INSERT INTO "Unrelated" VALUES ('top secret');`);
    reader = new pg.Client({ connectionString: db.readerUrl });
    await reader.connect();
  });

  afterAll(async () => {
    await reader?.end();
  });

  const code = (err: unknown) => (err as { code?: string }).code;
  const attempt = (sql: string) =>
    reader.query(sql).then(
      () => 'ok',
      (err: unknown) => code(err),
    );

  it('has no power beyond logging in', async () => {
    const { rows } = await db.admin.query(
      `SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolinherit FROM pg_roles WHERE rolname = 'ops_overview_reader'`,
    );
    expect(rows).toEqual([{ rolsuper: false, rolcreatedb: false, rolcreaterole: false, rolreplication: false, rolbypassrls: false, rolinherit: false }]);
  });

  it('may SELECT exactly the contract tables of the public schema, nothing else', async () => {
    const { rows } = await reader.query<{ relname: string }>(
      `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'm', 'p') AND has_table_privilege(c.oid, 'SELECT') ORDER BY 1`,
    );
    expect(rows.map((r) => r.relname)).toEqual([...CONTRACT_TABLES].sort());
    for (const t of CONTRACT_TABLES) expect(await attempt(`SELECT count(*) FROM "${t}"`), t).toBe('ok');
    expect(await attempt('SELECT * FROM "Unrelated"')).toBe('42501');
    expect(await attempt('SELECT * FROM "_prisma_migrations"')).toBe('42501');
  });

  it('cannot write, even after turning its read-only default off (the grants are the barrier)', async () => {
    const writes = [
      `INSERT INTO "ShieldPolicy" (id, name, "updatedAt") VALUES ('x', 'x', now())`,
      `UPDATE "CoreNode" SET status = 'OFFLINE'`,
      `DELETE FROM "ProvisioningJob"`,
      `TRUNCATE "ShieldEvent"`,
      `CREATE TABLE public.evil (a int)`,
      `ALTER TABLE "Backup" ADD COLUMN evil int`,
      `DROP TABLE "GuardianFinding"`,
    ];
    // Sessions start read-only (ALTER ROLE ... SET default_transaction_read_only).
    for (const sql of writes) expect(await attempt(sql), sql).toBe('25006');
    await reader.query('SET default_transaction_read_only = off');
    for (const sql of writes) expect(await attempt(sql), sql).toBe('42501');
    const { rows } = await reader.query(`SELECT current_setting('statement_timeout') AS st, current_setting('idle_in_transaction_session_timeout') AS it`);
    expect(rows[0]).toEqual({ st: '10s', it: '30s' });
  });

  it('the exporter says nothing when it runs as the reader, and warns loudly when it runs as a superuser', async () => {
    const asReader = await createTestApp('security', { db, redis });
    const logs = captureLogs();
    const asAdmin = await build({ config: loadConfig({ DATABASE_URL: db.adminUrl, REDIS_URL: redis.url, OPS_QUEUE_PREFIXES: redis.prefix }), logStream: logs.stream, startCollection: false });
    await asAdmin.ready();
    try {
      await waitFor(() => logs.lines().some((l) => /run the exporter as a read-only role/.test(String(l.msg))), 30_000, 'the privilege warning');
      const warning = logs.lines().find((l) => /read-only role/.test(String(l.msg)))!;
      expect(warning.level).toBe(40);
      expect(warning.msg).toBe('the database role "postgres" can do anything (superuser); run the exporter as a read-only role (sql/readonly-role.sql)');
      await new Promise((r) => setTimeout(r, 200));
      expect(asReader.logs.lines().filter((l) => /read-only role/.test(String(l.msg)))).toEqual([]);
    } finally {
      await asAdmin.close();
      await asReader.app.close();
    }
  });

  it('running the script again takes back a privilege granted by hand since', async () => {
    await db.admin.query('GRANT INSERT, UPDATE ON "ShieldPolicy" TO ops_overview_reader; GRANT SELECT ON "Unrelated" TO ops_overview_reader');
    await reader.query('SET default_transaction_read_only = off');
    expect(await attempt(`UPDATE "ShieldPolicy" SET name = name`)).toBe('ok');
    await db.grantReader();
    expect(await attempt(`UPDATE "ShieldPolicy" SET name = name`)).toBe('42501');
    expect(await attempt('SELECT * FROM "Unrelated"')).toBe('42501');
    expect(await attempt('SELECT count(*) FROM "ShieldPolicy"')).toBe('ok');
  });

  it('the script can run again (idempotent) and grants a table created later', async () => {
    await db.admin.query('DROP TABLE "Backup"');
    await db.grantReader();
    await db.admin.query(`CREATE TABLE "Backup" (id text PRIMARY KEY, "resourceType" text NOT NULL, "resourceId" text, status text NOT NULL, "startedAt" timestamp(3) NOT NULL, "completedAt" timestamp(3), "sizeBytes" bigint)`);
    expect(await attempt('SELECT * FROM "Backup"')).toBe('42501');
    await db.grantReader();
    expect(await attempt('SELECT * FROM "Backup"')).toBe('ok');
  });
});

describe('redaction', () => {
  const table: Array<[string, string]> = [
    ['postgresql://ops:S3cr3t@db:5432/x', 'postgresql://ops:***@db:5432/x'],
    ['redis://:redispw@cache:6379', 'redis://:***@cache:6379'],
    ['connect mysql://root:toor@db failed', 'connect mysql://root:***@db failed'],
    ['postgres://user@host/db (no password)', 'postgres://user@host/db (no password)'],
    ['Authorization: Bearer abcdefghijklmnop', 'Authorization: Bearer ***'],
    ['authorization=Basic dXNlcjpwYXNzd29yZA==', 'authorization=Basic ***'],
    ['token=abc123; next', 'token=***; next'],
    ['connect failed: token=abcd1234efgh5678', 'connect failed: token=***'],
    ['x=1 secret=2 y=3 status: failed, token: "a b" next', 'x=1 secret=*** y=3 status: failed, token: *** next'],
    ['api_key: "k-123 456" rest', 'api_key: *** rest'],
    ['secret_key=foo client_secret=bar apiKey=xyz', 'secret_key=*** client_secret=*** apiKey=***'],
    ['X-Api-Key: zzz', 'X-Api-Key: ***'],
    ['{"password":"hunter2","user":"a"}', '{"password":***,"user":"a"}'],
    ["password='a b c' end", 'password=*** end'],
    ['Cookie: sid=xyz', 'Cookie: ***'],
    ['key AKIAABCDEFGHIJKLMNOP and ghp_abcdefghijklmnopqrstuvwxyz0123', 'key *** and ***'],
    ['slack xoxb-1234567890-abcdef stripe sk_live_abcdefghijklmn', 'slack *** stripe ***'],
    ['jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl end', 'jwt *** end'],
    ['-----BEGIN RSA PRIVATE KEY-----\nMIIabc\n-----END RSA PRIVATE KEY----- after', '*** after'],
    ['Code: `57014`. Message: `canceling statement due to statement timeout`', 'Code: `57014`. Message: `canceling statement due to statement timeout`'],
    ['tab\tand\nnewline stay; bell\u0007 and NUL\u0000 go', 'tab\tand\nnewline stay; bell  and NUL  go'],
    ['lone surrogate \ud800 here', 'lone surrogate \ufffd here'],
  ];

  it.each(table)('%j → %j', (input, output) => {
    expect(redactText(input, 500)).toBe(output);
  });

  it('truncates to the limit with an ellipsis, and redacts before cutting', () => {
    const out = redactText(`${'x'.repeat(10)} postgresql://a:pw-that-is-long@h/db ${'y'.repeat(1000)}`, 40);
    expect(out).toHaveLength(40);
    expect(out.endsWith('…')).toBe(true);
    expect(out).not.toContain('pw-that');
  });

  // Linear without a clock: the expressions are linear by construction
  // (test/redaction-corpus.test.ts checks that every repetition is bounded),
  // so the work is the passes over the text plus the scanner's steps; both
  // are counted, and doubling the hostile text doubles them (plus a constant:
  // a match cut at the end of the text).
  it('stays linear on hostile input: the counted work grows in proportion to the text', () => {
    const units = ['password-', 'a.', 'k=v ', 'password="', 'b:', '--password ', "password '", 'bearer ', 'eyJaaaaa.', '-----BEGIN PRIVATE KEY-----', 'sk-', 'A'];
    for (const unit of units) {
      const work = (copies: number) => {
        const stats: RedactStats = { passes: 0, charsScanned: 0, pairSteps: 0 };
        const text = unit.repeat(copies);
        redactText(text, text.length, stats);
        return { ...stats, length: text.length };
      };
      const small = work(20_000);
      const large = work(40_000);
      expect(large.passes, unit).toBe(small.passes);
      expect(large.charsScanned, unit).toBeGreaterThanOrEqual(large.length);
      expect(large.charsScanned, unit).toBeLessThanOrEqual(2 * small.charsScanned + large.passes * 1024);
      expect(large.charsScanned, unit).toBeLessThanOrEqual(large.passes * large.length);
      expect(large.pairSteps, unit).toBeLessThanOrEqual(2 * small.pairSteps + 1);
      expect(large.pairSteps, unit).toBeLessThanOrEqual(large.length);
    }
    // The scanner does step through words that may be keys: a, 1, b, 2, password.
    const stats: RedactStats = { passes: 0, charsScanned: 0, pairSteps: 0 };
    redactText('a=1 b=2 password=3', 100, stats);
    expect(stats.pairSteps).toBe(5);
  });

  it('redacts URLs and query strings for logs', () => {
    expect(redactUrl('postgresql://a:b@c/d?password=x&sslmode=require')).toBe('postgresql://a:***@c/d?password=***&sslmode=require');
    expect(redactUrl('not a url')).toBe('<unparseable url>');
    expect(redactQuery('/metrics?token=abc&x&y=1')).toBe('/metrics?token=***&x&y=***');
    expect(redactQuery('/metrics')).toBe('/metrics');
  });
});

describe('logs never carry secrets', () => {
  const JWT_SECRET = 'jwt-secret-for-log-test-0123456789abcdef';
  const REDIS_PASSWORD = 'Redis-Secret-77';
  const WRONG_PASSWORD = 'Wrong-Pw-31337';
  let cluster: PgCluster;
  let clusterDb: TestDatabase;

  beforeAll(async () => {
    cluster = await startPgCluster({ readerPassword: true });
    clusterDb = await clusterDatabase(cluster, 'platform');
  });

  afterAll(async () => {
    await clusterDb?.drop();
    await cluster?.destroy();
  });

  it('at trace level, with failing connections, credentials on every request and an internal error', async () => {
    const closedPort = await freePort();
    const apiToken = makeToken('logs', ['ops:overview:read']);
    const jwt = await new SignJWT({ scope: 'ops:*' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(JWT_SECRET));
    const badJwt = `${jwt.slice(0, -4)}AAAA`;
    const basic = Buffer.from('prometheus:Basic-Secret-5').toString('base64');
    const secrets = [READER_PASSWORD, WRONG_PASSWORD, REDIS_PASSWORD, JWT_SECRET, apiToken.token, jwt, jwt.split('.')[2]!, badJwt.split('.')[2]!, basic, 'Basic-Secret-5', 'Cookie-Secret-6', 'Query-Secret-7', 'Err-Secret-8', 'ApiKey-Secret-9'];

    const env = (databaseUrl: string) => ({
      DATABASE_URL: databaseUrl,
      REDIS_URL: `redis://:${REDIS_PASSWORD}@127.0.0.1:${closedPort}`,
      OPS_API_TOKENS: JSON.stringify([apiToken.entry]),
      OPS_JWT_SECRET: JWT_SECRET,
      OPS_COLLECT_TIMEOUT_SECONDS: '2',
      LOG_LEVEL: 'trace',
    });
    const apps: TestApp[] = [];
    try {
      // The right password (works), a wrong one, and a server that is not there.
      const right = await createTestApp('security-logs', {
        db: clusterDb,
        redis,
        env: env(cluster.readerUrl('platform')),
        extraRoutes: (app) =>
          app.get('/boom', async () => {
            throw new Error('SELECT * FROM "CoreNode" failed at postgresql://ops:Err-Secret-8@db/platform');
          }),
      });
      const wrong = await createTestApp('security-logs', { db: clusterDb, redis, env: env(cluster.readerUrl('platform').replace(READER_PASSWORD, WRONG_PASSWORD)) });
      const absent = await createTestApp('security-logs', { db: clusterDb, redis, env: env(`postgresql://ops_overview_reader:${WRONG_PASSWORD}@127.0.0.1:${closedPort}/platform`) });
      apps.push(right, wrong, absent);

      for (const t of apps) await t.app.collection.collectAll();
      expect(right.app.collection.state('core_nodes')?.up).toBe(true);
      expect(wrong.app.collection.state('core_nodes')?.up).toBe(false);
      expect(absent.app.collection.state('core_nodes')?.up).toBe(false);
      expect(right.app.collection.state('queues')?.up).toBe(false);

      for (const authorization of [`Bearer ${apiToken.token}`, `Bearer ${jwt}`, `Bearer ${badJwt}`, `Basic ${basic}`, 'Bearer', undefined]) {
        await right.app.inject({
          url: '/api/ops/overview?token=Query-Secret-7&access_token=Query-Secret-7',
          headers: { ...(authorization ? { authorization } : {}), cookie: 'session=Cookie-Secret-6', 'x-api-key': 'ApiKey-Secret-9' },
        });
      }
      const boom = await right.app.inject('/boom');
      expect(boom.statusCode).toBe(500);
      expect(boom.json()).toEqual(errorBody('OPS_INTERNAL'));
      await right.app.inject({ url: '/nope?password=Query-Secret-7' });
      await new Promise((r) => setTimeout(r, 200));

      const all = apps.map((t) => t.logs.text()).join('\n');
      // The logs did record what happened...
      expect(all).toMatch(/authentication failed|denied access/i);
      expect(all).toContain('request failed');
      expect(all).toContain('/api/ops/overview?token=***&access_token=***');
      expect(all).toContain('postgresql://ops:***@db/platform');
      // ...and none of the secrets.
      for (const secret of secrets) expect(all, secret).not.toContain(secret);
    } finally {
      for (const t of apps) await t.app.close();
    }
  });
});

describe('HTTP hardening', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp('security', {
      db,
      redis,
      env: { OPS_API_RATE_LIMIT_PER_MINUTE: '3' },
      extraRoutes: (app) =>
        app.get('/boom', async () => {
          const err = new Error('relation "secret_table" does not exist: SELECT password FROM users');
          (err as Error & { statusCode: number }).statusCode = 500;
          throw err;
        }),
    });
    await t.app.collection.collectAll();
  });

  afterAll(async () => {
    await t?.app.close();
  });

  it('sends security headers on the API, /metrics and errors; no HSTS over plain HTTP, no X-Powered-By', async () => {
    for (const [url, headers] of [
      ['/api/ops/overview', { authorization: t.authorization }],
      ['/api/ops/overview', {}],
      ['/metrics', {}],
      ['/nope', {}],
    ] as const) {
      const res = await t.app.inject({ url, headers });
      expect(res.headers['content-security-policy'], url).toBe("default-src 'none';frame-ancestors 'none'");
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['x-frame-options']).toBe('DENY');
      expect(res.headers['referrer-policy']).toBe('no-referrer');
      expect(res.headers['cross-origin-resource-policy']).toBe('same-origin');
      expect(res.headers['strict-transport-security']).toBeUndefined();
      expect(res.headers['x-powered-by']).toBeUndefined();
    }
    const api = await t.app.inject({ url: '/api/ops/overview', headers: { authorization: t.authorization } });
    expect(api.headers['cache-control']).toBe('no-store');
  });

  it('answers a 500 with the error table body only: no stack, no SQL, no message', async () => {
    const res = await t.app.inject('/boom');
    expect(res.statusCode).toBe(500);
    expect(res.body).toBe(JSON.stringify(errorBody('OPS_INTERNAL')));
    for (const leak of ['secret_table', 'SELECT', 'password', 'at ', '.ts:']) expect(res.body).not.toContain(leak);
  });

  it('rate-limits the API per credential; failed authentications per address, apart; /metrics is not limited', async () => {
    // An app of its own: the budget belongs to the credential, which the other tests here spend.
    const r = await createTestApp('security', { db, redis, env: { OPS_API_RATE_LIMIT_PER_MINUTE: '3' } });
    await r.app.collection.collectAll();
    try {
      await rateLimits(r);
    } finally {
      await r.app.close();
    }
  });
});

/** Rate limits of the API (details in rate-limit.test.ts). */
async function rateLimits(t: TestApp): Promise<void> {
  const from = (remoteAddress: string, authorization?: string) =>
    t.app.inject({ url: '/api/ops/overview', remoteAddress, headers: authorization ? { authorization } : {} });
  for (let i = 0; i < 3; i++) expect((await from('10.0.0.1', t.authorization)).statusCode).toBe(200);
  const limited = await from('10.0.0.1', t.authorization);
  expect(limited.statusCode).toBe(429);
  expect(limited.json()).toEqual(errorBody('OPS_RATE_LIMITED'));
  expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
  expect(limited.headers['x-ratelimit-limit']).toBe('3');
  // The budget belongs to the credential, wherever it comes from.
  expect((await from('10.0.0.3', t.authorization)).statusCode).toBe(429);
  // Guessing tokens does not spend it, nor is it refused for lack of budget.
  expect((await from('10.0.0.1')).statusCode).toBe(401);
  expect((await from('10.0.0.2', 'Bearer guess-1')).statusCode).toBe(401);
  for (let i = 0; i < 10; i++) expect((await t.app.inject({ url: '/metrics', remoteAddress: '10.0.0.1' })).statusCode).toBe(200);
}

describe('TLS', () => {
  let dir: string;
  let certFile: string;
  let keyFile: string;

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'ops-tls-'));
    certFile = path.join(dir, 'cert.pem');
    keyFile = path.join(dir, 'key.pem');
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile,
      '-subj', '/CN=localhost', '-days', '1', '-addext', 'subjectAltName=IP:127.0.0.1',
    ], { stdio: 'ignore' });
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves /metrics over HTTPS with HSTS when OPS_TLS_CERT_FILE and OPS_TLS_KEY_FILE are set', async () => {
    const t = await createTestApp('security', { db, redis, env: { OPS_TLS_CERT_FILE: certFile, OPS_TLS_KEY_FILE: keyFile } });
    try {
      await t.app.listen({ host: '127.0.0.1', port: 0 });
      const address = t.app.server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      const { status, headers } = await new Promise<{ status: number; headers: Record<string, unknown> }>((resolve, reject) => {
        httpsGet({ host: '127.0.0.1', port, path: '/metrics', ca: [execFileSync('cat', [certFile])] }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
        }).on('error', reject);
      });
      expect(status).toBe(200);
      expect(headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains');
    } finally {
      await t.app.close();
    }
  });

  it.each([
    ['an unreadable certificate file', () => ({ OPS_TLS_CERT_FILE: path.join(dir, 'missing.pem'), OPS_TLS_KEY_FILE: keyFile }), 'OPS_TLS_CERT_FILE', /cannot read .*ENOENT/],
    ['an unreadable key file', () => ({ OPS_TLS_CERT_FILE: certFile, OPS_TLS_KEY_FILE: path.join(dir, 'missing.pem') }), 'OPS_TLS_KEY_FILE', /cannot read .*ENOENT/],
    ['a certificate that is not PEM', () => {
      writeFileSync(path.join(dir, 'garbage.pem'), 'not a certificate');
      return { OPS_TLS_CERT_FILE: path.join(dir, 'garbage.pem'), OPS_TLS_KEY_FILE: keyFile };
    }, 'OPS_TLS_CERT_FILE', /certificate or key unusable/],
  ])('refuses to start with %s, naming the variable', async (_name, files, variable, problem) => {
    const config = loadConfig({ DATABASE_URL: db.readerUrl, LOG_LEVEL: 'silent', ...files() });
    const error = await build({ config, startCollection: false }).then(
      () => null,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe(variable);
    expect((error as ConfigError).message).toMatch(problem);
  });
});
