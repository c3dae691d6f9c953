/**
 * Bad database rows, table-driven: each case seeds rows into a fresh
 * database and asserts the exact outcome in /metrics (values, escaped
 * labels, ops_source_invalid_values by source and reason) and in the JSON
 * API. Every case also checks that nothing failed (every source up), that the
 * text output passes `promtool check metrics` and that the OpenMetrics output
 * is terminated. Nothing crashes, nothing is silently dropped, nothing
 * unbounded reaches a label.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SourceName } from '../src/catalog.js';
import { MAX_LABEL_VALUE_LENGTH } from '../src/metrics/bound.js';
import { createTestApp, type TestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { promtoolCheck, samples, value } from './helpers/prom-text.js';
import { createTestRedis, type TestRedis } from './helpers/redis.js';

const NOW = new Date('2026-06-01T12:00:00.000Z');
/** SQL timestamp literal (UTC wall time, as Prisma stores timestamp(3)) `ms` from NOW. */
const at = (ms: number) => `'${new Date(NOW.getTime() + ms).toISOString().replace('T', ' ').replace('Z', '')}'::timestamp`;
const H = 3_600_000;
const DAY = 24 * H;
const BEFORE_1970 = "'1960-01-01 00:00:00'::timestamp";

/** What a case sees after one collection. */
interface Outcome {
  text: string;
  openMetrics: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  overview: any;
  /** ops_source_invalid_values of the case's source, by reason (non-zero ones). */
  invalid: Record<string, number>;
}

interface Case {
  name: string;
  source: SourceName;
  seed: string;
  env?: Record<string, string>;
  check(o: Outcome): void;
}

const node = (id: string, hostname: string, role: string | null, status: string | null, metrics: string | null = null, lastMetricsAt: string | null = null) =>
  `INSERT INTO "CoreNode" (id, hostname, role, status, metrics, "lastMetricsAt", "updatedAt") VALUES (${[
    `'${id}'`,
    hostname,
    role === null ? 'NULL' : `'${role}'`,
    status === null ? 'NULL' : `'${status}'`,
    metrics === null ? 'NULL' : `'${metrics}'::jsonb`,
    lastMetricsAt ?? 'NULL',
  ].join(', ')}, now());`;

const job = (id: string, type: string, action: string, resourceType: string, status: string, createdAt: string, errorMessage = 'NULL', startedAt = 'NULL') =>
  `INSERT INTO "ProvisioningJob" (id, type, action, "resourceType", status, "errorMessage", "createdAt", "startedAt", "updatedAt")
     VALUES ('${id}', ${type}, ${action}, ${resourceType}, '${status}', ${errorMessage}, ${createdAt}, ${startedAt}, now());`;

const event = (timestamp: string, decision: string | null) =>
  `INSERT INTO "ShieldEvent" ("timestamp", decision) VALUES (${timestamp}, ${decision === null ? 'NULL' : `'${decision}'`});`;

