/**
 * Recording and alerting rules of the bundle, built from the catalog's metric
 * names and the thresholds in config.ts; generate.ts writes them to
 * prometheus/rules/.
 */
import { METRICS, MISSING_NODE_STATUS, UNKNOWN_LABEL } from '../src/catalog.js';
import { config, type BackupResourceType, type BurnRateWindow, type PromDuration } from './config.js';
import { dashboardUrl, OVERVIEW_PANELS as P, EXPORTER_PANELS as E } from './dashboards/ids.js';
import { BACKLOG_STATES, READY_STATES, acrossReplicas, by, durationSeconds, exporterUp, histSel, humanizeDuration, oneOf, sel } from './promql.js';

/** A recording rule (`level:metric:operation`) and why it exists. */
export interface RecordingRule {
  record: string;
  expr: string;
  labels?: Record<string, string>;
  /** Who uses it (kept as a comment in the generated file). */
  why: string;
}

/** The provisioning SLOs (config.slo): `success` per type, `latency` of one type. */
export type SloName = 'success' | 'latency';
export const SLO_NAMES: readonly SloName[] = ['success', 'latency'];

/** Every window the burn-rate alerts use, shortest first: each gets a recording rule per SLO. */
export const SLO_WINDOWS: readonly PromDuration[] = [...new Set(config.slo.burnRates.flatMap((b) => [b.shortWindow, b.longWindow]))].sort(
  (a, b) => durationSeconds(a) - durationSeconds(b),
);

/** Name of the recording rule of an SLO's error ratio over a window (`type:ops_provisioning_jobs_failed:ratio_rate1h`). */
export function sloRecord(slo: SloName, window: PromDuration): string {
  return slo === 'success' ? `type:ops_provisioning_jobs_failed:ratio_rate${window}` : `type:ops_provisioning_jobs_slow:ratio_rate${window}`;
}

/** Names of the recording rules, for the dashboards and alerts that read them. */
export const RECORDED = {
  ...Object.fromEntries(SLO_NAMES.flatMap((slo) => SLO_WINDOWS.map((w) => [`${slo}ErrorRatio${w}`, sloRecord(slo, w)]))),
  nodeMetricsAge: 'node:ops_core_node_metrics_age_seconds:min',
  queueBacklog: 'prefix_queue:ops_queue_backlog_jobs:sum',
  queueReady: 'prefix_queue:ops_queue_ready_jobs:sum',
  queueOldestAge: 'prefix_queue:ops_queue_oldest_waiting_job_age_seconds:max',
  failed24hByResourceType: 'resource_type:ops_provisioning_failed_jobs_24h:sum',
  shieldRate5m: 'decision:ops_shield_events:rate5m',
  shield24hPerSecond: 'decision:ops_shield_events_24h:per_second',
  backupAge: 'resource_type:ops_backup_last_success_age_seconds:min',
  backupAgeLimit: 'resource_type:ops_backup_age_limit_seconds:config',
} as const;

const BACKUP_TYPES = Object.keys(config.backups.maxAgeSeconds) as BackupResourceType[];

/**
 * Expressions shared by a recording rule (for dashboards) and an alert. Each
 * keeps the platform label (`by(...)`), and merges the exporter's replicas
 * before it sums (`acrossReplicas`).
 * Alerts inline them instead of reading the recorded series: rule groups are
 * evaluated independently (and in random order by `promtool test rules`), so
 * an alert on a recorded series would lag it by one evaluation.
 */
export const EXPR = {
  nodeMetricsAge: `time() - max by (${by('node')}) (${sel('coreNodeMetricsTimestamp')})`,
  queueBacklog: `sum by (${by('prefix', 'queue')}) (${acrossReplicas(sel('queueJobs', `state=~"${oneOf(BACKLOG_STATES)}"`))})`,
  queueReady: `sum by (${by('prefix', 'queue')}) (${acrossReplicas(sel('queueJobs', `state=~"${oneOf(READY_STATES)}"`))})`,
  queueOldestAge: `time() - min by (${by('prefix', 'queue')}) (${sel('queueOldestWaiting')})`,
  // Each replica counts the events it read since it started: their rates agree, their sum would double.
  shieldRate5m: (decision = '') =>
    `sum by (${by('decision')}) (${acrossReplicas(`rate(${sel('shieldEventsTotal', decision ? `decision="${decision}"` : '')}[5m])`)})`,
  shield24hPerSecond: (decision = '') =>
    `sum by (${by('decision')}) (${acrossReplicas(sel('shieldEvents24h', decision ? `decision="${decision}"` : ''))}) / 86400`,
  backupAge: (rt?: string) => `time() - max by (${by('resource_type')}) (${sel('backupLastSuccess', rt ? `resource_type="${rt}"` : '')})`,
};

