/**
 * Unit-test scenarios for every alert, replayed by `promtool test rules`:
 * for each alert at least one case where it fires (with its exact labels and
 * annotations) and one where it stays quiet (just under the threshold, or
 * recovered before `for:`). Thresholds and durations are read from the
 * bundle's config so the cases stay on the edge when the config changes.
 */
import { config } from '../../monitoring/config.js';
import { dashboardUrl, EXPORTER_PANELS, OVERVIEW_PANELS as P } from '../../monitoring/dashboards/ids.js';
import { durationSeconds, humanizeDuration } from '../../monitoring/promql.js';
import { runbookUrl, type AlertName, type Area, type Severity } from '../../monitoring/rules.js';

/** One input series in promtool's notation. */
export interface InputSeries {
  series: string;
  values: string;
}

/** One alert promtool must see at `evalTime`. */
export interface ExpectedAlert {
  severity: Severity;
  labels: Record<string, string>;
  summary: string;
  description: string;
  dashboardUrl: string;
}

/** A scenario: series, a time, and the alerts of one name expected then (none = quiet). */
export interface RuleCase {
  alert: AlertName;
  /** The behaviour the case proves. */
  name: string;
  series: InputSeries[];
  evalTime: string;
  expected: ExpectedAlert[];
  /** Sample interval of the series; 1m unless told. */
  interval?: string;
}

const c = config;
const LBL = { job: 'ops-overview', instance: 'exporter:9471' };
/** The `instance` of a second exporter replica of the same platform. */
export const REPLICA_2 = 'exporter-2:9471';
const min = (d: string): number => durationSeconds(d) / 60;
/** promtool duration of whole minutes. */
const at = (minutes: number): string => `${minutes}m`;

/** `name{labels}` with the scrape labels every exporter series carries. */
function s(name: string, labels: Record<string, string>, values: string, scrape = true): InputSeries {
  const all = { ...(scrape ? LBL : {}), ...labels };
  const body = Object.entries(all)
    .map(([k, v]) => `${k}="${v}"`)
    .join(', ');
  return { series: `${name}{${body}}`, values };
}

/** A core node's status state set: `status` is 1 for `timeline` ('1x30', '1x3 0x20', ...), ONLINE is its complement. */
function nodeStatus(node: string, status: string, timeline: string, complement: string): InputSeries[] {
  return [s('ops_core_node_status', { node, status }, timeline), s('ops_core_node_status', { node, status: 'ONLINE' }, complement)];
}

const areaOf: Record<AlertName, Area> = {
  OpsCoreNodeDown: 'core_nodes',
  OpsCoreNodeNotOnline: 'core_nodes',
  OpsCoreNodeInMaintenance: 'core_nodes',
  OpsCoreNodeMissing: 'core_nodes',
  OpsCoreNodeMetricsStale: 'core_nodes',
  OpsCoreNodeDiskHigh: 'core_nodes',
  OpsCoreNodeMemoryHigh: 'core_nodes',
  OpsQueueBacklogGrowing: 'queues',
  OpsQueueNoWorkers: 'queues',
  OpsQueueStalled: 'queues',
  OpsQueueFailureRatioHigh: 'queues',
  OpsProvisioningJobsStuck: 'provisioning',
  OpsProvisioningFailureSpike: 'provisioning',
  OpsProvisioningErrorBudgetBurn: 'provisioning',
  OpsProvisioningLatencyBudgetBurn: 'provisioning',
  OpsShieldBlockSurge: 'security',
  OpsGuardianCriticalFindingsOpen: 'security',
  OpsBackupTooOld: 'backups',
  OpsBackupNeverSucceeded: 'backups',
  OpsBackupTrackingNotConfigured: 'backups',
  OpsExporterDown: 'exporter',
  OpsExporterReplicaDown: 'exporter',
  OpsExporterAbsent: 'exporter',
  OpsExporterSourceDown: 'exporter',
  OpsExporterIndexMissing: 'exporter',
  OpsExporterLabelOverflow: 'exporter',
  OpsShieldWindowIncomplete: 'security',
  Watchdog: 'monitoring',
};

/** The exact labels and annotations promtool must report for an expected alert. */
export function promtoolExpectation(alert: AlertName, e: ExpectedAlert) {
  return {
    exp_labels: { ...e.labels, severity: e.severity, area: areaOf[alert] },
    exp_annotations: {
      summary: e.summary,
      description: e.description,
      runbook_url: runbookUrl(alert),
      dashboard_url: e.dashboardUrl,
    },
  };
}

const nodesUrl = dashboardUrl('overview', P.coreNodesTable);
const pct = (r: number): string => `${Math.round(r * 1000) / 10}%`;

const cn = c.coreNodes;
const downM = min(cn.downFor);
const diskUrl = dashboardUrl('overview', P.coreNodesDisk);

