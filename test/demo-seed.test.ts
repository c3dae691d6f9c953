import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KNOWN } from '../src/catalog.js';
import { pgDemoDb } from '../src/demo/demo-db.js';
import { CLOUD_PODS, CORE_NODES, QUEUES, SHIELD_POLICIES } from '../src/demo/platform.js';
import { seed, type SeedResult } from '../src/demo/seed.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

// A fixed afternoon, so the history is the same on every run.
const NOW = new Date('2026-11-20T15:30:00.000Z');
const NOW_S = NOW.getTime() / 1000;

let tdb: TestDatabase;
let result: SeedResult;

async function rows<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
  return (await tdb.admin.query(sql, params)).rows as T[];
}

beforeAll(async () => {
  tdb = await createTestDatabase('demo-seed');
  // DROP DATABASE ... WITH (FORCE) in drop() may reach a connection still closing.
  tdb.admin.on('error', () => undefined);
  result = await seed(pgDemoDb(tdb.admin), NOW, { randomSeed: 7 });
});

afterAll(async () => {
  await tdb?.drop();
});

describe('seed', () => {
  it('reports what it wrote, and the tables hold exactly that', async () => {
    const expectedJobs = QUEUES.reduce((n, q) => n + Math.round(q.perMinute * 60 * 24 * 3 * 0.1), 0);
    expect(result).toMatchObject({ coreNodes: 8, shieldPolicies: SHIELD_POLICIES.length, provisioningJobs: expectedJobs, shieldEvents: 86_400, guardianFindings: 150 });
    const [counts] = await rows<Record<string, number>>(`SELECT
      (SELECT count(*)::int FROM "CoreNode") AS nodes, (SELECT count(*)::int FROM "ShieldPolicy") AS policies,
      (SELECT count(*)::int FROM "ProvisioningJob") AS jobs, (SELECT count(*)::int FROM "ShieldEvent") AS events,
      (SELECT count(*)::int FROM "GuardianFinding") AS findings, (SELECT count(*)::int FROM "Backup") AS backups`);
    expect(counts).toEqual({
      nodes: 8,
      policies: SHIELD_POLICIES.length,
      jobs: expectedJobs,
      events: 86_400,
      findings: 150,
      backups: result.backups,
    });
  });

  it('writes the eight core nodes ONLINE with their roles and a fresh, in-range sample', async () => {
    const nodes = await rows<{ hostname: string; role: string; status: string; metrics: Record<string, number>; at: number }>(
      `SELECT "hostname", "role", "status", "metrics", extract(epoch FROM "lastMetricsAt")::float8 AS at FROM "CoreNode" ORDER BY "hostname"`,
    );
    expect(nodes.map((n) => [n.hostname, n.role]).sort()).toEqual(CORE_NODES.map((n) => [n.hostname, n.role]).sort());
    for (const n of nodes) {
      expect(n.status).toBe('ONLINE');
      expect(n.at).toBe(NOW_S);
      expect(Object.keys(n.metrics).sort()).toEqual(['cpuPercent', 'diskPercent', 'ramPercent']);
      for (const v of Object.values(n.metrics)) {
        expect(v).toBeGreaterThanOrEqual(0);
        expect(v).toBeLessThanOrEqual(100);
      }
    }
    expect(nodes.find((n) => n.hostname === 'DB-CORE')!.metrics).toEqual({ cpuPercent: 35, ramPercent: 78, diskPercent: 71 });
  });

  it('writes policies in every mode, global and per tenant', async () => {
    const modes = await rows<{ mode: string; n: number; global: number }>(
      `SELECT "mode", count(*)::int AS n, count(*) FILTER (WHERE "tenantId" IS NULL)::int AS global FROM "ShieldPolicy" GROUP BY 1 ORDER BY 1`,
    );
    expect(modes.map((m) => m.mode)).toEqual(['DISABLED', 'ENFORCE', 'MONITOR']);
    expect(modes.reduce((n, m) => n + m.n, 0)).toBe(SHIELD_POLICIES.length);
    expect(modes.every((m) => m.n > 0)).toBe(true);
    expect(modes.reduce((n, m) => n + m.global, 0)).toBe(8);
  });

  it('writes three days of finished jobs only, with consistent timestamps and errors on failures', async () => {
    const statuses = await rows<{ status: string; n: number }>(`SELECT "status", count(*)::int AS n FROM "ProvisioningJob" GROUP BY 1 ORDER BY 1`);
    expect(statuses.map((s) => s.status)).toEqual(['CANCELLED', 'COMPLETED', 'FAILED']);
    type JobCounts = { failed_without_error: number; completed_with_error: number; bad_order: number; out_of_window: number; updated_not_finished: number; types: number; failed: number; failed_24h: number };
    const [c] = await rows<JobCounts>(`SELECT
      count(*) FILTER (WHERE "status" = 'FAILED' AND ("errorMessage" IS NULL OR "errorMessage" = ''))::int AS failed_without_error,
      count(*) FILTER (WHERE "status" = 'COMPLETED' AND "errorMessage" IS NOT NULL)::int AS completed_with_error,
      count(*) FILTER (WHERE "startedAt" < "createdAt" OR "finishedAt" < "startedAt" OR "finishedAt" IS NULL)::int AS bad_order,
      count(*) FILTER (WHERE "createdAt" > $1::timestamp OR "createdAt" < $1::timestamp - interval '3 days')::int AS out_of_window,
      count(*) FILTER (WHERE "updatedAt" <> "finishedAt")::int AS updated_not_finished,
      count(DISTINCT "type")::int AS types,
      count(*) FILTER (WHERE "status" = 'FAILED')::int AS failed,
      count(*) FILTER (WHERE "status" = 'FAILED' AND "createdAt" > $1::timestamp - interval '24 hours')::int AS failed_24h
      FROM "ProvisioningJob"`, [NOW.toISOString()]);
    expect(c).toMatchObject({ failed_without_error: 0, completed_with_error: 0, bad_order: 0, out_of_window: 0, updated_not_finished: 0, types: 6 });
    // Failures are a few percent, plus the ACME incident two days ago.
    const total = statuses.reduce((n, s) => n + s.n, 0);
    expect(c!.failed / total).toBeGreaterThan(0.02);
    expect(c!.failed / total).toBeLessThan(0.1);
    expect(c!.failed_24h).toBeLessThan(c!.failed / 2);
    const incident = await rows<{ n: number }>(
      `SELECT count(*)::int AS n FROM "ProvisioningJob" WHERE "action" LIKE 'ssl.%' AND "status" = 'FAILED' AND "errorMessage" LIKE '%rateLimited%'
       AND "createdAt" BETWEEN $1::timestamp - interval '46 hours' AND $1::timestamp - interval '45 hours'`, [NOW.toISOString()]);
    expect(incident[0]!.n).toBeGreaterThan(5);
    const types = await rows<{ type: string }>(`SELECT DISTINCT "type" FROM "ProvisioningJob" ORDER BY 1`);
    expect(types.map((t) => t.type)).toEqual(['backup', 'cloudpod', 'dns', 'hosting', 'mail', 'ssl']);
  });

  it('writes 24 hours of WAF events, ordered by id, with known decisions and mostly ALLOW', async () => {
    const [e] = await rows<{ n: number; outside: number; allow: number; block: number; unknown: number; blocked_without_policy: number }>(`SELECT count(*)::int AS n,
      count(*) FILTER (WHERE "timestamp" > $1::timestamp OR "timestamp" <= $1::timestamp - interval '24 hours')::int AS outside,
      count(*) FILTER (WHERE "decision" = 'ALLOW')::int AS allow, count(*) FILTER (WHERE "decision" = 'BLOCK')::int AS block,
      count(*) FILTER (WHERE "decision" IS NULL OR NOT ("decision" = ANY($2::text[])))::int AS unknown,
      count(*) FILTER (WHERE "decision" <> 'ALLOW' AND "policyId" IS NULL)::int AS blocked_without_policy
      FROM "ShieldEvent"`, [NOW.toISOString(), [...KNOWN.decision]]);
    expect(e).toMatchObject({ n: 86_400, outside: 0, unknown: 0, blocked_without_policy: 0 });
    expect(e!.allow / e!.n).toBeGreaterThan(0.9);
    expect(e!.block / e!.n).toBeGreaterThan(0.01);
    expect(e!.block / e!.n).toBeLessThan(0.04);
    const [order] = await rows<{ inversions: number }>(
      `SELECT count(*)::int AS inversions FROM (SELECT "timestamp" < lag("timestamp") OVER (ORDER BY "id") AS inv FROM "ShieldEvent") x WHERE inv`,
    );
    expect(order!.inversions).toBe(0);
  });

  it('leaves no CRITICAL finding open and some findings open, acknowledged and resolved', async () => {
    const f = await rows<{ status: string; n: number; critical: number; resolved_without_time: number }>(
      `SELECT "status", count(*)::int AS n, count(*) FILTER (WHERE "severity" = 'CRITICAL')::int AS critical,
        count(*) FILTER (WHERE "status" = 'RESOLVED' AND ("resolvedAt" IS NULL OR "resolvedAt" < "createdAt" OR "resolvedAt" > $1::timestamp))::int AS resolved_without_time
       FROM "GuardianFinding" GROUP BY 1 ORDER BY 1`, [NOW.toISOString()]);
    expect(f.map((x) => x.status)).toEqual(['ACKNOWLEDGED', 'OPEN', 'RESOLVED']);
    expect(f.find((x) => x.status === 'OPEN')!.critical).toBe(0);
    expect(f.find((x) => x.status === 'RESOLVED')!.critical).toBe(2);
    expect(f.every((x) => x.resolved_without_time === 0)).toBe(true);
  });

  it('writes nightly backups of each system with a recent success, one CLOUD_POD series per pod', async () => {
    const b = await rows<{ resourceType: string; ids: number; last_success_age_h: number; running: number; days: number }>(
      `SELECT "resourceType", count(DISTINCT "resourceId")::int AS ids,
        (extract(epoch FROM $1::timestamp - max("completedAt") FILTER (WHERE "status" = 'COMPLETED')) / 3600)::float8 AS last_success_age_h,
        count(*) FILTER (WHERE "status" NOT IN ('COMPLETED', 'FAILED'))::int AS running,
        count(DISTINCT date_trunc('day', "startedAt"))::int AS days
       FROM "Backup" GROUP BY 1 ORDER BY 1`, [NOW.toISOString()]);
    expect(b.map((x) => x.resourceType)).toEqual(['CLOUD_POD', 'DB_CORE', 'MPANEL_CORE']);
    expect(b.find((x) => x.resourceType === 'CLOUD_POD')!.ids).toBe(CLOUD_PODS.length);
    for (const x of b) {
      // Today's run (01:00-03:45 UTC) has finished by 15:30.
      expect(x.last_success_age_h).toBeGreaterThan(10);
      expect(x.last_success_age_h).toBeLessThan(15);
      expect(x.running).toBe(0);
      expect(x.days).toBe(4);
    }
    const [sizes] = await rows<{ bad: number }>(
      `SELECT count(*) FILTER (WHERE ("status" = 'COMPLETED') <> ("sizeBytes" IS NOT NULL AND "sizeBytes" > 0))::int AS bad FROM "Backup"`,
    );
    expect(sizes!.bad).toBe(0);
  });

  it('writes no history twice: seeding again only refreshes nodes and policies', async () => {
    const again = await seed(pgDemoDb(tdb.admin), NOW, { randomSeed: 7 });
    expect(again).toEqual({ coreNodes: 8, shieldPolicies: SHIELD_POLICIES.length, provisioningJobs: 0, shieldEvents: 0, guardianFindings: 0, backups: 0 });
    const [n] = await rows<{ n: number }>(`SELECT count(*)::int AS n FROM "ShieldEvent"`);
    expect(n!.n).toBe(86_400);
  });

  it('is readable by the exporter\'s read-only role', async () => {
    const pg = (await import('pg')).default;
    const reader = new pg.Client({ connectionString: tdb.readerUrl });
    await reader.connect();
    try {
      const r = await reader.query(`SELECT count(*)::int AS n FROM "CoreNode" WHERE "status" = 'ONLINE'`);
      expect(r.rows[0].n).toBe(8);
    } finally {
      await reader.end();
    }
  });
});
