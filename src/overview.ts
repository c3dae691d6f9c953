/**
 * The JSON overview (`GET /api/ops/overview`, ../shared/overview-api.md): the
 * same collection as /metrics, mapped to the specification's interfaces.
 * Field names, types and optionality are the contract's; the only additions
 * are optional fields (`sources`, `otherDecisions`, `expected`).
 *
 * Unknown is never zero: an unknown CPU/RAM/disk percentage is `null` (the
 * contract's `number` cannot say "unknown" without inventing a value), an
 * absent optional field means unknown or never, and `sources` says which
 * parts are stale because their source is down.
 */
import { KNOWN, UNKNOWN_LABEL, type SourceName } from './catalog.js';
import type { SourceState } from './collector/runner.js';
import type { BackupsData } from './sources/backups.js';
import type { CoreNodesData } from './sources/core-nodes.js';
import type { ProvisioningData } from './sources/provisioning.js';
import type { QueuesData } from './sources/queues.js';
import type { SecurityData } from './sources/security.js';

export interface OpsOverviewSummary {
  /** ISO 8601: when the data was collected (the oldest collection it includes), not when it was served. */
  generatedAt: string;
  coreNodes: CoreNodeOverview[];
  queues: QueueOverview[];
  provisioning: ProvisioningOverview;
  security: SecurityOverview;
  backups: BackupOverview;
  /** Addition: each source's health; a source that is down serves its last good data, marked stale. */
  sources?: SourceOverview[];
}

export interface CoreNodeOverview {
  id: string;
  /** The hostname: "SRV1-WEB", "MAIL-CORE", ... */
  label: string;
  role: string;
  status: string;
  /** 0..100; null when unknown (missing, invalid or out of range in the database). */
  cpuPercent: number | null;
  ramPercent: number | null;
  diskPercent: number | null;
  lastMetricsAt?: string;
  /** Addition: whether the node is one of the configured expected core nodes. */
  expected?: boolean;
}

export interface QueueOverview {
  name: string;
  /** Jobs waiting to be processed: waiting, prioritized and paused. */
  waiting: number;
  active: number;
  failed: number;
  delayed: number;
  /** Age of the oldest waiting job, seconds; absent when none waits. */
  oldestWaitingSeconds?: number;
  /** Addition: the BullMQ key prefix. */
  prefix?: string;
  /** Addition: workers connected; absent when Redis does not tell. */
  workers?: number;
  /** Addition: whether the queue is paused. */
  paused?: boolean;
}

export interface ProvisioningOverview {
  failedLast24h: number;
  /** PENDING/RUNNING for longer than the stuck threshold. */
  stuckLast24h: number;
  recentFailures: Array<{
    id: string;
    action: string;
    resourceType: string;
    resourceId?: string;
    tenantId?: string;
    createdAt: string;
    errorMessage?: string;
  }>;
}

export interface SecurityOverview {
  shieldEventsLast24h: {
    total: number;
    byDecision: { ALLOW: number; BLOCK: number; CHALLENGE: number; RATE_LIMITED: number };
    /** Addition: events whose decision is NULL or not one of the four known (included in total). */
    otherDecisions?: number;
  };
  shieldPolicies: { enforceCount: number; monitorCount: number; disabledCount: number };
  guardianFindings?: { criticalOpen: number; highOpen: number; mediumOpen: number };
}

export interface BackupOverview {
  dbCoreLastSuccess?: string;
  mpanelCoreLastSuccess?: string;
  cloudPodsLastSuccess?: string;
  notes?: string;
}

export interface SourceOverview {
  name: SourceName;
  up: boolean;
  /** True when the data shown for this source is from before its last failed collection. */
  stale: boolean;
  lastSuccessAt?: string;
}

function percent(ratio: number | undefined): number | null {
  // Ratios came from percentages / 100: round back to avoid 57.99999.
  return ratio === undefined ? null : Math.round(ratio * 100 * 1e9) / 1e9;
}

/** Core nodes for the API. */
export function coreNodesOverview(data: CoreNodesData | undefined): CoreNodeOverview[] {
  return (data?.nodes ?? []).map((n) => {
    const o: CoreNodeOverview = {
      id: n.id ?? '',
      label: n.hostname,
      role: n.role ?? UNKNOWN_LABEL,
      status: n.status ?? UNKNOWN_LABEL,
      cpuPercent: percent(n.cpuRatio),
      ramPercent: percent(n.memoryRatio),
      diskPercent: percent(n.diskRatio),
      expected: n.expected,
    };
    if (n.lastMetricsAt) o.lastMetricsAt = n.lastMetricsAt.toISOString();
    return o;
  });
}

