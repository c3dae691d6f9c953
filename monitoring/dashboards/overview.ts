/**
 * The "Ops overview" dashboard: a first row that says whether every area of
 * the platform is healthy, coloured with the alert thresholds, then one row
 * per area with the detail behind each number.
 */
import * as common from '@grafana/grafana-foundation-sdk/common';
import type * as cog from '@grafana/grafana-foundation-sdk/cog';
import { RowBuilder, type Dashboard, type Panel } from '@grafana/grafana-foundation-sdk/dashboard';
import { PanelBuilder as BarGaugeBuilder } from '@grafana/grafana-foundation-sdk/bargauge';
import { HeatmapColorMode, HeatmapColorOptionsBuilder, PanelBuilder as HeatmapBuilder, YAxisConfigBuilder } from '@grafana/grafana-foundation-sdk/heatmap';
import { PromQueryFormat } from '@grafana/grafana-foundation-sdk/prometheus';
import { PanelBuilder as StatBuilder } from '@grafana/grafana-foundation-sdk/stat';
import { PanelBuilder as TableBuilder } from '@grafana/grafana-foundation-sdk/table';
import { PanelBuilder as TimeseriesBuilder } from '@grafana/grafana-foundation-sdk/timeseries';
import { MISSING_NODE_STATUS, UNKNOWN_LABEL } from '../../src/catalog.js';
import { config, type BackupResourceType } from '../config.js';
import { acrossReplicas, by, exporterUp, histSel, humanizeDuration, oneOf, sel } from '../promql.js';
import { errorBudget, RECORDED, SLO_EXPR, sloRecord } from '../rules.js';
import {
  bundleDashboard,
  dashedThresholds,
  fixedColor,
  labelVariable,
  lastValue,
  legend,
  link,
  mergeAndOrganize,
  query,
  tableLegend,
  thresholds,
  thresholdsOverride,
  unitOverride,
  valueMappings,
  withoutLinkPlacement,
} from './common.js';
import { dashboardPath, firingAlertsUrl, OVERVIEW_PANELS as P } from './ids.js';

const c = config;

/**
 * Columns of a table that says which platform a row belongs to: first, and
 * only when several platforms can be shown (one platform's tables look as
 * they always did, whether Prometheus sets the label or not).
 */
function platformColumn(hide: string[], order: string[]): [string[], string[]] {
  return c.multiPlatform ? [hide, [c.platformLabel, ...order]] : [[...hide, c.platformLabel], order];
}

/** A dashboard row and the panels under it. */
interface Section {
  row: RowBuilder;
  panels: cog.Builder<Panel>[];
}

function section(title: string, id: number, panels: cog.Builder<Panel>[]): Section {
  return { row: new RowBuilder(title).id(id), panels };
}

/**
 * `expr`, or 0 when the expression is empty but the area's source was
 * collected (no data when it was not). First-row stats add up the selected
 * platforms.
 */
function orZero(expr: string, source: string): string {
  return `${expr}\nor on () ((max(${sel('sourceUp', `source="${source}"`)}) == 1) - 1)`;
}

/** Links of a first-row stat: to the panel with the detail, and to the area's firing alerts. */
function statLinks(detailPanel: number, area: string) {
  return [
    link('Details', `${dashboardPath('overview')}?viewPanel=panel-${detailPanel}`),
    link('Firing alerts', firingAlertsUrl(area), false),
  ];
}

/** A first-row stat panel with the shared look. */
function stat(id: number, title: string, description: string): StatBuilder {
  return new StatBuilder()
    .id(id)
    .title(title)
    .description(description)
    .height(5)
    .span(3)
    .reduceOptions(lastValue())
    .graphMode(common.BigValueGraphMode.None)
    .colorMode(common.BigValueColorMode.Value)
    .textMode(common.BigValueTextMode.ValueAndName)
    .justifyMode(common.BigValueJustifyMode.Auto)
    .orientation(common.VizOrientation.Horizontal)
    .unit('short')
    .decimals(0);
}

const noWorkersExpr = (): string =>
  `count(\n  ${RECORDED.queueReady} > 0\n  and on (${by('prefix', 'queue')}) (max by (${by('prefix', 'queue')}) (${sel('queueWorkers')}) == 0)\n` +
  `  unless on (${by('prefix', 'queue')}) (max by (${by('prefix', 'queue')}) (${sel('queuePaused')}) == 1)\n)`;
const failureRiseExpr = (): string =>
  `sum by (${by('resource_type')}) (${acrossReplicas(`${sel('provisioningFailed24h')} - min_over_time(${sel('provisioningFailed24h')}[${c.provisioning.failureSpikeWindow}])`)})`;
const BACKUP_TYPES = Object.keys(c.backups.maxAgeSeconds) as BackupResourceType[];

