/**
 * Backups under hostile times (issue 11 items 5 and 6; issue 10 for the enum
 * + timestamptz schema), on real PostgreSQL: a backup dated in the future,
 * at infinity, in year 10000 or before 1970 is invalid, counted, and never
 * the "last success", so the real last backup stays visible and the backup
 * pages can fire; the query stays a loose index scan on the exporter's
 * indexes. Each case: the source up, /metrics 200 and accepted by promtool,
 * the API 200.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Database } from '../src/db/client.js';
import type { EnumLabels } from '../src/db/enum-labels.js';
import { MAX_LABEL_VALUE_LENGTH } from '../src/metrics/bound.js';
import { backupSamples, backupsSource, INVALID_PROBE_LIMIT, lastBackupsSql, MAX_BACKUP_TYPES, type BackupsData } from '../src/sources/backups.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { collectChecked } from './helpers/hostile.js';
import { createEnumNodesBackupsDatabase, ENUM_BACKUP_STATUSES } from './helpers/enum-nodes-backups.js';
import { samples, value } from './helpers/prom-text.js';
import { createTestRedis, type TestRedis } from './helpers/redis.js';

const NOW = new Date('2026-06-01T12:00:00.000Z');
const S = NOW.getTime() / 1000;
const H = 3600;
const DAY = 24 * H;
/** SQL literal of the UTC wall time `seconds` from NOW. */
const at = (seconds: number) => `'${new Date(NOW.getTime() + seconds * 1000).toISOString().replace('T', ' ').replace('Z', '')}'`;

/** The hostile seed every variant gets; times in UTC wall time (timestamptz reads them in UTC: the seeding session's TimeZone is set). */
const HOSTILE_SEED = `
  INSERT INTO "Backup" (id, "resourceType", status, "startedAt", "completedAt") VALUES
    -- DB_CORE: the real last success is 3 days old; newer "successes" are impossible.
    ('d1', 'DB_CORE', 'COMPLETED', ${at(-3 * DAY - H)}, ${at(-3 * DAY)}),
    ('d2', 'DB_CORE', 'COMPLETED', ${at(-4 * DAY - H)}, ${at(-4 * DAY)}),
    ('d3', 'DB_CORE', 'COMPLETED', ${at(-H)}, '9999-01-01 00:00:00'),
    ('d4', 'DB_CORE', 'COMPLETED', ${at(-H)}, 'infinity'),
    ('d5', 'DB_CORE', 'COMPLETED', ${at(-H)}, '10000-01-01 00:00:00'),
    ('d6', 'DB_CORE', 'COMPLETED', ${at(-H)}, ${at(301)}),
    ('d7', 'DB_CORE', 'COMPLETED', '-infinity', NULL),
    ('d8', 'DB_CORE', 'COMPLETED', '4713-01-01 00:00:00 BC', NULL),
    -- FAILED: the real last failure is 2 days old.
    ('f1', 'DB_CORE', 'FAILED', ${at(-2 * DAY)}, NULL),
    ('f2', 'DB_CORE', 'FAILED', 'infinity', NULL),
    -- MPANEL_CORE: startedAt at infinity with no completedAt is no success.
    ('m1', 'MPANEL_CORE', 'COMPLETED', ${at(-2 * H)}, ${at(-H)}),
    ('m2', 'MPANEL_CORE', 'COMPLETED', 'infinity', NULL),
    -- CLOUD_POD: only an impossible success, so it never succeeded.
    ('c1', 'CLOUD_POD', 'COMPLETED', ${at(-H)}, 'infinity'),
    -- MAIL_CORE: 299 s ahead is within the clock-skew allowance.
    ('x1', 'MAIL_CORE', 'COMPLETED', ${at(-H)}, ${at(299)});`;

/** What HOSTILE_SEED must give, in samples. */
function expectHostileOutcome(value: (metric: string, rt: string) => number | undefined): void {
  expect(value('ops_backup_last_success_timestamp_seconds', 'DB_CORE')).toBe(S - 3 * DAY);
  expect(value('ops_backup_ever_succeeded', 'DB_CORE')).toBe(1);
  expect(value('ops_backup_last_failure_timestamp_seconds', 'DB_CORE')).toBe(S - 2 * DAY);
  expect(value('ops_backup_last_success_timestamp_seconds', 'MPANEL_CORE')).toBe(S - H);
  expect(value('ops_backup_ever_succeeded', 'CLOUD_POD')).toBe(0);
  expect(value('ops_backup_last_success_timestamp_seconds', 'CLOUD_POD')).toBeUndefined();
  expect(value('ops_backup_last_success_timestamp_seconds', 'MAIL_CORE')).toBe(S + 299);
}
/** d3..d8, f2, m2, c1. */
const HOSTILE_BAD = 9;