/** Queues for the API, ages measured at the collection's instant. */
export function queuesOverview(data: QueuesData | undefined, collectedAt: Date | undefined): QueueOverview[] {
  return (data?.queues ?? []).map((q) => {
    const o: QueueOverview = {
      name: q.name,
      waiting: q.counts.waiting + q.counts.prioritized + q.counts.paused,
      active: q.counts.active,
      failed: q.counts.failed,
      delayed: q.counts.delayed,
      prefix: q.prefix,
      paused: q.paused,
    };
    if (q.oldestWaitingAt && collectedAt) {
      o.oldestWaitingSeconds = Math.max(0, (collectedAt.getTime() - q.oldestWaitingAt.getTime()) / 1000);
    }
    if (q.workers !== undefined) o.workers = q.workers;
    return o;
  });
}

/** Provisioning for the API. */
export function provisioningOverview(data: ProvisioningData): ProvisioningOverview {
  return {
    failedLast24h: data.failedLast24h,
    stuckLast24h: data.stuck,
    recentFailures: data.recentFailures.map((f) => ({ ...f, createdAt: f.createdAt.toISOString() })),
  };
}

/** Security posture for the API. */
export function securityOverview(data: SecurityData): SecurityOverview {
  const d = data.events24h;
  const byDecision = { ALLOW: d.ALLOW ?? 0, BLOCK: d.BLOCK ?? 0, CHALLENGE: d.CHALLENGE ?? 0, RATE_LIMITED: d.RATE_LIMITED ?? 0 };
  const total = Object.values(d).reduce((a, b) => a + b, 0);
  const o: SecurityOverview = {
    shieldEventsLast24h: { total, byDecision, otherDecisions: total - Object.values(byDecision).reduce((a, b) => a + b, 0) },
    shieldPolicies: {
      enforceCount: data.policies.ENFORCE ?? 0,
      monitorCount: data.policies.MONITOR ?? 0,
      disabledCount: data.policies.DISABLED ?? 0,
    },
  };
  if (data.guardianOpen) {
    o.guardianFindings = {
      criticalOpen: data.guardianOpen.CRITICAL ?? 0,
      highOpen: data.guardianOpen.HIGH ?? 0,
      mediumOpen: data.guardianOpen.MEDIUM ?? 0,
    };
  }
  return o;
}

/** Backups for the API. */
export function backupsOverview(data: BackupsData): BackupOverview {
  if (!data.installed) return { notes: 'Backup tracking not yet configured (no Backup table)' };
  const last = (type: (typeof KNOWN.criticalBackupTypes)[number]) =>
    data.types.find((t) => t.resourceType === type)?.lastSuccess?.toISOString();
  const o: BackupOverview = {};
  const db = last('DB_CORE');
  const panel = last('MPANEL_CORE');
  const pods = last('CLOUD_POD');
  if (db) o.dbCoreLastSuccess = db;
  if (panel) o.mpanelCoreLastSuccess = panel;
  if (pods) o.cloudPodsLastSuccess = pods;
  const never = [!db && 'DB-CORE', !panel && 'MPANEL-CORE', !pods && 'CloudPods'].filter(Boolean);
  if (never.length > 0) o.notes = `No successful backup recorded for ${never.join(', ')}`;
  return o;
}

/**
 * Builds the overview from the runner's states, or returns null while a
 * database source has never collected (its required fields cannot be known).
 */
export function buildOverview(states: readonly SourceState[]): OpsOverviewSummary | null {
  const byName = new Map(states.map((s) => [s.name, s]));
  const provisioning = byName.get('provisioning')?.data as ProvisioningData | undefined;
  const security = byName.get('security')?.data as SecurityData | undefined;
  const backups = byName.get('backups')?.data as BackupsData | undefined;
  if (!provisioning || !security || !backups) return null;
  const collectedAt = states.flatMap((s) => (s.lastSuccessAt ? [s.lastSuccessAt.getTime()] : []));
  const queues = byName.get('queues');
  return {
    generatedAt: new Date(Math.min(...collectedAt)).toISOString(),
    coreNodes: coreNodesOverview(byName.get('core_nodes')?.data as CoreNodesData | undefined),
    queues: queuesOverview(queues?.data as QueuesData | undefined, queues?.lastSuccessAt),
    provisioning: provisioningOverview(provisioning),
    security: securityOverview(security),
    backups: backupsOverview(backups),
    sources: states.map((s) => {
      const o: SourceOverview = { name: s.name, up: s.up, stale: !s.up && s.data !== undefined };
      if (s.lastSuccessAt) o.lastSuccessAt = s.lastSuccessAt.toISOString();
      return o;
    }),
  };
}