function firstRow() {
  const coreNodes = stat(P.statCoreNodes, 'Core nodes', 'Expected core nodes that are ONLINE, how many nodes are expected, and how many nodes are OFFLINE, DEGRADED, UNKNOWN or MISSING (each of those raises an alert). MAINTENANCE is not counted as a problem.')
    .withTarget(query('A', orZero(`count(\n  (max by (${by('node')}) (${sel('coreNodeStatus', 'status="ONLINE"')}) == 1)\n  and on (${by('node')}) (max by (${by('node')}) (${sel('coreNodeExpected')}) == 1)\n)`, 'core_nodes'), { legend: 'ONLINE', instant: true }))
    .withTarget(query('B', orZero(`count(max by (${by('node')}) (${sel('coreNodeExpected')}) == 1)`, 'core_nodes'), { legend: 'expected', instant: true }))
    .withTarget(query('C', orZero(`count(max by (${by('node')}) (${sel('coreNodeStatus', `status=~"${oneOf(['OFFLINE', 'DEGRADED', UNKNOWN_LABEL, MISSING_NODE_STATUS])}"`)}) == 1)`, 'core_nodes'), { legend: 'not ONLINE', instant: true }))
    .overrideByName('ONLINE', [fixedColor('green')])
    .overrideByName('expected', [fixedColor()])
    .overrideByName('not ONLINE', [thresholdsOverride('green', [1, 'red'])])
    .noValue('source down')
    .links(statLinks(P.coreNodesTable, 'core_nodes'));

  const queues = stat(P.statQueues, 'Queues behind / without workers', `Queues whose oldest waiting job is older than ${humanizeDuration(c.queues.oldestWaitingWarningSeconds)} (OpsQueueBacklogGrowing fires when their backlog also grows), and queues with waiting jobs but no connected worker (OpsQueueNoWorkers pages).`)
    .withTarget(query('A', orZero(`count(${RECORDED.queueOldestAge} > ${c.queues.oldestWaitingWarningSeconds})`, 'queues'), { legend: 'behind', instant: true }))
    .withTarget(query('B', orZero(noWorkersExpr(), 'queues'), { legend: 'no workers', instant: true }))
    .overrideByName('behind', [thresholdsOverride('green', [1, 'orange'])])
    .overrideByName('no workers', [thresholdsOverride('green', [1, 'red'])])
    .noValue('source down')
    .links(statLinks(P.queuesOldestAge, 'queues'));

  const stuck = stat(P.statStuck, 'Stuck provisioning jobs', 'Provisioning jobs PENDING or RUNNING for longer than the exporter\'s stuck threshold (OpsProvisioningJobsStuck fires from 1).')
    .withTarget(query('A', orZero(`sum(${acrossReplicas(sel('provisioningStuck'))})`, 'provisioning'), { legend: 'stuck', instant: true }))
    .thresholds(thresholds('green', [1, 'orange']))
    .noValue('source down')
    .links(statLinks(P.provisioningStuck, 'provisioning'));

  const failures = stat(P.statFailures, 'Provisioning failures', `FAILED provisioning jobs created in the last 24 h, and the largest number of new failures of one resource type within ${c.provisioning.failureSpikeWindow} (OpsProvisioningFailureSpike fires from ${c.provisioning.failureSpikeCount}).`)
    .withTarget(query('A', orZero(`sum(${acrossReplicas(sel('provisioningFailed24h'))})`, 'provisioning'), { legend: '24 h', instant: true }))
    .withTarget(query('B', orZero(`max(${failureRiseExpr()})`, 'provisioning'), { legend: `new in ${c.provisioning.failureSpikeWindow}`, instant: true }))
    .overrideByName('24 h', [fixedColor()])
    .overrideByName(`new in ${c.provisioning.failureSpikeWindow}`, [thresholdsOverride('green', [c.provisioning.failureSpikeCount, 'orange'])])
    .noValue('source down')
    .links(statLinks(P.provisioningHotspots, 'provisioning'));

  const shield = stat(P.statShield, 'Shield blocks', `Migra Shield BLOCK decisions in the last 24 h, and the current BLOCK rate as a multiple of the 24 h average (OpsShieldBlockSurge fires from ${c.security.blockSurgeFactor}x when above ${c.security.blockSurgeMinPerSecond}/s).`)
    .withTarget(query('A', `sum(${acrossReplicas(sel('shieldEvents24h', 'decision="BLOCK"'))})`, { legend: '24 h', instant: true }))
    .withTarget(query('B', `max(${RECORDED.shieldRate5m}{decision="BLOCK"} / ${RECORDED.shield24hPerSecond}{decision="BLOCK"})`, { legend: 'rate vs 24 h avg', instant: true }))
    .overrideByName('24 h', [fixedColor()])
    .overrideByName('rate vs 24 h avg', [unitOverride('suffix:x'), { id: 'decimals', value: 1 }, thresholdsOverride('green', [c.security.blockSurgeFactor, 'orange'])])
    .noValue('source down')
    .links(statLinks(P.securityDecisions, 'security'));

  const findings = stat(P.statFindings, 'Open findings', 'Open Guardian findings of severity CRITICAL (OpsGuardianCriticalFindingsOpen pages from 1) and HIGH (no alert). Empty when Guardian is not installed.')
    .withTarget(query('A', `sum(${acrossReplicas(sel('guardianOpenFindings', 'severity="CRITICAL"'))})`, { legend: 'CRITICAL', instant: true }))
    .withTarget(query('B', `sum(${acrossReplicas(sel('guardianOpenFindings', 'severity="HIGH"'))})`, { legend: 'HIGH', instant: true }))
    .overrideByName('CRITICAL', [thresholdsOverride('green', [1, 'red'])])
    .overrideByName('HIGH', [fixedColor()])
    .noValue('Guardian not installed')
    .links(statLinks(P.securityFindings, 'security'));

  const backups = stat(P.statBackups, 'Last successful backup', 'Age of the last COMPLETED backup per system, orange past its limit (OpsBackupTooOld), and how many systems were never backed up (OpsBackupNeverSucceeded).')
    .withTarget(query('A', c.multiPlatform ? `max by (resource_type) (${RECORDED.backupAge})` : RECORDED.backupAge, { legend: '{{resource_type}}', instant: true }))
    .withTarget(query('B', orZero(`count(\n  max by (${by('resource_type')}) (${sel('backupEverSucceeded')}) == 0\n  and on (resource_type) ${RECORDED.backupAgeLimit}\n  unless on (${by()}) (max by (${by()}) (${sel('backupTrackingInstalled')}) == 0)\n)`, 'backups'), { legend: 'never', instant: true }))
    .unit('s')
    .decimals(1);
  for (const rt of BACKUP_TYPES) backups.overrideByName(rt, [thresholdsOverride('green', [c.backups.maxAgeSeconds[rt], 'orange'])]);
  backups
    .overrideByName('never', [unitOverride('short'), { id: 'decimals', value: 0 }, thresholdsOverride('green', [1, 'orange'])])
    .noValue('tracking not configured')
    .links(statLinks(P.backupsTable, 'backups'));

  const sources = stat(P.statSources, 'Exporter', 'Whether Prometheus scrapes every exporter replica (OpsExporterDown pages when none of a platform\'s is, OpsExporterReplicaDown tickets for one), and how many of its five sources failed their last collection on some replica (OpsExporterSourceDown).')
    .withTarget(query('A', `min(${exporterUp()})`, { legend: 'exporter', instant: true }))
    .withTarget(query('B', `count(min by (${by('source')}) (${sel('sourceUp')}) == 1) or on () ((min(${exporterUp()}) == 1) - 1)`, { legend: 'sources up', instant: true }))
    .withTarget(query('C', `count(min by (${by('source')}) (${sel('sourceUp')}) == 0) or on () ((min(${exporterUp()}) == 1) - 1)`, { legend: 'sources down', instant: true }))
    .overrideByName('exporter', [{ id: 'mappings', value: valueMappings({ '0': { text: 'DOWN', color: 'red' }, '1': { text: 'UP', color: 'green' } }) }, fixedColor('green')])
    .overrideByName('sources up', [fixedColor()])
    .overrideByName('sources down', [thresholdsOverride('green', [1, 'orange'])])
    .noValue('exporter missing')
    .links([link('Exporter dashboard', dashboardPath('exporter')), link('Firing alerts', firingAlertsUrl('exporter'), false)]);

  const firing = new TableBuilder()
    .id(P.firingAlerts)
    .title('Firing alerts')
    .description('Alerts of this bundle firing now (the Watchdog left out), most severe first. The Alertmanager link shows which of them are silenced or inhibited.')
    .height(6)
    .span(24)
    .withTarget(query('A', 'sort_desc(ALERTS{alertstate="firing", area!="", alertname!="Watchdog"})', { table: true }))
    .transformations([
      {
        id: 'organize',
        options: {
          excludeByName: { Time: true, Value: true, __name__: true, alertstate: true },
          indexByName: { severity: 0, alertname: 1, area: 2 },
        },
      },
    ])
    .unit('short')
    .overrideByName('severity', [
      { id: 'mappings', value: valueMappings({ critical: { color: 'red' }, warning: { color: 'orange' }, info: { color: 'blue' } }) },
      { id: 'custom.cellOptions', value: { type: 'color-background' } },
    ])
    .noValue('No alert firing')
    .links([link('All firing alerts in Alertmanager', firingAlertsUrl(), false)]);

  return [coreNodes, queues, stuck, failures, shield, findings, backups, sources, firing];
}

