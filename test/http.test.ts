/**
 * HTTP bad input, table-driven, with exact answers: unknown routes (404),
 * wrong methods on known ones (405 + Allow), query strings on /metrics,
 * content negotiation (OpenMetrics served correctly or a clean fallback to
 * the text format), bodies, and what Node's parser refuses before Fastify
 * sees it (oversized headers 431, malformed request 400) over a real socket.
 * Every error body is the error table's, with nothing else in it.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorBody } from '../src/errors.js';
import { wantsOpenMetrics } from '../src/routes/metrics.js';
import { createTestApp, type TestApp } from './helpers/app.js';
import { parseSamples, promtoolCheck } from './helpers/prom-text.js';

const TEXT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
const OM_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';
/** What Prometheus 2.x sends when it scrapes. */
const PROMETHEUS_ACCEPT =
  'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

let t: TestApp;
let port: number;

beforeAll(async () => {
  t = await createTestApp('http');
  await t.db.admin.query(`
    INSERT INTO "CoreNode" (id, hostname, role, status, metrics, "updatedAt") VALUES ('n1', 'SRV1-WEB', 'WEB', 'ONLINE', '{"cpuPercent": 12}', now());
    INSERT INTO "ShieldEvent" ("timestamp", decision) VALUES (now(), 'BLOCK');`);
  await t.app.collection.collectAll();
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  const address = t.app.server.address();
  port = typeof address === 'object' && address ? address.port : 0;
});

afterAll(async () => {
  await t?.close();
});

/** Sends `raw` on a fresh socket and returns everything the server wrote before closing. */
function rawRequest(raw: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.setTimeout(5_000, () => socket.destroy(new Error('no answer within 5 s')));
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', (err) => (chunks.length > 0 ? resolve(Buffer.concat(chunks).toString('latin1')) : reject(err)));
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.on('connect', () => socket.end(raw));
  });
}

function split(response: string): { status: number; headers: Record<string, string>; body: string } {
  const [head = '', ...rest] = response.split('\r\n\r\n');
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
  return { status: Number(statusLine.split(' ')[1]), headers, body: rest.join('\r\n\r\n') };
}

describe('routes and methods', () => {
  it.each(['/', '/metrics/', '/METRICS', '//metrics', '/api', '/api/ops', '/api/ops/overview/extra', '/../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', `/${'a'.repeat(8_000)}`])(
    'GET %s → 404 with the error body only',
    async (url) => {
      const res = await t.app.inject({ method: 'GET', url });
      expect(res.statusCode).toBe(404);
      expect(res.json()).toEqual(errorBody('OPS_NOT_FOUND'));
      expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    },
  );

  const known = ['/metrics', '/healthz', '/readyz', '/api/ops/overview', '/api/ops/platform-overview'];
  const methods = ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;
  it.each(known.flatMap((url) => methods.map((method) => [method, url] as const)))('%s %s → 405, Allow: GET, HEAD', async (method, url) => {
    const res = await t.app.inject({ method, url });
    expect(res.statusCode).toBe(405);
    expect(res.headers.allow).toBe('GET, HEAD');
    expect(res.json()).toEqual(errorBody('OPS_METHOD_NOT_ALLOWED'));
  });

  it('405 also with a query string; HEAD /metrics answers the headers only', async () => {
    expect((await t.app.inject({ method: 'POST', url: '/metrics?x=1' })).statusCode).toBe(405);
    const head = await t.app.inject({ method: 'HEAD', url: '/metrics' });
    expect(head.statusCode).toBe(200);
    expect(head.body).toBe('');
    expect(head.headers['content-type']).toBe(TEXT_TYPE);
  });

  it.each(['?', '?foo=bar', '?name[]=ops_source_up&name[]=x', '?%', '?x=%00%ff', `?${'q'.repeat(4_000)}=1`, '?collect[]=../../etc'])(
    'GET /metrics%s ignores the query string: the same families',
    async (query) => {
      const plain = await t.app.inject('/metrics');
      const res = await t.app.inject(`/metrics${query}`);
      expect(res.statusCode).toBe(200);
      const names = (body: string) => [...new Set(parseSamples(body).map((s) => s.name))].sort();
      expect(names(res.body)).toEqual(names(plain.body));
    },
  );
});

