/**
 * PostgreSQL stopped (cleanly, and as a crash) and started again under a
 * running exporter, on a cluster of the test's own: /metrics keeps answering
 * 200 at once, the database sources report ops_source_up 0 (their series
 * absent), the queue source is unaffected, and when PostgreSQL is back the
 * sources recover by themselves; no unhandled rejection, no leaked or stuck
 * connection (counted in pg_stat_activity), no log flood.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, metricsText, scrapeLoop, waitFor, type TestApp } from './helpers/app.js';
import { clusterDatabase, sessions, startPgCluster, type PgCluster } from './helpers/pg-cluster.js';
import { samples, value } from './helpers/prom-text.js';
import { createTestRedis, type TestRedis } from './helpers/redis.js';
import type { TestDatabase } from './helpers/db.js';

const DB_SOURCES = ['core_nodes', 'provisioning', 'security', 'backups'] as const;
const POOL_MAX = 3;
/** Every wait here is for an event; this bound only stops a hang (two busy cores can stretch a restart many times over). */
const HANG_GUARD_MS = 30_000;

let cluster: PgCluster;
let db: TestDatabase;
let redis: TestRedis;
let t: TestApp;
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);

async function seed(): Promise<void> {
  await db.admin.query(`
    INSERT INTO "CoreNode" (id, hostname, role, status, metrics, "lastMetricsAt", "updatedAt")
      VALUES ('n1', 'SRV1-WEB', 'WEB', 'ONLINE', '{"cpuPercent": 42}', now(), now());
    INSERT INTO "ProvisioningJob" (id, type, action, "resourceType", status, "updatedAt")
      VALUES ('j1', 'hosting', 'hosting.create', 'WEBSITE', 'PENDING', now());
    INSERT INTO "ShieldEvent" ("timestamp", decision) VALUES (now(), 'BLOCK');
    INSERT INTO "ShieldPolicy" (id, name, mode, "updatedAt") VALUES ('p1', 'default', 'ENFORCE', now());
    INSERT INTO "Backup" (id, "resourceType", status, "startedAt", "completedAt")
      VALUES ('b1', 'DB_CORE', 'COMPLETED', now() - interval '1 hour', now() - interval '50 minutes');`);
}

const metrics = () => metricsText(t);

const upOf = (text: string, source: string) => value(text, 'ops_source_up', { source });
const errorsOf = (text: string, source: string) => value(text, 'ops_source_errors_total', { source }) ?? 0;

async function allUp(): Promise<boolean> {
  const text = await metrics();
  return [...DB_SOURCES, 'queues'].every((s) => upOf(text, s) === 1);
}

async function dbSourcesDown(): Promise<boolean> {
  const text = await metrics();
  return DB_SOURCES.every((s) => upOf(text, s) === 0);
}

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  cluster = await startPgCluster();
  db = await clusterDatabase(cluster, 'platform');
  await seed();
  redis = await createTestRedis('faults-pg');
  t = await createTestApp('faults-pg', {
    db,
    redis,
    startCollection: true,
    env: {
      OPS_COLLECT_INTERVAL_SECONDS: '1',
      // Room for a loaded machine: nothing here depends on a short timeout.
      OPS_COLLECT_TIMEOUT_SECONDS: '3',
      OPS_DB_POOL_MAX: String(POOL_MAX),
    },
  });
  await waitFor(allUp, HANG_GUARD_MS, 'every source up');
});

afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  await t?.app.close();
  // The pool is closed with the app: no session of the exporter remains.
  if (cluster) {
    await cluster.start().catch(() => undefined);
    expect(await sessions(cluster.adminUrl(), 'platform')).toEqual([]);
  }
  await db?.drop();
  await redis?.cleanup();
  await cluster?.destroy();
});

