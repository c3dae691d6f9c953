/**
 * Memory with the hostile data of issue 11, against the exporter as
 * `npm start` runs it (`npm run build`, then the start script's node flags,
 * in a child process whose RSS is its own), collecting every 2 s:
 *
 * - a 40 MiB `CoreNode.metrics` document and 24 nodes with 1 MiB each;
 * - a FAILED job whose `resourceId` is 10 MiB;
 * - 200 × 200 distinct (action, resourceType) FAILED pairs;
 * - 5,000 core nodes and 2,000 BullMQ queues (one with waiting jobs and no worker);
 * - out-of-range and future times (infinity, BC, year 10000, 9999-01-01), a
 *   job hash with timestamp 9e15 and one negative;
 * - API calls, and 3,000 pipelined scrapes on one socket never read.
 *
 * Asserted: the process stays alive through all of it, /metrics answers 200
 * and the API never 500, and the resident memory peak (VmHWM) stays under
 * RSS_BOUND_MIB. The heap cap of the start script is headroom, not the bound:
 * were memory unbounded, this test would see RSS grow (or the process die),
 * not a smaller number.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './helpers/app.js';
import { buildDist, httpGet, memoryMiB, startArgs, startCompiledExporter, type CompiledExporter } from './helpers/compiled-exporter.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { createTestRedis, type TestRedis } from './helpers/redis.js';

/**
 * The resident memory bound this test holds, MiB: issue 11's goal. Peaks
 * here are 128-147 MiB on the 2-core build machine (ten runs alone; 140 MiB
 * beside the whole suite), the highest mostly while 3,000 pipelined scrapes
 * are served. While the
 * exporter read through Prisma Client they were 152 MiB alone and 155-165 MiB
 * beside other runs: its query compiler (WebAssembly) was loaded for raw
 * statements it never compiled. Where the rest goes, measured (smaps, heap snapshots,
 * --trace-gc): ~40 MiB of the node binary's pages, ~14 MiB of malloc, and
 * the V8 heap: 30-50 MiB live after a full GC (7 MiB of code, hidden classes
 * and the collections' data), which V8 lets grow ~20 MiB before the next
 * one. The bound leaves ~13 MiB over the highest peak seen and still catches
 * any growth with the data.
 */
const RSS_BOUND_MIB = 160;
const MiB = 1_048_576;
const SOURCES = ['core_nodes', 'queues', 'provisioning', 'security', 'backups'];

let db: TestDatabase;
let redis: TestRedis;
let exporter: CompiledExporter | undefined;
/** Highest VmRSS sampled, and where the test was then. */
let peakSampled = 0;
let phase = 'start';
const phasePeaks: Record<string, number> = {};
let sampler: NodeJS.Timeout | undefined;