const slo = config.slo;
if (!(METRICS.provisioningJobDuration.buckets ?? []).includes(slo.latency.thresholdSeconds)) {
  throw new Error(`config.slo.latency.thresholdSeconds ${slo.latency.thresholdSeconds} is not a bucket bound of ${METRICS.provisioningJobDuration.name}`);
}
/** The error budget: the share of bad events the objective allows (1 - objective, without float noise). */
export function errorBudget(name: SloName): number {
  return Number((1 - slo[name].objective).toFixed(10));
}
/** Per-second rate over `w` per platform and type, replicas merged (each counts the jobs it saw finish: their rates agree). */
const perType = (series: string, w: string): string => `sum by (${by('type')}) (${acrossReplicas(`rate(${series}[${w}])`)})`;
const successValid = [...slo.success.goodStatuses, ...slo.success.badStatuses];
const latencyMatch = `type="${slo.latency.type}", status=~"${oneOf(slo.latency.statuses)}"`;

/** The SLOs' error ratios over a window (0..1); none where nothing valid finished (0/0). */
export const SLO_EXPR: Record<SloName, (w: string) => string> = {
  // No bad series yet is no bad job: 0 where valid jobs finished.
  success: (w) =>
    `(\n  ${perType(sel('provisioningJobsFinished', `status=~"${oneOf(slo.success.badStatuses)}"`), w)}\n  or\n  0 * ${perType(sel('provisioningJobsFinished', `status=~"${oneOf(successValid)}"`), w)}\n)\n/\n` +
    perType(sel('provisioningJobsFinished', `status=~"${oneOf(successValid)}"`), w),
  latency: (w) =>
    `(\n  ${perType(histSel('provisioningJobDuration', '_count', latencyMatch), w)}\n  -\n  ${perType(histSel('provisioningJobDuration', '_bucket', `${latencyMatch}, le="${slo.latency.thresholdSeconds}"`), w)}\n)\n/\n` +
    perType(histSel('provisioningJobDuration', '_count', latencyMatch), w),
};

/** The burn rate of an SLO over a window: its error ratio divided by the error budget. */
export function burnRate(name: SloName, w: string): string {
  return `(${SLO_EXPR[name](w)}) / ${errorBudget(name)}`;
}

/** A multiwindow multi-burn-rate expression: any tier whose long and short windows both burn faster than its factor. */
function burnAlertExpr(name: SloName, tiers: readonly BurnRateWindow[]): string {
  return tiers
    .map((t) => `(\n  ${burnRate(name, t.longWindow)} > ${t.factor}\nand\n  ${burnRate(name, t.shortWindow)} > ${t.factor}\n)`)
    .join('\nor\n');
}
const tiersText = (tiers: readonly BurnRateWindow[]): string => tiers.map((t) => `${t.factor}× over ${t.longWindow} and ${t.shortWindow}`).join(', or ');
const pctText = (ratio: number): string => `${Math.round(ratio * 1000) / 10}%`;

/** Queue throughput over a window per queue, replicas merged: finished jobs of one kind. */
const queueIncrease = (key: 'queueJobsCompleted' | 'queueJobsFailed', w: string): string =>
  `sum by (${by('prefix', 'queue')}) (${acrossReplicas(`increase(${sel(key)}[${w}])`)})`;
const queueFinished = (w: string): string => `(${queueIncrease('queueJobsCompleted', w)} + ${queueIncrease('queueJobsFailed', w)})`;

/** The recording rules, in evaluation order. */
export const recordingRules: RecordingRule[] = [
  {
    record: RECORDED.nodeMetricsAge,
    expr: EXPR.nodeMetricsAge,
    why: 'Age of each core node\'s latest metrics, for the core nodes table.',
  },
  {
    record: RECORDED.queueBacklog,
    expr: EXPR.queueBacklog,
    why: 'Backlog (waiting + prioritized + paused) per queue, for the queues row.',
  },
  {
    record: RECORDED.queueReady,
    expr: EXPR.queueReady,
    why: 'Jobs a worker could take now (waiting + prioritized), for the first row.',
  },
  {
    record: RECORDED.queueOldestAge,
    expr: EXPR.queueOldestAge,
    why: 'Age of the oldest waiting job per queue, for the first row and the queues row.',
  },
  {
    record: RECORDED.failed24hByResourceType,
    expr: `sum by (${by('resource_type')}) (${acrossReplicas(sel('provisioningFailed24h'))})`,
    why: 'Failures of the last 24 h per resource type: failures over time on the provisioning row.',
  },
  {
    record: RECORDED.shieldRate5m,
    expr: EXPR.shieldRate5m(),
    why: 'Shield decisions per second, for the first row and the security row.',
  },
  {
    record: RECORDED.shield24hPerSecond,
    expr: EXPR.shield24hPerSecond(),
    why: 'Average decisions per second over the last 24 h (the surge baseline), for the first row.',
  },
  {
    record: RECORDED.backupAge,
    expr: EXPR.backupAge(),
    why: 'Age of the last successful backup per resource type, for the first row and the backups row.',
  },
  ...SLO_NAMES.flatMap((name) =>
    SLO_WINDOWS.map((w) => ({
      record: sloRecord(name, w),
      expr: SLO_EXPR[name](w),
      why:
        name === 'success'
          ? `Share of provisioning jobs per type that ended ${slo.success.badStatuses.join(' or ')} of those that ended ${successValid.join(' or ')} over ${w} (success SLO), for the SLO row.`
          : `Share of ${slo.latency.type} jobs ending ${slo.latency.statuses.join(' or ')} that took longer than ${slo.latency.thresholdSeconds} s over ${w} (latency SLO), for the SLO row.`,
    })),
  ),
  ...BACKUP_TYPES.map((rt) => ({
    record: RECORDED.backupAgeLimit,
    expr: `vector(${config.backups.maxAgeSeconds[rt]})`,
    labels: { resource_type: rt },
    why: `Configured maximum backup age of ${rt} (config.backups.maxAgeSeconds), drawn next to the age on dashboards; the same for every platform, so it has no platform label.`,
  })),
];

