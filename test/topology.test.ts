/**
 * The exporter behind what stands in front of real platform databases: a
 * hot-standby replica (pg_basebackup -R) and PgBouncer 1.18 in transaction
 * pooling mode. Every source must give the same /metrics numbers there as on
 * the primary, and no session setting of the exporter may outlive its
 * transaction (a pooler hands the server session to other clients).
 */
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SOURCE_NAMES } from '../src/catalog.js';
import { Database } from '../src/db/client.js';
import { EXPORTER_INDEXES } from '../src/db/indexes.js';
import { indexesSource } from '../src/sources/indexes.js';
import type { TestDatabase } from './helpers/db.js';
import { buildTestExporter, scrape } from './helpers/exporter.js';
import type { ParsedSample } from './helpers/metrics.js';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { clusterDatabase, startPgCluster, type PgCluster } from './helpers/pg-cluster.js';
import { startPgBouncer, startReplica, type PgBouncer, type PgReplica } from './helpers/pg-topology.js';
import { createTestRedis, type TestRedis } from './helpers/redis.js';
import { createEnumSchema, SCHEMA_VARIANTS, type SchemaVariant } from './helpers/schema-variants.js';

const NOW = new Date('2026-01-15T12:00:00.000Z');
const MIN = 60_000;
const H = 60 * MIN;
const at = (ms: number) => new Date(NOW.getTime() + ms).toISOString().replace('T', ' ').replace('Z', '');

/** The exporter's own timings: the only series allowed to differ between the three. */
const TIMINGS = new Set(['ops_source_collect_duration_seconds', 'ops_source_last_success_timestamp_seconds', 'ops_shield_recount_duration_seconds']);

/** The same rows on both schemas: only values the enum variant's types have. */
async function seed(db: TestDatabase): Promise<void> {
  const q = (sql: string, params: unknown[] = []) => db.admin.query(sql, params);
  await q(`INSERT INTO "CoreNode" (id, hostname, role, status, metrics, "lastMetricsAt", "updatedAt") VALUES
    ('n1', 'SRV1-WEB', 'WEB', 'ONLINE', '{"cpuPercent": 42.5, "ramPercent": 61, "diskPercent": 70}', $1, $2),
    ('n2', 'MAIL-CORE', 'MAIL', 'DEGRADED', NULL, NULL, $2),
    ('n3', 'DB-CORE', NULL, NULL, '{"cpuPercent": 140}', $1, $2)`, [at(-30_000), at(0)]);
  const job = (id: string, type: string, action: string, status: string, created: number, started: number | null) =>
    q(`INSERT INTO "ProvisioningJob" (id, type, action, "resourceType", status, "createdAt", "startedAt", "updatedAt")
       VALUES ($1, $2, $3, 'WEBSITE', $4, $5, $6, $7)`, [id, type, action, status, at(created), started === null ? null : at(started), at(0)]);
  await job('p1', 'hosting', 'hosting.create', 'PENDING', -20 * MIN, null);
  await job('r1', 'dns', 'dns.zone.sync', 'RUNNING', -2 * H, -30 * MIN);
  await job('d1', 'ssl', 'ssl.issue', 'DELAYED', -1 * H, null);
  await job('f1', 'hosting', 'hosting.create', 'FAILED', -1 * H, -1 * H);
  await job('f2', 'dns', 'dns.zone.sync', 'FAILED', -23 * H, null);
  await job('c1', 'hosting', 'hosting.create', 'COMPLETED', -3 * H, -3 * H);
  const ev = (ts: number, decision: string | null, n: number) =>
    q(`INSERT INTO "ShieldEvent" ("timestamp", decision) SELECT $1, $2 FROM generate_series(1, $3)`, [at(ts), decision, n]);
  await ev(-1 * MIN, 'ALLOW', 5);
  await ev(-2 * H, 'BLOCK', 3);
  await ev(-4 * H, null, 2);
  await ev(-48 * H, 'BLOCK', 4);
  await q(`INSERT INTO "ShieldPolicy" (id, name, mode, "updatedAt") VALUES ('a', 'a', 'ENFORCE', $1), ('b', 'b', 'MONITOR', $1)`, [at(0)]);
  await q(`INSERT INTO "GuardianFinding" (id, severity, status, title) VALUES ('g1', 'CRITICAL', 'OPEN', 'x'), ('g2', 'LOW', 'RESOLVED', 'y')`);
  await q(`INSERT INTO "Backup" (id, "resourceType", status, "startedAt", "completedAt") VALUES
    ('b1', 'DB_CORE', 'COMPLETED', $1, $2), ('b2', 'MPANEL_CORE', 'FAILED', $3, NULL)`, [at(-20 * H - 10 * MIN), at(-20 * H), at(-2 * H)]);
}