/** Every scenario. */
export const ruleCases: RuleCase[] = [
  // OpsCoreNodeDown
  {
    alert: 'OpsCoreNodeDown',
    name: 'pages when a node has been OFFLINE for longer than downFor',
    series: nodeStatus('MAIL-CORE', 'OFFLINE', '1x40', '0x40'),
    evalTime: at(downM + 2),
    expected: [
      {
        severity: 'critical',
        labels: { node: 'MAIL-CORE' },
        summary: 'Core node MAIL-CORE is OFFLINE.',
        description: `Core node MAIL-CORE has reported status OFFLINE for more than ${cn.downFor}; the services it hosts are down for every tenant on it.`,
        dashboardUrl: nodesUrl,
      },
    ],
  },
  {
    alert: 'OpsCoreNodeDown',
    name: 'stays quiet when the node comes back ONLINE before downFor',
    series: nodeStatus('MAIL-CORE', 'OFFLINE', `1x${downM - 2} 0x40`, `0x${downM - 2} 1x40`),
    evalTime: at(downM + 2),
    expected: [],
  },
  {
    alert: 'OpsCoreNodeDown',
    name: 'stays quiet for a node in MAINTENANCE',
    series: nodeStatus('DB-CORE', 'MAINTENANCE', '1x40', '0x40'),
    evalTime: at(downM + 10),
    expected: [],
  },
  {
    alert: 'OpsCoreNodeDown',
    name: 'goes quiet when the core_nodes source is down (its series vanish)',
    series: [...nodeStatus('MAIL-CORE', 'OFFLINE', `1x${downM + 1}`, `0x${downM + 1}`), s('ops_source_up', { source: 'core_nodes' }, `1x${downM + 1} 0x30`)],
    evalTime: at(downM + 10),
    expected: [],
  },

  // OpsCoreNodeNotOnline
  {
    alert: 'OpsCoreNodeNotOnline',
    name: 'tickets when a node stays DEGRADED for longer than notOnlineFor',
    series: nodeStatus('SRV1-WEB', 'DEGRADED', '1x60', '0x60'),
    evalTime: at(min(cn.notOnlineFor) + 2),
    expected: [
      {
        severity: 'warning',
        labels: { node: 'SRV1-WEB', status: 'DEGRADED' },
        summary: 'Core node SRV1-WEB is DEGRADED.',
        description: `Core node SRV1-WEB has been DEGRADED (not ONLINE) for more than ${cn.notOnlineFor}.`,
        dashboardUrl: nodesUrl,
      },
    ],
  },
  {
    alert: 'OpsCoreNodeNotOnline',
    name: 'tickets when a node\'s status is UNKNOWN',
    series: nodeStatus('SRV1-WEB', 'UNKNOWN', '1x60', '0x60'),
    evalTime: at(min(cn.notOnlineFor) + 2),
    expected: [
      {
        severity: 'warning',
        labels: { node: 'SRV1-WEB', status: 'UNKNOWN' },
        summary: 'Core node SRV1-WEB is UNKNOWN.',
        description: `Core node SRV1-WEB has been UNKNOWN (not ONLINE) for more than ${cn.notOnlineFor}.`,
        dashboardUrl: nodesUrl,
      },
    ],
  },
  {
    alert: 'OpsCoreNodeNotOnline',
    name: 'stays quiet through a short DEGRADED spell',
    series: nodeStatus('SRV1-WEB', 'DEGRADED', `1x${min(cn.notOnlineFor) - 3} 0x60`, `0x${min(cn.notOnlineFor) - 3} 1x60`),
    evalTime: at(min(cn.notOnlineFor) + 2),
    expected: [],
  },

  // OpsCoreNodeInMaintenance
  {
    alert: 'OpsCoreNodeInMaintenance',
    name: 'informs when a node stays in MAINTENANCE longer than maintenanceFor',
    series: nodeStatus('VOIP-CORE', 'MAINTENANCE', `1x${min(cn.maintenanceFor) + 20}`, `0x${min(cn.maintenanceFor) + 20}`),
    evalTime: at(min(cn.maintenanceFor) + 5),
    expected: [
      {
        severity: 'info',
        labels: { node: 'VOIP-CORE' },
        summary: 'Core node VOIP-CORE is in MAINTENANCE.',
        description: `Core node VOIP-CORE has been in MAINTENANCE for more than ${cn.maintenanceFor}; set it back to ONLINE when the work is done.`,
        dashboardUrl: nodesUrl,
      },
    ],
  },
  {
    alert: 'OpsCoreNodeInMaintenance',
    name: 'stays quiet for a maintenance window shorter than maintenanceFor',
    series: nodeStatus('VOIP-CORE', 'MAINTENANCE', `1x${min(cn.maintenanceFor) - 10} 0x30`, `0x${min(cn.maintenanceFor) - 10} 1x30`),
    evalTime: at(min(cn.maintenanceFor) + 5),
    expected: [],
  },

  // OpsCoreNodeMissing
  {
    alert: 'OpsCoreNodeMissing',
    name: 'tickets when an expected node has no row for longer than missingFor',
    series: [...nodeStatus('DNS-CORE', 'MISSING', '1x40', '0x40'), s('ops_core_node_expected', { node: 'DNS-CORE' }, '1x40')],
    evalTime: at(min(cn.missingFor) + 2),
    expected: [
      {
        severity: 'warning',
        labels: { node: 'DNS-CORE' },
        summary: 'Expected core node DNS-CORE is missing from the database.',
        description: `Core node DNS-CORE is configured as expected but has had no CoreNode row for more than ${cn.missingFor}; its status is unknown.`,
        dashboardUrl: nodesUrl,
      },
    ],
  },
  {
    alert: 'OpsCoreNodeMissing',
    name: 'stays quiet when the row reappears before missingFor',
    series: [...nodeStatus('DNS-CORE', 'MISSING', `1x${min(cn.missingFor) - 3} 0x30`, `0x${min(cn.missingFor) - 3} 1x30`)],
    evalTime: at(min(cn.missingFor) + 2),
    expected: [],
  },

  // OpsCoreNodeMetricsStale: the timestamps are Unix seconds and the test clock starts at 0.
  {
    alert: 'OpsCoreNodeMetricsStale',
    name: 'tickets when a node\'s metrics stop being written',
    series: [s('ops_core_node_metrics_timestamp_seconds', { node: 'CLOUD-CORE' }, '0x60')],
    evalTime: at(cn.metricsStaleAfterSeconds / 60 + min(cn.metricsStaleFor) + 5),
    expected: [
      {
        severity: 'warning',
        labels: { node: 'CLOUD-CORE' },
        summary: 'Metrics of core node CLOUD-CORE are stale.',
        description: `The last metrics of core node CLOUD-CORE were written ${cn.metricsStaleAfterSeconds / 60 + min(cn.metricsStaleFor) + 5}m 0s ago (limit ${humanizeDuration(cn.metricsStaleAfterSeconds)}); its CPU, RAM and disk figures are out of date.`,
        dashboardUrl: nodesUrl,
      },
    ],
  },
  {
    alert: 'OpsCoreNodeMetricsStale',
    name: 'stays quiet while metrics are written just under the stale limit apart',
    // Always one minute younger than the limit.
    series: [s('ops_core_node_metrics_timestamp_seconds', { node: 'CLOUD-CORE' }, `${-(cn.metricsStaleAfterSeconds - 60)}+60x60`)],
    evalTime: at(40),
    expected: [],
  },

  // OpsCoreNodeDiskHigh (two tiers)
  {
    alert: 'OpsCoreNodeDiskHigh',
    name: 'tickets (warning only) at the warning ratio',
    series: [s('ops_core_node_disk_ratio', { node: 'MAIL-CORE' }, `${cn.diskWarningRatio + 0.02}x60`)],
    evalTime: at(min(cn.diskWarningFor) + 5),
    expected: [
      {
        severity: 'warning',
        labels: { node: 'MAIL-CORE' },
        summary: `Disk of core node MAIL-CORE is ${pct(cn.diskWarningRatio + 0.02)} full.`,
        description: `Disk utilisation of core node MAIL-CORE is ${pct(cn.diskWarningRatio + 0.02)} (warning at ${pct(cn.diskWarningRatio)}, page at ${pct(cn.diskCriticalRatio)}).`,
        dashboardUrl: diskUrl,
      },
    ],
  },
  {
    alert: 'OpsCoreNodeDiskHigh',
    name: 'pages at the critical ratio (the warning tier fires too; Alertmanager inhibits it)',
    series: [s('ops_core_node_disk_ratio', { node: 'DB-CORE' }, `${cn.diskCriticalRatio + 0.02}x60`)],
    evalTime: at(Math.max(min(cn.diskWarningFor), min(cn.diskCriticalFor)) + 5),
    expected: [
      {
        severity: 'warning',
        labels: { node: 'DB-CORE' },
        summary: `Disk of core node DB-CORE is ${pct(cn.diskCriticalRatio + 0.02)} full.`,
        description: `Disk utilisation of core node DB-CORE is ${pct(cn.diskCriticalRatio + 0.02)} (warning at ${pct(cn.diskWarningRatio)}, page at ${pct(cn.diskCriticalRatio)}).`,
        dashboardUrl: diskUrl,
      },
      {
        severity: 'critical',
        labels: { node: 'DB-CORE' },
        summary: `Disk of core node DB-CORE is almost full (${pct(cn.diskCriticalRatio + 0.02)}).`,
        description: `Disk utilisation of core node DB-CORE is ${pct(cn.diskCriticalRatio + 0.02)} (page at ${pct(cn.diskCriticalRatio)}); services on it fail when it fills up.`,
        dashboardUrl: diskUrl,
      },
    ],
  },
  {
    alert: 'OpsCoreNodeDiskHigh',
    name: 'stays quiet just under the warning ratio',
    series: [s('ops_core_node_disk_ratio', { node: 'MAIL-CORE' }, `${cn.diskWarningRatio - 0.01}x60`)],
    evalTime: at(min(cn.diskWarningFor) + 5),
    expected: [],
  },
  {
    alert: 'OpsCoreNodeDiskHigh',
    name: 'does not page just under the critical ratio',
    series: [s('ops_core_node_disk_ratio', { node: 'MAIL-CORE' }, `${cn.diskCriticalRatio - 0.01}x10`)],
    evalTime: at(min(cn.diskCriticalFor) + 1),
    expected: [],
  },

  // OpsCoreNodeMemoryHigh
  {
    alert: 'OpsCoreNodeMemoryHigh',
    name: 'tickets when RAM stays at the warning ratio',
    series: [s('ops_core_node_memory_ratio', { node: 'CLOUD-CORE' }, `${cn.memoryWarningRatio + 0.05}x40`)],
    evalTime: at(min(cn.memoryWarningFor) + 2),
    expected: [
      {
        severity: 'warning',
        labels: { node: 'CLOUD-CORE' },
        summary: `RAM of core node CLOUD-CORE is ${pct(cn.memoryWarningRatio + 0.05)} used.`,
        description: `RAM utilisation of core node CLOUD-CORE has been at or above ${pct(cn.memoryWarningRatio)} for ${cn.memoryWarningFor}; now ${pct(cn.memoryWarningRatio + 0.05)}.`,
        dashboardUrl: dashboardUrl('overview', P.coreNodesMemory),
      },
    ],
  },
  {
    alert: 'OpsCoreNodeMemoryHigh',
    name: 'stays quiet just under the warning ratio',
    series: [s('ops_core_node_memory_ratio', { node: 'CLOUD-CORE' }, `${cn.memoryWarningRatio - 0.01}x40`)],
    evalTime: at(min(cn.memoryWarningFor) + 2),
    expected: [],
  },

  // OpsQueueBacklogGrowing
  (() => {
    const evalM = c.queues.oldestWaitingWarningSeconds / 60 + min(c.queues.backlogGrowingFor) + 5;
    return {
      alert: 'OpsQueueBacklogGrowing' as const,
      name: 'tickets when the backlog grows and the oldest job is older than the limit',
      series: [
        s('ops_queue_jobs', { prefix: 'bull', queue: 'hosting', state: 'waiting' }, '100+10x60'),
        s('ops_queue_jobs', { prefix: 'bull', queue: 'hosting', state: 'active' }, '4x60'),
        s('ops_queue_oldest_waiting_job_timestamp_seconds', { prefix: 'bull', queue: 'hosting' }, '0x60'),
      ],
      evalTime: at(evalM),
      expected: [
        {
          severity: 'warning' as const,
          labels: { prefix: 'bull', queue: 'hosting' },
          summary: 'Queue hosting is falling behind.',
          description: `The backlog of queue bull:hosting has grown over the last ${c.queues.backlogGrowthWindow} and its oldest waiting job is ${evalM}m 0s old (limit ${humanizeDuration(c.queues.oldestWaitingWarningSeconds)}).`,
          dashboardUrl: dashboardUrl('overview', P.queuesOldestAge, { queue: 'hosting' }),
        },
      ],
    };
  })(),
  {
    alert: 'OpsQueueBacklogGrowing',
    name: 'stays quiet when an old backlog is not growing (draining steadily is fine too)',
    series: [
      s('ops_queue_jobs', { prefix: 'bull', queue: 'hosting', state: 'waiting' }, '500-2x60'),
      s('ops_queue_oldest_waiting_job_timestamp_seconds', { prefix: 'bull', queue: 'hosting' }, '0x60'),
    ],
    evalTime: at(45),
    expected: [],
  },
  {
    alert: 'OpsQueueBacklogGrowing',
    name: 'stays quiet when the backlog grows but its oldest job is just under the limit',
    series: [
      s('ops_queue_jobs', { prefix: 'bull', queue: 'hosting', state: 'waiting' }, '100+10x60'),
      s('ops_queue_oldest_waiting_job_timestamp_seconds', { prefix: 'bull', queue: 'hosting' }, `${-(c.queues.oldestWaitingWarningSeconds - 60)}+60x60`),
    ],
    evalTime: at(45),
    expected: [],
  },

  // OpsQueueNoWorkers
  {
    alert: 'OpsQueueNoWorkers',
    name: 'pages when jobs wait and no worker is connected',
    series: [
      s('ops_queue_jobs', { prefix: 'bull', queue: 'mail', state: 'waiting' }, '5x40'),
      s('ops_queue_jobs', { prefix: 'bull', queue: 'mail', state: 'prioritized' }, '2x40'),
      s('ops_queue_workers', { prefix: 'bull', queue: 'mail' }, '0x40'),
      s('ops_queue_paused', { prefix: 'bull', queue: 'mail' }, '0x40'),
    ],
    evalTime: at(min(c.queues.noWorkersFor) + 2),
    expected: [
      {
        severity: 'critical',
        labels: { prefix: 'bull', queue: 'mail' },
        summary: 'Queue mail has waiting jobs and no worker.',
        description: `Queue bull:mail has 7 waiting jobs, is not paused, and no worker has been connected for ${c.queues.noWorkersFor}: nothing will process them.`,
        dashboardUrl: dashboardUrl('overview', P.queuesWorkers, { queue: 'mail' }),
      },
    ],
  },
  {
    alert: 'OpsQueueNoWorkers',
    name: 'stays quiet when a worker reconnects before noWorkersFor',
    series: [
      s('ops_queue_jobs', { prefix: 'bull', queue: 'mail', state: 'waiting' }, '5x40'),
      s('ops_queue_workers', { prefix: 'bull', queue: 'mail' }, `0x${min(c.queues.noWorkersFor) - 3} 2x40`),
      s('ops_queue_paused', { prefix: 'bull', queue: 'mail' }, '0x40'),
    ],
    evalTime: at(min(c.queues.noWorkersFor) + 2),
    expected: [],
  },
  {
    alert: 'OpsQueueNoWorkers',
    name: 'stays quiet for a paused queue',
    series: [
      s('ops_queue_jobs', { prefix: 'bull', queue: 'mail', state: 'waiting' }, '5x40'),
      s('ops_queue_workers', { prefix: 'bull', queue: 'mail' }, '0x40'),
      s('ops_queue_paused', { prefix: 'bull', queue: 'mail' }, '1x40'),
    ],
    evalTime: at(min(c.queues.noWorkersFor) + 2),
    expected: [],
  },
  {
    alert: 'OpsQueueNoWorkers',
    name: 'stays quiet when workers are unknown (Redis forbids CLIENT LIST)',
    series: [s('ops_queue_jobs', { prefix: 'bull', queue: 'mail', state: 'waiting' }, '5x40'), s('ops_queue_paused', { prefix: 'bull', queue: 'mail' }, '0x40')],
    evalTime: at(min(c.queues.noWorkersFor) + 2),
    expected: [],
  },

  // OpsProvisioningJobsStuck
  {
    alert: 'OpsProvisioningJobsStuck',
    name: 'pages when jobs of a type stay stuck',
    series: [
      s('ops_provisioning_jobs_stuck', { type: 'hosting', status: 'PENDING' }, '2x30'),
      s('ops_provisioning_jobs_stuck', { type: 'hosting', status: 'RUNNING' }, '1x30'),
      s('ops_provisioning_jobs_stuck', { type: 'dns', status: 'PENDING' }, '0x30'),
    ],
    evalTime: at(min(c.provisioning.stuckFor) + 2),
    expected: [
      {
        severity: 'critical',
        labels: { type: 'hosting' },
        summary: '3 provisioning jobs of type hosting are stuck.',
        description: "3 provisioning jobs of type hosting have been PENDING or RUNNING for longer than the exporter's stuck threshold; the customers who ordered them are waiting.",
        dashboardUrl: dashboardUrl('overview', P.provisioningStuck),
      },
    ],
  },
  {
    alert: 'OpsProvisioningJobsStuck',
    name: 'stays quiet when the stuck job finishes before stuckFor',
    series: [s('ops_provisioning_jobs_stuck', { type: 'hosting', status: 'RUNNING' }, `1x${min(c.provisioning.stuckFor) - 2} 0x30`)],
    evalTime: at(min(c.provisioning.stuckFor) + 2),
    expected: [],
  },

  // OpsProvisioningFailureSpike: flat for an hour, then one new failure a minute.
  (() => {
    const n = c.provisioning.failureSpikeCount;
    const flat = min(c.provisioning.failureSpikeWindow);
    // The rise reaches n at minute flat + n; firing after failureSpikeFor; evaluated a few minutes later.
    const evalM = flat + n + min(c.provisioning.failureSpikeFor) + 3;
    const rise = evalM - flat;
    return {
      alert: 'OpsProvisioningFailureSpike' as const,
      name: 'tickets when a resource type gains failureSpikeCount failures within the window',
      series: [
        s('ops_provisioning_failed_jobs_24h', { action: 'hosting.create', resource_type: 'WEBSITE' }, `3x${flat} 4+1x${rise + 10}`),
        s('ops_provisioning_failed_jobs_24h', { action: 'hosting.delete', resource_type: 'WEBSITE' }, `5x${flat + rise + 10}`),
      ],
      evalTime: at(evalM),
      expected: [
        {
          severity: 'warning' as const,
          labels: { resource_type: 'WEBSITE' },
          summary: 'Spike of failed WEBSITE provisioning jobs.',
          description: `${rise} more provisioning jobs for resource type WEBSITE failed within the last ${c.provisioning.failureSpikeWindow} (threshold ${n}).`,
          dashboardUrl: dashboardUrl('overview', P.provisioningHotspots),
        },
      ],
    };
  })(),
  {
    alert: 'OpsProvisioningFailureSpike',
    name: 'stays quiet for a rise just under failureSpikeCount',
    series: [
      s(
        'ops_provisioning_failed_jobs_24h',
        { action: 'hosting.create', resource_type: 'WEBSITE' },
        `3x60 4+1x${c.provisioning.failureSpikeCount - 2} ${3 + c.provisioning.failureSpikeCount - 1}x40`,
      ),
    ],
    evalTime: at(90),
    expected: [],
  },

  // OpsShieldBlockSurge: 24 h gauge of 86400 BLOCKs = 1/s average.
  (() => {
    const avg = Math.max(1, c.security.blockSurgeMinPerSecond);
    const rate = (c.security.blockSurgeFactor + 2) * avg;
    return {
      alert: 'OpsShieldBlockSurge' as const,
      name: 'tickets when BLOCKs run at several times their 24 h average',
      series: [
        s('ops_shield_events_total', { decision: 'BLOCK' }, `0+${rate * 60}x40`),
        s('ops_shield_events_total', { decision: 'ALLOW' }, '0+6000x40'),
        s('ops_shield_events_24h', { decision: 'BLOCK' }, `${avg * 86400}x40`),
      ],
      evalTime: at(min(c.security.blockSurgeFor) + 8),
      expected: [
        {
          severity: 'warning' as const,
          labels: { decision: 'BLOCK' },
          summary: 'Surge of Migra Shield BLOCK decisions.',
          description: `Migra Shield is blocking ${rate} requests per second, more than ${c.security.blockSurgeFactor} times its 24 h average and above ${c.security.blockSurgeMinPerSecond}/s: an attack, or a policy blocking legitimate traffic.`,
          dashboardUrl: dashboardUrl('overview', P.securityDecisions),
        },
      ],
    };
  })(),
  (() => {
    const avg = Math.max(1, c.security.blockSurgeMinPerSecond);
    const rate = (c.security.blockSurgeFactor - 0.5) * avg;
    return {
      alert: 'OpsShieldBlockSurge' as const,
      name: 'stays quiet when BLOCKs run just under surgeFactor times their average',
      series: [s('ops_shield_events_total', { decision: 'BLOCK' }, `0+${rate * 60}x40`), s('ops_shield_events_24h', { decision: 'BLOCK' }, `${avg * 86400}x40`)],
      evalTime: at(min(c.security.blockSurgeFor) + 8),
      expected: [],
    };
  })(),
  {
    alert: 'OpsShieldBlockSurge',
    name: 'stays quiet on a quiet platform below the minimum rate, however large the ratio',
    series: [
      s('ops_shield_events_total', { decision: 'BLOCK' }, `0+${c.security.blockSurgeMinPerSecond * 0.8 * 60}x40`),
      s('ops_shield_events_24h', { decision: 'BLOCK' }, '864x40'),
    ],
    evalTime: at(min(c.security.blockSurgeFor) + 8),
    expected: [],
  },

  // OpsGuardianCriticalFindingsOpen
  {
    alert: 'OpsGuardianCriticalFindingsOpen',
    name: 'pages when CRITICAL findings are open',
    series: [
      s('ops_guardian_installed', {}, '1x30'),
      s('ops_guardian_open_findings', { severity: 'CRITICAL' }, '2x30'),
      s('ops_guardian_open_findings', { severity: 'HIGH' }, '5x30'),
    ],
    evalTime: at(min(c.security.guardianCriticalFor) + 2),
    expected: [
      {
        severity: 'critical',
        labels: {},
        summary: '2 CRITICAL Guardian findings are open.',
        description: `Guardian reports 2 open findings of severity CRITICAL (open for more than ${c.security.guardianCriticalFor}); acknowledge them in Guardian once someone owns them.`,
        dashboardUrl: dashboardUrl('overview', P.securityFindings),
      },
    ],
  },
  {
    alert: 'OpsGuardianCriticalFindingsOpen',
    name: 'stays quiet with no CRITICAL finding open (HIGH ones do not page)',
    series: [
      s('ops_guardian_installed', {}, '1x30'),
      s('ops_guardian_open_findings', { severity: 'CRITICAL' }, '0x30'),
      s('ops_guardian_open_findings', { severity: 'HIGH' }, '5x30'),
    ],
    evalTime: at(min(c.security.guardianCriticalFor) + 2),
    expected: [],
  },
  {
    alert: 'OpsGuardianCriticalFindingsOpen',
    name: 'stays quiet when the finding is acknowledged before guardianCriticalFor',
    series: [s('ops_guardian_open_findings', { severity: 'CRITICAL' }, `1x${min(c.security.guardianCriticalFor) - 2} 0x20`)],
    evalTime: at(min(c.security.guardianCriticalFor) + 2),
    expected: [],
  },
  {
    alert: 'OpsGuardianCriticalFindingsOpen',
    name: 'stays quiet when Guardian is not installed',
    series: [s('ops_guardian_installed', {}, '0x30')],
    evalTime: at(min(c.security.guardianCriticalFor) + 2),
    expected: [],
  },

  // OpsBackupTooOld: a backup that finished `ago` seconds before the test clock's 0.
  (() => {
    const limit = c.backups.maxAgeSeconds.DB_CORE;
    const ago = limit + 3600;
    const evalM = min(c.backups.tooOldFor) + 5;
    const age = ago + evalM * 60;
    const h = humanizeDuration;
    return {
      alert: 'OpsBackupTooOld' as const,
      name: 'pages when the last DB_CORE backup is older than its limit',
      series: [
        s('ops_backup_tracking_installed', {}, '1x40'),
        s('ops_backup_last_success_timestamp_seconds', { resource_type: 'DB_CORE' }, `${-ago}x40`),
        s('ops_backup_last_success_timestamp_seconds', { resource_type: 'MPANEL_CORE' }, '0x40'),
        s('ops_backup_ever_succeeded', { resource_type: 'DB_CORE' }, '1x40'),
      ],
      evalTime: at(evalM),
      expected: [
        {
          severity: 'critical' as const,
          labels: { resource_type: 'DB_CORE' },
          summary: 'Last DB_CORE backup is too old.',
          description: `The last successful DB_CORE backup finished ${h(age)} ago; the limit is ${h(limit)}.`,
          dashboardUrl: dashboardUrl('overview', P.backupsTable),
        },
      ],
    };
  })(),
  {
    alert: 'OpsBackupTooOld',
    name: 'stays quiet while the last backup is just under its limit',
    series: [s('ops_backup_last_success_timestamp_seconds', { resource_type: 'DB_CORE' }, `${-(c.backups.maxAgeSeconds.DB_CORE - 40 * 60)}x40`)],
    evalTime: at(min(c.backups.tooOldFor) + 5),
    expected: [],
  },
  {
    alert: 'OpsBackupTooOld',
    name: 'stays quiet when a new backup completes before tooOldFor',
    series: [
      s('ops_backup_last_success_timestamp_seconds', { resource_type: 'CLOUD_POD' }, `${-c.backups.maxAgeSeconds.CLOUD_POD - 60}x${min(c.backups.tooOldFor) - 3} ${min(c.backups.tooOldFor) * 60}x20`),
    ],
    evalTime: at(min(c.backups.tooOldFor) + 2),
    expected: [],
  },

  // OpsBackupNeverSucceeded
  {
    alert: 'OpsBackupNeverSucceeded',
    name: 'pages when a tracked system has never had a COMPLETED backup',
    series: [
      s('ops_backup_tracking_installed', {}, `1x${min(c.backups.neverFor) + 10}`),
      s('ops_backup_ever_succeeded', { resource_type: 'MPANEL_CORE' }, `0x${min(c.backups.neverFor) + 10}`),
      s('ops_backup_ever_succeeded', { resource_type: 'DB_CORE' }, `1x${min(c.backups.neverFor) + 10}`),
      s('ops_backup_ever_succeeded', { resource_type: 'CLOUD_POD' }, `1x${min(c.backups.neverFor) + 10}`),
    ],
    evalTime: at(min(c.backups.neverFor) + 5),
    expected: [
      {
        severity: 'critical',
        labels: { resource_type: 'MPANEL_CORE' },
        summary: 'MPANEL_CORE has never been backed up.',
        description: 'Backup tracking is installed but has no COMPLETED backup of MPANEL_CORE at all.',
        dashboardUrl: dashboardUrl('overview', P.backupsTable),
      },
    ],
  },
  {
    alert: 'OpsBackupNeverSucceeded',
    name: 'stays quiet when backup tracking is not installed',
    series: [
      s('ops_backup_tracking_installed', {}, `0x${min(c.backups.neverFor) + 10}`),
      s('ops_backup_ever_succeeded', { resource_type: 'DB_CORE' }, `0x${min(c.backups.neverFor) + 10}`),
      s('ops_backup_ever_succeeded', { resource_type: 'MPANEL_CORE' }, `0x${min(c.backups.neverFor) + 10}`),
    ],
    evalTime: at(min(c.backups.neverFor) + 5),
    expected: [],
  },
  {
    alert: 'OpsBackupNeverSucceeded',
    name: 'stays quiet when the first backup completes before neverFor',
    series: [
      s('ops_backup_tracking_installed', {}, `1x${min(c.backups.neverFor) + 10}`),
      s('ops_backup_ever_succeeded', { resource_type: 'CLOUD_POD' }, `0x${min(c.backups.neverFor) - 5} 1x20`),
    ],
    evalTime: at(min(c.backups.neverFor) + 5),
    expected: [],
  },

  // OpsBackupTrackingNotConfigured
  {
    alert: 'OpsBackupTrackingNotConfigured',
    name: 'informs when the Backup table does not exist',
    series: [s('ops_backup_tracking_installed', {}, `0x${min(c.backups.trackingMissingFor) + 10}`)],
    evalTime: at(min(c.backups.trackingMissingFor) + 5),
    expected: [
      {
        severity: 'info',
        labels: {},
        summary: 'Backup tracking is not configured.',
        description: `ops_backup_tracking_installed has been 0 for ${c.backups.trackingMissingFor}: the platform database has no Backup table, so no backup can be checked for age; backup alerts stay silent until backup tracking is set up.`,
        dashboardUrl: dashboardUrl('overview', P.backupsTable),
      },
    ],
  },
  {
    alert: 'OpsBackupTrackingNotConfigured',
    name: 'stays quiet when backup tracking is installed',
    series: [s('ops_backup_tracking_installed', {}, `1x${min(c.backups.trackingMissingFor) + 10}`)],
    evalTime: at(min(c.backups.trackingMissingFor) + 5),
    expected: [],
  },

  // OpsExporterDown
  {
    alert: 'OpsExporterDown',
    name: 'pages when Prometheus cannot scrape the exporter',
    series: [s('up', {}, '0x20'), s('up', { job: 'prometheus', instance: 'localhost:9090' }, '1x20', false)],
    evalTime: at(min(c.exporter.downFor) + 2),
    expected: [
      {
        severity: 'critical',
        labels: { job: 'ops-overview' },
        summary: 'Every ops-overview exporter of the platform is down: its monitoring is blind.',
        description: `Prometheus has failed to scrape every replica of the ops-overview exporter of this platform for ${c.exporter.downFor} (up = 0): no platform alert (nodes, queues, backups, ...) can fire while they are down.`,
        dashboardUrl: dashboardUrl('exporter', EXPORTER_PANELS.exporterUp),
      },
    ],
  },
  {
    alert: 'OpsExporterDown',
    name: 'stays quiet through a restart shorter than downFor',
    series: [s('up', {}, `1x2 0x${min(c.exporter.downFor) - 2} 1x20`)],
    evalTime: at(min(c.exporter.downFor) + 2),
    expected: [],
  },
  {
    alert: 'OpsExporterDown',
    name: 'stays quiet while one replica of two is down',
    series: [s('up', {}, '0x20'), s('up', { instance: REPLICA_2 }, '1x20')],
    evalTime: at(min(c.exporter.downFor) + 2),
    expected: [],
  },

  // OpsExporterReplicaDown
  {
    alert: 'OpsExporterReplicaDown',
    name: 'tickets when one replica of two is down',
    series: [s('up', {}, '0x20'), s('up', { instance: REPLICA_2 }, '1x20')],
    evalTime: at(min(c.exporter.replicaDownFor) + 2),
    expected: [
      {
        severity: 'warning',
        labels: { job: 'ops-overview', instance: 'exporter:9471' },
        summary: 'Exporter replica exporter:9471 is down.',
        description: `Prometheus has failed to scrape the ops-overview exporter at exporter:9471 for ${c.exporter.replicaDownFor}, while another replica of its platform still answers: nothing is blind, but one more failure would be.`,
        dashboardUrl: dashboardUrl('exporter', EXPORTER_PANELS.exporterUp),
      },
    ],
  },
  {
    alert: 'OpsExporterReplicaDown',
    name: 'stays quiet when every replica is down (OpsExporterDown pages instead)',
    series: [s('up', {}, '0x20'), s('up', { instance: REPLICA_2 }, '0x20')],
    evalTime: at(min(c.exporter.replicaDownFor) + 2),
    expected: [],
  },
  {
    alert: 'OpsExporterReplicaDown',
    name: 'stays quiet through one replica\'s restart shorter than replicaDownFor',
    series: [s('up', {}, `1x2 0x${min(c.exporter.replicaDownFor) - 2} 1x20`), s('up', { instance: REPLICA_2 }, '1x20')],
    evalTime: at(min(c.exporter.replicaDownFor) + 2),
    expected: [],
  },

  // OpsExporterAbsent
  {
    alert: 'OpsExporterAbsent',
    name: 'tickets when the exporter\'s target is gone from Prometheus',
    series: [s('up', { job: 'prometheus', instance: 'localhost:9090' }, '1x30', false)],
    evalTime: at(min(c.exporter.absentFor) + 2),
    expected: [
      {
        severity: 'warning',
        labels: { job: 'ops-overview' },
        summary: 'Prometheus has no ops-overview exporter target.',
        description: `Prometheus has had no scrape target matching {${c.selectors.exporterJob}} for ${c.exporter.absentFor} (absent = 1): prometheus.yml or service discovery lost the exporter, and no platform alert can fire.`,
        dashboardUrl: dashboardUrl('exporter', EXPORTER_PANELS.exporterUp),
      },
    ],
  },
  {
    alert: 'OpsExporterAbsent',
    name: 'stays quiet while the target exists, even when it is down',
    series: [s('up', {}, '0x30')],
    evalTime: at(min(c.exporter.absentFor) + 2),
    expected: [],
  },

  // OpsExporterSourceDown (two tiers)
  {
    alert: 'OpsExporterSourceDown',
    name: 'pages when a source keeps failing on every replica (the warning tier fires too; Alertmanager inhibits it)',
    series: [s('ops_source_up', { source: 'queues' }, '0x30'), s('ops_source_up', { source: 'backups' }, '1x30')],
    evalTime: at(min(c.exporter.sourceDownFor) + 2),
    expected: [
      {
        severity: 'warning',
        labels: { job: 'ops-overview', source: 'queues' },
        summary: 'Exporter source queues is failing.',
        description: `An exporter replica has failed to collect source queues for ${c.exporter.sourceDownFor}; its metrics are absent from that replica.`,
        dashboardUrl: dashboardUrl('exporter', EXPORTER_PANELS.sourcesTable),
      },
      {
        severity: 'critical',
        labels: { job: 'ops-overview', source: 'queues' },
        summary: 'Exporter source queues is failing on every replica.',
        description: `Every exporter replica of this platform has failed to collect source queues for ${c.exporter.sourceDownFor}; its metrics are absent, so its alerts cannot fire.`,
        dashboardUrl: dashboardUrl('exporter', EXPORTER_PANELS.sourcesTable),
      },
    ],
  },
  {
    alert: 'OpsExporterSourceDown',
    name: 'tickets, without paging, when a source fails on one replica of two',
    series: [s('ops_source_up', { source: 'queues' }, '0x30'), s('ops_source_up', { source: 'queues', instance: REPLICA_2 }, '1x30')],
    evalTime: at(min(c.exporter.sourceDownFor) + 2),
    expected: [
      {
        severity: 'warning',
        labels: { job: 'ops-overview', source: 'queues' },
        summary: 'Exporter source queues is failing.',
        description: `An exporter replica has failed to collect source queues for ${c.exporter.sourceDownFor}; its metrics are absent from that replica.`,
        dashboardUrl: dashboardUrl('exporter', EXPORTER_PANELS.sourcesTable),
      },
    ],
  },
  {
    alert: 'OpsExporterSourceDown',
    name: 'stays quiet when the source recovers before sourceDownFor',
    series: [s('ops_source_up', { source: 'queues' }, `0x${min(c.exporter.sourceDownFor) - 3} 1x30`)],
    evalTime: at(min(c.exporter.sourceDownFor) + 2),
    expected: [],
  },

  // Watchdog
  {
    alert: 'Watchdog',
    name: 'always fires',
    series: [],
    evalTime: '1m',
    expected: [
      {
        severity: 'info',
        labels: {},
        summary: 'The alerting pipeline works.',
        description: "This alert always fires. Alertmanager sends it to a dead man's switch, which pages when it stops arriving (Prometheus or Alertmanager down).",
        dashboardUrl: dashboardUrl('exporter'),
      },
    ],
  },
  // OpsExporterIndexMissing: checked at start-up and hourly, so the value is a step.
  {
    alert: 'OpsExporterIndexMissing',
    name: 'tickets when an index the exporter needs stays missing',
    series: [
      s('ops_exporter_index_missing', { index: 'ProvisioningJob_finished_idx' }, '1x40'),
      s('ops_exporter_index_missing', { index: 'ProvisioningJob_live_idx' }, '0x40'),
    ],
    evalTime: at(min(c.exporter.indexMissingFor) + 2),
    expected: [
      {
        severity: 'warning',
        labels: { index: 'ProvisioningJob_finished_idx' },
        summary: 'Index ProvisioningJob_finished_idx is missing on the platform database.',
        description: `The exporter's index check (at start-up and hourly) finds index ProvisioningJob_finished_idx missing or invalid for ${c.exporter.indexMissingFor}: the exporter's queries on that table scan it, and its collections get slower as the table grows.`,
        dashboardUrl: dashboardUrl('exporter', EXPORTER_PANELS.sourcesTable),
      },
    ],
  },
  {
    alert: 'OpsExporterIndexMissing',
    name: 'stays quiet when the index is created before indexMissingFor',
    series: [s('ops_exporter_index_missing', { index: 'ProvisioningJob_finished_idx' }, `1x${min(c.exporter.indexMissingFor) - 3} 0x40`)],
    evalTime: at(min(c.exporter.indexMissingFor) + 2),
    expected: [],
  },

  // OpsExporterLabelOverflow
  {
    alert: 'OpsExporterLabelOverflow',
    name: 'tickets when a source keeps cutting series at its label bound',
    series: [
      s('ops_source_invalid_values', { source: 'queues', reason: 'label_overflow' }, '12x60'),
      s('ops_source_invalid_values', { source: 'core_nodes', reason: 'null_value' }, '5x60'),
    ],
    evalTime: at(min(c.exporter.labelOverflowFor) + 2),
    expected: [
      {
        severity: 'warning',
        labels: { source: 'queues' },
        summary: 'Source queues cuts series at its label bound.',
        description: `For ${c.exporter.labelOverflowFor} the exporter has served 12 values of source queues beyond its label bound without their own series (counted under OTHER or only in the aggregate families): per-object panels and alerts miss them.`,
        dashboardUrl: dashboardUrl('exporter', EXPORTER_PANELS.invalidValues),
      },
    ],
  },
  {
    alert: 'OpsExporterLabelOverflow',
    name: 'stays quiet for a short overflow, and for other invalid values',
    series: [
      s('ops_source_invalid_values', { source: 'queues', reason: 'label_overflow' }, `3x${min(c.exporter.labelOverflowFor) - 5} 0x60`),
      s('ops_source_invalid_values', { source: 'core_nodes', reason: 'null_value' }, '5x60'),
    ],
    evalTime: at(min(c.exporter.labelOverflowFor) + 2),
    expected: [],
  },

  // OpsShieldWindowIncomplete
  {
    alert: 'OpsShieldWindowIncomplete',
    name: 'tickets when the recount after start does not finish',
    series: [s('ops_shield_window_complete', {}, '0x60'), s('ops_shield_recount_progress_ratio', {}, '0+0.01x60')],
    evalTime: at(min(c.security.shieldWindowIncompleteFor) + 2),
    expected: [
      {
        severity: 'warning',
        labels: {},
        summary: 'The Shield 24 h window is incomplete.',
        description: `ops_shield_window_complete has been 0 on an exporter replica for ${c.security.shieldWindowIncompleteFor}: its recount of the last 24 hours has not finished, so ops_shield_events_24h (the surge baseline, the 24 h panel) is absent from it.`,
        dashboardUrl: dashboardUrl('overview', P.securityDecisions24h),
      },
    ],
  },
  {
    alert: 'OpsShieldWindowIncomplete',
    name: 'tickets when one replica\'s recount never finishes while the other\'s did',
    series: [s('ops_shield_window_complete', {}, '0x60'), s('ops_shield_window_complete', { instance: REPLICA_2 }, '0x3 1x60')],
    evalTime: at(min(c.security.shieldWindowIncompleteFor) + 2),
    expected: [
      {
        severity: 'warning',
        labels: {},
        summary: 'The Shield 24 h window is incomplete.',
        description: `ops_shield_window_complete has been 0 on an exporter replica for ${c.security.shieldWindowIncompleteFor}: its recount of the last 24 hours has not finished, so ops_shield_events_24h (the surge baseline, the 24 h panel) is absent from it.`,
        dashboardUrl: dashboardUrl('overview', P.securityDecisions24h),
      },
    ],
  },
  {
    alert: 'OpsShieldWindowIncomplete',
    name: 'stays quiet when the recount finishes within shieldWindowIncompleteFor',
    series: [s('ops_shield_window_complete', {}, `0x${min(c.security.shieldWindowIncompleteFor) - 5} 1x60`)],
    evalTime: at(min(c.security.shieldWindowIncompleteFor) + 2),
    expected: [],
  },
];