/** Alert severities: critical pages, warning tickets, info does neither. */
export type Severity = 'critical' | 'warning' | 'info';

/** The area an alert belongs to (the exporter's source names, plus the exporter and the pipeline). */
export type Area = 'core_nodes' | 'queues' | 'provisioning' | 'security' | 'backups' | 'exporter' | 'monitoring';

/** Every alert the bundle defines. */
export type AlertName =
  | 'OpsCoreNodeDown'
  | 'OpsCoreNodeNotOnline'
  | 'OpsCoreNodeInMaintenance'
  | 'OpsCoreNodeMissing'
  | 'OpsCoreNodeMetricsStale'
  | 'OpsCoreNodeDiskHigh'
  | 'OpsCoreNodeMemoryHigh'
  | 'OpsQueueBacklogGrowing'
  | 'OpsQueueNoWorkers'
  | 'OpsQueueStalled'
  | 'OpsQueueFailureRatioHigh'
  | 'OpsProvisioningJobsStuck'
  | 'OpsProvisioningFailureSpike'
  | 'OpsProvisioningErrorBudgetBurn'
  | 'OpsProvisioningLatencyBudgetBurn'
  | 'OpsShieldBlockSurge'
  | 'OpsGuardianCriticalFindingsOpen'
  | 'OpsBackupTooOld'
  | 'OpsBackupNeverSucceeded'
  | 'OpsBackupTrackingNotConfigured'
  | 'OpsExporterDown'
  | 'OpsExporterReplicaDown'
  | 'OpsExporterAbsent'
  | 'OpsExporterSourceDown'
  | 'OpsExporterIndexMissing'
  | 'OpsExporterLabelOverflow'
  | 'OpsShieldWindowIncomplete'
  | 'Watchdog';

/** One alerting rule. Several rules may share an alert name (severity tiers, variants). */
export interface AlertRule {
  alert: AlertName;
  severity: Severity;
  area: Area;
  /** The labels that say which object is affected (`node`, `queue`, ...); the expression keeps exactly these. */
  domainLabels: readonly string[];
  expr: string;
  for?: PromDuration;
  summary: string;
  /** Templated with `$labels` and `$value`. */
  description: string;
  dashboardUrl: string;
}

/** Labels used to tell affected objects apart, for grouping and inhibition in Alertmanager. */
export const DOMAIN_LABELS = ['node', 'prefix', 'queue', 'type', 'resource_type', 'decision', 'source', 'instance'] as const;

const c = config;
const nodeStatus = (statuses: readonly string[]): string =>
  sel('coreNodeStatus', statuses.length === 1 ? `status="${statuses[0]}"` : `status=~"${oneOf(statuses)}"`);
/** Statuses that ticket: a node that works but not fully, or one whose status the platform does not say. */
const notOnline = ['DEGRADED', UNKNOWN_LABEL];
/** A ratio as a percentage for literal texts (0.85 -> "85%"). */
const pct = (ratio: number): string => `${Math.round(ratio * 1000) / 10}%`;