/** Every series of the collection (not the process's, not the exporter's timings), as `name{labels} value` lines, sorted. */
function comparable(samples: ParsedSample[]): string[] {
  return samples
    .filter((s) => s.name.startsWith('ops_') && !TIMINGS.has(s.name))
    .map((s) => `${s.name}{${Object.entries(s.labels).sort().map(([k, v]) => `${k}="${v}"`).join(',')}} ${s.value}`)
    .sort();
}

const READONLY_SQL = path.join(import.meta.dirname, '..', 'sql', 'readonly-role.sql');

let primary: PgCluster;
let replica: PgReplica;
let bouncer: PgBouncer;
let redis: TestRedis;
const platforms = new Map<SchemaVariant, TestDatabase>();
const apps: FastifyInstance[] = [];
/** Each variant's /metrics on the primary. */
const reference = new Map<SchemaVariant, ParsedSample[]>();

/** The enum + timestamptz platform database on the cluster, as a DBA would have it. */
async function enumDatabase(name: string): Promise<TestDatabase> {
  const admin = new pg.Pool({ connectionString: primary.adminUrl(), max: 1 });
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  await createEnumSchema(primary.adminUrl(name));
  const db = await clusterDatabaseShape(name);
  await db.grantReader();
  return db;
}

/** clusterDatabase()'s shape for a database that already exists. */
async function clusterDatabaseShape(name: string): Promise<TestDatabase> {
  const admin = new pg.Pool({ connectionString: primary.adminUrl(name), max: 4 });
  admin.on('error', () => undefined);
  return {
    name,
    adminUrl: primary.adminUrl(name),
    readerUrl: primary.readerUrl(name),
    admin,
    grantReader: async () => void (await admin.query(readFileSync(READONLY_SQL, 'utf8'))),
    drop: () => admin.end(),
  };
}

beforeAll(async () => {
  redis = await createTestRedis('topology');
  primary = await startPgCluster();
  platforms.set('text', await clusterDatabase(primary, 'platform_text'));
  platforms.set('enum', await enumDatabase('platform_enum'));
  for (const db of platforms.values()) {
    // A role time zone far from UTC: the exporter sets its own per
    // transaction (timestamptz compares through it); through the pooler,
    // that one must not leak either.
    await db.admin.query(`ALTER ROLE ops_overview_reader IN DATABASE "${db.name}" SET TimeZone = 'America/New_York'`);
    await seed(db);
  }
  [replica, bouncer] = await Promise.all([
    startReplica(primary),
    startPgBouncer(primary.port, { users: ['postgres', 'ops_overview_reader'], poolSize: 1 }),
  ]);
  await replica.caughtUp();
}, 120_000);

afterAll(async () => {
  for (const app of apps) await app.close();
  await bouncer?.destroy();
  await replica?.destroy();
  for (const db of platforms.values()) await db.drop();
  await primary?.destroy();
  await redis?.cleanup();
}, 60_000);