/** The platform label values of the two-platform variants. */
export const PLATFORMS = ['A', 'B'] as const;

/** Alerts without a two-replica variant of their cases, and why. */
export const NO_REPLICA_VARIANT: Partial<Record<AlertName, string>> = {
  OpsExporterReplicaDown: 'its own cases have two replicas, one up and one down; a copy of one onto the other would prove something else',
  Watchdog: 'has no input series',
};

/** Alerts without a two-platform variant of their cases, and why. */
export const NO_PLATFORM_VARIANT: Partial<Record<AlertName, string>> = {
  OpsExporterAbsent: 'absent() sees no platform: a platform whose every target is gone from Prometheus has no series left to carry its name',
  Watchdog: 'is about the alerting pipeline, not about a platform',
};

/** `series` with more labels (first in the selector). */
function withLabels(series: InputSeries, labels: Record<string, string>): InputSeries {
  const extra = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(', ');
  const open = series.series.indexOf('{');
  const rest = series.series.slice(open + 1);
  return { series: `${series.series.slice(0, open)}{${extra}${rest.startsWith('}') ? '' : ', '}${rest}`, values: series.values };
}

/**
 * The case with every series of the exporter's replica also served, with the
 * same values, by a second replica of the same platform: the same alerts
 * (one, not two; `$value` not doubled by a sum) must come out.
 */
