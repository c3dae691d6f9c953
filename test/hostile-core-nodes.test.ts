/**
 * Core nodes under hostile rows (issue 11 items 1, 5, 7, 10; issue 10 for
 * the enum + timestamptz schema), on real PostgreSQL: huge `metrics`
 * documents never leave the database, impossible times are invalid for
 * their row only, the per-node bound never drops what pages and the counts
 * by status stay exact beyond it, and an empty hostname never becomes an
 * empty label. Each case: the source up, /metrics 200 and accepted by
 * promtool, the API 200.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_SERIES_PER_SOURCE } from '../src/metrics/bound.js';
import { Database } from '../src/db/client.js';
import type { InvalidCounts } from '../src/metrics/sample.js';
import {
  coreNodeSamples,
  coreNodesSource,
  mapCoreNodes,
  MAX_REPORTED_NODES,
  percentFrom,
  SERIES_PER_NODE,
  type CoreNodeRow,
  type CoreNodesData,
  type CoreNodesOptions,
} from '../src/sources/core-nodes.js';
import { collectChecked } from './helpers/hostile.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { createEnumNodesBackupsDatabase } from './helpers/enum-nodes-backups.js';
import { parseSamples, samples, value, type ParsedSample } from './helpers/prom-text.js';
import { createTestRedis, type TestRedis } from './helpers/redis.js';

const NOW = new Date('2026-06-01T12:00:00.000Z');
const EXPECTED = ['SRV1-WEB', 'MAIL-CORE', 'DNS-CORE', 'CLOUD-CORE', 'MIGRAGUARD-QUANTUM', 'DB-CORE', 'MPANEL-CORE', 'VOIP-CORE'];
const MiB = 1024 * 1024;

/** What one collection of the whole exporter shows. */
interface Outcome {
  text: string;
  parsed: ParsedSample[];
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  overview: any;
  /** ops_source_invalid_values of core_nodes, non-zero ones, by reason. */
  invalid: Record<string, number>;
  /** Samples the runner kept for core_nodes. */
  seriesKept: number;
}

let db: TestDatabase;
let redis: TestRedis;

beforeAll(async () => {
  db = await createTestDatabase('hostile_core_nodes');
  db.admin.on('error', () => undefined);
  redis = await createTestRedis('hostile-core-nodes');
});

afterAll(async () => {
  await db?.drop();
  await redis?.cleanup();
});

async function seed(sql: string): Promise<void> {
  await db.admin.query('TRUNCATE "CoreNode"');
  await db.admin.query(sql);
}

/** The exporter as production runs it, one collection at NOW; asserts what every case must hold. */
async function collect(): Promise<Outcome> {
  const { text, overview, invalid, state } = await collectChecked('hostile-core-nodes', 'core_nodes', { db, redis, now: () => NOW });
  return { text, parsed: parseSamples(text), overview, invalid, seriesKept: state?.samples.length ?? 0 };
}

/** The source alone on its own Database, with the bytes PostgreSQL sent for one collection. */
async function collectDirect(url: string, options: CoreNodesOptions): Promise<{ data: CoreNodesData; bytesReceived: number }> {
  const database = new Database({ url, poolMax: 1 });
  const sockets: Array<{ bytesRead: number }> = [];
  database.pool.on('connect', (client) => sockets.push((client as unknown as { connection: { stream: { bytesRead: number } } }).connection.stream));
  try {
    const data = await coreNodesSource(database, options).collect({ now: NOW, signal: new AbortController().signal, timeoutMs: 10_000 });
    return { data, bytesReceived: sockets.reduce((sum, s) => sum + s.bytesRead, 0) };
  } finally {
    await database.close();
  }
}

const nodesOf = (parsed: ParsedSample[]) => new Set(parsed.filter((s) => s.name === 'ops_core_node_status').map((s) => s.labels.node));
const statusOf = (text: string, node: string) =>
  samples(text, 'ops_core_node_status', { node })
    .filter((s) => s.value === 1)
    .map((s) => s.labels.status);

