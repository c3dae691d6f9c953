/**
 * Hostile ProvisioningJob rows (issue 11, items 2, 3, 5, 10; issue 10 for
 * enum and timestamptz schemas), on the real PostgreSQL: huge strings are cut
 * in SQL and the API body stays small; thousands of label combinations are
 * bounded in SQL with totals kept exact and stuck types kept by name; times
 * out of range or in the future are counted, never a 500; the same numbers on
 * an enum-typed, timestamptz schema; and the queries still use the partial
 * indexes on the text schema.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readEnumLabels } from '../src/db/enum-labels.js';
import { Database } from '../src/db/client.js';
import { MAX_TEXT_LENGTH, provisioningQueries } from '../src/sources/provisioning.js';
import { createTestApp, type TestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { columnType, createVariantDatabase } from './helpers/schema-variants.js';
import { promtoolCheck, samples, value } from './helpers/prom-text.js';
import { createTestRedis, type TestRedis } from './helpers/redis.js';

const NOW = new Date('2026-06-01T12:00:00.000Z');
const H = 3_600_000;
/** SQL timestamp literal (UTC wall time) `ms` from NOW. */
const at = (ms: number) => `'${new Date(NOW.getTime() + ms).toISOString().replace('T', ' ').replace('Z', '')}'`;

const job = (id: string, type: string, action: string, resourceType: string, status: string, createdAt: string, startedAt = 'NULL') =>
  `INSERT INTO "ProvisioningJob" (id, type, action, "resourceType", status, "createdAt", "startedAt", "updatedAt")
     VALUES (${id}, ${type}, ${action}, ${resourceType}, '${status}', ${createdAt}, ${startedAt}, now());`;

/**
 * The enum + timestamptz platform of test/helpers/schema-variants.ts (JobStatus
 * without CANCELLED, resourceType an enum too), with the two provisioning
 * indexes as the enum-safe index file writes them.
 */
async function enumPlatform(): Promise<TestDatabase> {
  const target = await createVariantDatabase('hostile_prov', 'enum', { indexes: false });
  await target.admin.query(`
    CREATE INDEX "ProvisioningJob_live_idx" ON "ProvisioningJob"("status", "type", "createdAt", "startedAt")
      WHERE "status" NOT IN ('COMPLETED', 'FAILED');
    CREATE INDEX "ProvisioningJob_failed_createdAt_idx" ON "ProvisioningJob"("createdAt", "action", "resourceType")
      WHERE "status" = 'FAILED';`);
  return target;
}

let db: TestDatabase;
let enumDb: TestDatabase;
let redis: TestRedis;

beforeAll(async () => {
  db = await createTestDatabase('hostile_prov');
  enumDb = await enumPlatform();
  redis = await createTestRedis('hostile-prov');
});

afterAll(async () => {
  await db?.drop();
  await enumDb?.drop();
  await redis?.cleanup();
});

interface Outcome {
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  overview: any;
  bodyBytes: number;
  invalid: Record<string, number>;
}

/** Seeds `seed` into `target` (emptied first), collects once at NOW and reads /metrics and the API. */
async function collect(target: TestDatabase, seed: string, env: Record<string, string> = {}): Promise<Outcome> {
  await target.admin.query('TRUNCATE "ProvisioningJob"');
  await target.admin.query(seed);
  let t: TestApp | undefined;
  try {
    t = await createTestApp('hostile-prov', { db: target, redis, now: () => NOW, env });
    await t.app.collection.collectAll();
    const state = t.app.collection.states().find((s) => s.name === 'provisioning');
    expect(state?.lastError).toBeUndefined();
    const text = (await t.app.inject('/metrics')).body;
    const api = await t.app.inject({ url: '/api/ops/overview', headers: { authorization: t.authorization } });
    expect(api.statusCode).toBe(200);
    expect(promtoolCheck(text)).toEqual({ ok: true, output: '' });
    const invalid = Object.fromEntries(
      samples(text, 'ops_source_invalid_values', { source: 'provisioning' })
        .filter((s) => s.value !== 0)
        .map((s) => [s.labels.reason, s.value]),
    );
    return { text, overview: api.json(), bodyBytes: Buffer.byteLength(api.body), invalid };
  } finally {
    await t?.app.close();
  }
}

const sum = (text: string, name: string) => samples(text, name).reduce((a, s) => a + s.value, 0);