function twoReplicas(rc: RuleCase): RuleCase {
  const keys = new Set(rc.series.map((x) => x.series));
  const copies = rc.series
    .filter((x) => x.series.includes(`instance="${LBL.instance}"`))
    .map((x) => ({ series: x.series.replace(`instance="${LBL.instance}"`, `instance="${REPLICA_2}"`), values: x.values }))
    .filter((x) => !keys.has(x.series));
  return { ...rc, name: `${rc.name} [two replicas]`, series: [...rc.series, ...copies] };
}

/**
 * Two platforms in one Prometheus: platform A gets the case's series, B
 * those of the alert's first quiet case (for a quiet case, both get its
 * series). Only A's alerts may come out, with `platform="A"`: one platform's
 * state never leaks into, hides or merges with the other's.
 */
function twoPlatforms(rc: RuleCase, quiet: RuleCase): RuleCase {
  const [a, b] = PLATFORMS;
  return {
    ...rc,
    name: `${rc.name} [two platforms: ${a} as above, ${b} quiet]`,
    series: [...rc.series.map((x) => withLabels(x, { platform: a })), ...quiet.series.map((x) => withLabels(x, { platform: b }))],
    expected: rc.expected.map((e) => ({ ...e, labels: { platform: a, ...e.labels } })),
  };
}

