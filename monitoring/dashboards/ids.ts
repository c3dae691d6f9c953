/**
 * Stable identities of the dashboards and of the panels that alerts and
 * links point at. Alerts' `dashboard_url` opens these panels, so changing a
 * number here breaks links people have bookmarked: add, never renumber.
 */
import { config } from '../config.js';

/** Dashboard uids (never change them: URLs, links and alerts use them). */
export const DASHBOARD_UIDS = {
  overview: 'ops-overview',
  exporter: 'ops-overview-exporter',
} as const;

/** URL slugs (cosmetic: Grafana resolves a dashboard by uid alone). */
const SLUGS: Record<keyof typeof DASHBOARD_UIDS, string> = {
  overview: 'ops-overview',
  exporter: 'ops-overview-exporter',
};

/** Panel ids of the overview dashboard: 1xx first row, 2xx-6xx one row per area. */
export const OVERVIEW_PANELS = {
  rowOverview: 1,
  statCoreNodes: 101,
  statQueues: 102,
  statStuck: 103,
  statFailures: 104,
  statShield: 105,
  statFindings: 106,
  statBackups: 107,
  statSources: 108,
  firingAlerts: 109,

  rowCoreNodes: 2,
  coreNodesTable: 201,
  coreNodesDisk: 202,
  coreNodesMemory: 203,
  coreNodesCpu: 204,

  rowQueues: 3,
  queuesBacklog: 301,
  queuesOldestAge: 302,
  queuesWorkers: 303,
  queuesFailed: 304,
  queuesThroughput: 305,
  queuesFailureRatio: 306,
  queuesWaitQuantiles: 307,
  queuesProcessingQuantiles: 308,
  queuesWaitHeatmap: 309,

  rowProvisioning: 4,
  provisioningStuck: 401,
  provisioningHotspots: 402,
  provisioningFailures: 403,
  provisioningLive: 404,

  rowSecurity: 5,
  securityDecisions: 501,
  securityPolicies: 502,
  securityFindings: 503,
  securityDecisions24h: 504,

  rowBackups: 6,
  backupsTable: 601,
  backupsAge: 602,

  rowSlo: 7,
  sloRatio: 701,
  sloBudgetLeft: 702,
  sloBurnRate: 703,
} as const;

/** Panel ids of the exporter dashboard. */
export const EXPORTER_PANELS = {
  exporterUp: 1,
  sourcesTable: 2,
  durations: 3,
  errors: 4,
  invalidValues: 5,
  scrapeSamples: 6,
  scrapeDuration: 7,
  buildInfo: 8,
  residentMemory: 9,
  cpu: 10,
  eventLoopLag: 11,
  heapUsed: 12,
} as const;

/** Path of a dashboard relative to Grafana's root (`/d/<uid>/<slug>`). */
export function dashboardPath(dashboard: keyof typeof DASHBOARD_UIDS): string {
  return `/d/${DASHBOARD_UIDS[dashboard]}/${SLUGS[dashboard]}`;
}

/**
 * Absolute URL of a dashboard, opened on one panel (Grafana 11.3+ expects
 * `viewPanel=panel-<id>`) with optional variables (values may be alert
 * templates such as `{{ $labels.queue }}`).
 */
export function dashboardUrl(
  dashboard: keyof typeof DASHBOARD_UIDS,
  panelId?: number,
  vars: Record<string, string> = {},
): string {
  const params = [
    ...(panelId === undefined ? [] : [`viewPanel=panel-${panelId}`]),
    ...Object.entries(vars).map(([k, v]) => `var-${k}=${v}`),
  ];
  return `${config.urls.grafana}${dashboardPath(dashboard)}${params.length > 0 ? `?${params.join('&')}` : ''}`;
}

/** Alertmanager UI listing the firing alerts of one area (or all with `undefined`). */
export function firingAlertsUrl(area?: string): string {
  const filter = area === undefined ? '' : `?filter=${encodeURIComponent(`{area="${area}"}`)}`;
  return `${config.urls.alertmanager}/#/alerts${filter}`;
}