async function seedDatabase(): Promise<void> {
  await db.admin.query(`
    -- 5,000 core nodes; one 40 MiB metrics document, 24 of 1 MiB; out-of-range times.
    INSERT INTO "CoreNode" (id, hostname, role, status, metrics, "lastMetricsAt", "updatedAt")
      SELECT 'n' || i, 'BULK-' || lpad(i::text, 5, '0'), 'WEB', (ARRAY['ONLINE','DEGRADED','OFFLINE'])[1 + i % 3],
             jsonb_build_object('cpuPercent', i % 100, 'ramPercent', (i * 7) % 100, 'diskPercent', (i * 13) % 100), now(), now()
        FROM generate_series(1, 4990) i;
    INSERT INTO "CoreNode" (id, hostname, role, status, metrics, "lastMetricsAt", "updatedAt") VALUES
      ('web', 'SRV1-WEB', 'WEB', 'ONLINE', jsonb_build_object('cpuPercent', 50, 'pad', repeat('x', ${40 * MiB})), now(), now()),
      ('db', 'DB-CORE', 'DB', 'ONLINE', '{"cpuPercent": 10}', 'infinity', now()),
      ('mail', 'MAIL-CORE', 'MAIL', 'ONLINE', '{"cpuPercent": 10}', '-infinity', now()),
      ('dns', 'DNS-CORE', 'DNS', 'ONLINE', '{"cpuPercent": 10}', '10000-01-01', now()),
      ('cloud', 'CLOUD-CORE', 'CLOUD', 'ONLINE', '{"cpuPercent": 10}', '0044-03-15 BC', now()),
      ('empty', '', 'WEB', 'ONLINE', '{"cpuPercent": 10}', now(), now());
    UPDATE "CoreNode" SET metrics = jsonb_build_object('cpuPercent', 20, 'pad', repeat('y', ${MiB})) WHERE id IN (SELECT 'n' || i FROM generate_series(1, 24) i);

    -- 200 x 200 distinct failure pairs in the last day, a 10 MiB resourceId, future and infinite times.
    INSERT INTO "ProvisioningJob" (id, type, action, "resourceType", "resourceId", "tenantId", status, "errorMessage", "createdAt", "updatedAt")
      SELECT 'f' || a || '-' || r, 'hosting', 'action.' || a, 'TYPE_' || r, 'res-' || a, 't-' || r, 'FAILED', 'failed: token=abc',
             now() - ((a * 200 + r) % 80000) * interval '1 second', now()
        FROM generate_series(1, 200) a, generate_series(1, 200) r;
    INSERT INTO "ProvisioningJob" (id, type, action, "resourceType", "resourceId", "tenantId", status, "errorMessage", "createdAt", "updatedAt") VALUES
      ('huge', 'hosting', 'hosting.create', 'WEBSITE', repeat('r', ${10 * MiB}), repeat('t', ${MiB}), 'FAILED', repeat('e', ${MiB}), now(), now()),
      ('future', 'hosting', 'hosting.create', 'WEBSITE', 'x', 't', 'FAILED', 'later', now() + interval '1 year', now()),
      ('inf', 'hosting', 'hosting.create', 'WEBSITE', 'x', 't', 'FAILED', 'never', 'infinity', now());
    INSERT INTO "ProvisioningJob" (id, type, action, "resourceType", status, "createdAt", "updatedAt")
      SELECT 'p' || i, 'type-' || (i % 500), 'a', 'R', (ARRAY['PENDING','RUNNING'])[1 + i % 2], now() - interval '2 hours', now()
        FROM generate_series(1, 2000) i;

    INSERT INTO "ShieldEvent" ("timestamp", decision)
      SELECT now() - (i % 80000) * interval '1 second', (ARRAY['ALLOW','BLOCK','CHALLENGE','RATE_LIMITED','weird'])[1 + i % 5]
        FROM generate_series(1, 20000) i;
    INSERT INTO "ShieldEvent" ("timestamp", decision) VALUES ('infinity', 'BLOCK'), ('-infinity', 'BLOCK'), (now() + interval '10 years', 'BLOCK');
    INSERT INTO "ShieldPolicy" (id, name, mode, "updatedAt") SELECT 'p' || i, repeat('n', 1000), 'ENFORCE', now() FROM generate_series(1, 500) i;
    INSERT INTO "GuardianFinding" (id, severity, status, title) SELECT 'g' || i, (ARRAY['CRITICAL','HIGH','bogus'])[1 + i % 3], 'OPEN', repeat('t', 1000) FROM generate_series(1, 2000) i;

    -- DB-CORE's real last backup is 3 days old; a future one and an infinite one must not hide it.
    INSERT INTO "Backup" (id, "resourceType", status, "startedAt", "completedAt") VALUES
      ('b-real', 'DB_CORE', 'COMPLETED', now() - interval '3 days', now() - interval '3 days'),
      ('b-future', 'DB_CORE', 'COMPLETED', now(), '9999-01-01'),
      ('b-inf', 'DB_CORE', 'COMPLETED', now(), 'infinity'),
      ('b-bc', 'MPANEL_CORE', 'COMPLETED', '0100-01-01 BC', '0100-01-01 BC');
    INSERT INTO "Backup" (id, "resourceType", status, "startedAt", "completedAt")
      SELECT 'b' || i, 'TYPE_' || (i % 1000), (ARRAY['COMPLETED','FAILED'])[1 + i % 2], now() - i * interval '1 minute', now() - i * interval '1 minute'
        FROM generate_series(1, 5000) i;
    ANALYZE;`);
}

/** 2,000 BullMQ queues (meta hash, one waiting job each), written as BullMQ lays them out. */
async function seedRedis(): Promise<void> {
  const p = redis.prefix;
  const now = Date.now();
  const pipeline = redis.client.pipeline();
  for (let i = 0; i < 2_000; i++) {
    const q = `${p}:queue-${String(i).padStart(4, '0')}`;
    pipeline.hset(`${q}:meta`, 'opts.maxLenEvents', '10000', 'version', 'bullmq:5.81.5');
    pipeline.lpush(`${q}:wait`, '1');
    pipeline.hset(`${q}:1`, 'name', 'job', 'data', '{}', 'timestamp', String(now - 1_000), 'delay', '0');
  }
  // The stuck queue (waiting jobs, no worker), odd timestamps, an empty queue name.
  for (const [name, timestamp] of [['zz-stuck', String(now - 3_600_000)], ['ts-huge', '9000000000000000'], ['ts-negative', '-5'], ['', String(now)]] as const) {
    const q = `${p}:${name}`;
    pipeline.hset(`${q}:meta`, 'opts.maxLenEvents', '10000');
    pipeline.lpush(`${q}:wait`, '1', '2', '3');
    for (const id of ['1', '2', '3']) pipeline.hset(`${q}:${id}`, 'name', 'job', 'data', '{}', 'timestamp', timestamp);
  }
  await pipeline.exec();
}