/** Every case again with two exporter replicas, and again with two platforms. */
export function haCases(cases: readonly RuleCase[]): RuleCase[] {
  const out: RuleCase[] = [];
  for (const rc of cases) {
    if (!NO_REPLICA_VARIANT[rc.alert]) out.push(twoReplicas(rc));
    const quiet = cases.find((x) => x.alert === rc.alert && x.expected.length === 0);
    if (!NO_PLATFORM_VARIANT[rc.alert] && quiet) out.push(twoPlatforms(rc, rc.expected.length === 0 ? rc : quiet));
  }
  return out;
}

/** Alerts that cannot have a quiet case, and why. */
export const ALWAYS_FIRING: Partial<Record<AlertName, string>> = {
  Watchdog: 'fires by design; its silence is what the dead man\'s switch detects',
};

/** A healthy platform of `minutes` minutes: every source up, nodes ONLINE with fresh metrics, queues served, backups recent. */
export function healthyPlatform(minutes: number): Map<string, string> {
  const n = minutes;
  const series = new Map<string, string>();
  const add = (x: InputSeries) => series.set(x.series, x.values);
  add(s('up', {}, `1x${n}`));
  for (const source of ['core_nodes', 'queues', 'provisioning', 'security', 'backups']) add(s('ops_source_up', { source }, `1x${n}`));
  for (const node of ['SRV1-WEB', 'MAIL-CORE', 'DB-CORE']) {
    for (const status of ['ONLINE', 'DEGRADED', 'OFFLINE', 'MAINTENANCE', 'MISSING', 'UNKNOWN']) {
      add(s('ops_core_node_status', { node, status }, `${status === 'ONLINE' ? 1 : 0}x${n}`));
    }
    add(s('ops_core_node_expected', { node }, `1x${n}`));
    add(s('ops_core_node_cpu_ratio', { node }, `0.3x${n}`));
    add(s('ops_core_node_memory_ratio', { node }, `0.6x${n}`));
    add(s('ops_core_node_disk_ratio', { node }, `0.5x${n}`));
    add(s('ops_core_node_metrics_timestamp_seconds', { node }, `-60+60x${n}`));
  }
  for (const queue of ['hosting', 'mail']) {
    const q = { prefix: 'bull', queue };
    add(s('ops_queue_jobs', { ...q, state: 'waiting' }, `3x${n}`));
    add(s('ops_queue_jobs', { ...q, state: 'active' }, `2x${n}`));
    add(s('ops_queue_jobs', { ...q, state: 'failed' }, `10x${n}`));
    add(s('ops_queue_oldest_waiting_job_timestamp_seconds', q, `-20+60x${n}`));
    add(s('ops_queue_workers', q, `4x${n}`));
    add(s('ops_queue_paused', q, `0x${n}`));
    add(s('ops_queue_jobs_completed_total', q, `0+5x${n}`));
    add(s('ops_queue_jobs_failed_total', q, `0x${n}`));
  }
  for (const status of ['COMPLETED', 'FAILED', 'CANCELLED']) add(s('ops_provisioning_jobs_finished_total', { type: 'hosting', status }, status === 'COMPLETED' ? `0+10x${n}` : `0x${n}`));
  add(s('ops_provisioning_job_duration_seconds_count', { type: 'hosting', status: 'COMPLETED' }, `0+10x${n}`));
  add(s('ops_provisioning_job_duration_seconds_bucket', { type: 'hosting', status: 'COMPLETED', le: '300' }, `0+10x${n}`));
  add(s('ops_shield_window_complete', {}, `1x${n}`));
  add(s('ops_provisioning_jobs', { type: 'hosting', status: 'RUNNING' }, `3x${n}`));
  add(s('ops_provisioning_jobs_stuck', { type: 'hosting', status: 'RUNNING' }, `0x${n}`));
  add(s('ops_provisioning_stuck_threshold_seconds', {}, `900x${n}`));
  add(s('ops_provisioning_failed_jobs_24h', { action: 'hosting.create', resource_type: 'WEBSITE' }, `4x${n}`));
  add(s('ops_shield_events_total', { decision: 'BLOCK' }, `0+30x${n}`));
  add(s('ops_shield_events_total', { decision: 'ALLOW' }, `0+3000x${n}`));
  add(s('ops_shield_events_24h', { decision: 'BLOCK' }, `43200x${n}`));
  add(s('ops_shield_events_24h', { decision: 'ALLOW' }, `4320000x${n}`));
  add(s('ops_guardian_installed', {}, `1x${n}`));
  for (const severity of ['CRITICAL', 'HIGH']) add(s('ops_guardian_open_findings', { severity }, `${severity === 'HIGH' ? 2 : 0}x${n}`));
  add(s('ops_backup_tracking_installed', {}, `1x${n}`));
  for (const resource_type of ['DB_CORE', 'MPANEL_CORE', 'CLOUD_POD']) {
    add(s('ops_backup_ever_succeeded', { resource_type }, `1x${n}`));
    add(s('ops_backup_last_success_timestamp_seconds', { resource_type }, `-7200x${n}`));
  }
  return series;
}

