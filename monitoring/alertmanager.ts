/**
 * Alertmanager configuration of the bundle: routes by severity, grouping by
 * alert and domain labels, inhibition between related alerts, receivers whose
 * secrets are read from mounted files. generate.ts writes it to
 * alertmanager/alertmanager.yml.
 */
import { config } from './config.js';
import { DOMAIN_LABELS, type AlertName } from './rules.js';

/** Receiver names, as routes and tests refer to them. */
export const RECEIVERS = {
  pager: 'ops-pager',
  ticket: 'ops-ticket',
  info: 'ops-info',
  watchdog: 'ops-watchdog',
} as const;

/** Labels notifications are grouped by: one notification per alert, platform and affected object. */
export const GROUP_BY = ['alertname', config.platformLabel, 'area', ...DOMAIN_LABELS];

const platform = config.platformLabel;
/** `{{ if .Labels.platform }}` in a notification template, for any platform label name. */
const platformText = `{{ with index .Labels "${platform}" }}[{{ . }}] {{ end }}`;

const alertnames = (names: readonly AlertName[]): string => `alertname=~"${names.join('|')}"`;

/** Alerts that say a core node is not there at all (down, unknown row, planned work). */
const NODE_GONE: readonly AlertName[] = ['OpsCoreNodeDown', 'OpsCoreNodeMissing', 'OpsCoreNodeInMaintenance'];
/** Alerts about a node's readings, meaningless while the node itself is gone. */
const NODE_DEPENDENT: readonly AlertName[] = [
  'OpsCoreNodeMetricsStale',
  'OpsCoreNodeDiskHigh',
  'OpsCoreNodeMemoryHigh',
  'OpsCoreNodeNotOnline',
];

const slackText = [
  `{{ range .Alerts }}${platformText}*{{ .Labels.alertname }}*` +
  ' ({{ .Labels.severity }}{{ if .Labels.node }}, {{ .Labels.node }}{{ end }}{{ if .Labels.queue }}, {{ .Labels.queue }}{{ end }}{{ if .Labels.resource_type }}, {{ .Labels.resource_type }}{{ end }}{{ if .Labels.source }}, {{ .Labels.source }}{{ end }})',
  '{{ .Annotations.description }}',
  '<{{ .Annotations.runbook_url }}|Runbook> | <{{ .Annotations.dashboard_url }}|Dashboard>',
  '{{ end }}',
].join('\n');
const slackTitle =
  `{{ with index .CommonLabels "${platform}" }}[{{ . }}] {{ end }}` +
  '[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] {{ .CommonLabels.alertname }}: {{ .CommonAnnotations.summary }}';

/** The alertmanager.yml document. */
export function alertmanagerDocument(): object {
  const am = config.alertmanager;
  return {
    global: { resolve_timeout: '5m' },
    route: {
      // Alerts without a known severity are a rule bug: someone should see them, not be paged.
      receiver: RECEIVERS.ticket,
      group_by: GROUP_BY,
      group_wait: am.groupWait,
      group_interval: am.groupInterval,
      repeat_interval: am.warningRepeatInterval,
      routes: [
        {
          matchers: ['alertname="Watchdog"'],
          receiver: RECEIVERS.watchdog,
          group_wait: '0s',
          group_interval: '1m',
          repeat_interval: am.watchdogRepeatInterval,
        },
        { matchers: ['severity="critical"'], receiver: RECEIVERS.pager, repeat_interval: am.criticalRepeatInterval },
        { matchers: ['severity="warning"'], receiver: RECEIVERS.ticket, repeat_interval: am.warningRepeatInterval },
        { matchers: ['severity="info"'], receiver: RECEIVERS.info, repeat_interval: am.infoRepeatInterval },
      ],
    },
    inhibit_rules: [
      {
        // A node that is down, missing or in maintenance: its stale metrics, disk and RAM are consequences.
        source_matchers: [alertnames(NODE_GONE)],
        target_matchers: [alertnames(NODE_DEPENDENT)],
        equal: [platform, 'node'],
      },
      {
        // The exporter down: its sources cannot be collected either.
        source_matchers: [alertnames(['OpsExporterDown', 'OpsExporterAbsent'])],
        target_matchers: [alertnames(['OpsExporterSourceDown', 'OpsExporterReplicaDown'])],
        equal: [platform, 'job'],
      },
      {
        // A queue without workers cannot drain: the backlog warning adds nothing to the page.
        source_matchers: ['alertname="OpsQueueNoWorkers"'],
        target_matchers: ['alertname="OpsQueueBacklogGrowing"'],
        equal: [platform, 'prefix', 'queue'],
      },
      {
        // The critical tier of an alert silences its warning tier for the same object.
        source_matchers: ['severity="critical"'],
        target_matchers: ['severity="warning"'],
        equal: GROUP_BY,
      },
    ],
    receivers: [
      {
        name: RECEIVERS.pager,
        pagerduty_configs: [
          {
            routing_key_file: am.pagerRoutingKeyFile,
            send_resolved: true,
            description: `{{ with index .CommonLabels "${platform}" }}[{{ . }}] {{ end }}{{ .CommonLabels.alertname }}: {{ .CommonAnnotations.summary }}`,
            links: [
              { href: '{{ .CommonAnnotations.runbook_url }}', text: 'Runbook' },
              { href: '{{ .CommonAnnotations.dashboard_url }}', text: 'Dashboard' },
            ],
          },
        ],
      },
      {
        name: RECEIVERS.ticket,
        slack_configs: [
          { api_url_file: am.ticketWebhookUrlFile, channel: am.ticketChannel, send_resolved: true, title: slackTitle, text: slackText },
        ],
      },
      {
        name: RECEIVERS.info,
        slack_configs: [
          { api_url_file: am.infoWebhookUrlFile, channel: am.infoChannel, send_resolved: false, title: slackTitle, text: slackText },
        ],
      },
      {
        name: RECEIVERS.watchdog,
        webhook_configs: [
          {
            url: am.watchdogUrl,
            send_resolved: false,
            http_config: { authorization: { type: 'Bearer', credentials_file: am.watchdogCredentialsFile } },
          },
        ],
      },
    ],
  };
}