describe('huge metrics documents (item 1)', () => {
  it('a 40 MiB document and 24 of 1 MiB are never transferred: three keys are read in SQL', async () => {
    await seed(`
      INSERT INTO "CoreNode" (id, hostname, role, status, metrics, "lastMetricsAt", "updatedAt")
        VALUES ('big', 'SRV1-WEB', 'WEB', 'ONLINE',
                jsonb_build_object('cpuPercent', 50, 'ramPercent', 60.5, 'diskPercent', 70, 'pad', repeat('x', 40 * ${MiB})),
                '2026-06-01 11:59:00', now());
      INSERT INTO "CoreNode" (id, hostname, role, status, metrics, "updatedAt")
        SELECT 'm' || i, 'bulk-' || lpad(i::text, 2, '0'), 'WEB', 'ONLINE',
               jsonb_build_object('cpuPercent', i, 'pad', repeat(md5(i::text), ${MiB / 32})), now()
          FROM generate_series(1, 24) i;`);
    const { rows } = await db.admin.query<{ bytes: string }>(`SELECT sum(octet_length(metrics ->> 'pad'))::text AS bytes FROM "CoreNode"`);
    expect(Number(rows[0]?.bytes)).toBe(64 * MiB);

    const { data, bytesReceived } = await collectDirect(db.readerUrl, { expectedNodes: EXPECTED, maxNodes: 5000 });
    // 25 rows of a few numbers each, the enum-label lookup and the session setup.
    expect(bytesReceived).toBeLessThan(64 * 1024);
    expect(data.nodes.find((n) => n.hostname === 'SRV1-WEB')).toMatchObject({ cpuRatio: 0.5, memoryRatio: 0.605, diskRatio: 0.7 });
    expect(data.nodes.filter((n) => n.hostname.startsWith('bulk-')).map((n) => n.cpuRatio)).toEqual(Array.from({ length: 24 }, (_, i) => (i + 1) / 100));

    const o = await collect();
    expect(value(o.text, 'ops_core_node_cpu_ratio', { node: 'SRV1-WEB' })).toBe(0.5);
    expect(value(o.text, 'ops_core_node_memory_ratio', { node: 'SRV1-WEB' })).toBe(0.605);
    expect(value(o.text, 'ops_core_node_cpu_ratio', { node: 'bulk-24' })).toBe(0.24);
    expect(o.invalid).toEqual({});
    expect(o.overview.coreNodes.find((n: { label: string }) => n.label === 'SRV1-WEB')).toMatchObject({ cpuPercent: 50, ramPercent: 60.5, diskPercent: 70 });
  });

  it('a 1 MiB string as a percentage is wrong_type, and neither it nor the document is read', async () => {
    await seed(`
      INSERT INTO "CoreNode" (id, hostname, role, status, metrics, "updatedAt")
        VALUES ('s', 'SRV1-WEB', 'WEB', 'ONLINE', jsonb_build_object('cpuPercent', repeat('9', ${MiB}), 'ramPercent', 1e400, 'diskPercent', -1e-400), now());`);
    const { data, bytesReceived } = await collectDirect(db.readerUrl, { expectedNodes: EXPECTED, maxNodes: 5000 });
    expect(bytesReceived).toBeLessThan(64 * 1024);
    // 1e400 is beyond a double (wrong_type, as JSON.parse's Infinity was);
    // -1e-400 rounds to 0 like JSON.parse's -0: a real 0 %.
    expect(data.invalid).toEqual({ wrong_type: 2 });
    expect(data.nodes[0]).toMatchObject({ hostname: 'SRV1-WEB', cpuRatio: undefined, memoryRatio: undefined, diskRatio: 0 });
  });
});