/** A fault on the healthy platform and what must page for it. */
export interface PagingScenario {
  name: string;
  /** Changes to the healthy series: new values, or null to remove a series. */
  change: (series: Map<string, string>, minutes: number) => void;
  /** Alert names that must be firing with severity=critical at the end; nothing else may page. */
  pages: AlertName[];
  /** Alert names that must be firing with severity=warning at the end; nothing else may ticket. */
  tickets: AlertName[];
}

const key = (name: string, labels: Record<string, string>): string => s(name, labels, '').series;

/** Faults, from the ones that must page to the ones that must not. */
export const pagingScenarios: PagingScenario[] = [
  { name: 'a healthy platform', change: () => {}, pages: [], tickets: [] },
  {
    name: 'a core node OFFLINE (its metrics stop too)',
    change: (m, n) => {
      m.set(key('ops_core_node_status', { node: 'MAIL-CORE', status: 'ONLINE' }), `0x${n}`);
      m.set(key('ops_core_node_status', { node: 'MAIL-CORE', status: 'OFFLINE' }), `1x${n}`);
      m.set(key('ops_core_node_metrics_timestamp_seconds', { node: 'MAIL-CORE' }), `0x${n}`);
    },
    pages: ['OpsCoreNodeDown'],
    tickets: ['OpsCoreNodeMetricsStale'],
  },
  {
    name: 'a core node DEGRADED',
    change: (m, n) => {
      m.set(key('ops_core_node_status', { node: 'MAIL-CORE', status: 'ONLINE' }), `0x${n}`);
      m.set(key('ops_core_node_status', { node: 'MAIL-CORE', status: 'DEGRADED' }), `1x${n}`);
    },
    pages: [],
    tickets: ['OpsCoreNodeNotOnline'],
  },
  {
    name: 'a core node in MAINTENANCE with stale metrics',
    change: (m, n) => {
      m.set(key('ops_core_node_status', { node: 'DB-CORE', status: 'ONLINE' }), `0x${n}`);
      m.set(key('ops_core_node_status', { node: 'DB-CORE', status: 'MAINTENANCE' }), `1x${n}`);
      m.set(key('ops_core_node_metrics_timestamp_seconds', { node: 'DB-CORE' }), `0x${n}`);
    },
    pages: [],
    tickets: ['OpsCoreNodeMetricsStale'],
  },
  {
    name: 'a core node flapping OFFLINE for two minutes at a time',
    change: (m, n) => {
      const flap = Array.from({ length: n + 1 }, (_, i) => (i % 6 < 2 ? 1 : 0));
      m.set(key('ops_core_node_status', { node: 'SRV1-WEB', status: 'OFFLINE' }), flap.join(' '));
      m.set(key('ops_core_node_status', { node: 'SRV1-WEB', status: 'ONLINE' }), flap.map((v) => 1 - v).join(' '));
    },
    pages: [],
    tickets: [],
  },
  {
    name: 'a disk nearly full',
    change: (m, n) => m.set(key('ops_core_node_disk_ratio', { node: 'DB-CORE' }), `0.97x${n}`),
    pages: ['OpsCoreNodeDiskHigh'],
    tickets: ['OpsCoreNodeDiskHigh'],
  },
  {
    name: 'a queue whose workers are gone',
    change: (m, n) => m.set(key('ops_queue_workers', { prefix: 'bull', queue: 'mail' }), `0x${n}`),
    pages: ['OpsQueueNoWorkers'],
    tickets: [],
  },
  {
    name: 'a stalled worker (connected, nothing finishes)',
    change: (m, n) => m.set(key('ops_queue_jobs_completed_total', { prefix: 'bull', queue: 'mail' }), `0+5x${n - 30} ${5 * (n - 30)}x29`),
    pages: ['OpsQueueStalled'],
    tickets: [],
  },
  {
    name: 'a tenth of the hosting jobs failing (10x the budget) and a queue failing half its jobs',
    change: (m, n) => {
      m.set(key('ops_provisioning_jobs_finished_total', { type: 'hosting', status: 'FAILED' }), `0+1x${n}`);
      m.set(key('ops_provisioning_jobs_finished_total', { type: 'hosting', status: 'COMPLETED' }), `0+9x${n}`);
      m.set(key('ops_queue_jobs_failed_total', { prefix: 'bull', queue: 'hosting' }), `0+5x${n}`);
    },
    pages: ['OpsProvisioningErrorBudgetBurn'],
    tickets: ['OpsProvisioningErrorBudgetBurn', 'OpsQueueFailureRatioHigh'],
  },
  {
    name: 'a queue falling behind while served',
    change: (m, n) => {
      m.set(key('ops_queue_jobs', { prefix: 'bull', queue: 'hosting', state: 'waiting' }), `3+5x${n}`);
      m.set(key('ops_queue_oldest_waiting_job_timestamp_seconds', { prefix: 'bull', queue: 'hosting' }), `0x${n}`);
    },
    pages: [],
    tickets: ['OpsQueueBacklogGrowing'],
  },
  {
    name: 'stuck provisioning jobs and a failure spike',
    change: (m, n) => {
      m.set(key('ops_provisioning_jobs_stuck', { type: 'hosting', status: 'RUNNING' }), `2x${n}`);
      m.set(key('ops_provisioning_failed_jobs_24h', { action: 'hosting.create', resource_type: 'WEBSITE' }), `4+1x${n}`);
    },
    pages: ['OpsProvisioningJobsStuck'],
    tickets: ['OpsProvisioningFailureSpike'],
  },
  {
    name: 'a surge of Shield BLOCKs',
    change: (m, n) => m.set(key('ops_shield_events_total', { decision: 'BLOCK' }), `0+600x${n}`),
    pages: [],
    tickets: ['OpsShieldBlockSurge'],
  },
  {
    name: 'a CRITICAL Guardian finding open',
    change: (m, n) => m.set(key('ops_guardian_open_findings', { severity: 'CRITICAL' }), `1x${n}`),
    pages: ['OpsGuardianCriticalFindingsOpen'],
    tickets: [],
  },
  {
    name: 'Guardian not installed',
    change: (m, n) => {
      m.set(key('ops_guardian_installed', {}), `0x${n}`);
      m.delete(key('ops_guardian_open_findings', { severity: 'CRITICAL' }));
      m.delete(key('ops_guardian_open_findings', { severity: 'HIGH' }));
    },
    pages: [],
    tickets: [],
  },
  {
    name: 'DB_CORE backups two days old and MPANEL_CORE never backed up',
    change: (m, n) => {
      m.set(key('ops_backup_last_success_timestamp_seconds', { resource_type: 'DB_CORE' }), `-172800x${n}`);
      m.set(key('ops_backup_ever_succeeded', { resource_type: 'MPANEL_CORE' }), `0x${n}`);
      m.delete(key('ops_backup_last_success_timestamp_seconds', { resource_type: 'MPANEL_CORE' }));
    },
    pages: ['OpsBackupNeverSucceeded', 'OpsBackupTooOld'],
    tickets: [],
  },
  {
    name: 'backup tracking not installed',
    change: (m, n) => {
      m.set(key('ops_backup_tracking_installed', {}), `0x${n}`);
      for (const rt of ['DB_CORE', 'MPANEL_CORE', 'CLOUD_POD']) {
        m.set(key('ops_backup_ever_succeeded', { resource_type: rt }), `0x${n}`);
        m.delete(key('ops_backup_last_success_timestamp_seconds', { resource_type: rt }));
      }
    },
    pages: [],
    tickets: [],
  },
  {
    name: 'the core_nodes source down while a node is OFFLINE (its series vanish)',
    change: (m, n) => {
      const half = Math.floor(n / 2);
      m.set(key('ops_source_up', { source: 'core_nodes' }), `1x${half} 0x${n - half - 1}`);
      for (const [k, v] of [...m]) {
        if (k.startsWith('ops_core_node_')) m.set(k, `${v.split('x')[0]}x${half}`);
      }
      m.set(key('ops_core_node_status', { node: 'MAIL-CORE', status: 'OFFLINE' }), `0x${half - 10} 1x10`);
      m.set(key('ops_core_node_status', { node: 'MAIL-CORE', status: 'ONLINE' }), `1x${half - 10} 0x10`);
    },
    pages: ['OpsExporterSourceDown'],
    tickets: ['OpsExporterSourceDown'],
  },
  {
    name: 'the exporter down (every ops_ series vanishes)',
    change: (m, n) => {
      const half = Math.floor(n / 2);
      for (const [k, v] of [...m]) if (k.startsWith('ops_')) m.set(k, `${v.split('x')[0]}x${half}`);
      m.set(key('up', {}), `1x${half} 0x${n - half - 1}`);
    },
    pages: ['OpsExporterDown'],
    tickets: [],
  },
];