/** The alerting rules, grouped by area in this order in the generated file. */
export const alertRules: AlertRule[] = [
  // Core nodes
  {
    alert: 'OpsCoreNodeDown',
    severity: 'critical',
    area: 'core_nodes',
    domainLabels: ['node'],
    expr: `max by (${by('node')}) (${nodeStatus(['OFFLINE'])}) == 1`,
    for: c.coreNodes.downFor,
    summary: 'Core node {{ $labels.node }} is OFFLINE.',
    description: `Core node {{ $labels.node }} has reported status OFFLINE for more than ${c.coreNodes.downFor}; the services it hosts are down for every tenant on it.`,
    dashboardUrl: dashboardUrl('overview', P.coreNodesTable),
  },
  {
    alert: 'OpsCoreNodeNotOnline',
    severity: 'warning',
    area: 'core_nodes',
    domainLabels: ['node', 'status'],
    expr: `max by (${by('node', 'status')}) (${nodeStatus(notOnline)}) == 1`,
    for: c.coreNodes.notOnlineFor,
    summary: 'Core node {{ $labels.node }} is {{ $labels.status }}.',
    description: `Core node {{ $labels.node }} has been {{ $labels.status }} (not ONLINE) for more than ${c.coreNodes.notOnlineFor}.`,
    dashboardUrl: dashboardUrl('overview', P.coreNodesTable),
  },
  {
    alert: 'OpsCoreNodeInMaintenance',
    severity: 'info',
    area: 'core_nodes',
    domainLabels: ['node'],
    expr: `max by (${by('node')}) (${nodeStatus(['MAINTENANCE'])}) == 1`,
    for: c.coreNodes.maintenanceFor,
    summary: 'Core node {{ $labels.node }} is in MAINTENANCE.',
    description: `Core node {{ $labels.node }} has been in MAINTENANCE for more than ${c.coreNodes.maintenanceFor}; set it back to ONLINE when the work is done.`,
    dashboardUrl: dashboardUrl('overview', P.coreNodesTable),
  },
  {
    alert: 'OpsCoreNodeMissing',
    severity: 'warning',
    area: 'core_nodes',
    domainLabels: ['node'],
    expr: `max by (${by('node')}) (${nodeStatus([MISSING_NODE_STATUS])}) == 1`,
    for: c.coreNodes.missingFor,
    summary: 'Expected core node {{ $labels.node }} is missing from the database.',
    description: `Core node {{ $labels.node }} is configured as expected but has had no CoreNode row for more than ${c.coreNodes.missingFor}; its status is unknown.`,
    dashboardUrl: dashboardUrl('overview', P.coreNodesTable),
  },
  {
    alert: 'OpsCoreNodeMetricsStale',
    severity: 'warning',
    area: 'core_nodes',
    domainLabels: ['node'],
    expr: `(${EXPR.nodeMetricsAge}) > ${c.coreNodes.metricsStaleAfterSeconds}`,
    for: c.coreNodes.metricsStaleFor,
    summary: 'Metrics of core node {{ $labels.node }} are stale.',
    description: `The last metrics of core node {{ $labels.node }} were written {{ $value | humanizeDuration }} ago (limit ${humanizeDuration(c.coreNodes.metricsStaleAfterSeconds)}); its CPU, RAM and disk figures are out of date.`,
    dashboardUrl: dashboardUrl('overview', P.coreNodesTable),
  },
  {
    alert: 'OpsCoreNodeDiskHigh',
    severity: 'warning',
    area: 'core_nodes',
    domainLabels: ['node'],
    expr: `max by (${by('node')}) (${sel('coreNodeDisk')}) >= ${c.coreNodes.diskWarningRatio}`,
    for: c.coreNodes.diskWarningFor,
    summary: 'Disk of core node {{ $labels.node }} is {{ $value | humanizePercentage }} full.',
    description: `Disk utilisation of core node {{ $labels.node }} is {{ $value | humanizePercentage }} (warning at ${pct(c.coreNodes.diskWarningRatio)}, page at ${pct(c.coreNodes.diskCriticalRatio)}).`,
    dashboardUrl: dashboardUrl('overview', P.coreNodesDisk),
  },
  {
    alert: 'OpsCoreNodeDiskHigh',
    severity: 'critical',
    area: 'core_nodes',
    domainLabels: ['node'],
    expr: `max by (${by('node')}) (${sel('coreNodeDisk')}) >= ${c.coreNodes.diskCriticalRatio}`,
    for: c.coreNodes.diskCriticalFor,
    summary: 'Disk of core node {{ $labels.node }} is almost full ({{ $value | humanizePercentage }}).',
    description: `Disk utilisation of core node {{ $labels.node }} is {{ $value | humanizePercentage }} (page at ${pct(c.coreNodes.diskCriticalRatio)}); services on it fail when it fills up.`,
    dashboardUrl: dashboardUrl('overview', P.coreNodesDisk),
  },
  {
    alert: 'OpsCoreNodeMemoryHigh',
    severity: 'warning',
    area: 'core_nodes',
    domainLabels: ['node'],
    expr: `max by (${by('node')}) (${sel('coreNodeMemory')}) >= ${c.coreNodes.memoryWarningRatio}`,
    for: c.coreNodes.memoryWarningFor,
    summary: 'RAM of core node {{ $labels.node }} is {{ $value | humanizePercentage }} used.',
    description: `RAM utilisation of core node {{ $labels.node }} has been at or above ${pct(c.coreNodes.memoryWarningRatio)} for ${c.coreNodes.memoryWarningFor}; now {{ $value | humanizePercentage }}.`,
    dashboardUrl: dashboardUrl('overview', P.coreNodesMemory),
  },

  // Queues
  {
    alert: 'OpsQueueBacklogGrowing',
    severity: 'warning',
    area: 'queues',
    domainLabels: ['prefix', 'queue'],
    expr:
      `(${EXPR.queueOldestAge}) > ${c.queues.oldestWaitingWarningSeconds}` +
      `\nand on (${by('prefix', 'queue')})\n` +
      // The slope of a sum is the sum of the slopes: the states share their scrape timestamps.
      `sum by (${by('prefix', 'queue')}) (${acrossReplicas(`deriv(${sel('queueJobs', `state=~"${oneOf(BACKLOG_STATES)}"`)}[${c.queues.backlogGrowthWindow}])`)}) > 0`,
    for: c.queues.backlogGrowingFor,
    summary: 'Queue {{ $labels.queue }} is falling behind.',
    description: `The backlog of queue {{ $labels.prefix }}:{{ $labels.queue }} has grown over the last ${c.queues.backlogGrowthWindow} and its oldest waiting job is {{ $value | humanizeDuration }} old (limit ${humanizeDuration(c.queues.oldestWaitingWarningSeconds)}).`,
    dashboardUrl: dashboardUrl('overview', P.queuesOldestAge, { queue: '{{ $labels.queue }}' }),
  },
  {
    alert: 'OpsQueueNoWorkers',
    severity: 'critical',
    area: 'queues',
    domainLabels: ['prefix', 'queue'],
    expr:
      `${EXPR.queueReady} > 0` +
      `\nand on (${by('prefix', 'queue')})\n(max by (${by('prefix', 'queue')}) (${sel('queueWorkers')}) == 0)` +
      `\nunless on (${by('prefix', 'queue')})\n(max by (${by('prefix', 'queue')}) (${sel('queuePaused')}) == 1)`,
    for: c.queues.noWorkersFor,
    summary: 'Queue {{ $labels.queue }} has waiting jobs and no worker.',
    description: `Queue {{ $labels.prefix }}:{{ $labels.queue }} has {{ $value }} waiting jobs, is not paused, and no worker has been connected for ${c.queues.noWorkersFor}: nothing will process them.`,
    dashboardUrl: dashboardUrl('overview', P.queuesWorkers, { queue: '{{ $labels.queue }}' }),
  },

  {
    // A worker connected but hung: OpsQueueNoWorkers sees workers, the backlog may not grow yet.
    alert: 'OpsQueueStalled',
    severity: 'critical',
    area: 'queues',
    domainLabels: ['prefix', 'queue'],
    expr:
      `${EXPR.queueReady} > 0` +
      `\nand on (${by('prefix', 'queue')})\n(max by (${by('prefix', 'queue')}) (${sel('queueWorkers')}) > 0)` +
      `\nand on (${by('prefix', 'queue')})\n${queueFinished(c.queues.stalledWindow)} == 0` +
      // The counters existed a whole window ago: a queue the exporter has only just started to count is unknown, not stalled.
      `\nand on (${by('prefix', 'queue')})\nmax by (${by('prefix', 'queue')}) (${sel('queueJobsCompleted')} offset ${c.queues.stalledWindow})` +
      `\nunless on (${by('prefix', 'queue')})\n(max by (${by('prefix', 'queue')}) (${sel('queuePaused')}) == 1)`,
    for: c.queues.stalledFor,
    summary: 'Queue {{ $labels.queue }} has stalled: jobs wait, workers are connected, nothing finishes.',
    description: `Queue {{ $labels.prefix }}:{{ $labels.queue }} has {{ $value }} jobs ready and connected workers, is not paused, and no job has completed or failed for ${c.queues.stalledWindow}: its workers are hung.`,
    dashboardUrl: dashboardUrl('overview', P.queuesThroughput, { queue: '{{ $labels.queue }}' }),
  },
  {
    alert: 'OpsQueueFailureRatioHigh',
    severity: 'warning',
    area: 'queues',
    domainLabels: ['prefix', 'queue'],
    expr:
      `${queueIncrease('queueJobsFailed', c.queues.failureRatioWindow)}\n/\n${queueFinished(c.queues.failureRatioWindow)}\n> ${c.queues.failureRatioLimit}` +
      `\nand on (${by('prefix', 'queue')})\n${queueFinished(c.queues.failureRatioWindow)} >= ${c.queues.failureRatioMinJobs}`,
    for: c.queues.failureRatioFor,
    summary: 'Jobs of queue {{ $labels.queue }} fail often.',
    description: `{{ $value | humanizePercentage }} of the jobs of queue {{ $labels.prefix }}:{{ $labels.queue }} that finished over the last ${c.queues.failureRatioWindow} failed (limit ${pctText(c.queues.failureRatioLimit)}, from ${c.queues.failureRatioMinJobs} finished jobs).`,
    dashboardUrl: dashboardUrl('overview', P.queuesFailureRatio, { queue: '{{ $labels.queue }}' }),
  },

  // Provisioning. Stuck jobs page: a customer's order is hanging and it
  // rarely resolves by itself (the product promise: page on stuck jobs).
  {
    alert: 'OpsProvisioningJobsStuck',
    severity: 'critical',
    area: 'provisioning',
    domainLabels: ['type'],
    expr: `sum by (${by('type')}) (${acrossReplicas(sel('provisioningStuck'))}) > 0`,
    for: c.provisioning.stuckFor,
    summary: '{{ $value }} provisioning jobs of type {{ $labels.type }} are stuck.',
    description: '{{ $value }} provisioning jobs of type {{ $labels.type }} have been PENDING or RUNNING for longer than the exporter\'s stuck threshold; the customers who ordered them are waiting.',
    dashboardUrl: dashboardUrl('overview', P.provisioningStuck),
  },
  {
    alert: 'OpsProvisioningFailureSpike',
    severity: 'warning',
    area: 'provisioning',
    domainLabels: ['resource_type'],
    expr:
      `sum by (${by('resource_type')}) (${acrossReplicas(`${sel('provisioningFailed24h')} - min_over_time(${sel('provisioningFailed24h')}[${c.provisioning.failureSpikeWindow}])`)})` +
      ` >= ${c.provisioning.failureSpikeCount}`,
    for: c.provisioning.failureSpikeFor,
    summary: 'Spike of failed {{ $labels.resource_type }} provisioning jobs.',
    description: `{{ $value }} more provisioning jobs for resource type {{ $labels.resource_type }} failed within the last ${c.provisioning.failureSpikeWindow} (threshold ${c.provisioning.failureSpikeCount}).`,
    dashboardUrl: dashboardUrl('overview', P.provisioningHotspots),
  },

  // Provisioning SLOs: multiwindow multi-burn-rate alerts (SRE workbook, "Alerting on SLOs").
  ...(['critical', 'warning'] as const).flatMap((severity) => {
    const tiers = slo.burnRates.filter((t) => t.severity === severity);
    if (tiers.length === 0) return [];
    const pace = severity === 'critical' ? 'fast' : 'slowly';
    const fate = severity === 'critical' ? 'at this pace it is gone within days' : `at this pace it is gone before the ${slo.period} period ends`;
    return [
      {
        alert: 'OpsProvisioningErrorBudgetBurn' as const,
        severity,
        area: 'provisioning' as const,
        domainLabels: ['type'],
        expr: burnAlertExpr('success', tiers),
        for: severity === 'critical' ? slo.pageFor : slo.ticketFor,
        summary: `Provisioning of {{ $labels.type }} burns its error budget ${pace}.`,
        description: `Provisioning jobs of type {{ $labels.type }} fail {{ $value | humanize }} times as fast as the success SLO allows (${pctText(slo.success.objective)} succeed over ${slo.period}; burning ${tiersText(tiers)}): ${fate}.`,
        dashboardUrl: dashboardUrl('overview', P.sloBurnRate),
      },
      {
        alert: 'OpsProvisioningLatencyBudgetBurn' as const,
        severity,
        area: 'provisioning' as const,
        domainLabels: ['type'],
        expr: burnAlertExpr('latency', tiers),
        for: severity === 'critical' ? slo.pageFor : slo.ticketFor,
        summary: `{{ $labels.type }} jobs are too slow: the latency error budget burns ${pace}.`,
        description: `{{ $labels.type }} jobs take longer than ${slo.latency.thresholdSeconds} s {{ $value | humanize }} times as often as the latency SLO allows (${pctText(slo.latency.objective)} within ${slo.latency.thresholdSeconds} s over ${slo.period}; burning ${tiersText(tiers)}): ${fate}.`,
        dashboardUrl: dashboardUrl('overview', P.sloBurnRate),
      },
    ];
  }),

  // Security
  {
    alert: 'OpsShieldBlockSurge',
    severity: 'warning',
    area: 'security',
    domainLabels: ['decision'],
    expr:
      `${EXPR.shieldRate5m('BLOCK')} > ${c.security.blockSurgeMinPerSecond}` +
      `\nand\n(\n  ${EXPR.shieldRate5m('BLOCK')}\n  > ${c.security.blockSurgeFactor} * (${EXPR.shield24hPerSecond('BLOCK')})` +
      // Without the 24 h gauge (an older exporter) the minimum rate alone decides.
      `\n  or\n  ${EXPR.shieldRate5m('BLOCK')}\n  unless ${EXPR.shield24hPerSecond('BLOCK')}\n)`,
    for: c.security.blockSurgeFor,
    summary: 'Surge of Migra Shield BLOCK decisions.',
    description: `Migra Shield is blocking {{ $value | humanize }} requests per second, more than ${c.security.blockSurgeFactor} times its 24 h average and above ${c.security.blockSurgeMinPerSecond}/s: an attack, or a policy blocking legitimate traffic.`,
    dashboardUrl: dashboardUrl('overview', P.securityDecisions),
  },
  {
    alert: 'OpsGuardianCriticalFindingsOpen',
    severity: 'critical',
    area: 'security',
    domainLabels: [],
    expr: `max by (${by()}) (${sel('guardianOpenFindings', 'severity="CRITICAL"')}) > 0`,
    for: c.security.guardianCriticalFor,
    summary: '{{ $value }} CRITICAL Guardian findings are open.',
    description: `Guardian reports {{ $value }} open findings of severity CRITICAL (open for more than ${c.security.guardianCriticalFor}); acknowledge them in Guardian once someone owns them.`,
    dashboardUrl: dashboardUrl('overview', P.securityFindings),
  },
  {
    // Over every replica (min): one replica whose recount never finishes is broken even while another serves the count.
    alert: 'OpsShieldWindowIncomplete',
    severity: 'warning',
    area: 'security',
    domainLabels: [],
    expr: `min by (${by()}) (${sel('shieldWindowComplete')}) == 0`,
    for: c.security.shieldWindowIncompleteFor,
    summary: 'The Shield 24 h window is incomplete.',
    description: `ops_shield_window_complete has been {{ $value }} on an exporter replica for ${c.security.shieldWindowIncompleteFor}: its recount of the last 24 hours has not finished, so ops_shield_events_24h (the surge baseline, the 24 h panel) is absent from it.`,
    dashboardUrl: dashboardUrl('overview', P.securityDecisions24h),
  },

  // Backups. A critical system without a recent backup pages: the next
  // incident would lose data (the product promise: page on stale backups).
  {
    alert: 'OpsBackupTooOld',
    severity: 'critical',
    area: 'backups',
    domainLabels: ['resource_type'],
    expr: BACKUP_TYPES.map((rt) => `(${EXPR.backupAge(rt)}) > ${c.backups.maxAgeSeconds[rt]}`).join('\nor\n'),
    for: c.backups.tooOldFor,
    summary: 'Last {{ $labels.resource_type }} backup is too old.',
    description:
      'The last successful {{ $labels.resource_type }} backup finished {{ $value | humanizeDuration }} ago; the limit is ' +
      BACKUP_TYPES.map((rt, i) => `{{ ${i === 0 ? 'if' : 'else if'} eq $labels.resource_type "${rt}" }}${humanizeDuration(c.backups.maxAgeSeconds[rt])}`).join('') +
      '{{ end }}.',
    dashboardUrl: dashboardUrl('overview', P.backupsTable),
  },
  {
    alert: 'OpsBackupNeverSucceeded',
    severity: 'critical',
    area: 'backups',
    domainLabels: ['resource_type'],
    expr:
      `max by (${by('resource_type')}) (${sel('backupEverSucceeded', `resource_type=~"${oneOf(BACKUP_TYPES)}"`)}) == 0` +
      `\nunless on (${by()}) (max by (${by()}) (${sel('backupTrackingInstalled')}) == 0)`,
    for: c.backups.neverFor,
    summary: '{{ $labels.resource_type }} has never been backed up.',
    description: 'Backup tracking is installed but has no COMPLETED backup of {{ $labels.resource_type }} at all.',
    dashboardUrl: dashboardUrl('overview', P.backupsTable),
  },
  {
    alert: 'OpsBackupTrackingNotConfigured',
    severity: 'info',
    area: 'backups',
    domainLabels: [],
    expr: `max by (${by()}) (${sel('backupTrackingInstalled')}) == 0`,
    for: c.backups.trackingMissingFor,
    summary: 'Backup tracking is not configured.',
    description: `ops_backup_tracking_installed has been {{ $value }} for ${c.backups.trackingMissingFor}: the platform database has no Backup table, so no backup can be checked for age; backup alerts stay silent until backup tracking is set up.`,
    dashboardUrl: dashboardUrl('overview', P.backupsTable),
  },

  // The exporter. Its replicas of one platform read the same database and Redis: one of them
  // down loses redundancy (a ticket); all of them down, or a source failing on all of them,
  // leaves that platform (or that area of it) unwatched (a page).
  {
    alert: 'OpsExporterDown',
    severity: 'critical',
    area: 'exporter',
    domainLabels: ['job'],
    expr: `max by (${by('job')}) (${exporterUp()}) == 0`,
    for: c.exporter.downFor,
    summary: 'Every ops-overview exporter of the platform is down: its monitoring is blind.',
    description: `Prometheus has failed to scrape every replica of the ops-overview exporter of this platform for ${c.exporter.downFor} (up = {{ $value }}): no platform alert (nodes, queues, backups, ...) can fire while they are down.`,
    dashboardUrl: dashboardUrl('exporter', E.exporterUp),
  },
  {
    alert: 'OpsExporterReplicaDown',
    severity: 'warning',
    area: 'exporter',
    domainLabels: ['job', 'instance'],
    expr: `${exporterUp()} == 0\nand on (${by('job')})\n(max by (${by('job')}) (${exporterUp()}) == 1)`,
    for: c.exporter.replicaDownFor,
    summary: 'Exporter replica {{ $labels.instance }} is down.',
    description: `Prometheus has failed to scrape the ops-overview exporter at {{ $labels.instance }} for ${c.exporter.replicaDownFor}, while another replica of its platform still answers: nothing is blind, but one more failure would be.`,
    dashboardUrl: dashboardUrl('exporter', E.exporterUp),
  },
  {
    // Not a page: a scrape job missing from Prometheus is a configuration change gone wrong, seen at
    // deploy time; paging on absence would also page whenever a Prometheus has no such job on purpose.
    alert: 'OpsExporterAbsent',
    severity: 'warning',
    area: 'exporter',
    domainLabels: [],
    expr: `absent(${exporterUp()})`,
    for: c.exporter.absentFor,
    summary: 'Prometheus has no ops-overview exporter target.',
    description: `Prometheus has had no scrape target matching {${c.selectors.exporterJob}} for ${c.exporter.absentFor} (absent = {{ $value }}): prometheus.yml or service discovery lost the exporter, and no platform alert can fire.`,
    dashboardUrl: dashboardUrl('exporter', E.exporterUp),
  },
  {
    alert: 'OpsExporterSourceDown',
    severity: 'warning',
    area: 'exporter',
    domainLabels: ['job', 'source'],
    expr: `min by (${by('job', 'source')}) (${sel('sourceUp')}) == 0`,
    for: c.exporter.sourceDownFor,
    summary: 'Exporter source {{ $labels.source }} is failing.',
    description: `An exporter replica has failed to collect source {{ $labels.source }} for ${c.exporter.sourceDownFor}; its metrics are absent from that replica.`,
    dashboardUrl: dashboardUrl('exporter', E.sourcesTable),
  },
  {
    alert: 'OpsExporterSourceDown',
    severity: 'critical',
    area: 'exporter',
    domainLabels: ['job', 'source'],
    expr: `max by (${by('job', 'source')}) (${sel('sourceUp')}) == 0`,
    for: c.exporter.sourceDownFor,
    summary: 'Exporter source {{ $labels.source }} is failing on every replica.',
    description: `Every exporter replica of this platform has failed to collect source {{ $labels.source }} for ${c.exporter.sourceDownFor}; its metrics are absent, so its alerts cannot fire.`,
    dashboardUrl: dashboardUrl('exporter', E.sourcesTable),
  },

  {
    alert: 'OpsExporterIndexMissing',
    severity: 'warning',
    area: 'exporter',
    domainLabels: ['index'],
    expr: `max by (${by('index')}) (${sel('exporterIndexMissing')}) == 1`,
    for: c.exporter.indexMissingFor,
    summary: 'Index {{ $labels.index }} is missing on the platform database.',
    description: `The exporter's index check (at start-up and hourly) finds index {{ $labels.index }} missing or invalid for ${c.exporter.indexMissingFor}: the exporter's queries on that table scan it, and its collections get slower as the table grows.`,
    dashboardUrl: dashboardUrl('exporter', E.sourcesTable),
  },
  {
    alert: 'OpsExporterLabelOverflow',
    severity: 'warning',
    area: 'exporter',
    domainLabels: ['source'],
    expr: `max by (${by('source')}) (${sel('sourceInvalidValues', 'reason="label_overflow"')}) > 0`,
    for: c.exporter.labelOverflowFor,
    summary: 'Source {{ $labels.source }} cuts series at its label bound.',
    description: `For ${c.exporter.labelOverflowFor} the exporter has served {{ $value }} values of source {{ $labels.source }} beyond its label bound without their own series (counted under OTHER or only in the aggregate families): per-object panels and alerts miss them.`,
    dashboardUrl: dashboardUrl('exporter', E.invalidValues),
  },

  // The alerting pipeline
  {
    alert: 'Watchdog',
    severity: 'info',
    area: 'monitoring',
    domainLabels: [],
    expr: 'vector(1)',
    summary: 'The alerting pipeline works.',
    description: 'This alert always fires. Alertmanager sends it to a dead man\'s switch, which pages when it stops arriving (Prometheus or Alertmanager down).',
    dashboardUrl: dashboardUrl('exporter'),
  },
];