function coreNodesRow(): Section {
  const statusColors = valueMappings({
    ONLINE: { color: 'green' },
    DEGRADED: { color: 'orange' },
    MAINTENANCE: { color: 'blue' },
    OFFLINE: { color: 'red' },
    [MISSING_NODE_STATUS]: { color: 'red' },
    [UNKNOWN_LABEL]: { color: 'orange' },
  });
  const table = new TableBuilder()
    .id(P.coreNodesTable)
    .title('Core nodes')
    .description(`Every core node: status (OFFLINE pages after ${c.coreNodes.downFor}), role, whether it is expected, CPU, RAM and disk utilisation from its latest metrics sample (coloured at the alert thresholds), and how old that sample is (stale after ${humanizeDuration(c.coreNodes.metricsStaleAfterSeconds)}). Empty cells are unknown values, never zero.`)
    .height(10)
    .span(24)
    .withTarget(query('A', `max by (${by('node', 'status')}) (${sel('coreNodeStatus')}) == 1`, { table: true }))
    .withTarget(query('B', `max by (${by('node', 'role')}) (${sel('coreNodeInfo')})`, { table: true }))
    .withTarget(query('C', `max by (${by('node')}) (${sel('coreNodeExpected')})`, { table: true }))
    .withTarget(query('D', `max by (${by('node')}) (${sel('coreNodeCpu')})`, { table: true }))
    .withTarget(query('E', `max by (${by('node')}) (${sel('coreNodeMemory')})`, { table: true }))
    .withTarget(query('F', `max by (${by('node')}) (${sel('coreNodeDisk')})`, { table: true }))
    .withTarget(query('G', RECORDED.nodeMetricsAge, { table: true }))
    .transformations(
      mergeAndOrganize(
        { 'Value #C': 'expected', 'Value #D': 'CPU', 'Value #E': 'RAM', 'Value #F': 'disk', 'Value #G': 'metrics age' },
        ...platformColumn(['Time', 'Value #A', 'Value #B'], ['node', 'status', 'role', 'Value #C', 'Value #D', 'Value #E', 'Value #F', 'Value #G']),
      ),
    )
    .unit('short')
    .sortBy([new common.TableSortByFieldStateBuilder().displayName('node')])
    .overrideByName('status', [{ id: 'mappings', value: statusColors }, { id: 'custom.cellOptions', value: { type: 'color-background' } }])
    .overrideByName('expected', [{ id: 'mappings', value: valueMappings({ '0': { text: 'no', color: 'text' }, '1': { text: 'yes', color: 'text' } }) }])
    .overrideByName('CPU', [unitOverride('percentunit'), thresholdsOverride('text'), { id: 'custom.cellOptions', value: { type: 'color-text' } }])
    .overrideByName('RAM', [unitOverride('percentunit'), thresholdsOverride('green', [c.coreNodes.memoryWarningRatio, 'orange']), { id: 'custom.cellOptions', value: { type: 'color-text' } }])
    .overrideByName('disk', [
      unitOverride('percentunit'),
      thresholdsOverride('green', [c.coreNodes.diskWarningRatio, 'orange'], [c.coreNodes.diskCriticalRatio, 'red']),
      { id: 'custom.cellOptions', value: { type: 'color-text' } },
    ])
    .overrideByName('metrics age', [unitOverride('s'), thresholdsOverride('green', [c.coreNodes.metricsStaleAfterSeconds, 'orange']), { id: 'custom.cellOptions', value: { type: 'color-text' } }]);

  const ratioSeries = (id: number, title: string, key: 'coreNodeDisk' | 'coreNodeMemory' | 'coreNodeCpu', what: string, th: [number, string][]) =>
    new TimeseriesBuilder()
      .id(id)
      .title(title)
      .description(what)
      .height(8)
      .span(8)
      .withTarget(query('A', `max by (${by('node')}) (${sel(key)})`, { legend: legend('{{node}}') }))
      .unit('percentunit')
      .min(0)
      .max(1)
      .thresholds(thresholds('green', ...th))
      .thresholdsStyle(th.length > 0 ? dashedThresholds() : new common.GraphThresholdsStyleConfigBuilder().mode(common.GraphThresholdsStyleMode.Off))
      .legend(tableLegend());

  return section('Core nodes', P.rowCoreNodes, [
    table,
    ratioSeries(P.coreNodesDisk, 'Disk utilisation', 'coreNodeDisk', `Disk utilisation per core node; the dashed lines are the warning (${c.coreNodes.diskWarningRatio}) and paging (${c.coreNodes.diskCriticalRatio}) thresholds of OpsCoreNodeDiskHigh.`, [[c.coreNodes.diskWarningRatio, 'orange'], [c.coreNodes.diskCriticalRatio, 'red']]),
    ratioSeries(P.coreNodesMemory, 'RAM utilisation', 'coreNodeMemory', `RAM utilisation per core node; the dashed line is the OpsCoreNodeMemoryHigh threshold (${c.coreNodes.memoryWarningRatio}).`, [[c.coreNodes.memoryWarningRatio, 'orange']]),
    ratioSeries(P.coreNodesCpu, 'CPU utilisation', 'coreNodeCpu', 'CPU utilisation per core node from its latest metrics sample (no alert: high CPU alone is not a symptom).', []),
  ]);
}