// ---- Flow alerts (issue 13): stalled queues, failure ratios, provisioning SLO burn rates ----

const qs = c.queues;
const slo = c.slo;
const pctOf = (r: number): string => `${Math.round(r * 1000) / 10}%`;
const tiersOf = (severity: Severity) => slo.burnRates.filter((t) => t.severity === severity);
const tiersText = (severity: Severity): string => tiersOf(severity).map((t) => `${t.factor}× over ${t.longWindow} and ${t.shortWindow}`).join(', or ');
const fate = (severity: Severity): string => (severity === 'critical' ? 'at this pace it is gone within days' : `at this pace it is gone before the ${slo.period} period ends`);
const pace = (severity: Severity): string => (severity === 'critical' ? 'fast' : 'slowly');
const sloUrl = dashboardUrl('overview', P.sloBurnRate);

function errorBudgetBurn(severity: Severity, type: string, burn: string): ExpectedAlert {
  return {
    severity,
    labels: { type },
    summary: `Provisioning of ${type} burns its error budget ${pace(severity)}.`,
    description: `Provisioning jobs of type ${type} fail ${burn} times as fast as the success SLO allows (${pctOf(slo.success.objective)} succeed over ${slo.period}; burning ${tiersText(severity)}): ${fate(severity)}.`,
    dashboardUrl: sloUrl,
  };
}