let db: TestDatabase;
let redis: TestRedis;

beforeAll(async () => {
  db = await createTestDatabase('hostile_backups');
  db.admin.on('error', () => undefined);
  redis = await createTestRedis('hostile-backups');
});

afterAll(async () => {
  await db?.drop();
  await redis?.cleanup();
});

async function seed(pool: TestDatabase['admin'], sql: string): Promise<void> {
  const c = await pool.connect();
  try {
    await c.query(`SET TimeZone = 'UTC'; TRUNCATE "Backup"; ${sql}; ANALYZE "Backup"`);
  } finally {
    c.release();
  }
}

/** The exporter as production runs it, one collection at NOW; asserts what every case must hold. */
const collect = () => collectChecked('hostile-backups', 'backups', { db, redis, now: () => NOW });

/** The source alone on its own Database. */
async function collectDirect(url: string): Promise<BackupsData> {
  const database = new Database({ url, poolMax: 1 });
  try {
    return await backupsSource(database, { labelValueLimit: 200 }).collect({ now: NOW, signal: new AbortController().signal, timeoutMs: 10_000 });
  } finally {
    await database.close();
  }
}

/** Every plan node of an EXPLAIN (FORMAT JSON) document. */
function planNodes(plan: Record<string, unknown>): Array<Record<string, unknown>> {
  const children = (plan.Plans as Array<Record<string, unknown>> | undefined) ?? [];
  return [plan, ...children.flatMap(planNodes)];
}