describe.each(SCHEMA_VARIANTS)('the %s schema through a hot-standby replica and PgBouncer (transaction mode)', (variant) => {
  let onPrimary: ParsedSample[];
  let primaryApp: FastifyInstance;
  const database = () => platforms.get(variant)!;

  async function collected(readerUrl: string): Promise<{ app: FastifyInstance; samples: ParsedSample[] }> {
    const app = await buildTestExporter({ db: { ...database(), readerUrl }, redis, now: () => NOW });
    apps.push(app);
    await app.collection.collectAll();
    return { app, samples: (await scrape(app)).samples };
  }

  it('on the primary, every source is up (the reference)', async () => {
    ({ app: primaryApp, samples: onPrimary } = await collected(primary.readerUrl(database().name)));
    reference.set(variant, onPrimary);
    const up = onPrimary.filter((s) => s.name === 'ops_source_up');
    expect(Object.fromEntries(up.map((s) => [s.labels.source, s.value]))).toEqual(Object.fromEntries(SOURCE_NAMES.map((n) => [n, 1])));
    // Not a trivially empty reference: seeded values are there.
    expect(onPrimary.find((s) => s.name === 'ops_shield_events_24h' && s.labels.decision === 'ALLOW')?.value).toBe(5);
    expect(onPrimary.find((s) => s.name === 'ops_provisioning_failed_jobs_24h' && s.labels.action === 'dns.zone.sync')?.value).toBe(1);
  }, 60_000);

  it('through the replica, the same numbers', async () => {
    const { samples } = await collected(replica.url(database().name, 'ops_overview_reader'));
    expect(comparable(samples)).toEqual(comparable(onPrimary));
  }, 60_000);

  it('through PgBouncer in transaction mode, the same numbers, twice in a row', async () => {
    const { app, samples } = await collected(bouncer.url(database().name, 'ops_overview_reader'));
    expect(comparable(samples)).toEqual(comparable(onPrimary));
    // The second collection takes the incremental paths (the Shield window),
    // compared with a second one on the primary.
    await Promise.all([app.collection.collectAll(), primaryApp.collection.collectAll()]);
    const [again, primaryAgain] = await Promise.all([scrape(app), scrape(primaryApp)]);
    expect(primaryAgain.samples.find((s) => s.name === 'ops_source_collections_total' && s.labels.source === 'security')?.value).toBe(2);
    expect(comparable(again.samples)).toEqual(comparable(primaryAgain.samples));
  }, 60_000);

  it("leaves the pooler's one server session with the role's own settings: nothing the exporter set survives its transactions", async () => {
    const c = new pg.Client({ connectionString: bouncer.url(database().name, 'ops_overview_reader') });
    await c.connect();
    try {
      // One server connection per pool (poolSize 1): this is the session the exporter used.
      const { rows } = await c.query<Record<string, string>>(
        `SELECT current_setting('TimeZone') AS tz, current_setting('statement_timeout') AS st,
                current_setting('lock_timeout') AS lt, current_setting('jit') AS jit,
                current_setting('transaction_isolation') AS iso`,
      );
      expect(rows[0]).toEqual({ tz: 'America/New_York', st: '10s', lt: '0', jit: 'on', iso: 'read committed' });
    } finally {
      await c.end();
    }
  }, 20_000);
});

it('the enum + timestamptz schema gives the same numbers as the text schema for the same rows', () => {
  expect(reference.size).toBe(2);
  expect(comparable(reference.get('enum')!)).toEqual(comparable(reference.get('text')!));
});

it('the index check (catalog only) reads the same on the primary, the replica and through the pooler', async () => {
  const db = platforms.get('enum')!;
  await db.admin.query('DROP INDEX "Backup_failed_idx"');
  await replica.caughtUp();
  const results: Array<Record<string, number>> = [];
  for (const url of [primary.readerUrl(db.name), replica.url(db.name, 'ops_overview_reader'), bouncer.url(db.name, 'ops_overview_reader')]) {
    const database = new Database({ url, poolMax: 1 });
    try {
      const source = indexesSource(database);
      const data = await source.collect({ now: NOW, signal: new AbortController().signal, timeoutMs: 5_000 });
      results.push(Object.fromEntries(source.samples(data).map((s) => [s.labels.index!, s.value])));
    } finally {
      await database.close();
    }
  }
  const expected = Object.fromEntries(EXPORTER_INDEXES.map((ix) => [ix.name, ix.name === 'Backup_failed_idx' ? 1 : 0]));
  expect(results).toEqual([expected, expected, expected]);
}, 30_000);