const cases: Case[] = [
  // ---- core nodes ----
  {
    name: 'NULL and unknown enum-like values become UNKNOWN labels; the API shows the raw value',
    source: 'core_nodes',
    seed: node('n1', "'SRV1-WEB'", null, null) + node('n2', "'MAIL-CORE'", 'MAILSERVER', 'online'),
    check: ({ text, overview, invalid }) => {
      expect(value(text, 'ops_core_node_info', { node: 'SRV1-WEB', role: 'UNKNOWN' })).toBe(1);
      expect(value(text, 'ops_core_node_status', { node: 'SRV1-WEB', status: 'UNKNOWN' })).toBe(1);
      expect(value(text, 'ops_core_node_info', { node: 'MAIL-CORE', role: 'UNKNOWN' })).toBe(1);
      expect(value(text, 'ops_core_node_status', { node: 'MAIL-CORE', status: 'UNKNOWN' })).toBe(1);
      expect(value(text, 'ops_core_node_status', { node: 'MAIL-CORE', status: 'ONLINE' })).toBe(0);
      expect(invalid).toEqual({ null_value: 2, unknown_value: 2 });
      const byLabel = Object.fromEntries(overview.coreNodes.map((n: { label: string }) => [n.label, n]));
      expect(byLabel['SRV1-WEB']).toMatchObject({ role: 'UNKNOWN', status: 'UNKNOWN', cpuPercent: null });
      expect(byLabel['MAIL-CORE']).toMatchObject({ role: 'MAILSERVER', status: 'online' });
      expect(byLabel['DNS-CORE']).toMatchObject({ status: 'MISSING', id: '' });
    },
  },
  {
    name: '`metrics` as a JSON string is not parsed: unknown, counted as wrong_type',
    source: 'core_nodes',
    seed: node('n1', "'SRV1-WEB'", 'WEB', 'ONLINE', '"{\\"cpuPercent\\": 5}"'),
    check: ({ text, overview, invalid }) => {
      expect(samples(text, 'ops_core_node_cpu_ratio')).toEqual([]);
      expect(invalid).toEqual({ wrong_type: 1 });
      expect(overview.coreNodes[0]).toMatchObject({ label: 'SRV1-WEB', cpuPercent: null, ramPercent: null, diskPercent: null });
    },
  },
  {
    name: '`metrics` as an array: unknown, wrong_type',
    source: 'core_nodes',
    seed: node('n1', "'SRV1-WEB'", 'WEB', 'ONLINE', '[50, 60, 70]'),
    check: ({ text, invalid }) => {
      expect(samples(text, 'ops_core_node_cpu_ratio')).toEqual([]);
      expect(invalid).toEqual({ wrong_type: 1 });
    },
  },
  {
    name: 'nested garbage in `metrics`: each unusable key is unknown and counted',
    source: 'core_nodes',
    seed: node('n1', "'SRV1-WEB'", 'WEB', 'ONLINE', '{"cpuPercent": {"v": 5}, "ramPercent": [5], "diskPercent": true, "extra": {"deep": [1, {"x": null}]}}'),
    check: ({ text, invalid }) => {
      for (const m of ['ops_core_node_cpu_ratio', 'ops_core_node_memory_ratio', 'ops_core_node_disk_ratio']) expect(samples(text, m)).toEqual([]);
      expect(invalid).toEqual({ wrong_type: 3 });
    },
  },
  {
    name: 'NaN-like strings and a number beyond double range are unknown, never 0',
    source: 'core_nodes',
    seed:
      node('n1', "'SRV1-WEB'", 'WEB', 'ONLINE', '{"cpuPercent": "NaN", "ramPercent": "Infinity", "diskPercent": "42"}') +
      node('n2', "'MAIL-CORE'", 'MAIL', 'ONLINE', '{"cpuPercent": 1e400}'),
    check: ({ text, overview, invalid }) => {
      expect(samples(text, 'ops_core_node_cpu_ratio')).toEqual([]);
      expect(samples(text, 'ops_core_node_disk_ratio')).toEqual([]);
      expect(invalid).toEqual({ wrong_type: 4 });
      expect(overview.coreNodes.find((n: { label: string }) => n.label === 'SRV1-WEB').diskPercent).toBeNull();
    },
  },
  {
    name: 'negative and >100 percentages are unknown (out_of_range); 0, 100 and tiny values are kept; null is unknown but valid',
    source: 'core_nodes',
    seed:
      node('n1', "'SRV1-WEB'", 'WEB', 'ONLINE', '{"cpuPercent": -5, "ramPercent": 100.5, "diskPercent": 100}') +
      node('n2', "'MAIL-CORE'", 'MAIL', 'ONLINE', '{"cpuPercent": 0, "ramPercent": 1e-400, "diskPercent": null}'),
    check: ({ text, overview, invalid }) => {
      expect(value(text, 'ops_core_node_cpu_ratio', { node: 'SRV1-WEB' })).toBeUndefined();
      expect(value(text, 'ops_core_node_memory_ratio', { node: 'SRV1-WEB' })).toBeUndefined();
      expect(value(text, 'ops_core_node_disk_ratio', { node: 'SRV1-WEB' })).toBe(1);
      expect(value(text, 'ops_core_node_cpu_ratio', { node: 'MAIL-CORE' })).toBe(0);
      expect(value(text, 'ops_core_node_memory_ratio', { node: 'MAIL-CORE' })).toBe(0);
      expect(value(text, 'ops_core_node_disk_ratio', { node: 'MAIL-CORE' })).toBeUndefined();
      expect(invalid).toEqual({ out_of_range: 2 });
      expect(overview.coreNodes.find((n: { label: string }) => n.label === 'SRV1-WEB')).toMatchObject({ cpuPercent: null, ramPercent: null, diskPercent: 100 });
    },
  },
  {
    name: 'lastMetricsAt in the future (it would hide staleness) or before 1970 is unknown, counted bad_timestamp; the epoch itself and a minute ahead are served',
    source: 'core_nodes',
    seed:
      node('n1', "'SRV1-WEB'", 'WEB', 'ONLINE', null, at(DAY)) +
      node('n2', "'MAIL-CORE'", 'MAIL', 'ONLINE', null, BEFORE_1970) +
      node('n3', "'DNS-CORE'", 'DNS', 'ONLINE', null, "'1970-01-01 00:00:00'::timestamp") +
      node('n4', "'DB-CORE'", 'DATABASE', 'ONLINE', null, at(60_000)),
    check: ({ text, overview, invalid }) => {
      expect(value(text, 'ops_core_node_metrics_timestamp_seconds', { node: 'SRV1-WEB' })).toBeUndefined();
      expect(overview.coreNodes.find((n: { label: string }) => n.label === 'SRV1-WEB')).not.toHaveProperty('lastMetricsAt');
      expect(value(text, 'ops_core_node_metrics_timestamp_seconds', { node: 'MAIL-CORE' })).toBeUndefined();
      expect(value(text, 'ops_core_node_metrics_timestamp_seconds', { node: 'DNS-CORE' })).toBe(0);
      expect(value(text, 'ops_core_node_metrics_timestamp_seconds', { node: 'DB-CORE' })).toBe((NOW.getTime() + 60_000) / 1000);
      expect(invalid).toEqual({ bad_timestamp: 2 });
      expect(overview.coreNodes.find((n: { label: string }) => n.label === 'MAIL-CORE')).not.toHaveProperty('lastMetricsAt');
    },
  },
  {
    name: 'hostnames differing only by case are two nodes; only the exact expected spelling is expected',
    source: 'core_nodes',
    seed: node('n1', "'SRV1-WEB'", 'WEB', 'ONLINE') + node('n2', "'srv1-web'", 'WEB', 'OFFLINE'),
    check: ({ text, overview, invalid }) => {
      expect(value(text, 'ops_core_node_status', { node: 'SRV1-WEB', status: 'ONLINE' })).toBe(1);
      expect(value(text, 'ops_core_node_status', { node: 'srv1-web', status: 'OFFLINE' })).toBe(1);
      expect(value(text, 'ops_core_node_expected', { node: 'SRV1-WEB' })).toBe(1);
      expect(value(text, 'ops_core_node_expected', { node: 'srv1-web' })).toBe(0);
      expect(invalid).toEqual({});
      expect(overview.coreNodes.filter((n: { label: string }) => n.label.toUpperCase() === 'SRV1-WEB')).toHaveLength(2);
    },
  },
  {
    name: 'quotes, backslashes and newlines in label values come out escaped and read back exactly',
    source: 'core_nodes',
    seed: node('n1', `'we"ird\\host' || chr(10) || 'name'`, 'W"EB\\', 'ONLINE'),
    check: ({ text, openMetrics, invalid }) => {
      const host = 'we"ird\\host\nname';
      expect(value(text, 'ops_core_node_status', { node: host, status: 'ONLINE' })).toBe(1);
      expect(text).toContain('node="we\\"ird\\\\host\\nname"');
      expect(openMetrics).toContain('node="we\\"ird\\\\host\\nname"');
      expect(value(text, 'ops_core_node_info', { node: host, role: 'UNKNOWN' })).toBe(1);
      expect(invalid).toEqual({ unknown_value: 1 });
    },
  },
  {
    name: 'control characters and unusual Unicode in text are carried as valid UTF-8 label values',
    source: 'core_nodes',
    seed:
      node('n1', "'ctl' || chr(1) || chr(27) || '[31m' || chr(9) || chr(13) || 'x'", 'WEB', 'ONLINE') +
      node('n2', "'uni' || chr(8205) || chr(8238) || chr(65279) || chr(128512)", 'WEB', 'ONLINE'),
    check: ({ text, overview, invalid }) => {
      expect(value(text, 'ops_core_node_status', { node: 'ctl\u0001\u001b[31m\t\rx', status: 'ONLINE' })).toBe(1);
      expect(value(text, 'ops_core_node_status', { node: 'uni\u200d\u202e\ufeff😀', status: 'ONLINE' })).toBe(1);
      expect(Buffer.from(text, 'utf8').toString('utf8')).toBe(text);
      expect(invalid).toEqual({});
      expect(overview.coreNodes.map((n: { label: string }) => n.label)).toContain('uni\u200d\u202e\ufeff😀');
    },
  },
  {
    name: 'a 10,000-character hostname is cut to a bounded label (kept distinct by a hash) and counted once',
    source: 'core_nodes',
    seed: node('n1', "repeat('h', 10000)", 'WEB', 'ONLINE') + node('n2', "repeat('h', 9999) || 'i'", 'WEB', 'OFFLINE'),
    check: ({ text, invalid }) => {
      const nodes = [...new Set(samples(text, 'ops_core_node_status').map((s) => s.labels.node ?? ''))].filter((n) => n.startsWith('hhh'));
      expect(nodes).toHaveLength(2);
      for (const n of nodes) {
        expect(n).toHaveLength(MAX_LABEL_VALUE_LENGTH - 1);
        expect(n).toMatch(/^h{190}…[0-9a-f]{8}$/);
      }
      expect(invalid).toEqual({ label_overflow: 2 });
    },
  },

  // ---- provisioning ----
  {
    name: 'unknown and mis-cased job statuses stay visible as live UNKNOWN jobs',
    source: 'provisioning',
    seed:
      job('j1', "'hosting'", "'hosting.create'", "'WEBSITE'", 'WAITING', at(-H)) +
      job('j2', "'hosting'", "'hosting.create'", "'WEBSITE'", 'failed', at(-H)) +
      job('j3', "'hosting'", "'hosting.create'", "'WEBSITE'", 'PENDING', at(-H)) +
      job('j4', "'dns'", "'dns.zone.sync'", "'DNS_ZONE'", 'RUNNING', at(-5 * 60_000)),
    check: ({ text, overview, invalid }) => {
      expect(value(text, 'ops_provisioning_jobs', { type: 'hosting', status: 'UNKNOWN' })).toBe(2);
      expect(value(text, 'ops_provisioning_jobs', { type: 'hosting', status: 'PENDING' })).toBe(1);
      expect(value(text, 'ops_provisioning_jobs', { type: 'hosting', status: 'RUNNING' })).toBe(0);
      expect(value(text, 'ops_provisioning_jobs', { type: 'dns', status: 'RUNNING' })).toBe(1);
      expect(value(text, 'ops_provisioning_jobs_stuck', { type: 'hosting', status: 'PENDING' })).toBe(1);
      expect(value(text, 'ops_provisioning_jobs_stuck', { type: 'dns', status: 'RUNNING' })).toBe(0);
      expect(invalid).toEqual({ unknown_value: 2 });
      expect(overview.provisioning).toMatchObject({ failedLast24h: 0, stuckLast24h: 1, recentFailures: [] });
    },
  },
  {
    name: 'a 1 MB errorMessage full of secrets is truncated and redacted before it leaves',
    source: 'provisioning',
    seed: job(
      'j1',
      "'hosting'",
      "'hosting.create'",
      "'WEBSITE'",
      'FAILED',
      at(-H),
      `'connect postgres://admin:hunter2@db.internal:5432/platform failed; Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2ln token=tok_123456789 AKIAABCDEFGHIJKLMNOP password: "p@ss w0rd" ' || repeat('A', 1000000)`,
    ),
    check: ({ text, overview }) => {
      const [failure] = overview.provisioning.recentFailures;
      expect(failure).toMatchObject({ id: 'j1', action: 'hosting.create', resourceType: 'WEBSITE', createdAt: new Date(NOW.getTime() - H).toISOString() });
      expect(failure.errorMessage).toHaveLength(500);
      expect(failure.errorMessage.endsWith('…')).toBe(true);
      expect(failure.errorMessage).toContain('postgres://admin:***@db.internal:5432/platform');
      for (const secret of ['hunter2', 'eyJhbGciOiJIUzI1NiJ9', 'tok_123456789', 'AKIAABCDEFGHIJKLMNOP', 'p@ss']) expect(failure.errorMessage).not.toContain(secret);
      expect(value(text, 'ops_provisioning_failed_jobs_24h', { action: 'hosting.create', resource_type: 'WEBSITE' })).toBe(1);
      expect(overview.provisioning.failedLast24h).toBe(1);
    },
  },
  {
    name: 'control characters in errorMessage become spaces; newlines and tabs stay',
    source: 'provisioning',
    seed: job('j1', "'dns'", "'dns.zone.sync'", "'DNS_ZONE'", 'FAILED', at(-H), `'line1' || chr(10) || 'line2' || chr(9) || 'tab' || chr(1) || chr(27) || '[31mred' || chr(127)`),
    check: ({ overview }) => {
      expect(overview.provisioning.recentFailures[0].errorMessage).toBe('line1\nline2\ttab  [31mred ');
    },
  },
  {
    name: 'quotes and newlines in type, action and resourceType are escaped labels',
    source: 'provisioning',
    seed:
      job('j1', `'ho"st' || chr(10) || 'ing'`, "'x'", "'y'", 'PENDING', at(-60_000)) +
      job('j2', "'dns'", "'a\\b'", `'R"T'`, 'FAILED', at(-H)),
    check: ({ text, overview }) => {
      expect(value(text, 'ops_provisioning_jobs', { type: 'ho"st\ning', status: 'PENDING' })).toBe(1);
      expect(value(text, 'ops_provisioning_failed_jobs_24h', { action: 'a\\b', resource_type: 'R"T' })).toBe(1);
      expect(overview.provisioning.recentFailures[0]).toMatchObject({ action: 'a\\b', resourceType: 'R"T' });
    },
  },
  {
    name: 'more distinct (action, resource type) pairs than the label limit: the rest are summed under OTHER/OTHER and counted',
    source: 'provisioning',
    env: { OPS_LABEL_VALUE_LIMIT: '10' },
    seed: Array.from({ length: 15 }, (_, i) => job(`j${i}`, "'hosting'", `'action.${String(i).padStart(2, '0')}'`, "'WEBSITE'", 'FAILED', at(-H))).join(''),
    check: ({ text, overview, invalid }) => {
      const series = samples(text, 'ops_provisioning_failed_jobs_24h');
      expect(series).toHaveLength(11);
      expect(value(text, 'ops_provisioning_failed_jobs_24h', { action: 'OTHER', resource_type: 'OTHER' })).toBe(5);
      expect(series.reduce((sum, s) => sum + s.value, 0)).toBe(15);
      expect(invalid).toEqual({ label_overflow: 5 });
      expect(overview.provisioning.failedLast24h).toBe(15);
      expect(overview.provisioning.recentFailures).toHaveLength(10);
    },
  },
  {
    name: 'a FAILED job created in the future is invalid (counted, not listed); one before 1970 is listed as it is',
    source: 'provisioning',
    seed:
      job('future', "'ssl'", "'ssl.issue'", "'CERTIFICATE'", 'FAILED', at(DAY)) +
      job('ancient', "'ssl'", "'ssl.issue'", "'CERTIFICATE'", 'FAILED', BEFORE_1970),
    check: ({ text, overview, invalid }) => {
      expect(samples(text, 'ops_provisioning_failed_jobs_24h')).toEqual([]);
      expect(overview.provisioning.failedLast24h).toBe(0);
      expect(overview.provisioning.recentFailures.map((f: { id: string; createdAt: string }) => [f.id, f.createdAt])).toEqual([
        ['ancient', '1960-01-01T00:00:00.000Z'],
      ]);
      expect(invalid).toEqual({ bad_timestamp: 1 });
    },
  },

  // ---- security ----
  {
    name: 'NULL, mis-cased and unknown WAF decisions are counted under UNKNOWN',
    source: 'security',
    seed: event(at(-H), null) + event(at(-H), 'block') + event(at(-H), 'DROP') + event(at(-H), 'ALLOW'),
    check: ({ text, overview, invalid }) => {
      expect(value(text, 'ops_shield_events_24h', { decision: 'UNKNOWN' })).toBe(3);
      expect(value(text, 'ops_shield_events_24h', { decision: 'ALLOW' })).toBe(1);
      expect(value(text, 'ops_shield_events_24h', { decision: 'BLOCK' })).toBe(0);
      expect(invalid).toEqual({ null_value: 1, unknown_value: 2 });
      expect(overview.security.shieldEventsLast24h).toEqual({ total: 4, byDecision: { ALLOW: 1, BLOCK: 0, CHALLENGE: 0, RATE_LIMITED: 0 }, otherDecisions: 3 });
    },
  },
  {
    name: 'events dated in the future or before 1970 are not in the last 24 h',
    source: 'security',
    seed: event(at(H), 'ALLOW') + event(BEFORE_1970, 'BLOCK') + event(at(-H), 'CHALLENGE'),
    check: ({ text, overview }) => {
      expect(value(text, 'ops_shield_events_24h', { decision: 'CHALLENGE' })).toBe(1);
      expect(value(text, 'ops_shield_events_24h', { decision: 'ALLOW' })).toBe(0);
      expect(value(text, 'ops_shield_events_24h', { decision: 'BLOCK' })).toBe(0);
      expect(overview.security.shieldEventsLast24h.total).toBe(1);
    },
  },
  {
    name: 'policies and findings with NULL and unknown values are counted under UNKNOWN',
    source: 'security',
    seed: `
      INSERT INTO "ShieldPolicy" (id, name, mode, "updatedAt") VALUES ('p1', 'a', NULL, now()), ('p2', 'b', 'enforce', now()), ('p3', 'c', 'ENFORCE', now());
      INSERT INTO "GuardianFinding" (id, severity, status, title) VALUES
        ('f1', NULL, 'OPEN', 't'), ('f2', 'SEVERE', 'OPEN', 't'), ('f3', 'CRITICAL', 'OPEN', 't'), ('f4', 'HIGH', 'RESOLVED', 't');`,
    check: ({ text, overview, invalid }) => {
      expect(value(text, 'ops_shield_policies', { mode: 'ENFORCE' })).toBe(1);
      expect(value(text, 'ops_shield_policies', { mode: 'UNKNOWN' })).toBe(2);
      expect(value(text, 'ops_guardian_open_findings', { severity: 'CRITICAL' })).toBe(1);
      expect(value(text, 'ops_guardian_open_findings', { severity: 'UNKNOWN' })).toBe(2);
      expect(value(text, 'ops_guardian_open_findings', { severity: 'HIGH' })).toBe(0);
      expect(invalid).toEqual({ null_value: 2, unknown_value: 2 });
      expect(overview.security.shieldPolicies).toEqual({ enforceCount: 1, monitorCount: 0, disabledCount: 0 });
      expect(overview.security.guardianFindings).toEqual({ criticalOpen: 1, highOpen: 0, mediumOpen: 0 });
    },
  },

  // ---- backups ----
  {
    name: 'odd backups: no completedAt, completedAt before startedAt, a quoted type with a newline; one dated before 1970 is invalid, not a success',
    source: 'backups',
    seed: `
      INSERT INTO "Backup" (id, "resourceType", status, "startedAt", "completedAt", "sizeBytes") VALUES
        ('b1', 'DB_CORE', 'COMPLETED', ${BEFORE_1970}, NULL, 9223372036854775807),
        ('b2', 'MPANEL_CORE', 'COMPLETED', ${at(-H)}, ${at(-2 * H)}, -1),
        ('b3', 'we"ird' || chr(10) || 'type', 'FAILED', ${at(-H)}, NULL, NULL);`,
    check: ({ text, overview, invalid }) => {
      expect(value(text, 'ops_backup_last_success_timestamp_seconds', { resource_type: 'DB_CORE' })).toBeUndefined();
      expect(value(text, 'ops_backup_ever_succeeded', { resource_type: 'DB_CORE' })).toBe(0);
      expect(invalid).toEqual({ bad_timestamp: 1 });
      expect(value(text, 'ops_backup_last_success_timestamp_seconds', { resource_type: 'MPANEL_CORE' })).toBe((NOW.getTime() - 2 * H) / 1000);
      expect(value(text, 'ops_backup_last_failure_timestamp_seconds', { resource_type: 'we"ird\ntype' })).toBe((NOW.getTime() - H) / 1000);
      expect(value(text, 'ops_backup_ever_succeeded', { resource_type: 'we"ird\ntype' })).toBe(0);
      expect(value(text, 'ops_backup_ever_succeeded', { resource_type: 'CLOUD_POD' })).toBe(0);
      expect(overview.backups).toEqual({
        mpanelCoreLastSuccess: new Date(NOW.getTime() - 2 * H).toISOString(),
        notes: 'No successful backup recorded for DB-CORE, CloudPods',
      });
    },
  },
];