async function explain(pool: TestDatabase['admin'], labels: EnumLabels) {
  const q = lastBackupsSql(labels, NOW);
  const c = await pool.connect();
  try {
    await c.query(`SET TimeZone = 'UTC'`);
    const { rows } = await c.query<{ 'QUERY PLAN': Array<{ Plan: Record<string, unknown> }> }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${q.text}`, q.values);
    const nodes = planNodes(rows[0]!['QUERY PLAN'][0]!.Plan);
    return {
      seqScans: nodes.filter((n) => n['Node Type'] === 'Seq Scan').map((n) => n['Relation Name']),
      indexes: [...new Set(nodes.map((n) => n['Index Name']).filter(Boolean))].sort(),
      /** Rows the index scans returned, summed over their loops. */
      indexRows: nodes.filter((n) => String(n['Node Type']).startsWith('Index')).reduce((sum, n) => sum + Number(n['Actual Rows']) * Number(n['Actual Loops']), 0),
    };
  } finally {
    c.release();
  }
}

/**
 * 200,000 backups of 4 types (a year of history), and 300 impossible ones;
 * `enums` casts the computed values to the enum schema's types.
 */
const historySeed = (enums: boolean) => `
  INSERT INTO "Backup" (id, "resourceType", status, "startedAt", "completedAt")
    SELECT 'h' || i,
           ((ARRAY['DB_CORE', 'MPANEL_CORE', 'CLOUD_POD', 'MAIL_CORE', 'DB_CORE'])[1 + i % 5])${enums ? '::"BackupResourceType"' : ''},
           (CASE WHEN i % 10 = 0 THEN 'FAILED' ELSE 'COMPLETED' END)${enums ? '::"BackupStatus"' : ''},
           ${at(-DAY)}::timestamp - i * interval '150 seconds', ${at(-DAY)}::timestamp - i * interval '150 seconds' + interval '10 minutes'
      FROM generate_series(1, 200000) i;
  INSERT INTO "Backup" (id, "resourceType", status, "startedAt", "completedAt")
    SELECT 'z' || i, 'DB_CORE', 'COMPLETED', ${at(-H)}, (CASE i % 3 WHEN 0 THEN 'infinity' WHEN 1 THEN '9999-01-01' ELSE '-infinity' END)::timestamp
      FROM generate_series(1, 300) i`;

describe('impossible backup times (items 5 and 6)', () => {
  it('a future, infinite or pre-1970 backup never wins: the real last success stays visible, counted bad_timestamp', async () => {
    await seed(db.admin, HOSTILE_SEED);
    const o = await collect();
    expectHostileOutcome((metric, rt) => value(o.text, metric, { resource_type: rt }));
    expect(o.invalid).toEqual({ bad_timestamp: HOSTILE_BAD });
    expect(o.overview.backups).toEqual({
      dbCoreLastSuccess: new Date((S - 3 * DAY) * 1000).toISOString(),
      mpanelCoreLastSuccess: new Date((S - H) * 1000).toISOString(),
      notes: 'No successful backup recorded for CloudPods',
    });
  });

  it('counts at most INVALID_PROBE_LIMIT impossible backups per type, status and side', async () => {
    await seed(
      db.admin,
      `INSERT INTO "Backup" (id, "resourceType", status, "startedAt", "completedAt")
         SELECT 'f' || i, 'DB_CORE', 'COMPLETED', ${at(-H)}, ${at(400)}::timestamp + i * interval '1 day' FROM generate_series(1, 150) i;
       INSERT INTO "Backup" (id, "resourceType", status, "startedAt", "completedAt")
         SELECT 'p' || i, 'DB_CORE', 'COMPLETED', '1960-01-01'::timestamp - i * interval '1 day', NULL FROM generate_series(1, 3) i;
       INSERT INTO "Backup" (id, "resourceType", status, "startedAt", "completedAt") VALUES ('ok', 'DB_CORE', 'COMPLETED', ${at(-2 * H)}, ${at(-H)})`,
    );
    const o = await collect();
    expect(value(o.text, 'ops_backup_last_success_timestamp_seconds', { resource_type: 'DB_CORE' })).toBe(S - H);
    expect(o.invalid).toEqual({ bad_timestamp: INVALID_PROBE_LIMIT + 3 });
  });

  it('keeps the loose index scan: the exporter indexes only, no Seq Scan, rows read follow the types not the history', async () => {
    await seed(db.admin, historySeed(false));
    const text: EnumLabels = new Map([['Backup.status', null]]);
    const plan = await explain(db.admin, text);
    expect(plan.seqScans).toEqual([]);
    expect(plan.indexes).toEqual(['Backup_completed_idx', 'Backup_failed_idx']);
    // Per (type, status), 4 COMPLETED and 1 FAILED: one step of the type walk
    // and one newest row, plus the capped invalid probes of DB_CORE (2 × 100)
    // and 2 of slack; never the 200,000 rows of history.
    expect(plan.indexRows).toBeLessThanOrEqual(2 * (4 + 1) + 2 * INVALID_PROBE_LIMIT + 2);
    const data = await collectDirect(db.readerUrl);
    const samples = backupSamples(data);
    const last = Object.fromEntries(samples.filter((s) => s.metric === 'backupLastSuccess').map((s) => [s.labels.resource_type, s.value]));
    // The newest COMPLETED row of each type: i = 4, 1, 2, 3 (completedAt = start + 600 s).
    expect(last).toEqual({ DB_CORE: S - DAY, MPANEL_CORE: S - DAY + 450, CLOUD_POD: S - DAY + 300, MAIL_CORE: S - DAY + 150 });
    // 100 at infinity and 100 in 9999 reach the future-side cap; 100 at -infinity the past side.
    expect(data.invalid).toEqual({ bad_timestamp: 2 * INVALID_PROBE_LIMIT });
  });
});

describe('a resource type per row (bounds that keep what pages)', () => {
  it('1,500 long type names sorting first: at most MAX_BACKUP_TYPES read, the critical types always, names cut in SQL', async () => {
    await seed(
      db.admin,
      `INSERT INTO "Backup" (id, "resourceType", status, "startedAt", "completedAt")
         SELECT 't' || i, 'A-' || lpad(i::text, 5, '0') || repeat('x', 300), 'COMPLETED', ${at(-2 * H)}, ${at(-H)} FROM generate_series(1, 1500) i;
       INSERT INTO "Backup" (id, "resourceType", status, "startedAt", "completedAt") VALUES
         ('d', 'DB_CORE', 'COMPLETED', ${at(-3 * H)}, ${at(-2 * H)}),
         ('c', 'CLOUD_POD', 'FAILED', ${at(-H)}, NULL)`,
    );
    const o = await collect();
    expect(value(o.text, 'ops_backup_last_success_timestamp_seconds', { resource_type: 'DB_CORE' })).toBe(S - 2 * H);
    expect(value(o.text, 'ops_backup_ever_succeeded', { resource_type: 'DB_CORE' })).toBe(1);
    expect(value(o.text, 'ops_backup_ever_succeeded', { resource_type: 'MPANEL_CORE' })).toBe(0);
    expect(value(o.text, 'ops_backup_ever_succeeded', { resource_type: 'CLOUD_POD' })).toBe(0);
    expect(value(o.text, 'ops_backup_last_failure_timestamp_seconds', { resource_type: 'CLOUD_POD' })).toBe(S - H);
    expect(value(o.text, 'ops_backup_last_success_timestamp_seconds', { resource_type: 'OTHER' })).toBe(S - H);
    const types = samples(o.text, 'ops_backup_ever_succeeded').map((s) => s.labels.resource_type ?? '');
    // The label limit (200): the 3 critical types, 197 cut names, OTHER.
    expect(types).toHaveLength(201);
    expect(types.filter((t) => /^A-\d{5}x{183}…[0-9a-f]{8}$/.test(t))).toHaveLength(197);
    expect(Math.max(...types.map((t) => t.length))).toBeLessThan(MAX_LABEL_VALUE_LENGTH);
    // 197 cut names, 803 of the 1,000 read merged into OTHER, and 1 for the 500 types never read.
    expect(o.invalid).toEqual({ label_overflow: 197 + (MAX_BACKUP_TYPES - 197) + 1 });
    expect(o.overview.backups).toEqual({
      dbCoreLastSuccess: new Date((S - 2 * H) * 1000).toISOString(),
      notes: 'No successful backup recorded for MPANEL-CORE, CloudPods',
    });
  });
});

describe('an enum + timestamptz schema (issue 10)', () => {
  let enumDb: TestDatabase;
  let noFailed: TestDatabase;
  beforeAll(async () => {
    enumDb = await createEnumNodesBackupsDatabase('hostile_backups');
    noFailed = await createEnumNodesBackupsDatabase('hostile_backups_nf', { backupStatuses: ['PENDING', 'RUNNING', 'COMPLETED'] });
  });
  afterAll(async () => {
    await enumDb?.drop();
    await noFailed?.drop();
  });

  it('gives the same numbers as the text schema', async () => {
    await seed(enumDb.admin, `${HOSTILE_SEED}; INSERT INTO "Backup" (id, "resourceType", status, "startedAt", "completedAt") VALUES ('a1', 'DB_CORE', 'ABORTED', ${at(-60)}, ${at(-30)})`);
    const data = await collectDirect(enumDb.readerUrl);
    const s = backupSamples(data);
    expectHostileOutcome((metric, rt) => {
      const key = { ops_backup_last_success_timestamp_seconds: 'backupLastSuccess', ops_backup_last_failure_timestamp_seconds: 'backupLastFailure', ops_backup_ever_succeeded: 'backupEverSucceeded' }[metric];
      return s.find((x) => x.metric === key && x.labels.resource_type === rt)?.value;
    });
    expect(data.invalid).toEqual({ bad_timestamp: HOSTILE_BAD });
  });

  it('uses the same indexes through enum literals', async () => {
    await seed(enumDb.admin, historySeed(true));
    const plan = await explain(enumDb.admin, new Map([['Backup.status', [...ENUM_BACKUP_STATUSES]]]));
    expect(plan.seqScans).toEqual([]);
    expect(plan.indexes).toEqual(['Backup_completed_idx', 'Backup_failed_idx']);
  });

  it('a status enum without FAILED: successes only, no error', async () => {
    await seed(noFailed.admin, `INSERT INTO "Backup" (id, "resourceType", status, "startedAt", "completedAt") VALUES ('ok', 'DB_CORE', 'COMPLETED', ${at(-2 * H)}, ${at(-H)})`);
    const data = await collectDirect(noFailed.readerUrl);
    expect(data.types.find((t) => t.resourceType === 'DB_CORE')).toEqual({ resourceType: 'DB_CORE', label: 'DB_CORE', lastSuccess: new Date((S - H) * 1000) });
    expect(data.invalid).toEqual({});
  });
});