describe('unbounded strings', () => {
  // id, action and resourceType are in btree indexes (at most ~2,700 bytes a
  // row), so a platform cannot hold megabytes there; the other columns can.
  it('a 10 MiB resourceId, a 1 MiB tenantId and 2,000-character id, action, resourceType give a small API body, cut in SQL with a visible …', async () => {
    const big = (c: string, n: number) => `repeat('${c}', ${n})`;
    const o = await collect(
      db,
      `INSERT INTO "ProvisioningJob" (id, type, action, "resourceType", "resourceId", "tenantId", status, "errorMessage", "createdAt", "updatedAt")
         VALUES (${big('i', 2000)}, ${big('t', 2000)}, ${big('a', 2000)}, ${big('r', 2000)}, ${big('x', 10 << 20)}, ${big('n', 1 << 20)},
                 'FAILED', ${big('e', 10 << 20)}, ${at(-H)}, now());` +
        job(`'ok'`, `'dns'`, `'dns.zone.sync'`, `'DNS_ZONE'`, 'FAILED', at(-2 * H)),
    );
    expect(o.bodyBytes).toBeLessThan(8_000);
    const [huge, ok] = o.overview.provisioning.recentFailures;
    const cut = (c: string) => `${c.repeat(MAX_TEXT_LENGTH - 1)}…`;
    expect(huge).toEqual({
      id: cut('i'),
      action: cut('a'),
      resourceType: cut('r'),
      resourceId: cut('x'),
      tenantId: cut('n'),
      createdAt: new Date(NOW.getTime() - H).toISOString(),
      errorMessage: `${'e'.repeat(499)}…`,
    });
    expect(ok).toEqual({ id: 'ok', action: 'dns.zone.sync', resourceType: 'DNS_ZONE', createdAt: new Date(NOW.getTime() - 2 * H).toISOString() });
    // Labels are cut the runner's way: prefix, …, 8 hex digits of the whole value's SHA-256.
    const label = (c: string, n: number) => `${c.repeat(MAX_TEXT_LENGTH - 10)}…${createHash('sha256').update(c.repeat(n)).digest('hex').slice(0, 8)}`;
    expect(value(o.text, 'ops_provisioning_failed_jobs_24h', { action: label('a', 2000), resource_type: label('r', 2000) })).toBe(1);
    expect(o.overview.provisioning.failedLast24h).toBe(2);
    expect(o.invalid).toEqual({ label_overflow: 2 });
  });

  it('a live job with a 2,000-character type gets a cut label, and its count', async () => {
    const o = await collect(db, job(`'j1'`, `repeat('h', 2000)`, `'x'`, `'y'`, 'PENDING', at(-60_000)));
    const label = `${'h'.repeat(190)}…${createHash('sha256').update('h'.repeat(2000)).digest('hex').slice(0, 8)}`;
    expect(value(o.text, 'ops_provisioning_jobs', { type: label, status: 'PENDING' })).toBe(1);
    expect(value(o.text, 'ops_provisioning_jobs_stuck', { type: label, status: 'PENDING' })).toBe(0);
    expect(o.invalid).toEqual({ label_overflow: 1 });
  });

  it('an empty type, action or resource type is counted under UNKNOWN, not an empty label', async () => {
    const o = await collect(db, job(`'j1'`, `''`, `'x'`, `'y'`, 'PENDING', at(-60_000)) + job(`'j2'`, `'dns'`, `''`, `''`, 'FAILED', at(-H)));
    expect(value(o.text, 'ops_provisioning_jobs', { type: 'UNKNOWN', status: 'PENDING' })).toBe(1);
    expect(value(o.text, 'ops_provisioning_failed_jobs_24h', { action: 'UNKNOWN', resource_type: 'UNKNOWN' })).toBe(1);
    expect(o.text).not.toMatch(/type=""|action=""|resource_type=""/);
    expect(o.invalid).toEqual({ unknown_value: 3 });
    expect(o.overview.provisioning.recentFailures[0]).toMatchObject({ id: 'j2', action: '', resourceType: '' });
  });
});