describe.each([
  ['stopped cleanly (fast shutdown)', 'fast'],
  ['crashed (immediate shutdown)', 'immediate'],
] as const)('PostgreSQL %s and started again', (_name, mode) => {
  it('keeps /metrics answering, reports the database sources down, then recovers without a restart', async () => {
    t.logs.clear();
    const loop = scrapeLoop(t);
    await cluster.stop(mode);
    await waitFor(dbSourcesDown, HANG_GUARD_MS, 'the database sources to report down');

    const down = await metrics();
    expect(upOf(down, 'queues')).toBe(1);
    // Down sources' series are absent, never stale or zero.
    expect(samples(down, 'ops_core_node_cpu_ratio')).toEqual([]);
    expect(samples(down, 'ops_shield_policies')).toEqual([]);
    for (const s of DB_SOURCES) expect(value(down, 'ops_source_errors_total', { source: s })).toBeGreaterThanOrEqual(1);
    // /readyz reuses one ping for a second (probes cannot flood the pool).
    await waitFor(async () => (await t.app.inject('/readyz')).statusCode === 503, HANG_GUARD_MS, '/readyz 503');
    const ready = await t.app.inject('/readyz');
    expect(ready.json()).toMatchObject({ status: 'not_ready', database: 'unreachable', sources: { queues: 'up', core_nodes: 'down' } });
    // The API serves the last good data, marked stale.
    const overview = await t.app.inject({ url: '/api/ops/overview', headers: { authorization: t.authorization } });
    expect(overview.statusCode).toBe(200);
    expect(overview.json().sources).toContainEqual(expect.objectContaining({ name: 'core_nodes', up: false, stale: true }));
    expect(overview.json().coreNodes.find((n: { label: string }) => n.label === 'SRV1-WEB').cpuPercent).toBe(42);

    // Let a few failed collections pass while it is down (counted, not timed),
    // while scrapes go on: a scrape never waits on the database.
    const scrapedBefore = loop.statuses.length;
    await waitFor(
      async () => {
        const text = await metrics();
        return DB_SOURCES.every((s) => (value(text, 'ops_source_errors_total', { source: s }) ?? 0) >= errorsOf(down, s) + 2);
      },
      HANG_GUARD_MS,
      'two more failed collections of every database source',
    );
    await waitFor(() => loop.statuses.length > scrapedBefore + 2, HANG_GUARD_MS, 'scrapes while the database is down');
    await cluster.start();
    await waitFor(allUp, HANG_GUARD_MS, 'every source up again');

    const statuses = await loop.stop();
    expect(statuses.filter((s) => s !== 200)).toEqual([]);

    const back = await metrics();
    expect(value(back, 'ops_core_node_cpu_ratio', { node: 'SRV1-WEB' })).toBe(0.42);
    await waitFor(async () => (await t.app.inject('/readyz')).statusCode === 200, HANG_GUARD_MS, '/readyz 200');

    // Connections: within the pool's bound, none left in a transaction or running.
    const rows = await sessions(cluster.adminUrl(), 'platform');
    expect(rows.length).toBeLessThanOrEqual(POOL_MAX);
    expect(rows.filter((r) => r.state !== 'idle')).toEqual([]);

    // One warning when a source goes down (a changed reason, e.g.
    // "connection terminated" then "can't reach", only at info), one line
    // when it is back: not one per failed attempt.
    const lines = t.logs.lines();
    for (const s of DB_SOURCES) {
      const down = lines.filter((l) => l.msg === `source ${s} is down`).length;
      expect(down, s).toBe(1);
      expect(value(back, 'ops_source_errors_total', { source: s }), s).toBeGreaterThan(down);
      expect(lines.filter((l) => l.msg === `source ${s} is up`).length, s).toBe(1);
    }
    expect(lines.filter((l) => (l.level ?? 0) >= 40).length).toBeLessThanOrEqual(2 * DB_SOURCES.length);
    expect(lines.filter((l) => (l.level ?? 0) >= 50)).toEqual([]);
    expect(unhandled).toEqual([]);
  }, 4 * HANG_GUARD_MS);
});

describe('after the restarts', () => {
  it('repeated collections keep the pool within its bound', async () => {
    for (let i = 0; i < 10; i++) await t.app.collection.collectAll();
    const rows = await sessions(cluster.adminUrl(), 'platform');
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.length).toBeLessThanOrEqual(POOL_MAX);
    expect(t.app.db.connections).toBeLessThanOrEqual(POOL_MAX);
    expect(unhandled).toEqual([]);
  });
});