describe('content negotiation on /metrics', () => {
  const table: Array<[string, 'openmetrics' | 'text', string | undefined]> = [
    ['no Accept', 'text', undefined],
    ['Prometheus 2.x default', 'openmetrics', PROMETHEUS_ACCEPT],
    ['OpenMetrics 1.0.0', 'openmetrics', 'application/openmetrics-text; version=1.0.0'],
    ['OpenMetrics 0.0.1', 'openmetrics', 'application/openmetrics-text; version=0.0.1'],
    ['OpenMetrics without a version', 'openmetrics', 'application/openmetrics-text'],
    ['OpenMetrics, quoted version, odd case', 'openmetrics', 'Application/OpenMetrics-Text; Version="1.0.0"'],
    ['an OpenMetrics version it cannot serve', 'text', 'application/openmetrics-text; version=2.0.0'],
    ['OpenMetrics refused with q=0', 'text', 'application/openmetrics-text;q=0, text/plain'],
    ['text preferred by q', 'text', 'text/plain;q=0.9, application/openmetrics-text;q=0.5'],
    ['equal q: OpenMetrics', 'openmetrics', 'text/plain;q=0.5, application/openmetrics-text;q=0.5'],
    ['text only', 'text', 'text/plain; version=0.0.4'],
    ['JSON only (fallback)', 'text', 'application/json'],
    ['*/*', 'text', '*/*'],
    ['garbage', 'text', ';;;,,,=q=;'],
    ['a bad q value', 'text', 'application/openmetrics-text;q=abc'],
    ['a 6 KiB Accept (only the first 2,000 characters are read)', 'text', `${'x/y, '.repeat(1_200)}application/openmetrics-text`],
  ];

  it.each(table)('%s → %s', async (_name, expected, accept) => {
    const res = await t.app.inject({ url: '/metrics', headers: accept === undefined ? {} : { accept } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe(expected === 'openmetrics' ? OM_TYPE : TEXT_TYPE);
    expect(res.headers.vary).toBe('Accept, Accept-Encoding');
    expect(wantsOpenMetrics(accept)).toBe(expected === 'openmetrics');
    if (expected === 'openmetrics') expect(res.body.endsWith('\n# EOF\n')).toBe(true);
    else expect(res.body).not.toContain('# EOF');
  });

  it('OpenMetrics: terminated by # EOF, no blank line, counter families without _total and their samples with it, same values as the text format', async () => {
    const om = (await t.app.inject({ url: '/metrics', headers: { accept: PROMETHEUS_ACCEPT } })).body;
    const text = (await t.app.inject('/metrics')).body;
    expect(om.endsWith('\n# EOF\n')).toBe(true);
    expect(om.split('\n').slice(0, -1)).not.toContain('');
    expect(om.split('# EOF')).toHaveLength(2);
    const counters = [...om.matchAll(/^# TYPE (\S+) counter$/gm)].map((m) => m[1]!);
    // The same counter families as the text format, named without `_total`.
    const textCounters = [...text.matchAll(/^# TYPE (\S+) counter$/gm)].map((m) => m[1]!);
    expect(textCounters.every((c) => c.endsWith('_total'))).toBe(true);
    expect(counters.sort()).toEqual(textCounters.map((c) => c.replace(/_total$/, '')).sort());
    expect(counters).toEqual(expect.arrayContaining(['ops_shield_events', 'ops_source_collections', 'ops_source_errors', 'ops_queue_jobs_completed']));
    // prom-client's process metrics are there too, counters named the same way.
    expect(counters).toContain('process_cpu_seconds');
    const sampleNames = new Set(parseSamples(om.replace(/\n# EOF\n$/, '\n')).map((s) => s.name));
    const textSampleNames = new Set(parseSamples(text).map((s) => s.name));
    for (const family of counters) {
      // A counter with series in the text format has them, `_total`, here.
      expect(sampleNames.has(`${family}_total`), family).toBe(textSampleNames.has(`${family}_total`));
      expect(sampleNames.has(family)).toBe(false);
    }
    expect(sampleNames.has('ops_source_collections_total')).toBe(true);
    // Every sample belongs to a declared family.
    const families = new Set([...om.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => m[1]));
    for (const name of sampleNames) expect(families.has(name) || families.has(name.replace(/_(total|bucket|sum|count)$/, ''))).toBe(true);
    const bySeries = (body: string) =>
      Object.fromEntries(
        parseSamples(body.replace(/\n# EOF\n$/, '\n'))
          // Process metrics are read at each render: only the collection's numbers must agree.
          .filter((s) => s.name.startsWith('ops_') && s.name !== 'ops_source_collect_duration_seconds')
          .map((s) => [`${s.name.replace(/_total$/, '')}${JSON.stringify(s.labels)}`, s.value]),
      );
    expect(bySeries(om)).toEqual(bySeries(text));
  });

  // prom-client's OpenMetrics registry renames shared counter objects in place
  // (metric.name loses "_total"): the text format must not serve
  // ops_source_errors after an OpenMetrics scrape.
  it('the text format keeps its _total counters after an OpenMetrics scrape (promtool passes)', async () => {
    await t.app.inject({ url: '/metrics', headers: { accept: PROMETHEUS_ACCEPT } });
    // A collection in between: /metrics renders anew rather than from its cache.
    await t.app.collection.collect('backups');
    const text = (await t.app.inject('/metrics')).body;
    expect(text).toContain('ops_source_errors_total{source="core_nodes"}');
    expect(promtoolCheck(text)).toEqual({ ok: true, output: '' });
  });
});

describe('bodies', () => {
  it('a large body on a known route is refused with 413 and the connection closed', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/api/ops/overview', headers: { authorization: t.authorization, 'content-type': 'application/json' }, payload: JSON.stringify({ a: 'x'.repeat(5_000) }) });
    expect(res.statusCode).toBe(413);
    expect(res.json()).toEqual(errorBody('OPS_PAYLOAD_TOO_LARGE'));
    expect(res.headers.connection).toBe('close');
    const post = await t.app.inject({ method: 'POST', url: '/metrics', headers: { 'content-type': 'text/plain' }, payload: 'x'.repeat(10_000) });
    expect(post.statusCode).toBe(413);
  });

  it('a small body on GET is ignored; a prototype-poisoning body changes nothing', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/api/ops/overview', headers: { authorization: t.authorization, 'content-type': 'application/json' }, payload: '{"__proto__": {"admin": true}}' });
    expect(res.statusCode).toBe(200);
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });
});

describe('requests Node refuses before routing (real socket)', () => {
  it('oversized headers (over 16 KiB) → 431 with the error body, connection closed', async () => {
    const response = await rawRequest(`GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    const { status, headers, body } = split(response);
    expect(status).toBe(431);
    expect(headers.connection).toBe('close');
    expect(JSON.parse(body)).toEqual(errorBody('OPS_HEADERS_TOO_LARGE'));
  });

  it('an oversized Authorization header (a huge fake JWT) → 431, nothing echoed', async () => {
    const secretish = `eyJ${'A'.repeat(17_000)}`;
    const response = await rawRequest(`GET /api/ops/overview HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${secretish}\r\n\r\n`);
    expect(split(response).status).toBe(431);
    expect(response).not.toContain('AAAAAAAAAA');
  });

  it.each([
    ['a malformed request line', 'GARBAGE\r\n\r\n'],
    ['a header without a colon', 'GET /metrics HTTP/1.1\r\nHost: x\r\nbroken header\r\n\r\n'],
    ['a NUL in the path', 'GET /met\u0000rics HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['both Content-Length and chunked (smuggling)', 'GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
  ])('%s → 400 with the error body', async (_name, raw) => {
    const { status, body } = split(await rawRequest(raw));
    expect(status).toBe(400);
    expect(JSON.parse(body)).toEqual(errorBody('OPS_BAD_REQUEST'));
  });

  it('still serves after all that', async () => {
    const { status, headers } = split(await rawRequest('GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    expect(status).toBe(200);
    expect(headers['content-type']).toBe(TEXT_TYPE);
  });
});