function queuesRow(): Section {
  const q = 'queue=~"$queue"';
  const series = (id: number, title: string, description: string, expr: string, unit: string) =>
    new TimeseriesBuilder()
      .id(id)
      .title(title)
      .description(description)
      .height(8)
      .span(12)
      .withTarget(query('A', expr, { legend: legend('{{prefix}}:{{queue}}') }))
      .unit(unit)
      .min(0)
      .legend(tableLegend());
  return section('Queues', P.rowQueues, [
    series(P.queuesBacklog, 'Backlog', 'Jobs waiting for a worker per queue (waiting + prioritized + paused). A backlog that keeps growing while its oldest job ages raises OpsQueueBacklogGrowing.', `${RECORDED.queueBacklog}{${q}}`, 'short'),
    series(P.queuesOldestAge, 'Oldest waiting job', `Age of the oldest job still waiting per queue; the dashed line is the OpsQueueBacklogGrowing age threshold (${humanizeDuration(c.queues.oldestWaitingWarningSeconds)}).`, `${RECORDED.queueOldestAge}{${q}}`, 's')
      .thresholds(thresholds('green', [c.queues.oldestWaitingWarningSeconds, 'orange']))
      .thresholdsStyle(dashedThresholds()),
    series(P.queuesWorkers, 'Workers', `Workers connected per queue. A queue with waiting jobs and 0 workers for ${c.queues.noWorkersFor} pages (OpsQueueNoWorkers). Empty when Redis forbids CLIENT LIST.`, `max by (${by('prefix', 'queue')}) (${sel('queueWorkers', q)})`, 'short'),
    series(P.queuesFailed, 'Failed jobs', 'Jobs in the failed set per queue (BullMQ keeps them until removed): a rising line means jobs are failing now.', `sum by (${by('prefix', 'queue')}) (${acrossReplicas(sel('queueJobs', `state="failed", ${q}`))})`, 'short'),
    ...queueFlowPanels(q),
  ]);
}