describe('label combinations', () => {
  it('200 × 200 distinct (action, resourceType) failures: the top 200 pairs keep labels, the rest is one OTHER/OTHER row, the sum is exact', async () => {
    const o = await collect(
      db,
      `INSERT INTO "ProvisioningJob" (id, type, action, "resourceType", status, "createdAt", "updatedAt")
         SELECT 'g' || a || '-' || r, 'hosting', 'action.' || a, 'TYPE_' || r, 'FAILED', ${at(-H)}, now()
           FROM generate_series(1, 200) a, generate_series(1, 200) r;
       INSERT INTO "ProvisioningJob" (id, type, action, "resourceType", status, "createdAt", "updatedAt")
         SELECT 'hot' || i, 'hosting', 'hot.action', 'HOT', 'FAILED', ${at(-2 * H)}, now() FROM generate_series(1, 50) i;`,
    );
    const series = samples(o.text, 'ops_provisioning_failed_jobs_24h');
    expect(series).toHaveLength(201);
    expect(sum(o.text, 'ops_provisioning_failed_jobs_24h')).toBe(40_050);
    expect(value(o.text, 'ops_provisioning_failed_jobs_24h', { action: 'hot.action', resource_type: 'HOT' })).toBe(50);
    // The other 199 kept pairs have one job each; the remaining 39,801 pairs are summed.
    expect(value(o.text, 'ops_provisioning_failed_jobs_24h', { action: 'OTHER', resource_type: 'OTHER' })).toBe(39_801);
    expect(value(o.text, 'ops_provisioning_failed_jobs_24h', { action: 'action.1', resource_type: 'TYPE_1' })).toBe(1);
    expect(o.invalid).toEqual({ label_overflow: 39_801 });
    expect(o.overview.provisioning.failedLast24h).toBe(40_050);
  });

  it('more live types than the limit: stuck types come first and keep their labels, every stuck job is counted', async () => {
    const seed = [
      // 20 busy types, 3 fresh PENDING jobs each (not stuck).
      `INSERT INTO "ProvisioningJob" (id, type, action, "resourceType", status, "createdAt", "updatedAt")
         SELECT 'b' || t || '-' || i, 'busy-' || lpad(t::text, 2, '0'), 'x', 'y', 'PENDING', ${at(-60_000)}, now()
           FROM generate_series(1, 20) t, generate_series(1, 3) i;`,
      // 7 types with one stuck job each: 4 PENDING for 2 h, 3 RUNNING since 2 h.
      ...[0, 1, 2, 3].map((i) => job(`'s${i}'`, `'stuck-${i}'`, `'x'`, `'y'`, 'PENDING', at(-2 * H))),
      ...[4, 5, 6].map((i) => job(`'s${i}'`, `'stuck-${i}'`, `'x'`, `'y'`, 'RUNNING', at(-3 * H), at(-2 * H))),
    ].join('');
    const o = await collect(db, seed, { OPS_LABEL_VALUE_LIMIT: '5' });
    expect(sum(o.text, 'ops_provisioning_jobs_stuck')).toBe(7);
    expect(o.overview.provisioning.stuckLast24h).toBe(7);
    for (const i of [0, 1, 2, 3]) expect(value(o.text, 'ops_provisioning_jobs_stuck', { type: `stuck-${i}`, status: 'PENDING' })).toBe(1);
    expect(value(o.text, 'ops_provisioning_jobs_stuck', { type: 'stuck-4', status: 'RUNNING' })).toBe(1);
    expect(value(o.text, 'ops_provisioning_jobs_stuck', { type: 'OTHER', status: 'RUNNING' })).toBe(2);
    expect(value(o.text, 'ops_provisioning_jobs_stuck', { type: 'OTHER', status: 'PENDING' })).toBe(0);
    expect(value(o.text, 'ops_provisioning_jobs', { type: 'OTHER', status: 'PENDING' })).toBe(60);
    expect(value(o.text, 'ops_provisioning_jobs', { type: 'OTHER', status: 'RUNNING' })).toBe(2);
    expect(sum(o.text, 'ops_provisioning_jobs')).toBe(67);
    expect(new Set(samples(o.text, 'ops_provisioning_jobs').map((s) => s.labels.type))).toEqual(
      new Set(['stuck-0', 'stuck-1', 'stuck-2', 'stuck-3', 'stuck-4', 'OTHER']),
    );
    // stuck-5, stuck-6 (RUNNING) and 20 busy types (PENDING): 22 merged rows.
    expect(o.invalid).toEqual({ label_overflow: 22 });
    expect(value(o.text, 'ops_provisioning_oldest_live_job_timestamp_seconds', { type: 'OTHER', status: 'RUNNING' })).toBe((NOW.getTime() - 2 * H) / 1000);
  });
});

