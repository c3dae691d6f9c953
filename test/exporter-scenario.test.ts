/**
 * The seeded scenario: every metric family and every API field, asserted by
 * value, on a database that holds the awkward cases real platforms have.
 */
import { spawnSync } from 'node:child_process';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { buildTestExporter, overview, scrape } from './helpers/exporter.js';
import { series, value, type ParsedSample } from './helpers/metrics.js';
import { createTestRedis, type TestRedis } from './helpers/redis.js';

const NOW = new Date('2026-01-15T12:00:00.000Z');
const S = 1000;
const MIN = 60 * S;
const H = 60 * MIN;
/** A timestamp(3) literal `ms` milliseconds from NOW (UTC wall time, as Prisma stores it). */
const at = (ms: number) => new Date(NOW.getTime() + ms).toISOString().replace('T', ' ').replace('Z', '');
const epoch = (ms: number) => (NOW.getTime() + ms) / 1000;

async function seed(db: TestDatabase): Promise<void> {
  const q = (sql: string, params: unknown[] = []) => db.admin.query(sql, params);
  const node = (id: string, hostname: string, role: string | null, status: string | null, metrics: string | null, last: string | null) =>
    q(`INSERT INTO "CoreNode" (id, hostname, role, status, metrics, "lastMetricsAt", "updatedAt") VALUES ($1,$2,$3,$4,$5::jsonb,$6,$7)`, [
      id, hostname, role, status, metrics, last, at(0),
    ]);
  await node('n-web', 'SRV1-WEB', 'WEB', 'ONLINE', '{"cpuPercent": 42.5, "ramPercent": 61, "diskPercent": 70}', at(-30 * S));
  await node('n-mail', 'MAIL-CORE', 'MAIL', 'DEGRADED', null, null);
  await node('n-dns', 'DNS-CORE', 'DNS', 'OFFLINE', '"45"', at(-10 * MIN));
  await node('n-cloud', 'CLOUD-CORE', 'CLOUD', 'MAINTENANCE', '{"cpuPercent": 140, "ramPercent": "55", "diskPercent": null}', at(-1 * MIN));
  await node('n-guard', 'MIGRAGUARD-QUANTUM', null, null, '{"cpuPercent": 10}', at(-2 * MIN));
  // DB-CORE has no row at all.
  await node('n-panel', 'MPANEL-CORE', 'PANEL', 'REBOOTING', '{"cpuPercent": 0, "ramPercent": 100, "diskPercent": 0}', at(-5 * S));
  await node('n-voip', 'VOIP-CORE', 'VOIP', 'ONLINE', '{}', null);
  await node('n-extra', 'EDGE-7', 'WEB', 'ONLINE', '[1, 2]', at(-1 * H));

  const job = (id: string, type: string, action: string, resourceType: string, status: string, createdAt: number, startedAt: number | null, extra: { errorMessage?: string; tenantId?: string; resourceId?: string } = {}) =>
    q(
      `INSERT INTO "ProvisioningJob" (id, type, action, "resourceType", "resourceId", "tenantId", status, "errorMessage", "createdAt", "startedAt", "updatedAt")
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)`,
      [id, type, action, resourceType, extra.resourceId ?? null, extra.tenantId ?? null, status, extra.errorMessage ?? null, at(createdAt), startedAt === null ? null : at(startedAt), at(0)],
    );
  await job('p-under', 'hosting', 'hosting.create', 'WEBSITE', 'PENDING', -899 * S, null); // just under the 900 s threshold
  await job('p-over', 'hosting', 'hosting.create', 'WEBSITE', 'PENDING', -901 * S, null); // just over
  await job('r-over', 'dns', 'dns.zone.sync', 'DNS_ZONE', 'RUNNING', -2 * H, -901 * S);
  await job('r-under', 'dns', 'dns.zone.sync', 'DNS_ZONE', 'RUNNING', -2 * H, -100 * S); // old job, recently started
  await job('r-nostart', 'mail', 'mail.box.create', 'MAILBOX', 'RUNNING', -1000 * S, null); // startedAt NULL: createdAt counts
  await job('d-1', 'ssl', 'ssl.issue', 'CERTIFICATE', 'DELAYED', -2 * H, null);
  await job('u-1', 'ssl', 'ssl.issue', 'CERTIFICATE', 'QUEUED', -1 * H, null); // not a known status
  await job('c-1', 'hosting', 'hosting.create', 'WEBSITE', 'COMPLETED', -3 * H, -3 * H);
  await job('x-1', 'hosting', 'hosting.delete', 'WEBSITE', 'CANCELLED', -3 * H, null);
  await job('f-1', 'hosting', 'hosting.create', 'WEBSITE', 'FAILED', -1 * H, -1 * H, {
    errorMessage: 'connect to postgres://panel:s3cr3t-pw@db-core:5432/mpanel failed: token=abcd1234efgh5678',
    tenantId: 't-1',
    resourceId: 'site-1',
  });
  await job('f-2', 'hosting', 'hosting.create', 'WEBSITE', 'FAILED', -2 * H, -2 * H);
  await job('f-3', 'dns', 'dns.zone.sync', 'DNS_ZONE', 'FAILED', -(23 * H + 59 * MIN), null);
  await job('f-edge', 'ssl', 'ssl.issue', 'CERTIFICATE', 'FAILED', -24 * H, null); // exactly 24 h: inside
  await job('f-old', 'ssl', 'ssl.issue', 'CERTIFICATE', 'FAILED', -24 * H - 1, null); // 1 ms older: outside

  const ev = (ts: number, decision: string | null, n = 1) =>
    q(`INSERT INTO "ShieldEvent" ("timestamp", decision) SELECT $1, $2 FROM generate_series(1, $3)`, [at(ts), decision, n]);
  await ev(-1 * MIN, 'ALLOW', 5);
  await ev(-2 * H, 'BLOCK', 3);
  await ev(-3 * H, 'CHALLENGE', 1);
  await ev(-4 * H, null, 2);
  await ev(-5 * H, 'LOG', 1);
  await ev(-24 * H, 'BLOCK', 1); // exactly at the window start: counted
  await ev(-24 * H - 1, 'ALLOW', 1); // 1 ms before: not counted
  await ev(1 * H, 'ALLOW', 1); // dated in the future: not in the last 24 h
  await ev(-48 * H, 'BLOCK', 4); // history

  const policy = (id: string, mode: string | null) =>
    q(`INSERT INTO "ShieldPolicy" (id, name, mode, "updatedAt") VALUES ($1, $1, $2, $3)`, [id, mode, at(0)]);
  await policy('pol-1', 'ENFORCE');
  await policy('pol-2', 'ENFORCE');
  await policy('pol-3', 'MONITOR');
  await policy('pol-4', null);

  const finding = (id: string, severity: string | null, status: string) =>
    q(`INSERT INTO "GuardianFinding" (id, severity, status, title) VALUES ($1, $2, $3, $1)`, [id, severity, status]);
  await finding('g-1', 'CRITICAL', 'OPEN');
  await finding('g-2', 'CRITICAL', 'OPEN');
  await finding('g-3', 'HIGH', 'OPEN');
  await finding('g-4', 'MEDIUM', 'RESOLVED');
  await finding('g-5', 'LOW', 'ACKNOWLEDGED');
  await finding('g-6', null, 'OPEN');

  const backup = (id: string, type: string, status: string, startedAt: number, completedAt: number | null, resourceId: string | null = null) =>
    q(`INSERT INTO "Backup" (id, "resourceType", "resourceId", status, "startedAt", "completedAt") VALUES ($1,$2,$3,$4,$5,$6)`, [
      id, type, resourceId, status, at(startedAt), completedAt === null ? null : at(completedAt),
    ]);
  await backup('b-db-1', 'DB_CORE', 'COMPLETED', -20 * H - 10 * MIN, -20 * H);
  await backup('b-db-0', 'DB_CORE', 'COMPLETED', -44 * H - 10 * MIN, -44 * H);
  await backup('b-db-f', 'DB_CORE', 'FAILED', -2 * H, null); // no completedAt: failed at its start
  await backup('b-panel-f', 'MPANEL_CORE', 'FAILED', -3 * H - 5 * MIN, -3 * H);
  await backup('b-pod-1', 'CLOUD_POD', 'COMPLETED', -5 * H - MIN, -5 * H, 'pod-1');
  await backup('b-pod-2', 'CLOUD_POD', 'COMPLETED', -6 * H - MIN, -6 * H, 'pod-2');
  await backup('b-pod-run', 'CLOUD_POD', 'RUNNING', -10 * MIN, null, 'pod-3');
  await backup('b-mail', 'MAIL_STORE', 'COMPLETED', -1 * H - MIN, -1 * H);
}

