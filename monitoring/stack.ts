/**
 * The stack's wiring: prometheus.yml (scrape the exporter, load the rules,
 * send to Alertmanager) and Grafana provisioning (the Prometheus datasource
 * with its pinned uid, the dashboard provider).
 */
import { config } from './config.js';

/** Rule files relative to prometheus.yml; recording rules first so alerts read fresh values. */
export const RULE_FILES = ['rules/ops-overview.recording.yml', 'rules/ops-overview.alerts.yml'] as const;

/** The exporter's scrape job name (the `job` label that `selectors.exporterJob` matches). */
export const EXPORTER_JOB = 'ops-overview';

/** The scrape job of the exporter's targets. */
function exporterScrapeJob(staticConfigs: Array<{ targets: string[]; labels?: Record<string, string> }>): object {
  const s = config.stack;
  return {
    job_name: EXPORTER_JOB,
    metrics_path: '/metrics',
    scrape_interval: s.scrapeInterval,
    scrape_timeout: s.scrapeTimeout,
    ...(s.exporterCredentialsFile ? { authorization: { type: 'Bearer', credentials_file: s.exporterCredentialsFile } } : {}),
    static_configs: staticConfigs,
  };
}

/** The prometheus.yml document. */
export function prometheusDocument(): object {
  const s = config.stack;
  return {
    global: {
      scrape_interval: s.scrapeInterval,
      scrape_timeout: s.scrapeTimeout,
      evaluation_interval: s.evaluationInterval,
    },
    rule_files: [...RULE_FILES],
    alerting: {
      alertmanagers: [{ static_configs: [{ targets: [s.alertmanagerTarget] }] }],
    },
    scrape_configs: [
      exporterScrapeJob([{ targets: [s.exporterTarget] }]),
      { job_name: 'prometheus', static_configs: [{ targets: ['localhost:9090'] }] },
      { job_name: 'alertmanager', static_configs: [{ targets: [s.alertmanagerTarget] }] },
    ],
  };
}

/**
 * prometheus/prometheus.ha.yml: one of a Prometheus pair (run it twice, each
 * with its own `${config.ha.replicaEnv}` and `--enable-feature=expand-external-labels`)
 * that scrapes several platforms, each through two exporter replicas, the
 * platform set as a target label, and sends every alert to every peer of
 * the Alertmanager cluster. The replica external label is dropped from alerts,
 * so both Prometheus send identical alerts and the peers notify once.
 */
export function prometheusHaDocument(): object {
  const s = config.stack;
  const ha = config.ha;
  const base = prometheusDocument() as { global: object; rule_files: string[]; scrape_configs: { job_name: string }[] };
  return {
    global: { ...base.global, external_labels: { [ha.replicaLabel]: `\${${ha.replicaEnv}}` } },
    rule_files: base.rule_files,
    alerting: {
      alert_relabel_configs: [{ action: 'labeldrop', regex: ha.replicaLabel }],
      alertmanagers: [{ static_configs: [{ targets: [...ha.alertmanagerTargets] }] }],
    },
    scrape_configs: [
      exporterScrapeJob(Object.entries(ha.platforms).map(([platform, targets]) => ({ targets: [...targets], labels: { [config.platformLabel]: platform } }))),
      { job_name: 'prometheus', static_configs: [{ targets: ['localhost:9090'] }] },
      { job_name: 'alertmanager', static_configs: [{ targets: [...ha.alertmanagerTargets] }] },
    ],
  };
}

/** grafana/provisioning/datasources/ops-overview.yml */
export function grafanaDatasourcesDocument(): object {
  const g = config.grafana;
  return {
    apiVersion: 1,
    datasources: [
      {
        name: 'Prometheus (ops-overview)',
        uid: g.prometheusDatasourceUid,
        type: 'prometheus',
        access: 'proxy',
        url: config.stack.prometheusUrl,
        isDefault: true,
        editable: false,
        jsonData: {
          httpMethod: 'POST',
          // Grafana's $__rate_interval needs the scrape interval to stay above 4 samples.
          timeInterval: config.stack.scrapeInterval,
          manageAlerts: false,
          alertmanagerUid: g.alertmanagerDatasourceUid,
        },
      },
      {
        name: 'Alertmanager (ops-overview)',
        uid: g.alertmanagerDatasourceUid,
        type: 'alertmanager',
        access: 'proxy',
        url: config.stack.alertmanagerUrl,
        editable: false,
        jsonData: { implementation: 'prometheus', handleGrafanaManagedAlerts: false },
      },
    ],
  };
}

/** grafana/provisioning/dashboards/ops-overview.yml */
export function grafanaDashboardProviderDocument(): object {
  const g = config.grafana;
  return {
    apiVersion: 1,
    providers: [
      {
        name: 'ops-overview',
        orgId: 1,
        type: 'file',
        folder: g.folderTitle,
        folderUid: g.folderUid,
        // The files are generated: edits in the UI would be lost at the next deploy.
        disableDeletion: true,
        allowUiUpdates: false,
        updateIntervalSeconds: 60,
        options: { path: g.dashboardsPath, foldersFromFilesStructure: false },
      },
    ],
  };
}