describe('impossible times (item 5)', () => {
  it('infinity, -infinity, BC and year 10000 in lastMetricsAt are invalid for their row only', async () => {
    await seed(`
      INSERT INTO "CoreNode" (id, hostname, role, status, metrics, "lastMetricsAt", "updatedAt") VALUES
        ('n1', 'SRV1-WEB', 'WEB', 'ONLINE', '{"cpuPercent": 10}', 'infinity', now()),
        ('n2', 'MAIL-CORE', 'MAIL', 'ONLINE', '{"cpuPercent": 20}', '-infinity', now()),
        ('n3', 'DNS-CORE', 'DNS', 'OFFLINE', '{"cpuPercent": 30}', '4713-01-01 00:00:00 BC', now()),
        ('n4', 'CLOUD-CORE', 'CLOUD', 'ONLINE', '{"cpuPercent": 40}', '10000-01-01 00:00:00', now()),
        ('n5', 'DB-CORE', 'DATABASE', 'ONLINE', '{"cpuPercent": 50}', '2026-06-01 11:00:00', now()),
        ('n6', 'VOIP-CORE', 'VOIP', 'ONLINE', NULL, '2026-06-01 12:04:59.999', now()),
        ('n7', 'MPANEL-CORE', 'PANEL', 'ONLINE', NULL, '2026-06-01 12:05:00.001', now());`);
    const o = await collect();
    for (const node of ['SRV1-WEB', 'MAIL-CORE', 'DNS-CORE', 'CLOUD-CORE', 'MPANEL-CORE']) {
      expect(value(o.text, 'ops_core_node_metrics_timestamp_seconds', { node }), node).toBeUndefined();
      expect(o.overview.coreNodes.find((n: { label: string }) => n.label === node), node).not.toHaveProperty('lastMetricsAt');
    }
    expect(value(o.text, 'ops_core_node_metrics_timestamp_seconds', { node: 'DB-CORE' })).toBe(NOW.getTime() / 1000 - 3600);
    // Within the 300 s clock-skew allowance: served as written.
    expect(value(o.text, 'ops_core_node_metrics_timestamp_seconds', { node: 'VOIP-CORE' })).toBe(NOW.getTime() / 1000 + 299.999);
    expect(o.invalid).toEqual({ bad_timestamp: 5 });
    // The rest of each row is still used.
    expect(value(o.text, 'ops_core_node_cpu_ratio', { node: 'SRV1-WEB' })).toBe(0.1);
    expect(statusOf(o.text, 'DNS-CORE')).toEqual(['OFFLINE']);
    expect(o.overview.coreNodes.find((n: { label: string }) => n.label === 'DB-CORE').lastMetricsAt).toBe('2026-06-01T11:00:00.000Z');
  });
});