describe('seeded scenario', () => {
  let db: TestDatabase;
  let redis: TestRedis;
  let app: FastifyInstance;
  let m: ParsedSample[];
  let text: string;
  let api: any;

  beforeAll(async () => {
    db = await createTestDatabase('scenario');
    redis = await createTestRedis('scenario');
    await seed(db);
    app = await buildTestExporter({ db, redis, now: () => NOW });
    await app.collection.collectAll();
    ({ text, samples: m } = await scrape(app));
    api = (await overview(app)).body;
  });
  afterAll(async () => {
    await app?.close();
    await redis?.cleanup();
    await db?.drop();
  });

  it('collects every database source successfully as the read-only role', () => {
    for (const source of ['core_nodes', 'provisioning', 'security', 'backups']) {
      expect(value(m, 'ops_source_up', { source }), source).toBe(1);
      expect(value(m, 'ops_source_last_success_timestamp_seconds', { source })).toBe(NOW.getTime() / 1000);
      expect(value(m, 'ops_source_errors_total', { source })).toBe(0);
      expect(value(m, 'ops_source_collect_duration_seconds', { source })).toBeGreaterThan(0);
    }
  });

  describe('core nodes', () => {
    it('reports known values as ratios and unknown or invalid ones as absent, never 0', () => {
      expect(value(m, 'ops_core_node_cpu_ratio', { node: 'SRV1-WEB' })).toBe(0.425);
      expect(value(m, 'ops_core_node_memory_ratio', { node: 'SRV1-WEB' })).toBe(0.61);
      expect(value(m, 'ops_core_node_disk_ratio', { node: 'SRV1-WEB' })).toBe(0.7);
      // metrics NULL, a JSON string, {} and an array: nothing known.
      for (const node of ['MAIL-CORE', 'DNS-CORE', 'VOIP-CORE', 'EDGE-7', 'DB-CORE']) {
        expect(series(m, 'ops_core_node_cpu_ratio', { node }), node).toEqual([]);
        expect(series(m, 'ops_core_node_memory_ratio', { node }), node).toEqual([]);
        expect(series(m, 'ops_core_node_disk_ratio', { node }), node).toEqual([]);
      }
      // 140 % and "55" are invalid: absent; a real 0 % is 0 and 100 % is 1.
      expect(series(m, 'ops_core_node_cpu_ratio', { node: 'CLOUD-CORE' })).toEqual([]);
      expect(series(m, 'ops_core_node_memory_ratio', { node: 'CLOUD-CORE' })).toEqual([]);
      expect(value(m, 'ops_core_node_cpu_ratio', { node: 'MPANEL-CORE' })).toBe(0);
      expect(value(m, 'ops_core_node_memory_ratio', { node: 'MPANEL-CORE' })).toBe(1);
      expect(value(m, 'ops_core_node_cpu_ratio', { node: 'MIGRAGUARD-QUANTUM' })).toBe(0.1);
    });

    it('exports the status state set, MISSING for an expected node without a row and UNKNOWN for NULL or unknown', () => {
      const current = (node: string) => series(m, 'ops_core_node_status', { node }).filter((s) => s.value === 1).map((s) => s.labels.status);
      expect(series(m, 'ops_core_node_status', { node: 'SRV1-WEB' })).toHaveLength(6);
      expect(current('SRV1-WEB')).toEqual(['ONLINE']);
      expect(current('MAIL-CORE')).toEqual(['DEGRADED']);
      expect(current('DNS-CORE')).toEqual(['OFFLINE']);
      expect(current('CLOUD-CORE')).toEqual(['MAINTENANCE']);
      expect(current('DB-CORE')).toEqual(['MISSING']);
      expect(current('MIGRAGUARD-QUANTUM')).toEqual(['UNKNOWN']);
      expect(current('MPANEL-CORE')).toEqual(['UNKNOWN']);
      expect(current('EDGE-7')).toEqual(['ONLINE']);
    });

    it('exports info, expected flags and metric timestamps', () => {
      expect(value(m, 'ops_core_node_info', { node: 'SRV1-WEB' })).toBe(1);
      expect(series(m, 'ops_core_node_info', { node: 'SRV1-WEB' })[0]?.labels.role).toBe('WEB');
      expect(series(m, 'ops_core_node_info', { node: 'MIGRAGUARD-QUANTUM' })[0]?.labels.role).toBe('UNKNOWN');
      expect(series(m, 'ops_core_node_info', { node: 'DB-CORE' })).toEqual([]);
      expect(series(m, 'ops_core_node_info')).toHaveLength(8);
      expect(value(m, 'ops_core_node_expected', { node: 'DB-CORE' })).toBe(1);
      expect(value(m, 'ops_core_node_expected', { node: 'EDGE-7' })).toBe(0);
      expect(value(m, 'ops_core_node_metrics_timestamp_seconds', { node: 'SRV1-WEB' })).toBe(epoch(-30 * S));
      expect(series(m, 'ops_core_node_metrics_timestamp_seconds', { node: 'MAIL-CORE' })).toEqual([]);
    });

    it('counts the values it could not use, by reason', () => {
      // wrong_type: "45" (metrics), "55" (ramPercent), [1, 2] (metrics); out_of_range: 140.
      expect(value(m, 'ops_source_invalid_values', { source: 'core_nodes', reason: 'wrong_type' })).toBe(3);
      expect(value(m, 'ops_source_invalid_values', { source: 'core_nodes', reason: 'out_of_range' })).toBe(1);
      // role NULL and status NULL (MIGRAGUARD-QUANTUM); status REBOOTING.
      expect(value(m, 'ops_source_invalid_values', { source: 'core_nodes', reason: 'null_value' })).toBe(2);
      expect(value(m, 'ops_source_invalid_values', { source: 'core_nodes', reason: 'unknown_value' })).toBe(1);
    });

    it('serves the nodes in the API with percentages, null for unknown and the expected nodes first', () => {
      expect(api.coreNodes.map((n: any) => n.label)).toEqual([
        'SRV1-WEB', 'MAIL-CORE', 'DNS-CORE', 'CLOUD-CORE', 'MIGRAGUARD-QUANTUM', 'DB-CORE', 'MPANEL-CORE', 'VOIP-CORE', 'EDGE-7',
      ]);
      const byLabel = Object.fromEntries(api.coreNodes.map((n: any) => [n.label, n]));
      expect(byLabel['SRV1-WEB']).toEqual({
        id: 'n-web', label: 'SRV1-WEB', role: 'WEB', status: 'ONLINE',
        cpuPercent: 42.5, ramPercent: 61, diskPercent: 70, lastMetricsAt: new Date(NOW.getTime() - 30 * S).toISOString(), expected: true,
      });
      expect(byLabel['DB-CORE']).toEqual({
        id: '', label: 'DB-CORE', role: 'UNKNOWN', status: 'MISSING', cpuPercent: null, ramPercent: null, diskPercent: null, expected: true,
      });
      expect(byLabel['CLOUD-CORE']).toMatchObject({ cpuPercent: null, ramPercent: null, diskPercent: null, status: 'MAINTENANCE' });
      expect(byLabel['MPANEL-CORE']).toMatchObject({ cpuPercent: 0, ramPercent: 100, diskPercent: 0, status: 'REBOOTING' });
      expect(byLabel['MIGRAGUARD-QUANTUM']).toMatchObject({ role: 'UNKNOWN', status: 'UNKNOWN', cpuPercent: 10, ramPercent: null });
      expect(byLabel['VOIP-CORE']).not.toHaveProperty('lastMetricsAt');
      expect(byLabel['EDGE-7'].expected).toBe(false);
    });
  });

  describe('provisioning', () => {
    it('counts live jobs per type and status, known statuses present at 0', () => {
      const jobs = (type: string, status: string) => value(m, 'ops_provisioning_jobs', { type, status });
      expect(jobs('hosting', 'PENDING')).toBe(2);
      expect(jobs('hosting', 'RUNNING')).toBe(0);
      expect(jobs('hosting', 'DELAYED')).toBe(0);
      expect(jobs('dns', 'RUNNING')).toBe(2);
      expect(jobs('mail', 'RUNNING')).toBe(1);
      expect(jobs('ssl', 'DELAYED')).toBe(1);
      expect(jobs('ssl', 'UNKNOWN')).toBe(1);
      // Terminal jobs are not live.
      expect(series(m, 'ops_provisioning_jobs').reduce((n, s) => n + s.value, 0)).toBe(7);
    });

    it('counts stuck jobs just over the threshold, not just under, RUNNING by startedAt else createdAt', () => {
      const stuck = (type: string, status: string) => value(m, 'ops_provisioning_jobs_stuck', { type, status });
      expect(stuck('hosting', 'PENDING')).toBe(1);
      expect(stuck('dns', 'RUNNING')).toBe(1);
      expect(stuck('mail', 'RUNNING')).toBe(1);
      expect(stuck('ssl', 'PENDING')).toBe(0);
      expect(stuck('ssl', 'RUNNING')).toBe(0);
      expect(series(m, 'ops_provisioning_jobs_stuck', { status: 'DELAYED' })).toEqual([]);
      expect(value(m, 'ops_provisioning_stuck_threshold_seconds')).toBe(900);
      expect(value(m, 'ops_provisioning_oldest_live_job_timestamp_seconds', { type: 'hosting', status: 'PENDING' })).toBe(epoch(-901 * S));
      expect(value(m, 'ops_provisioning_oldest_live_job_timestamp_seconds', { type: 'dns', status: 'RUNNING' })).toBe(epoch(-901 * S));
    });

    it('reports the failure hotspots of the last 24 h, the boundary included', () => {
      expect(value(m, 'ops_provisioning_failed_jobs_24h', { action: 'hosting.create', resource_type: 'WEBSITE' })).toBe(2);
      expect(value(m, 'ops_provisioning_failed_jobs_24h', { action: 'dns.zone.sync', resource_type: 'DNS_ZONE' })).toBe(1);
      expect(value(m, 'ops_provisioning_failed_jobs_24h', { action: 'ssl.issue', resource_type: 'CERTIFICATE' })).toBe(1);
      expect(series(m, 'ops_provisioning_failed_jobs_24h')).toHaveLength(3);
    });

    it('serves counts and the most recent failures, newest first and redacted', () => {
      expect(api.provisioning.failedLast24h).toBe(4);
      expect(api.provisioning.stuckLast24h).toBe(3);
      expect(api.provisioning.recentFailures.map((f: any) => f.id)).toEqual(['f-1', 'f-2', 'f-3', 'f-edge', 'f-old']);
      const [first, second] = api.provisioning.recentFailures;
      expect(first).toEqual({
        id: 'f-1',
        action: 'hosting.create',
        resourceType: 'WEBSITE',
        resourceId: 'site-1',
        tenantId: 't-1',
        createdAt: new Date(NOW.getTime() - H).toISOString(),
        errorMessage: 'connect to postgres://panel:***@db-core:5432/mpanel failed: token=***',
      });
      expect(second).toEqual({ id: 'f-2', action: 'hosting.create', resourceType: 'WEBSITE', createdAt: new Date(NOW.getTime() - 2 * H).toISOString() });
    });
  });

  describe('security', () => {
    it('counts decisions of the last 24 h, start inclusive, future and older rows out, NULL and LOG as UNKNOWN', () => {
      const d = (decision: string) => value(m, 'ops_shield_events_24h', { decision });
      expect(d('ALLOW')).toBe(5);
      expect(d('BLOCK')).toBe(4);
      expect(d('CHALLENGE')).toBe(1);
      expect(d('RATE_LIMITED')).toBe(0);
      expect(d('UNKNOWN')).toBe(3);
    });

    it('starts the events counter at 0 for every decision and keeps the drift at 0 after the first recount', () => {
      for (const decision of ['ALLOW', 'BLOCK', 'CHALLENGE', 'RATE_LIMITED', 'UNKNOWN']) {
        expect(value(m, 'ops_shield_events_total', { decision })).toBe(0);
        expect(value(m, 'ops_shield_events_24h_recount_drift', { decision })).toBe(0);
      }
      expect(text).toContain('# TYPE ops_shield_events_total counter');
    });

    it('counts policies per mode and open findings per severity', () => {
      expect(value(m, 'ops_shield_policies', { mode: 'ENFORCE' })).toBe(2);
      expect(value(m, 'ops_shield_policies', { mode: 'MONITOR' })).toBe(1);
      expect(value(m, 'ops_shield_policies', { mode: 'DISABLED' })).toBe(0);
      expect(value(m, 'ops_shield_policies', { mode: 'UNKNOWN' })).toBe(1);
      expect(value(m, 'ops_guardian_installed')).toBe(1);
      expect(value(m, 'ops_guardian_open_findings', { severity: 'CRITICAL' })).toBe(2);
      expect(value(m, 'ops_guardian_open_findings', { severity: 'HIGH' })).toBe(1);
      expect(value(m, 'ops_guardian_open_findings', { severity: 'MEDIUM' })).toBe(0);
      expect(value(m, 'ops_guardian_open_findings', { severity: 'LOW' })).toBe(0);
      expect(value(m, 'ops_guardian_open_findings', { severity: 'INFO' })).toBe(0);
      expect(value(m, 'ops_guardian_open_findings', { severity: 'UNKNOWN' })).toBe(1);
    });

    it('serves the same numbers in the API', () => {
      expect(api.security).toEqual({
        shieldEventsLast24h: { total: 13, byDecision: { ALLOW: 5, BLOCK: 4, CHALLENGE: 1, RATE_LIMITED: 0 }, otherDecisions: 3 },
        shieldPolicies: { enforceCount: 2, monitorCount: 1, disabledCount: 0 },
        guardianFindings: { criticalOpen: 2, highOpen: 1, mediumOpen: 0 },
      });
    });
  });

  describe('backups', () => {
    it('exports the last success and failure per resource type and says "never" explicitly', () => {
      expect(value(m, 'ops_backup_tracking_installed')).toBe(1);
      expect(value(m, 'ops_backup_last_success_timestamp_seconds', { resource_type: 'DB_CORE' })).toBe(epoch(-20 * H));
      expect(value(m, 'ops_backup_last_failure_timestamp_seconds', { resource_type: 'DB_CORE' })).toBe(epoch(-2 * H));
      expect(series(m, 'ops_backup_last_success_timestamp_seconds', { resource_type: 'MPANEL_CORE' })).toEqual([]);
      expect(value(m, 'ops_backup_last_failure_timestamp_seconds', { resource_type: 'MPANEL_CORE' })).toBe(epoch(-3 * H));
      expect(value(m, 'ops_backup_last_success_timestamp_seconds', { resource_type: 'CLOUD_POD' })).toBe(epoch(-5 * H));
      expect(value(m, 'ops_backup_last_success_timestamp_seconds', { resource_type: 'MAIL_STORE' })).toBe(epoch(-1 * H));
      expect(value(m, 'ops_backup_ever_succeeded', { resource_type: 'DB_CORE' })).toBe(1);
      expect(value(m, 'ops_backup_ever_succeeded', { resource_type: 'MPANEL_CORE' })).toBe(0);
      expect(value(m, 'ops_backup_ever_succeeded', { resource_type: 'CLOUD_POD' })).toBe(1);
    });

    it('serves the critical systems in the API, MPANEL-CORE absent because it never succeeded', () => {
      expect(api.backups).toEqual({
        dbCoreLastSuccess: new Date(NOW.getTime() - 20 * H).toISOString(),
        cloudPodsLastSuccess: new Date(NOW.getTime() - 5 * H).toISOString(),
        notes: 'No successful backup recorded for MPANEL-CORE',
      });
    });
  });

  it('dates the API document by its collection, and lists every source', () => {
    expect(api.generatedAt).toBe(NOW.toISOString());
    expect(api.sources.map((s: any) => [s.name, s.up])).toEqual([
      ['core_nodes', true],
      ['queues', true],
      ['provisioning', true],
      ['security', true],
      ['backups', true],
      ['indexes', true],
    ]);
    expect(api.queues).toEqual([]);
  });

  it('passes promtool check metrics', () => {
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(r.error, 'promtool must be installed (apt-get install prometheus)').toBeUndefined();
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});

describe('optional modules', () => {
  let db: TestDatabase;
  let redis: TestRedis;
  let app: FastifyInstance;

  beforeAll(async () => {
    db = await createTestDatabase('optional');
    redis = await createTestRedis('optional');
    app = await buildTestExporter({ db, redis, now: () => NOW });
  });
  afterAll(async () => {
    await app?.close();
    await redis?.cleanup();
    await db?.drop();
  });

  it('reports Guardian installed with nothing open as zeros, and no backups ever as never', async () => {
    await app.collection.collectAll();
    const { samples } = await scrape(app);
    expect(value(samples, 'ops_guardian_installed')).toBe(1);
    for (const severity of ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW', 'INFO', 'UNKNOWN']) {
      expect(value(samples, 'ops_guardian_open_findings', { severity })).toBe(0);
    }
    for (const resource_type of ['DB_CORE', 'MPANEL_CORE', 'CLOUD_POD']) {
      expect(value(samples, 'ops_backup_ever_succeeded', { resource_type })).toBe(0);
    }
    expect(series(samples, 'ops_backup_last_success_timestamp_seconds')).toEqual([]);
    const api = (await overview(app)).body;
    expect(api.security.guardianFindings).toEqual({ criticalOpen: 0, highOpen: 0, mediumOpen: 0 });
    expect(api.backups).toEqual({ notes: 'No successful backup recorded for DB-CORE, MPANEL-CORE, CloudPods' });
    expect(api.security.shieldEventsLast24h).toEqual({
      total: 0, byDecision: { ALLOW: 0, BLOCK: 0, CHALLENGE: 0, RATE_LIMITED: 0 }, otherDecisions: 0,
    });
  });

  it('reports Guardian and backup tracking not installed when their tables are dropped', async () => {
    await db.admin.query('DROP TABLE "GuardianFinding"');
    await db.admin.query('DROP TABLE "Backup"');
    await app.collection.collectAll();
    const { samples } = await scrape(app);
    expect(value(samples, 'ops_source_up', { source: 'security' })).toBe(1);
    expect(value(samples, 'ops_source_up', { source: 'backups' })).toBe(1);
    expect(value(samples, 'ops_guardian_installed')).toBe(0);
    expect(series(samples, 'ops_guardian_open_findings')).toEqual([]);
    expect(value(samples, 'ops_backup_tracking_installed')).toBe(0);
    expect(series(samples, 'ops_backup_ever_succeeded')).toEqual([]);
    const api = (await overview(app)).body;
    expect(api.security).not.toHaveProperty('guardianFindings');
    expect(api.backups).toEqual({ notes: 'Backup tracking not yet configured (no Backup table)' });
  });
});