/** Out-of-range and future times, and a few good rows around them. */
const TIMES_SEED = [
  job(`'inf'`, `'ssl'`, `'ssl.issue'`, `'CERTIFICATE'`, 'FAILED', `'infinity'`),
  job(`'-inf'`, `'ssl'`, `'ssl.issue'`, `'CERTIFICATE'`, 'FAILED', `'-infinity'`),
  job(`'bc'`, `'ssl'`, `'ssl.issue'`, `'CERTIFICATE'`, 'FAILED', `'0044-03-15 00:00:00 BC'`),
  job(`'y10k'`, `'ssl'`, `'ssl.issue'`, `'CERTIFICATE'`, 'FAILED', `'10000-01-01 00:00:00'`),
  job(`'future'`, `'ssl'`, `'ssl.issue'`, `'CERTIFICATE'`, 'FAILED', at(H)),
  job(`'skew'`, `'ssl'`, `'ssl.issue'`, `'CERTIFICATE'`, 'FAILED', at(60_000)),
  job(`'recent'`, `'dns'`, `'dns.zone.sync'`, `'DNS_ZONE'`, 'FAILED', at(-H)),
  job(`'year1'`, `'ssl'`, `'ssl.issue'`, `'CERTIFICATE'`, 'FAILED', `'0001-01-01 00:00:00'`),
  job(`'p-inf'`, `'hosting'`, `'x'`, `'WEBSITE'`, 'PENDING', `'infinity'`),
  job(`'p-bc'`, `'hosting'`, `'x'`, `'WEBSITE'`, 'PENDING', `'0001-01-01 00:00:00 BC'`),
  job(`'p-future'`, `'hosting'`, `'x'`, `'WEBSITE'`, 'PENDING', at(H)),
  job(`'p-ok'`, `'hosting'`, `'x'`, `'WEBSITE'`, 'PENDING', at(-2 * H)),
  job(`'r-neginf'`, `'hosting'`, `'x'`, `'WEBSITE'`, 'RUNNING', at(-H), `'-infinity'`),
  job(`'r-y10k'`, `'hosting'`, `'x'`, `'WEBSITE'`, 'RUNNING', at(-H), `'10000-01-01 00:00:00'`),
  job(`'r-ok'`, `'hosting'`, `'x'`, `'WEBSITE'`, 'RUNNING', at(-3 * H), at(-30 * 60_000)),
  job(`'d'`, `'hosting'`, `'x'`, `'WEBSITE'`, 'DELAYED', `'infinity'`),
].join('');

function expectTimesOutcome(o: Outcome): void {
  expect(o.invalid).toEqual({ bad_timestamp: 10 });
  expect(o.overview.provisioning.failedLast24h).toBe(2);
  expect(o.overview.provisioning.recentFailures.map((f: { id: string; createdAt: string }) => [f.id, f.createdAt])).toEqual([
    ['skew', new Date(NOW.getTime() + 60_000).toISOString()],
    ['recent', new Date(NOW.getTime() - H).toISOString()],
    ['year1', '0001-01-01T00:00:00.000Z'],
  ]);
  expect(value(o.text, 'ops_provisioning_failed_jobs_24h', { action: 'ssl.issue', resource_type: 'CERTIFICATE' })).toBe(1);
  expect(value(o.text, 'ops_provisioning_failed_jobs_24h', { action: 'dns.zone.sync', resource_type: 'DNS_ZONE' })).toBe(1);
  expect(value(o.text, 'ops_provisioning_jobs', { type: 'hosting', status: 'PENDING' })).toBe(4);
  expect(value(o.text, 'ops_provisioning_jobs', { type: 'hosting', status: 'RUNNING' })).toBe(3);
  expect(value(o.text, 'ops_provisioning_jobs', { type: 'hosting', status: 'DELAYED' })).toBe(1);
  expect(value(o.text, 'ops_provisioning_jobs_stuck', { type: 'hosting', status: 'PENDING' })).toBe(1);
  expect(value(o.text, 'ops_provisioning_jobs_stuck', { type: 'hosting', status: 'RUNNING' })).toBe(1);
  expect(o.overview.provisioning.stuckLast24h).toBe(2);
  expect(value(o.text, 'ops_provisioning_oldest_live_job_timestamp_seconds', { type: 'hosting', status: 'PENDING' })).toBe((NOW.getTime() - 2 * H) / 1000);
  expect(value(o.text, 'ops_provisioning_oldest_live_job_timestamp_seconds', { type: 'hosting', status: 'RUNNING' })).toBe((NOW.getTime() - 30 * 60_000) / 1000);
}

describe('out-of-range and future times', () => {
  it('infinity, -infinity, BC, year 10000 and the future (beyond the clock skew) are counted as bad_timestamp, never a 500, never listed', async () => {
    expectTimesOutcome(await collect(db, TIMES_SEED));
  });
});