/** Per queue rate of a flow counter, replicas merged (each replica reads the same events stream). */
const queueRate = (key: 'queueJobsCompleted' | 'queueJobsFailed', q: string, w: string): string =>
  `sum by (${by('prefix', 'queue')}) (${acrossReplicas(`rate(${sel(key, q)}[${w}])`)})`;
/** A quantile of a per-queue histogram, replicas merged. */
const queueQuantile = (quantile: number, key: 'queueJobWait' | 'queueJobProcessing', q: string): string =>
  `histogram_quantile(${quantile}, sum by (${by('prefix', 'queue', 'le')}) (${acrossReplicas(`rate(${histSel(key, '_bucket', q)}[$__rate_interval])`)}))`;

/** Flow of the queues (issue 13): throughput, failure ratio, wait and processing times. */
function queueFlowPanels(q: string): cog.Builder<Panel>[] {
  const w = c.queues.failureRatioWindow;
  const throughput = new TimeseriesBuilder()
    .id(P.queuesThroughput)
    .title('Throughput')
    .description(`Jobs finished per second per queue (completed and failed, from the queue's events stream). Completions stopped for ${c.queues.stalledWindow} while jobs wait and workers are connected page (OpsQueueStalled).`)
    .height(8)
    .span(12)
    .withTarget(query('A', queueRate('queueJobsCompleted', q, '$__rate_interval'), { legend: legend('{{prefix}}:{{queue}} completed') }))
    .withTarget(query('B', queueRate('queueJobsFailed', q, '$__rate_interval'), { legend: legend('{{prefix}}:{{queue}} failed') }))
    .unit('ops')
    .min(0)
    .legend(tableLegend());
  const failureRatio = new TimeseriesBuilder()
    .id(P.queuesFailureRatio)
    .title('Failure ratio')
    .description(`Failed / finished jobs per queue over ${w}; the dashed line is the OpsQueueFailureRatioHigh limit (${c.queues.failureRatioLimit}, from ${c.queues.failureRatioMinJobs} finished jobs). No value while nothing finished.`)
    .height(8)
    .span(12)
    .withTarget(query('A', `${queueRate('queueJobsFailed', q, w)}\n/\n(${queueRate('queueJobsCompleted', q, w)} + ${queueRate('queueJobsFailed', q, w)})`, { legend: legend('{{prefix}}:{{queue}}') }))
    .unit('percentunit')
    .min(0)
    .max(1)
    .thresholds(thresholds('green', [c.queues.failureRatioLimit, 'orange']))
    .thresholdsStyle(dashedThresholds())
    .legend(tableLegend());
  const quantiles = (id: number, title: string, key: 'queueJobWait' | 'queueJobProcessing', what: string) =>
    new TimeseriesBuilder()
      .id(id)
      .title(title)
      .description(`p50 and p95 of ${what} per queue, of the jobs that finished (from the histogram's buckets, 1 s to 1 h: a value beyond 1 h shows as 1 h).`)
      .height(8)
      .span(12)
      .withTarget(query('A', queueQuantile(0.5, key, q), { legend: legend('{{prefix}}:{{queue}} p50') }))
      .withTarget(query('B', queueQuantile(0.95, key, q), { legend: legend('{{prefix}}:{{queue}} p95') }))
      .unit('s')
      .min(0)
      .legend(tableLegend());
  const heatmapQuery = query('A', `sum by (${by('le')}) (${acrossReplicas(`increase(${histSel('queueJobWait', '_bucket', q)}[$__rate_interval])`)})`, { legend: '{{le}}' }).format(PromQueryFormat.Heatmap);
  const heatmap = new HeatmapBuilder()
    .id(P.queuesWaitHeatmap)
    .title('Wait time distribution')
    .description('How long the finished jobs of the selected queues waited for a worker: jobs per wait-time bucket over time (darker: more jobs).')
    .height(8)
    .span(24)
    .withTarget(heatmapQuery)
    .calculate(false)
    .color(new HeatmapColorOptionsBuilder().mode(HeatmapColorMode.Scheme).scheme('Oranges').steps(64))
    .yAxis(new YAxisConfigBuilder().unit('s'))
    .unit('short')
    .cellGap(1);
  return [
    throughput,
    failureRatio,
    quantiles(P.queuesWaitQuantiles, 'Wait time', 'queueJobWait', 'the time jobs waited for a worker (enqueued or due until a worker took them)'),
    quantiles(P.queuesProcessingQuantiles, 'Processing time', 'queueJobProcessing', 'the time workers took on a job'),
    heatmap,
  ];
}