let db: TestDatabase;
let redis: TestRedis;

beforeAll(async () => {
  db = await createTestDatabase('bad_input_db');
  db.admin.on('error', () => undefined);
  redis = await createTestRedis('bad-input-db');
});

afterAll(async () => {
  await db?.drop();
  await redis?.cleanup();
});

describe('bad database rows', () => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    await db.admin.query('TRUNCATE "CoreNode", "ProvisioningJob", "ShieldEvent", "ShieldPolicy", "GuardianFinding", "Backup" RESTART IDENTITY');
    await db.admin.query(c.seed);
    let t: TestApp | undefined;
    try {
      t = await createTestApp('bad-input-db', { db, redis, now: () => NOW, env: c.env ?? {} });
      await t.app.collection.collectAll();
      for (const s of t.app.collection.states()) expect(s.lastError, s.name).toBeUndefined();
      const text = (await t.app.inject('/metrics')).body;
      const openMetrics = (await t.app.inject({ url: '/metrics', headers: { accept: 'application/openmetrics-text; version=1.0.0' } })).body;
      const overview = await t.app.inject({ url: '/api/ops/overview', headers: { authorization: t.authorization } });
      expect(overview.statusCode).toBe(200);
      const invalid = Object.fromEntries(
        samples(text, 'ops_source_invalid_values', { source: c.source })
          .filter((s) => s.value !== 0)
          .map((s) => [s.labels.reason, s.value]),
      );
      c.check({ text, openMetrics, overview: overview.json(), invalid });
      expect(promtoolCheck(text)).toEqual({ ok: true, output: '' });
      expect(openMetrics.endsWith('\n# EOF\n')).toBe(true);
    } finally {
      await t?.app.close();
    }
  });
});