describe('enum-typed, timestamptz schema (Prisma enum JobStatus without CANCELLED)', () => {
  it('is the schema it claims to be', async () => {
    expect(await columnType(enumDb.admin, 'ProvisioningJob.status')).toEqual({ type: '"JobStatus"', isEnum: true });
    expect(await columnType(enumDb.admin, 'ProvisioningJob.resourceType')).toEqual({ type: '"JobResourceType"', isEnum: true });
    expect(await columnType(enumDb.admin, 'ProvisioningJob.createdAt')).toEqual({ type: 'timestamp(3) with time zone', isEnum: false });
  });

  it('gives the same numbers as the text schema for the out-of-range times', async () => {
    expectTimesOutcome(await collect(enumDb, TIMES_SEED));
  });

  it('gives the same numbers as the text schema for bounded types, and the same /metrics lines', async () => {
    const seed = [
      ...Array.from({ length: 8 }, (_, i) => job(`'p${i}'`, `'type-${i}'`, `'act-${i % 3}'`, `'${i % 2 ? 'MAILBOX' : 'WEBSITE'}'`, 'PENDING', at(-(i + 1) * 10 * 60_000))),
      ...Array.from({ length: 6 }, (_, i) => job(`'f${i}'`, `'type-${i}'`, `'act-${i % 3}'`, `'${i % 2 ? 'MAILBOX' : 'WEBSITE'}'`, 'FAILED', at(-(i + 1) * H))),
      job(`'c'`, `'dns'`, `'x'`, `'WEBSITE'`, 'COMPLETED', at(-H)),
    ].join('');
    const env = { OPS_LABEL_VALUE_LIMIT: '3' };
    const lines = (o: Outcome) => o.text.split('\n').filter((l) => l.startsWith('ops_provisioning_') || l.startsWith('ops_source_invalid_values{source="provisioning"'));
    const onText = await collect(db, seed, env);
    const onEnum = await collect(enumDb, seed, env);
    expect(lines(onEnum)).toEqual(lines(onText));
    expect(onEnum.overview.provisioning).toEqual(onText.overview.provisioning);
    expect(sum(onEnum.text, 'ops_provisioning_jobs')).toBe(8);
    // Stuck after 15 min: the jobs of 20..80 min; type-1..3 keep labels, type-4..7 (and fresh type-0) are OTHER.
    expect(sum(onEnum.text, 'ops_provisioning_jobs_stuck')).toBe(7);
    expect(sum(onEnum.text, 'ops_provisioning_failed_jobs_24h')).toBe(6);
    expect(value(onEnum.text, 'ops_provisioning_jobs_stuck', { type: 'type-1', status: 'PENDING' })).toBe(1);
    expect(value(onEnum.text, 'ops_provisioning_jobs_stuck', { type: 'OTHER', status: 'PENDING' })).toBe(4);
    expect(value(onEnum.text, 'ops_provisioning_jobs', { type: 'OTHER', status: 'PENDING' })).toBe(5);
  });
});

describe('partial indexes', () => {
  it.each([
    ['text', () => db, null],
    ['enum + timestamptz', () => enumDb, ['PENDING', 'RUNNING', 'DELAYED', 'COMPLETED', 'FAILED']],
  ] as const)('on the %s schema, the live and failed queries use the partial indexes', async (_name, target, statusLabels) => {
    await target().admin.query('TRUNCATE "ProvisioningJob"');
    const database = new Database({ url: target().readerUrl, poolMax: 1 });
    try {
      const labels = await database.read(5_000, (tx) => readEnumLabels(tx, ['ProvisioningJob.status']));
      expect(labels.get('ProvisioningJob.status')).toEqual(statusLabels);
      const q = provisioningQueries(labels, NOW, { stuckThresholdSeconds: 900, labelValueLimit: 200, errorMessageMaxLength: 500 });
      const client = await target().admin.connect();
      try {
        await client.query('BEGIN; SET LOCAL enable_seqscan = off');
        const plan = async (sql: { text: string; values: unknown[] }) =>
          (await client.query(`EXPLAIN ${sql.text}`, sql.values)).rows.map((r: { 'QUERY PLAN': string }) => r['QUERY PLAN']).join('\n');
        const live = await plan(q.live);
        expect(live).toContain('ProvisioningJob_live_idx');
        expect(live).not.toContain('Seq Scan');
        for (const sql of [q.hotspots, q.badFailed, q.recent]) {
          const p = await plan(sql);
          expect(p).toContain('ProvisioningJob_failed_createdAt_idx');
          expect(p).not.toContain('Seq Scan');
        }
      } finally {
        await client.query('ROLLBACK');
        client.release();
      }
    } finally {
      await database.close();
    }
  });
});
