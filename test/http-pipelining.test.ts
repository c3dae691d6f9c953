/**
 * Pipelined scrapes whose answers are never read, against the exporter as
 * `npm start` runs it (child process, its own RSS) with a /metrics of about
 * 1.1 MB: each such connection is cut off at the bound of requests under way,
 * the process stays alive with its resident memory bounded, and other
 * scrapers keep getting 200 while collections go on. (Without the bound the
 * same attack killed the process: heap out of memory.)
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './helpers/app.js';
import { buildDist, httpGet, memoryMiB, startCompiledExporter, type CompiledExporter } from './helpers/compiled-exporter.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { createTestRedis, type TestRedis } from './helpers/redis.js';

/** Core nodes seeded: the 500 the exporter reports one by one give /metrics of about 360 KB. */
const NODES = 3_000;
/** Pipelined requests each attacking connection sends in one write. */
const PIPELINED = 3_000;
const ATTACKERS = 4;
/** Resident memory the attack may add to the exporter's warmed-up RSS, MiB. */
const RSS_GROWTH_BOUND_MIB = 40;
/** The exporter's resident memory bound (issue 11), MiB. */
const RSS_BOUND_MIB = 160;

let db: TestDatabase;
let redis: TestRedis;
let exporter: CompiledExporter | undefined;

beforeAll(async () => {
  buildDist();
  db = await createTestDatabase('pipelining');
  db.admin.on('error', () => undefined);
  redis = await createTestRedis('pipelining');
  await db.admin.query(`
    INSERT INTO "CoreNode" (id, hostname, role, status, metrics, "lastMetricsAt", "updatedAt")
      SELECT 'n' || i, 'NODE-' || lpad(i::text, 5, '0'), 'WEB', 'ONLINE',
             jsonb_build_object('cpuPercent', i % 100, 'ramPercent', (i * 7) % 100, 'diskPercent', (i * 13) % 100), now(), now()
        FROM generate_series(1, ${NODES}) i;`);
  exporter = await startCompiledExporter({
    DATABASE_URL: db.readerUrl,
    REDIS_URL: redis.url,
    OPS_QUEUE_PREFIXES: redis.prefix,
    OPS_COLLECT_INTERVAL_SECONDS: '1',
  });
}, 120_000);

afterAll(async () => {
  await exporter?.stop();
  await db?.drop();
  await redis?.cleanup();
});

/** Collections of core_nodes so far, read from /metrics. */
async function collections(e: CompiledExporter): Promise<number> {
  const res = await httpGet(e.port, '/metrics');
  const m = /^ops_source_collections_total\{source="core_nodes"\} (\d+)$/m.exec(res.body.toString('utf8'));
  return Number(m?.[1] ?? Number.NaN);
}

describe('pipelined scrapes never read', () => {
  it('are cut off per connection; the exporter stays alive, its RSS bounded, and other scrapers get 200', async () => {
    const e = exporter!;
    // Warm up: every body the attack asks for, rendered and compressed once.
    for (let i = 0; i < 10; i++) {
      expect((await httpGet(e.port, '/metrics')).status).toBe(200);
      expect((await httpGet(e.port, '/metrics', { 'accept-encoding': 'gzip' })).status).toBe(200);
      expect((await httpGet(e.port, '/metrics', { accept: 'application/openmetrics-text; version=1.0.0' })).status).toBe(200);
    }
    const size = (await httpGet(e.port, '/metrics')).bytes;
    // The largest body core nodes alone can produce under the source's bound.
    expect(size).toBeGreaterThan(300_000);
    const baseline = memoryMiB(e.child.pid!).rss;

    const variants = ['', 'Accept: application/openmetrics-text; version=1.0.0\r\n', 'Accept-Encoding: gzip\r\n'];
    const sockets: Socket[] = [];
    for (let a = 0; a < ATTACKERS; a++) {
      const socket = connect(e.port, '127.0.0.1');
      socket.on('error', () => undefined);
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      socket.pause(); // never read
      const requests = Array.from({ length: PIPELINED }, (_, i) => `GET /metrics HTTP/1.1\r\nHost: x\r\n${variants[(a + i) % variants.length]}\r\n`).join('');
      socket.write(requests);
      sockets.push(socket);
    }

    // Every attacking connection is cut off by the exporter, once each.
    const cutOffs = () => (e.output().match(/closing a connection with more than 16 requests under way/g) ?? []).length;
    await waitFor(() => cutOffs() >= ATTACKERS, 30_000, 'the exporter to close the attacking connections');
    expect(cutOffs()).toBe(ATTACKERS);

    // Collections go on and other scrapers are served meanwhile.
    const start = await collections(e);
    let scrapes = 0;
    while ((await collections(e)) < start + 3) {
      const res = await httpGet(e.port, '/metrics', { 'accept-encoding': 'gzip' });
      expect(res.status).toBe(200);
      scrapes++;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(scrapes).toBeGreaterThan(0);

    expect(e.alive()).toBe(true);
    const after = memoryMiB(e.child.pid!);
    console.log(`exporter RSS: warmed up ${baseline.toFixed(1)} MiB, after the attack ${after.rss.toFixed(1)} MiB, peak ${after.peak.toFixed(1)} MiB; /metrics ${size} bytes`);
    expect(after.rss - baseline).toBeLessThan(RSS_GROWTH_BOUND_MIB);
    expect(after.peak).toBeLessThan(RSS_BOUND_MIB);
    for (const s of sockets) s.destroy();
    expect((await httpGet(e.port, '/healthz')).status).toBe(200);
  }, 120_000);
});