describe('bounds that never hide what pages (item 7)', () => {
  it('5,000 ONLINE nodes sorting first: every expected and every non-ONLINE node keeps its series, counts stay exact', async () => {
    await seed(`
      INSERT INTO "CoreNode" (id, hostname, role, status, "updatedAt")
        SELECT 'bulk' || i, '0000-bulk-' || lpad(i::text, 5, '0'), 'WEB', 'ONLINE', now() FROM generate_series(1, 5000) i;
      INSERT INTO "CoreNode" (id, hostname, role, status, "updatedAt")
        SELECT 'e' || ord, h, 'WEB', 'ONLINE', now() FROM unnest(ARRAY[${EXPECTED.map((h) => `'${h}'`).join(', ')}]) WITH ORDINALITY AS x(h, ord);
      INSERT INTO "CoreNode" (id, hostname, role, status, "updatedAt") VALUES
        ('z1', 'zzzz-offline', 'WEB', 'OFFLINE', now()),
        ('z2', 'zzzz-degraded', 'WEB', 'DEGRADED', now()),
        ('z3', 'zzzz-maintenance', 'WEB', 'MAINTENANCE', now()),
        ('z4', 'zzzz-null', 'WEB', NULL, now()),
        ('z5', 'zzzz-retired', 'WEB', 'RETIRED', now());`);
    const o = await collect();
    expect(statusOf(o.text, 'SRV1-WEB')).toEqual(['ONLINE']);
    for (const node of EXPECTED) expect(value(o.text, 'ops_core_node_expected', { node }), node).toBe(1);
    expect(statusOf(o.text, 'zzzz-offline')).toEqual(['OFFLINE']);
    expect(statusOf(o.text, 'zzzz-degraded')).toEqual(['DEGRADED']);
    expect(statusOf(o.text, 'zzzz-maintenance')).toEqual(['MAINTENANCE']);
    expect(statusOf(o.text, 'zzzz-null')).toEqual(['UNKNOWN']);
    expect(statusOf(o.text, 'zzzz-retired')).toEqual(['UNKNOWN']);
    expect(samples(o.text, 'ops_core_node_status', { status: 'MISSING' }).filter((s) => s.value === 1)).toEqual([]);
    // The healthy remainder fills the bound, in hostname order.
    expect(nodesOf(o.parsed).size).toBe(MAX_REPORTED_NODES);
    expect(nodesOf(o.parsed).has('0000-bulk-00487')).toBe(true);
    expect(nodesOf(o.parsed).has('0000-bulk-00488')).toBe(false);
    // Every row counted by status, also those without series.
    expect(Object.fromEntries(samples(o.text, 'ops_core_nodes').map((s) => [s.labels.status, s.value]))).toEqual({
      ONLINE: 5008,
      DEGRADED: 1,
      OFFLINE: 1,
      MAINTENANCE: 1,
      UNKNOWN: 2,
    });
    // What was left out is counted exactly: the runner's series cap cut nothing.
    expect(o.invalid).toEqual({ label_overflow: 5013 - MAX_REPORTED_NODES, null_value: 1, unknown_value: 1 });
    expect(o.seriesKept).toBeLessThanOrEqual(MAX_REPORTED_NODES * SERIES_PER_NODE + 5);
    expect(o.seriesKept).toBeLessThan(MAX_SERIES_PER_SOURCE / 1.5);
    expect(o.overview.coreNodes).toHaveLength(MAX_REPORTED_NODES);
  });

  it('more non-ONLINE nodes than the bound: expected first, then OFFLINE, then the other states', async () => {
    await seed(`
      INSERT INTO "CoreNode" (id, hostname, role, status, "updatedAt")
        SELECT 'd' || i, 'a-degraded-' || lpad(i::text, 4, '0'), 'WEB', 'DEGRADED', now() FROM generate_series(1, 1200) i;
      INSERT INTO "CoreNode" (id, hostname, role, status, "updatedAt")
        SELECT 'o' || i, 'z-offline-' || lpad(i::text, 2, '0'), 'WEB', 'OFFLINE', now() FROM generate_series(1, 20) i;
      INSERT INTO "CoreNode" (id, hostname, role, status, "updatedAt") VALUES ('e1', 'SRV1-WEB', 'WEB', 'ONLINE', now());`);
    const o = await collect();
    const nodes = nodesOf(o.parsed);
    expect(statusOf(o.text, 'SRV1-WEB')).toEqual(['ONLINE']);
    for (let i = 1; i <= 20; i++) expect(nodes.has(`z-offline-${String(i).padStart(2, '0')}`)).toBe(true);
    // 500 reported one by one: SRV1-WEB, 20 OFFLINE, 479 DEGRADED; plus 7 expected MISSING.
    expect([...nodes].filter((n) => n?.startsWith('a-degraded-'))).toHaveLength(MAX_REPORTED_NODES - 21);
    expect(samples(o.text, 'ops_core_node_status', { status: 'MISSING' }).filter((s) => s.value === 1)).toHaveLength(7);
    expect(value(o.text, 'ops_core_nodes', { status: 'DEGRADED' })).toBe(1200);
    expect(value(o.text, 'ops_core_nodes', { status: 'OFFLINE' })).toBe(20);
    expect(o.invalid).toEqual({ label_overflow: 1221 - MAX_REPORTED_NODES });
  });
});

