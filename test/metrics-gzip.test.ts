/**
 * /metrics compressed: gzip when the scraper accepts it (Prometheus always
 * does), the exact bytes of the identity body once decompressed, identity
 * when gzip is not accepted, the right Content-Encoding and Vary, and one
 * compression per collection generation and format however many scrapes ask.
 * Prints the bytes per scrape before and after on a large exposition.
 */
import { request } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acceptsGzip } from '../src/routes/metrics.js';
import { createTestApp, type TestApp } from './helpers/app.js';
import { parseSamples, promtoolCheck } from './helpers/prom-text.js';

const TEXT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
const OM_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';
/** What Prometheus 2.x sends when it scrapes. */
const PROMETHEUS_ACCEPT =
  'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';
/** Core nodes seeded: a large exposition (a few thousand series). */
const NODES = 3_000;

let t: TestApp;

beforeAll(async () => {
  t = await createTestApp('gzip');
  await t.db.admin.query(`
    INSERT INTO "CoreNode" (id, hostname, role, status, metrics, "lastMetricsAt", "updatedAt")
      SELECT 'n' || i, 'NODE-' || lpad(i::text, 5, '0'), 'WEB', 'ONLINE',
             jsonb_build_object('cpuPercent', i % 100, 'ramPercent', (i * 7) % 100, 'diskPercent', (i * 13) % 100), now(), now()
        FROM generate_series(1, ${NODES}) i;
    INSERT INTO "ShieldEvent" ("timestamp", decision) VALUES (now(), 'BLOCK');`);
  await t.app.collection.collectAll();
});

afterAll(async () => {
  await t?.close();
});

const scrape = (headers: Record<string, string>) => t.app.inject({ method: 'GET', url: '/metrics', headers });

describe('Accept-Encoding', () => {
  it.each([
    ['gzip', true],
    ['gzip, deflate, br', true],
    ['GZIP', true],
    ['x-gzip', true],
    ['br;q=1.0, gzip;q=0.8, *;q=0.1', true],
    ['*', true],
    ['gzip;q=0', false],
    ['gzip;q=0.000, identity', false],
    ['*;q=0', false],
    ['gzip;q=0, *', false],
    ['identity', false],
    ['br, deflate', false],
    ['', false],
    [';;;,,=', false],
    [`${'x, '.repeat(600)}gzip`, false],
  ])('%j → gzip %s', (header, expected) => {
    expect(acceptsGzip(header)).toBe(expected);
  });

  it('no header → identity', () => {
    expect(acceptsGzip(undefined)).toBe(false);
  });
});

describe('compressed /metrics', () => {
  it.each([
    ['text', {}, TEXT_TYPE],
    ['OpenMetrics', { accept: PROMETHEUS_ACCEPT }, OM_TYPE],
  ] as const)('%s: gzip decompresses to exactly the identity bytes, with Content-Encoding and Vary', async (_name, accept, type) => {
    const identity = await scrape({ ...accept });
    const gzipped = await scrape({ ...accept, 'accept-encoding': 'gzip' });
    expect(identity.statusCode).toBe(200);
    expect(gzipped.statusCode).toBe(200);
    expect(identity.headers['content-encoding']).toBeUndefined();
    expect(gzipped.headers['content-encoding']).toBe('gzip');
    for (const res of [identity, gzipped]) {
      expect(res.headers['content-type']).toBe(type);
      expect(res.headers.vary).toBe('Accept, Accept-Encoding');
      expect(res.headers['cache-control']).toBe('no-store');
      expect(Number(res.headers['content-length'])).toBe(res.rawPayload.length);
    }
    expect(gunzipSync(gzipped.rawPayload).equals(identity.rawPayload)).toBe(true);
    expect(gzipped.rawPayload.length).toBeLessThan(identity.rawPayload.length / 5);
  });

  it('identity when gzip is refused or absent', async () => {
    for (const encoding of ['identity', 'gzip;q=0', 'br', 'deflate']) {
      const res = await scrape({ 'accept-encoding': encoding });
      expect(res.headers['content-encoding'], encoding).toBeUndefined();
      expect(res.headers.vary).toBe('Accept, Accept-Encoding');
      expect(res.body.startsWith('# HELP ')).toBe(true);
    }
  });

  it('compresses once per generation and format: repeated scrapes reuse the compressed body', async () => {
    await t.app.collection.collect('backups');
    const before = t.app.exposition.stats();
    const bodies: Buffer[] = [];
    for (let i = 0; i < 20; i++) bodies.push((await scrape({ 'accept-encoding': 'gzip' })).rawPayload);
    for (let i = 0; i < 5; i++) await scrape({ 'accept-encoding': 'gzip', accept: PROMETHEUS_ACCEPT });
    for (let i = 0; i < 5; i++) await scrape({});
    const after = t.app.exposition.stats();
    // One render and one compression per format for this generation.
    expect(after.renders - before.renders).toBe(2);
    expect(after.compressions - before.compressions).toBe(2);
    expect(new Set(bodies.map((b) => b.toString('base64'))).size).toBe(1);

    // Concurrent scrapes of a new generation still compress once.
    await t.app.collection.collect('backups');
    await Promise.all(Array.from({ length: 10 }, () => scrape({ 'accept-encoding': 'gzip' })));
    const concurrent = t.app.exposition.stats();
    expect(concurrent.renders - after.renders).toBe(1);
    expect(concurrent.compressions - after.compressions).toBe(1);
  });

  it('over a real socket, as Prometheus reads it: gzip, promtool accepts the decompressed body, same series as identity', async () => {
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    const address = t.app.server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const get = (headers: Record<string, string>) =>
      new Promise<{ headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
        request({ host: '127.0.0.1', port, path: '/metrics', headers, agent: false }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
        })
          .on('error', reject)
          .end();
      });
    const gz = await get({ 'accept-encoding': 'gzip' });
    expect(gz.headers['content-encoding']).toBe('gzip');
    const text = gunzipSync(gz.body).toString('utf8');
    expect(promtoolCheck(text)).toEqual({ ok: true, output: '' });
    const plain = (await get({})).body.toString('utf8');
    expect(parseSamples(text).length).toBe(parseSamples(plain).length);

    const stats = t.app.exposition.stats();
    const text0 = stats.lastBytes.text!;
    console.log(
      `/metrics bytes per scrape, ${parseSamples(plain).length} series: identity ${text0.identity} → gzip ${text0.gzip} (${(text0.identity / text0.gzip!).toFixed(1)}×)`,
    );
    expect(text0.gzip).toBe(gz.body.length);
    expect(text0.identity).toBe(Buffer.byteLength(plain));
  });
});