/** The provisioning SLOs (config.slo): how they stand, how much budget is left, how fast it burns. */
function sloRow(): Section {
  const s = c.slo;
  const pct = (r: number): string => `${Math.round(r * 1000) / 10}%`;
  const latencyWhat = `${s.latency.type} jobs within ${s.latency.thresholdSeconds} s`;
  const ratio = new TimeseriesBuilder()
    .id(P.sloRatio)
    .title('SLIs against their objectives (1 h)')
    .description(`Share of good provisioning jobs over the last hour: per type that succeeded (objective ${pct(s.success.objective)}), and ${latencyWhat} (objective ${pct(s.latency.objective)}). The dashed lines are the objectives.`)
    .height(8)
    .span(8)
    .withTarget(query('A', `1 - ${sloRecord('success', '1h')}`, { legend: legend('{{type}} succeeded') }))
    .withTarget(query('B', `1 - ${sloRecord('latency', '1h')}`, { legend: legend(`{{type}} within ${s.latency.thresholdSeconds} s`) }))
    .unit('percentunit')
    .max(1)
    .thresholds(thresholds('red', [s.latency.objective, 'orange'], [s.success.objective, 'green']))
    .thresholdsStyle(dashedThresholds())
    .legend(tableLegend());
  const budget = new BarGaugeBuilder()
    .id(P.sloBudgetLeft)
    .title(`Error budget left (${s.period})`)
    .description(`Share of the ${s.period} error budget not spent yet: 1 - error ratio over ${s.period} / budget (${errorBudget('success')} for success, ${errorBudget('latency')} for latency). Below 0 the SLO is missed for the period.`)
    .height(8)
    .span(8)
    .withTarget(query('A', `1 - (${SLO_EXPR.success(s.period)}) / ${errorBudget('success')}`, { legend: legend('{{type}} success'), instant: true }))
    .withTarget(query('B', `1 - (${SLO_EXPR.latency(s.period)}) / ${errorBudget('latency')}`, { legend: legend('{{type}} latency'), instant: true }))
    .unit('percentunit')
    .min(0)
    .max(1)
    .thresholds(thresholds('red', [0.25, 'orange'], [0.5, 'green']))
    .reduceOptions(lastValue());
  const factors = [...new Set(s.burnRates.map((b) => b.factor))].sort((a, b) => a - b);
  const burn = new TimeseriesBuilder()
    .id(P.sloBurnRate)
    .title('Burn rate')
    .description(`How many times faster than allowed the error budget is spent (1 spends it exactly in ${s.period}), over 1 h and 6 h. Dashed: the alert factors (${factors.join(', ')}); the burn-rate alerts need a short window to burn too.`)
    .height(8)
    .span(8)
    .withTarget(query('A', `${sloRecord('success', '1h')} / ${errorBudget('success')}`, { legend: legend('{{type}} success 1h') }))
    .withTarget(query('B', `${sloRecord('success', '6h')} / ${errorBudget('success')}`, { legend: legend('{{type}} success 6h') }))
    .withTarget(query('C', `${sloRecord('latency', '1h')} / ${errorBudget('latency')}`, { legend: legend('{{type}} latency 1h') }))
    .withTarget(query('D', `${sloRecord('latency', '6h')} / ${errorBudget('latency')}`, { legend: legend('{{type}} latency 6h') }))
    .unit('short')
    .min(0)
    .thresholds(thresholds('green', ...factors.map((f, i): [number, string] => [f, i === factors.length - 1 ? 'red' : 'orange'])))
    .thresholdsStyle(dashedThresholds())
    .legend(tableLegend());
  return section('Provisioning SLOs', P.rowSlo, [ratio, budget, burn]);
}

/** Columns of the failure hotspots table. */
function hotspotsColumns() {
  const [hide, order] = platformColumn(['Time'], ['action', 'resource_type', 'Value']);
  return {
    id: 'organize',
    options: {
      excludeByName: Object.fromEntries(hide.map((h) => [h, true])),
      renameByName: { Value: 'failures (24 h)' },
      indexByName: Object.fromEntries(order.map((name, i) => [name, i])),
    },
  };
}