describe('empty hostname (item 10)', () => {
  it('gets no per-node series (no empty label), is counted null_value and stays in ops_core_nodes; so does a NULL one', async () => {
    // A platform whose hostname column allows NULL.
    await db.admin.query('ALTER TABLE "CoreNode" ALTER COLUMN hostname DROP NOT NULL');
    await seed(`
      INSERT INTO "CoreNode" (id, hostname, role, status, metrics, "updatedAt") VALUES
        ('n0', '', 'WEB', 'OFFLINE', '{"cpuPercent": 5}', now()),
        ('nn', NULL, 'WEB', 'DEGRADED', NULL, now()),
        ('n1', 'SRV1-WEB', 'WEB', 'ONLINE', NULL, now());`);
    const o = await collect();
    expect(o.parsed.filter((s) => s.name.startsWith('ops_core_node_') && s.labels.node === '')).toEqual([]);
    expect(o.parsed.filter((s) => s.name.startsWith('ops_core_node_') && !('node' in s.labels))).toEqual([]);
    expect(value(o.text, 'ops_core_nodes', { status: 'OFFLINE' })).toBe(1);
    expect(value(o.text, 'ops_core_nodes', { status: 'DEGRADED' })).toBe(1);
    expect(value(o.text, 'ops_core_nodes', { status: 'ONLINE' })).toBe(1);
    expect(o.invalid).toEqual({ null_value: 2 });
    expect(o.overview.coreNodes.map((n: { label: string }) => n.label)).not.toContain('');
  });
});

describe('an enum + timestamptz schema (issue 10)', () => {
  let enumDb: TestDatabase;
  beforeAll(async () => {
    enumDb = await createEnumNodesBackupsDatabase('hostile_core_nodes');
  });
  afterAll(async () => {
    await enumDb?.drop();
  });

  it('reads the same numbers: priorities, counts, percentages and times through enum labels', async () => {
    await enumDb.admin.query(`
      INSERT INTO "CoreNode" (id, hostname, role, status, metrics, "lastMetricsAt", "updatedAt")
        SELECT 'b' || i, 'a-bulk-' || i, 'WEB', 'ONLINE', NULL, NULL, now() FROM generate_series(1, 5) i;
      INSERT INTO "CoreNode" (id, hostname, role, status, metrics, "lastMetricsAt", "updatedAt") VALUES
        ('s1', 'SRV1-WEB', 'WEB', 'ONLINE', jsonb_build_object('cpuPercent', 12.5, 'ramPercent', '50', 'pad', repeat('x', ${MiB})), '2026-06-01 11:00:00+00', now()),
        ('s2', 'z-off', 'DATABASE', 'OFFLINE', '{"diskPercent": 101}', '2026-06-01 14:04:00+02', now()),
        ('s3', 'z-retired', NULL, 'RETIRED', '[1]', '2026-06-01 12:06:00+00', now()),
        ('s4', 'z-null', 'MAIL', NULL, NULL, 'infinity', now());`);
    const { data, bytesReceived } = await collectDirect(enumDb.readerUrl, { expectedNodes: ['SRV1-WEB', 'DB-CORE'], maxNodes: 4 });
    expect(bytesReceived).toBeLessThan(64 * 1024);
    const view = Object.fromEntries(data.nodes.map((n) => [n.hostname, n]));
    expect(Object.keys(view)).toEqual(['SRV1-WEB', 'DB-CORE', 'z-null', 'z-off', 'z-retired']);
    expect(view['SRV1-WEB']).toMatchObject({ statusLabel: 'ONLINE', cpuRatio: 0.125, memoryRatio: undefined, lastMetricsAt: new Date('2026-06-01T11:00:00Z') });
    expect(view['DB-CORE']).toMatchObject({ statusLabel: 'MISSING', id: null });
    // 14:04 at +02 is 12:04 UTC: inside the skew allowance.
    expect(view['z-off']).toMatchObject({ statusLabel: 'OFFLINE', diskRatio: undefined, lastMetricsAt: new Date('2026-06-01T12:04:00Z') });
    expect(view['z-retired']).toMatchObject({ status: 'RETIRED', statusLabel: 'UNKNOWN', roleLabel: 'UNKNOWN', lastMetricsAt: undefined });
    expect(view['z-null']).toMatchObject({ statusLabel: 'UNKNOWN', lastMetricsAt: undefined });
    expect(data.statusCounts).toEqual({ ONLINE: 6, DEGRADED: 0, OFFLINE: 1, MAINTENANCE: 0, UNKNOWN: 2 });
    expect(data.invalid).toEqual({
      wrong_type: 2, // ramPercent "50", metrics an array
      out_of_range: 1, // diskPercent 101
      bad_timestamp: 2, // 12:06 UTC (beyond skew), infinity
      unknown_value: 1, // RETIRED
      null_value: 2, // z-retired role, z-null status
      label_overflow: 5, // 9 rows, 4 reported one by one
    });
  });
});