/** `runbook_url` of an alert. */
export function runbookUrl(alert: AlertName): string {
  return `${config.urls.runbooks}/${alert}.md`;
}

/** Names of all alerts, each once, in definition order. */
export const ALERT_NAMES: readonly AlertName[] = [...new Set(alertRules.map((r) => r.alert))];

/** The Prometheus rule-file document of the recording rules. */
export function recordingRulesDocument(): object {
  return {
    groups: [
      {
        name: 'ops-overview.recording',
        interval: config.stack.evaluationInterval,
        rules: recordingRules.map((r) => ({
          record: r.record,
          expr: r.expr,
          ...(r.labels ? { labels: r.labels } : {}),
        })),
      },
    ],
  };
}

/** The Prometheus rule-file document of the alerting rules, one group per area. */
export function alertRulesDocument(): object {
  const areas = [...new Set(alertRules.map((r) => r.area))];
  return {
    groups: areas.map((area) => ({
      name: `ops-overview.${area}`,
      interval: config.stack.evaluationInterval,
      rules: alertRules
        .filter((r) => r.area === area)
        .map((r) => ({
          alert: r.alert,
          expr: r.expr,
          ...(r.for ? { for: r.for } : {}),
          labels: { severity: r.severity, area: r.area },
          annotations: {
            summary: r.summary,
            description: r.description,
            runbook_url: runbookUrl(r.alert),
            dashboard_url: r.dashboardUrl,
          },
        })),
    })),
  };
}
