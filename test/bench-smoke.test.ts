/**
 * The benchmark's dataset generator produces exactly the rows and queues it
 * claims (at the tiny scale), and its output parsers read what the tools
 * print. No timing is asserted here: timings live in `npm run bench` only.
 */
import { Queue } from 'bullmq';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectedCounts, loadTables, SCALES, TABLES } from '../bench/dataset.js';
import { parseMetrics } from '../bench/exporter-process.js';
import { percentile, runLoad } from '../bench/http-load.js';
import { ownerOf, readPlans } from '../bench/db-stats.js';
import { parseInfo, sumClientLog } from '../bench/redis-stats.js';
import { isRecountChunk } from '../bench/measure.js';
import { expectedQueueCounts, expectedWorkers, generateQueues, jobsInQueue, openWorkerConnections, queueName } from '../bench/queue-dataset.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { createTestRedis, type TestRedis } from './helpers/redis.js';

const spec = SCALES.tiny;
const anchorMs = Date.UTC(2026, 0, 15, 12, 0, 0);

describe('bench dataset generator (tiny scale)', () => {
  let db: TestDatabase;
  let redis: TestRedis;

  beforeAll(async () => {
    db = await createTestDatabase('bench_smoke');
    redis = await createTestRedis('bench-smoke');
  });
  afterAll(async () => {
    await redis?.cleanup();
    await db?.drop();
  });

  it('inserts the row counts, the 24 h window, the live jobs and the open findings it says, with the migrations\' indexes back in place', async () => {
    const client = await db.admin.connect();
    const indexesBefore = (await client.query<{ d: string }>(`SELECT indexdef AS d FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname`)).rows;
    try {
      await loadTables(client, { spec, anchorMs, tables: TABLES });
    } finally {
      client.release();
    }
    const expected = expectedCounts(spec, { events: spec.shieldEvents, window: spec.shieldWindow });
    for (const table of TABLES) {
      const { rows } = await db.admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${table}"`);
      expect({ table, n: rows[0]?.n }).toEqual({ table, n: expected.rows[table] });
    }
    const anchor = new Date(anchorMs).toISOString();
    const q = async (sql: string) => (await db.admin.query<{ n: number }>(sql, [anchor])).rows[0]?.n;
    expect(await q(`SELECT count(*)::int AS n FROM "ShieldEvent" WHERE "timestamp" >= ($1::timestamptz AT TIME ZONE 'UTC') - interval '24 hours' AND "timestamp" < ($1::timestamptz AT TIME ZONE 'UTC')`)).toBe(expected.shieldWindow);
    expect(await q(`SELECT count(*)::int AS n FROM "ShieldEvent" WHERE $1::text IS NOT NULL AND "timestamp" >= ($1::timestamptz AT TIME ZONE 'UTC')`)).toBe(0);
    expect(await q(`SELECT count(*)::int AS n FROM "ProvisioningJob" WHERE $1::text IS NOT NULL AND "status" NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')`)).toBe(expected.liveJobs);
    expect(await q(`SELECT count(*)::int AS n FROM "ProvisioningJob" WHERE "status" = 'FAILED' AND "createdAt" >= ($1::timestamptz AT TIME ZONE 'UTC') - interval '24 hours'`)).toBe(expected.failedJobs24h);
    expect(expected.failedJobs24h).toBeGreaterThan(0);
    expect(await q(`SELECT count(*)::int AS n FROM "GuardianFinding" WHERE $1::text IS NOT NULL AND "status" = 'OPEN'`)).toBe(expected.openFindings);
    const maxId = (await db.admin.query<{ n: string }>(`SELECT max("id")::text AS n FROM "ShieldEvent"`)).rows[0]?.n;
    const next = (await db.admin.query<{ n: string }>(`SELECT nextval(pg_get_serial_sequence('"ShieldEvent"', 'id'))::text AS n`)).rows[0]?.n;
    expect(Number(next)).toBe(Number(maxId) + 1);
    const indexesAfter = (await db.admin.query<{ d: string }>(`SELECT indexdef AS d FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname`)).rows;
    expect(indexesAfter).toEqual(indexesBefore);
  });

  it('adds the BullMQ jobs per queue and names the worker connections as BullMQ counts them', async () => {
    await generateQueues(redis.url, redis.prefix, spec, anchorMs);
    const workers = await openWorkerConnections(redis.url, redis.prefix, spec);
    try {
      for (let i = 0; i < spec.queues; i++) {
        const queue = new Queue(queueName(i), { connection: redis.client, prefix: redis.prefix, skipMetasUpdate: true });
        const counts = await queue.getJobCounts('waiting', 'delayed', 'prioritized');
        expect(counts).toEqual({ ...expectedQueueCounts(spec, i), paused: 0 });
        expect(await queue.getWorkersCount()).toBe(expectedWorkers(spec, i));
        const [oldest] = await queue.getJobs(['waiting'], 0, 0, true);
        expect(oldest?.timestamp).toBe(anchorMs - jobsInQueue(spec, i) * 1000);
      }
    } finally {
      for (const w of workers) w.disconnect();
    }
  });
});