function latencyBudgetBurn(severity: Severity, burn: string): ExpectedAlert {
  const t = slo.latency.type;
  const th = slo.latency.thresholdSeconds;
  return {
    severity,
    labels: { type: t },
    summary: `${t} jobs are too slow: the latency error budget burns ${pace(severity)}.`,
    description: `${t} jobs take longer than ${th} s ${burn} times as often as the latency SLO allows (${pctOf(slo.latency.objective)} within ${th} s over ${slo.period}; burning ${tiersText(severity)}): ${fate(severity)}.`,
    dashboardUrl: sloUrl,
  };
}

/** A queue's ready jobs, workers and pause flag. */
function queueState(queue: string, waiting: string, workers: string, paused = '0x60'): InputSeries[] {
  const q = { prefix: 'bull', queue };
  return [s('ops_queue_jobs', { ...q, state: 'waiting' }, waiting), s('ops_queue_workers', q, workers), s('ops_queue_paused', q, paused)];
}

/** A queue's finished-job counters. */
function queueFlow(queue: string, completed: string, failed: string): InputSeries[] {
  const q = { prefix: 'bull', queue };
  return [s('ops_queue_jobs_completed_total', q, completed), s('ops_queue_jobs_failed_total', q, failed)];
}

const stallM = min(qs.stalledWindow);
const finished = (type: string, status: string, values: string) => s('ops_provisioning_jobs_finished_total', { type, status }, values);
const latencySeries = (count: string, fast: string): InputSeries[] => {
  const l = { type: slo.latency.type, status: slo.latency.statuses[0]! };
  return [
    s('ops_provisioning_job_duration_seconds_count', l, count),
    s('ops_provisioning_job_duration_seconds_bucket', { ...l, le: String(slo.latency.thresholdSeconds) }, fast),
  ];
};

/** The flow alerts' scenarios. */
export const flowRuleCases: RuleCase[] = [
  // OpsQueueStalled: completions stop at minute 5 while jobs wait and workers stay connected.
  {
    alert: 'OpsQueueStalled',
    name: 'pages when jobs wait, workers are connected and nothing finishes for stalledWindow',
    series: [...queueState('hosting', '5x60', '2x60'), ...queueFlow('hosting', `0+3x5 15x60`, '1x60')],
    evalTime: at(5 + stallM + min(qs.stalledFor) + 3),
    expected: [
      {
        severity: 'critical',
        labels: { prefix: 'bull', queue: 'hosting' },
        summary: 'Queue hosting has stalled: jobs wait, workers are connected, nothing finishes.',
        description: `Queue bull:hosting has 5 jobs ready and connected workers, is not paused, and no job has completed or failed for ${qs.stalledWindow}: its workers are hung.`,
        dashboardUrl: dashboardUrl('overview', P.queuesThroughput, { queue: 'hosting' }),
      },
    ],
  },
  {
    alert: 'OpsQueueStalled',
    name: 'stays quiet while jobs still finish, one per minute',
    series: [...queueState('hosting', '5x60', '2x60'), ...queueFlow('hosting', '0+1x60', '1x60')],
    evalTime: at(5 + stallM + min(qs.stalledFor) + 3),
    expected: [],
  },
  {
    alert: 'OpsQueueStalled',
    name: 'stays quiet when only failures go on (a worker failing every job is not stalled)',
    series: [...queueState('hosting', '5x60', '2x60'), ...queueFlow('hosting', '15x60', '0+2x60')],
    evalTime: at(5 + stallM + min(qs.stalledFor) + 3),
    expected: [],
  },
  {
    alert: 'OpsQueueStalled',
    name: 'stays quiet for a paused queue, and with no worker (OpsQueueNoWorkers pages then)',
    series: [...queueState('hosting', '5x60', '2x60', '1x60'), ...queueFlow('hosting', '15x60', '1x60'), ...queueState('mail', '5x60', '0x60'), ...queueFlow('mail', '3x60', '0x60')],
    evalTime: at(5 + stallM + min(qs.stalledFor) + 3),
    expected: [],
  },
  {
    alert: 'OpsQueueStalled',
    name: 'stays quiet when the counters are younger than stalledWindow (an exporter that just started knows nothing yet)',
    series: [...queueState('hosting', '5x60', '2x60'), ...queueFlow('hosting', `_x${stallM + 22} 0x20`, `_x${stallM + 22} 0x20`)],
    evalTime: at(stallM + 30),
    expected: [],
  },

  // OpsQueueFailureRatioHigh: 6 completed and 4 failed a minute is 40 %.
  {
    alert: 'OpsQueueFailureRatioHigh',
    name: 'tickets when the share of failed jobs stays above the limit',
    series: queueFlow('ssl', '0+6x60', '0+4x60'),
    evalTime: at(min(qs.failureRatioWindow) + min(qs.failureRatioFor) + 2),
    expected: [
      {
        severity: 'warning',
        labels: { prefix: 'bull', queue: 'ssl' },
        summary: 'Jobs of queue ssl fail often.',
        description: `40% of the jobs of queue bull:ssl that finished over the last ${qs.failureRatioWindow} failed (limit ${pctOf(qs.failureRatioLimit)}, from ${qs.failureRatioMinJobs} finished jobs).`,
        dashboardUrl: dashboardUrl('overview', P.queuesFailureRatio, { queue: 'ssl' }),
      },
    ],
  },
  {
    alert: 'OpsQueueFailureRatioHigh',
    name: 'stays quiet under the limit',
    series: queueFlow('ssl', `0+${Math.round((1 - qs.failureRatioLimit / 2) * 100)}x60`, `0+${Math.round((qs.failureRatioLimit / 2) * 100)}x60`),
    evalTime: at(min(qs.failureRatioWindow) + min(qs.failureRatioFor) + 2),
    expected: [],
  },
  {
    alert: 'OpsQueueFailureRatioHigh',
    name: 'stays quiet when every job fails but fewer than failureRatioMinJobs finished in the window',
    series: queueFlow('ssl', '0x60', `0+${(qs.failureRatioMinJobs - 3) / min(qs.failureRatioWindow)}x60`),
    evalTime: at(min(qs.failureRatioWindow) + min(qs.failureRatioFor) + 2),
    expected: [],
  },

  // OpsProvisioningErrorBudgetBurn: 2 FAILED in 10 valid a minute is 20 % failing, 20 times the 1 % budget.
  {
    alert: 'OpsProvisioningErrorBudgetBurn',
    name: 'pages (and tickets) when a type fails at 20x the budget, CANCELLED and a healthy type aside',
    series: [
      finished('hosting', 'COMPLETED', '0+8x70'),
      finished('hosting', 'FAILED', '0+2x70'),
      finished('hosting', 'CANCELLED', '0+30x70'),
      finished('dns', 'COMPLETED', '0+10x70'),
    ],
    evalTime: at(60),
    expected: [errorBudgetBurn('critical', 'hosting', '20'), errorBudgetBurn('warning', 'hosting', '20')],
  },
  {
    alert: 'OpsProvisioningErrorBudgetBurn',
    name: 'stays quiet at half the budget',
    series: [finished('hosting', 'COMPLETED', '0+199x70'), finished('hosting', 'FAILED', '0+1x70'), finished('dns', 'COMPLETED', '0+10x70')],
    evalTime: at(60),
    expected: [],
  },
  {
    alert: 'OpsProvisioningErrorBudgetBurn',
    name: 'stops paging once the short windows are clean after a burst; the slow-burn ticket stays (120 failed of 990 is 12.12x over 1d and 2h)',
    series: [finished('hosting', 'COMPLETED', '0+8x60 480+10x40'), finished('hosting', 'FAILED', '0+2x60 120x40')],
    evalTime: at(100),
    expected: [errorBudgetBurn('warning', 'hosting', '12.12')],
  },
  {
    alert: 'OpsProvisioningErrorBudgetBurn',
    name: 'tickets only at 4x the budget (under both paging factors)',
    series: [finished('hosting', 'COMPLETED', '0+96x70'), finished('hosting', 'FAILED', '0+4x70')],
    evalTime: at(60),
    expected: [errorBudgetBurn('warning', 'hosting', '4')],
  },

  // OpsProvisioningLatencyBudgetBurn: the share of jobs over the threshold against the 5 % budget.
  {
    alert: 'OpsProvisioningLatencyBudgetBurn',
    name: 'pages (and tickets) when 80% of the jobs take longer than the threshold (16x)',
    series: [...latencySeries('0+10x70', '0+2x70'), s('ops_provisioning_job_duration_seconds_count', { type: 'dns', status: 'COMPLETED' }, '0+10x70')],
    evalTime: at(60),
    expected: [latencyBudgetBurn('critical', '16'), latencyBudgetBurn('warning', '16')],
  },
  {
    alert: 'OpsProvisioningLatencyBudgetBurn',
    name: 'stays quiet when 2% are slow',
    series: latencySeries('0+50x70', '0+49x70'),
    evalTime: at(60),
    expected: [],
  },
  {
    alert: 'OpsProvisioningLatencyBudgetBurn',
    name: 'tickets only when 20% are slow (4x)',
    series: latencySeries('0+10x70', '0+8x70'),
    evalTime: at(60),
    expected: [latencyBudgetBurn('warning', '4')],
  },
];
ruleCases.push(...flowRuleCases);