/** ops_source_collections_total per source, from /metrics (gzip, as Prometheus asks). */
async function collections(e: CompiledExporter): Promise<Record<string, number>> {
  const res = await httpGet(e.port, '/metrics');
  expect(res.status).toBe(200);
  const text = res.body.toString('utf8');
  return Object.fromEntries(SOURCES.map((s) => [s, Number(new RegExp(`^ops_source_collections_total\\{source="${s}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? Number.NaN)]));
}

function alive(e: CompiledExporter): void {
  expect(e.alive(), `the exporter died:\n${e.output().slice(-3_000)}`).toBe(true);
}

beforeAll(async () => {
  buildDist();
  db = await createTestDatabase('memory_hostile');
  db.admin.on('error', () => undefined);
  redis = await createTestRedis('memory-hostile');
  await seedDatabase();
  await seedRedis();
  exporter = await startCompiledExporter(
    {
      DATABASE_URL: db.readerUrl,
      REDIS_URL: redis.url,
      OPS_QUEUE_PREFIXES: redis.prefix,
      OPS_COLLECT_INTERVAL_SECONDS: '2',
      OPS_QUEUE_DISCOVERY_INTERVAL_SECONDS: '2',
      OPS_API_RATE_LIMIT_PER_MINUTE: '1000',
    },
    120_000,
  );
  sampler = setInterval(() => {
    if (!exporter?.alive()) return;
    try {
      const { rss } = memoryMiB(exporter.child.pid!);
      peakSampled = Math.max(peakSampled, rss);
      phasePeaks[phase] = Math.max(phasePeaks[phase] ?? 0, rss);
    } catch {
      // The process is gone between the check and the read.
    }
  }, 100);
}, 300_000);

afterAll(async () => {
  if (sampler) clearInterval(sampler);
  if (exporter?.alive()) {
    const text = (await httpGet(exporter.port, '/metrics').catch(() => ({ body: Buffer.from('') }))).body.toString('utf8');
    const problems = new Set(
      exporter
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { level?: number; msg?: string; source?: string; err?: { message?: string } })
        .filter((l) => (l.level ?? 0) >= 50)
        .map((l) => `${l.source ?? ''} ${l.msg ?? ''}: ${(l.err?.message ?? '').slice(0, 120)}`),
    );
    console.log(`memory-hostile: errors logged by the exporter: ${JSON.stringify([...problems].slice(0, 10))}`);
    console.log(`memory-hostile: ${[...text.matchAll(/^ops_source_(?:up|errors_total)\{source="\w+"\} \d+$/gm)].map((m) => m[0]).join(', ')}`);
  }
  console.log(`memory-hostile: start flags ${startArgs().join(' ')}; peak RSS sampled ${peakSampled.toFixed(1)} MiB; per phase ${JSON.stringify(Object.fromEntries(Object.entries(phasePeaks).map(([k, v]) => [k, Number(v.toFixed(1))])))}`);
  await exporter?.stop();
  await db?.drop();
  await redis?.cleanup();
});

describe('hostile data, bounded memory', () => {
  it('collects every source three more times with the hostile data, alive', async () => {
    phase = 'collections';
    const e = exporter!;
    const start = await collections(e);
    await waitFor(
      async () => {
        alive(e);
        const now = await collections(e);
        return SOURCES.every((s) => now[s]! >= start[s]! + 3);
      },
      90_000,
      'three more collections of every source',
      500,
    );
    alive(e);
  }, 120_000);

  it('answers the API without a 500 and with a bounded body, repeatedly', async () => {
    phase = 'api';
    const e = exporter!;
    for (let i = 0; i < 10; i++) {
      const res = await httpGet(e.port, '/api/ops/overview', { authorization: e.authorization });
      expect(res.status).toBe(200);
      // Bounded by design, whatever the rows hold: at most 500 nodes beyond
      // the expected ones and 500 queues, every string cut to 200 characters
      // in SQL or Lua, 10 recent failures: well under 1 MiB (10 MiB rows gave
      // 10.5 MB bodies before).
      expect(res.bytes).toBeLessThan(1024 * 1024);
      alive(e);
    }
  }, 60_000);

  it('survives 3,000 pipelined scrapes on one socket never read, and serves others meanwhile', async () => {
    phase = 'pipelined';
    const e = exporter!;
    const socket: Socket = connect(e.port, '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.pause();
    socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(3_000));
    try {
      const start = await collections(e);
      await waitFor(async () => (await collections(e)).core_nodes! >= start.core_nodes! + 2, 60_000, 'two more collections', 250);
      for (let i = 0; i < 5; i++) expect((await httpGet(e.port, '/metrics', { 'accept-encoding': 'gzip' })).status).toBe(200);
      alive(e);
    } finally {
      socket.destroy();
    }
  }, 90_000);

  it(`kept its resident memory under ${RSS_BOUND_MIB} MiB throughout`, () => {
    const e = exporter!;
    alive(e);
    const { peak } = memoryMiB(e.child.pid!);
    expect(peak).toBeLessThan(RSS_BOUND_MIB);
    expect(peakSampled).toBeLessThan(RSS_BOUND_MIB);
  });
});