describe('bench output parsers', () => {
  it('the load generator counts every answer, non-2xx ones as errors, with sub-millisecond latencies', async () => {
    let answered = 0;
    const server = http.createServer((req, res) => {
      answered += 1;
      res.statusCode = req.url === '/fail' ? 503 : 200;
      res.end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const ok = await runLoad(`http://127.0.0.1:${port}/`, { connections: 2, seconds: 1 });
      expect(ok.requests).toBeGreaterThan(0);
      expect(ok.errors).toBe(0);
      expect(ok.p50Ms).toBeLessThanOrEqual(ok.p99Ms);
      expect(ok.p99Ms).toBeLessThanOrEqual(ok.maxMs);
      expect([ok.p50Ms, ok.p99Ms, ok.maxMs].some((ms) => !Number.isInteger(ms))).toBe(true);
      const before = answered;
      const failing = await runLoad(`http://127.0.0.1:${port}/fail`, { connections: 2, seconds: 1 });
      // The server also answered what was in flight on the two connections when the run ended.
      expect(answered - before - failing.requests).toBeGreaterThanOrEqual(0);
      expect(answered - before - failing.requests).toBeLessThanOrEqual(2);
      expect(failing.errors).toBe(failing.requests);
    } finally {
      server.close();
    }
  });

  it('takes the nearest-rank percentile', () => {
    const sorted = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect([percentile(sorted, 50), percentile(sorted, 90), percentile(sorted, 99), percentile(sorted, 100)]).toEqual([5, 9, 10, 10]);
    expect(percentile([], 50)).toBeNaN();
  });

  it('reads Prometheus text samples with labels', () => {
    const text = [
      '# HELP ops_source_collections_total Collections attempted for the source.',
      '# TYPE ops_source_collections_total counter',
      'ops_source_collections_total{source="core_nodes"} 12',
      'ops_source_collections_total{source="queues"} 11',
      'ops_shield_events_24h{decision="ALLOW"} 8000',
      'ops_exporter_build_info{version="0.1.0",nodejs="v20.20.2"} 1',
      'ops_source_last_success_timestamp_seconds{source="security"} 1768478400.123',
    ].join('\n');
    const m = parseMetrics(text);
    expect(m.value('ops_source_collections_total', { source: 'queues' })).toBe(11);
    expect(m.value('ops_shield_events_24h', { decision: 'ALLOW' })).toBe(8000);
    expect(m.value('ops_shield_events_24h', { decision: 'BLOCK' })).toBeUndefined();
    expect(m.samples('ops_exporter_build_info')[0]?.labels).toEqual({ version: '0.1.0', nodejs: 'v20.20.2' });
    expect(m.value('ops_source_last_success_timestamp_seconds', { source: 'security' })).toBe(1768478400.123);
  });

  it('reads the plans auto_explain wrote to the server log, multi-line query text included', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bench-plans-'));
    try {
      const log = path.join(dir, 'server.log');
      writeFileSync(
        log,
        [
          '2026-01-15 12:00:00.000 UTC [42] postgres@other LOG:  checkpoint starting: time',
          '2026-01-15 12:00:01.000 UTC [43] ops_overview_reader@ops_bench_small LOG:  duration: 0.052 ms  plan:',
          '\tQuery Text: SELECT "mode" AS value, count(*)::int AS count',
          '\t  FROM "ShieldPolicy" GROUP BY "mode"',
          '\tHashAggregate  (cost=6.00..6.04 rows=3 width=12) (actual time=0.037..0.037 rows=3 loops=1)',
          '\t  Group Key: mode',
          '\t  ->  Seq Scan on "ShieldPolicy"  (cost=0.00..5.00 rows=200 width=8) (actual time=0.005..0.016 rows=200 loops=1)',
          '2026-01-15 12:00:02.000 UTC [44] ops_bench_naive@ops_bench_small LOG:  duration: 12.5 ms  plan:',
          '\tQuery Text: SELECT 1',
          '\tResult  (cost=0.00..0.01 rows=1 width=4) (actual time=0.001..0.001 rows=1 loops=1)',
          '',
        ].join('\n'),
      );
      const plans = readPlans(log, 0);
      expect(plans.map((p) => [p.user, p.database, p.durationMs])).toEqual([
        ['ops_overview_reader', 'ops_bench_small', 0.052],
        ['ops_bench_naive', 'ops_bench_small', 12.5],
      ]);
      expect(plans[0]?.query).toBe('SELECT "mode" AS value, count(*)::int AS count\n  FROM "ShieldPolicy" GROUP BY "mode"');
      expect(plans[0]?.plan.split('\n')).toHaveLength(3);
      expect(plans[0]?.plan.startsWith('HashAggregate')).toBe(true);
      expect(ownerOf(plans[0]?.query ?? '')).toBe('security');
      expect(ownerOf('COMMIT')).toBe('transaction');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads Redis INFO commandstats and cpu', () => {
    const info = parseInfo(
      ['# Commandstats', 'cmdstat_evalsha:calls=30,usec=1710,usec_per_call=57.00,rejected_calls=0,failed_calls=0', 'cmdstat_client|list:calls=1,usec=52,usec_per_call=52.00', '# CPU', 'used_cpu_sys:1.500000', 'used_cpu_user:2.250000'].join('\r\n'),
    );
    expect(info.commands.get('evalsha')).toEqual({ calls: 30, usec: 1710 });
    expect(info.commands.get('client|list')).toEqual({ calls: 1, usec: 52 });
    expect(info.cpuUsec).toBe(3_750_000);
  });

  it("sums one client's commands from SLOWLOG, subcommands apart, others' left out", () => {
    const own = sumClientLog(
      [
        [3, 0, 120, ['evalsha', 'abc', '2'], '127.0.0.1:1', 'ops-overview-exporter'],
        [2, 0, 40, ['XINFO', 'STREAM', 'q:events'], '127.0.0.1:1', 'ops-overview-exporter'],
        [1, 0, 900, ['evalsha', 'def', '8'], '127.0.0.1:2', 'bull:aG9zdGluZw=='],
        [0, 0, 30, ['xrange', 'q:events', '-', '+'], '127.0.0.1:1', 'ops-overview-exporter'],
      ],
      'ops-overview-exporter',
    );
    expect(own).toMatchObject({ calls: 3, usec: 190, entries: 4 });
    expect(Object.fromEntries(own.commands)).toEqual({ evalsha: { calls: 1, usec: 120 }, 'xinfo|stream': { calls: 1, usec: 40 }, xrange: { calls: 1, usec: 30 } });
  });

  it("tells the Shield recount's chunk statement from the step's, as pg_stat_statements normalizes them", () => {
    const select = 'SELECT array_agg(sec ORDER BY sec) AS secs, max("maxId") AS "maxId" FROM ( SELECT ';
    const chunk = `${select}floor(extract($3 FROM "timestamp"))::float8 AS sec, count(*)::int AS n, $12::bigint AS "maxId" FROM "ShieldEvent" WHERE "timestamp" >= ($1::timestamptz AT TIME ZONE $13) AND "timestamp" < ($2::timestamptz AT TIME ZONE $14) GROUP BY 1) g`;
    const front = chunk.replace('GROUP BY 1', 'AND "id" <= $15::bigint GROUP BY 1');
    const batch = `${select}CASE WHEN "timestamp" >= ($1::timestamptz AT TIME ZONE $5) THEN floor(extract($7 FROM "timestamp"))::float8 END AS sec, count(*)::int AS n FROM (SELECT "id" FROM "ShieldEvent" WHERE "id" > $3::bigint) b GROUP BY 1) g`;
    expect([chunk, front, batch].map(isRecountChunk)).toEqual([true, false, false]);
  });
});