function provisioningRow(): Section {
  const stuck = new TimeseriesBuilder()
    .id(P.provisioningStuck)
    .title('Stuck jobs by type')
    .description(`Provisioning jobs PENDING or RUNNING longer than the exporter's stuck threshold, per queue type; any stuck job for ${c.provisioning.stuckFor} raises OpsProvisioningJobsStuck.`)
    .height(8)
    .span(12)
    .withTarget(query('A', `sum by (${by('type')}) (${acrossReplicas(sel('provisioningStuck'))})`, { legend: legend('{{type}}') }))
    .unit('short')
    .min(0)
    .thresholds(thresholds('green', [1, 'orange']))
    .thresholdsStyle(dashedThresholds())
    .legend(tableLegend());
  const hotspots = new TableBuilder()
    .id(P.provisioningHotspots)
    .title('Failure hotspots (24 h)')
    .description('FAILED provisioning jobs of the last 24 h by action and resource type, most first: where failures concentrate.')
    .height(8)
    .span(12)
    .withTarget(query('A', `sort_desc(topk(20, sum by (${by('action', 'resource_type')}) (${acrossReplicas(sel('provisioningFailed24h'))}) > 0))`, { table: true }))
    .transformations([hotspotsColumns()])
    .unit('short')
    .noValue('No failure in 24 h');
  const failures = new TimeseriesBuilder()
    .id(P.provisioningFailures)
    .title('Failures over time')
    .description(`FAILED jobs of the last 24 h per resource type (a sliding window). A rise of ${c.provisioning.failureSpikeCount} within ${c.provisioning.failureSpikeWindow} raises OpsProvisioningFailureSpike.`)
    .height(8)
    .span(12)
    .withTarget(query('A', RECORDED.failed24hByResourceType, { legend: legend('{{resource_type}}') }))
    .unit('short')
    .min(0)
    .legend(tableLegend());
  const live = new TimeseriesBuilder()
    .id(P.provisioningLive)
    .title('Live jobs by status')
    .description('Non-terminal provisioning jobs (PENDING, RUNNING, DELAYED) over time: the platform\'s provisioning load.')
    .height(8)
    .span(12)
    .withTarget(query('A', `sum by (${by('status')}) (${acrossReplicas(sel('provisioningJobs'))})`, { legend: legend('{{status}}') }))
    .unit('short')
    .min(0)
    .legend(tableLegend());
  return section('Provisioning', P.rowProvisioning, [stuck, hotspots, failures, live]);
}

function securityRow(): Section {
  const decisions = new TimeseriesBuilder()
    .id(P.securityDecisions)
    .title('Shield decisions per second')
    .description(`Migra Shield decisions per second by decision (5-minute rate). A BLOCK rate over ${c.security.blockSurgeFactor}x its 24 h average and above ${c.security.blockSurgeMinPerSecond}/s for ${c.security.blockSurgeFor} raises OpsShieldBlockSurge.`)
    .height(8)
    .span(12)
    .withTarget(query('A', RECORDED.shieldRate5m, { legend: legend('{{decision}}') }))
    .unit('reqps')
    .min(0)
    .legend(tableLegend());
  const decisions24h = new BarGaugeBuilder()
    .id(P.securityDecisions24h)
    .title('Decisions in the last 24 h')
    .description('Migra Shield decisions with a timestamp in the last 24 hours, by decision (UNKNOWN for missing or unrecognised decisions).')
    .height(8)
    .span(12)
    .withTarget(query('A', `sum by (${by('decision')}) (${acrossReplicas(sel('shieldEvents24h'))})`, { legend: legend('{{decision}}'), instant: true }))
    .reduceOptions(lastValue())
    .orientation(common.VizOrientation.Horizontal)
    .displayMode(common.BarGaugeDisplayMode.Basic)
    .unit('short')
    .thresholds(thresholds('blue'));
  const policies = new BarGaugeBuilder()
    .id(P.securityPolicies)
    .title('Policies by mode')
    .description('Migra Shield policies by mode: ENFORCE blocks, MONITOR only logs, DISABLED does nothing.')
    .height(8)
    .span(12)
    .withTarget(query('A', `sum by (${by('mode')}) (${acrossReplicas(sel('shieldPolicies'))})`, { legend: legend('{{mode}}'), instant: true }))
    .reduceOptions(lastValue())
    .orientation(common.VizOrientation.Horizontal)
    .displayMode(common.BarGaugeDisplayMode.Basic)
    .unit('short')
    .thresholds(thresholds('blue'));
  const findings = new BarGaugeBuilder()
    .id(P.securityFindings)
    .title('Open Guardian findings by severity')
    .description(`Open Guardian findings by severity; any CRITICAL one open for ${c.security.guardianCriticalFor} pages (OpsGuardianCriticalFindingsOpen). Empty when Guardian is not installed.`)
    .height(8)
    .span(12)
    .withTarget(query('A', `sum by (${by('severity')}) (${acrossReplicas(sel('guardianOpenFindings'))})`, { legend: legend('{{severity}}'), instant: true }))
    .reduceOptions(lastValue())
    .orientation(common.VizOrientation.Horizontal)
    .displayMode(common.BarGaugeDisplayMode.Basic)
    .unit('short')
    .thresholds(thresholds('blue'))
    .noValue('Guardian not installed');
  if (c.multiPlatform) findings.overrideByRegexp('.* CRITICAL', [thresholdsOverride('green', [1, 'red'])]);
  else findings.overrideByName('CRITICAL', [thresholdsOverride('green', [1, 'red'])]);
  return section('Security', P.rowSecurity, [decisions, decisions24h, policies, findings]);
}