describe('mapping (pure)', () => {
  const row = (hostname: string, status: string | null, extra: Partial<CoreNodeRow> = {}): CoreNodeRow => ({
    id: hostname,
    hostname,
    hostnameCut: false,
    role: 'WEB',
    status,
    metricsType: null,
    cpuType: null,
    cpuValue: null,
    ramType: null,
    ramValue: null,
    diskType: null,
    diskValue: null,
    lastMetricsAt: null,
    badLastMetricsAt: false,
    ...extra,
  });

  it('percentages follow parsePercent on the type and value SQL read', () => {
    const cases: Array<[Parameters<typeof percentFrom>[0], number | null, number | undefined, keyof InvalidCounts | null]> = [
      ['number', 55, 0.55, null],
      ['number', 0, 0, null],
      ['number', 100, 1, null],
      ['number', 100.01, undefined, 'out_of_range'],
      ['number', -1, undefined, 'out_of_range'],
      ['number', null, undefined, 'wrong_type'],
      ['string', null, undefined, 'wrong_type'],
      ['object', null, undefined, 'wrong_type'],
      ['array', null, undefined, 'wrong_type'],
      ['boolean', null, undefined, 'wrong_type'],
      ['null', null, undefined, null],
      [null, null, undefined, null],
    ];
    for (const [type, v, expected, reason] of cases) {
      const invalid: InvalidCounts = {};
      expect(percentFrom(type, v, invalid), `${type} ${v}`).toBe(expected);
      expect(invalid).toEqual(reason ? { [reason]: 1 } : {});
    }
  });

  it('counts rows beyond the bound and nameless rows, keeps every status count, marks cut hostnames', () => {
    const data = mapCoreNodes(
      {
        rows: [row('SRV1-WEB', 'ONLINE'), row('', 'OFFLINE'), row(`${'h'.repeat(190)}…0123abcd`, 'DEGRADED', { hostnameCut: true })],
        counts: [
          { status: 'ONLINE', nodes: 10 },
          { status: 'OFFLINE', nodes: 1 },
          { status: 'DEGRADED', nodes: 1 },
          { status: null, nodes: 3 },
        ],
      },
      { expectedNodes: ['SRV1-WEB'] },
      NOW,
    );
    expect(data.nodes.map((n) => n.hostname)).toEqual(['SRV1-WEB', `${'h'.repeat(190)}…0123abcd`]);
    expect(data.statusCounts).toEqual({ ONLINE: 10, DEGRADED: 1, OFFLINE: 1, MAINTENANCE: 0, UNKNOWN: 3 });
    expect(data.omitted).toBe(15 - 3 + 1);
    expect(data.invalid).toEqual({ label_overflow: 12 + 1, null_value: 1 });
    const s = coreNodeSamples(data);
    expect(s.filter((x) => x.metric === 'coreNodes').map((x) => [x.labels.status, x.value])).toEqual([
      ['ONLINE', 10],
      ['DEGRADED', 1],
      ['OFFLINE', 1],
      ['MAINTENANCE', 0],
      ['UNKNOWN', 3],
    ]);
    expect(s.every((x) => x.labels.node !== '')).toBe(true);
  });

  it('a time that reached JavaScript invalid is still dropped and counted', () => {
    const data = mapCoreNodes(
      { rows: [row('A', 'ONLINE', { lastMetricsAt: new Date(NOW.getTime() + 301_000) }), row('B', 'ONLINE', { badLastMetricsAt: true })], counts: [{ status: 'ONLINE', nodes: 2 }] },
      { expectedNodes: [] },
      NOW,
    );
    expect(data.nodes.map((n) => n.lastMetricsAt)).toEqual([undefined, undefined]);
    expect(data.invalid).toEqual({ bad_timestamp: 2 });
  });
});