function backupsRow(): Section {
  const table = new TableBuilder()
    .id(P.backupsTable)
    .title('Backups per system')
    .description('Per backup resource type: age of the last COMPLETED backup against its configured limit (OpsBackupTooOld past 100%), when it finished, the last failure, and whether it ever succeeded.')
    .height(8)
    .span(12)
    .withTarget(query('A', RECORDED.backupAge, { table: true }))
    // The limits have no platform label: with several platforms, one row per platform and type needs them joined in.
    .withTarget(query('B', c.multiPlatform ? `0 * max by (${by('resource_type')}) (${sel('backupEverSucceeded')}) + on (resource_type) group_left ${RECORDED.backupAgeLimit}` : RECORDED.backupAgeLimit, { table: true }))
    .withTarget(query('C', `${RECORDED.backupAge} / on (resource_type) group_left ${RECORDED.backupAgeLimit}`, { table: true }))
    .withTarget(query('D', `max by (${by('resource_type')}) (${sel('backupLastSuccess')}) * 1000`, { table: true }))
    .withTarget(query('E', `max by (${by('resource_type')}) (${sel('backupLastFailure')}) * 1000`, { table: true }))
    .withTarget(query('F', `max by (${by('resource_type')}) (${sel('backupEverSucceeded')})`, { table: true }))
    .transformations(
      mergeAndOrganize(
        { 'Value #A': 'age', 'Value #B': 'limit', 'Value #C': 'of limit', 'Value #D': 'last success', 'Value #E': 'last failure', 'Value #F': 'ever succeeded' },
        ...platformColumn(['Time'], ['resource_type', 'Value #A', 'Value #B', 'Value #C', 'Value #D', 'Value #E', 'Value #F']),
      ),
    )
    .unit('short')
    .overrideByName('age', [unitOverride('s')])
    .overrideByName('limit', [unitOverride('s')])
    .overrideByName('of limit', [unitOverride('percentunit'), thresholdsOverride('green', [1, 'orange']), { id: 'custom.cellOptions', value: { type: 'color-background' } }])
    .overrideByName('last success', [unitOverride('dateTimeFromNow')])
    .overrideByName('last failure', [unitOverride('dateTimeFromNow')])
    .overrideByName('ever succeeded', [{ id: 'mappings', value: valueMappings({ '0': { text: 'never', color: 'orange' }, '1': { text: 'yes', color: 'green' } }) }, { id: 'custom.cellOptions', value: { type: 'color-text' } }])
    .noValue('Backup tracking not configured');
  const age = new TimeseriesBuilder()
    .id(P.backupsAge)
    .title('Age of last successful backup')
    .description('Age of the last COMPLETED backup per resource type (solid) against its configured limit (dashed): a solid line crossing its dashed line raises OpsBackupTooOld.')
    .height(8)
    .span(12)
    .withTarget(query('A', RECORDED.backupAge, { legend: legend('{{resource_type}}') }))
    .withTarget(query('B', RECORDED.backupAgeLimit, { legend: '{{resource_type}} limit' }))
    .unit('s')
    .min(0)
    .legend(tableLegend())
    .overrideByRegexp('.* limit', [{ id: 'custom.lineStyle', value: { fill: 'dash', dash: [10, 10] } }]);
  return section('Backups', P.rowBackups, [table, age]);
}

/** The Ops overview dashboard as Grafana JSON. */
export function overviewDashboard(): Dashboard {
  const builder = bundleDashboard('Ops overview', 'overview', 'Is every part of the platform working? First row: one number per area, coloured at the alert thresholds. Below: one row per area.')
    .withVariable(labelVariable('queue', 'Queue', sel('queueJobs'), 'BullMQ queues shown on the Queues row.'))
    .link(link('Exporter', dashboardPath('exporter')))
    .link(link('Firing alerts', firingAlertsUrl(), false))
    .withRow(new RowBuilder('Overview').id(P.rowOverview));
  for (const panel of firstRow()) builder.withPanel(panel);
  // Expanded rows with their panels at the top level: links with viewPanel=panel-<id> (from the first
  // row and from alerts) find them in every Grafana version, which is not true inside collapsed rows.
  for (const { row, panels } of [coreNodesRow(), queuesRow(), provisioningRow(), sloRow(), securityRow(), backupsRow()]) {
    builder.withRow(row);
    for (const p of panels) builder.withPanel(p);
  }
  return withoutLinkPlacement(builder.build());
}
