/**
 * The exporter's own dashboard: is it scraped, which sources collect, how
 * long they take, how often they fail, how big the scrape is, and what the
 * process costs (memory, CPU, event-loop lag, heap).
 */
import * as common from '@grafana/grafana-foundation-sdk/common';
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import { PanelBuilder as StatBuilder } from '@grafana/grafana-foundation-sdk/stat';
import { PanelBuilder as TableBuilder } from '@grafana/grafana-foundation-sdk/table';
import { PanelBuilder as TimeseriesBuilder } from '@grafana/grafana-foundation-sdk/timeseries';
import { config } from '../config.js';
import { acrossReplicas, by, durationSeconds, exporterUp, sel } from '../promql.js';
import { PROCESS_METRICS } from '../process-metrics.js';
import {
  bundleDashboard,
  dashedThresholds,
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
import { dashboardPath, firingAlertsUrl, EXPORTER_PANELS as P } from './ids.js';

const upDown = valueMappings({ '0': { text: 'DOWN', color: 'red' }, '1': { text: 'UP', color: 'green' } });
const job = config.selectors.exporterJob;

function series(id: number, title: string, description: string, expr: string, legendFormat: string, unit: string): TimeseriesBuilder {
  return new TimeseriesBuilder()
    .id(id)
    .title(title)
    .description(description)
    .height(8)
    .span(12)
    .withTarget(query('A', expr, { legend: legend(legendFormat) }))
    .unit(unit)
    .min(0)
    .legend(tableLegend());
}

/** The exporter dashboard as Grafana JSON. */
export function exporterDashboard(): Dashboard {
  const up = new StatBuilder()
    .id(P.exporterUp)
    .title('Exporter scraped')
    .description(`Whether Prometheus's last scrape of each exporter replica succeeded (up{${job}}); one replica DOWN for ${config.exporter.replicaDownFor} tickets (OpsExporterReplicaDown), every replica of a platform DOWN for ${config.exporter.downFor} pages (OpsExporterDown).`)
    .height(6)
    .span(6)
    .withTarget(query('A', exporterUp(), { legend: legend('{{instance}}'), instant: true }))
    .reduceOptions(lastValue())
    .graphMode(common.BigValueGraphMode.None)
    .colorMode(common.BigValueColorMode.Background)
    .textMode(common.BigValueTextMode.ValueAndName)
    .unit('short')
    .mappings(upDown)
    .thresholds(thresholds('red', [1, 'green']))
    .noValue('no target');

  const sources = new TableBuilder()
    .id(P.sourcesTable)
    .title('Sources')
    .description(`Each source's last collection on its best replica: UP or DOWN (DOWN on some replica for ${config.exporter.sourceDownFor} tickets, on every replica pages: OpsExporterSourceDown; its metrics are absent meanwhile), when it last succeeded, how long it took, and its failures in the last hour on all replicas.`)
    .height(6)
    .span(18)
    .withTarget(query('A', `max by (${by('source')}) (${sel('sourceUp')})`, { table: true }))
    .withTarget(query('B', `max by (${by('source')}) (${sel('sourceLastSuccess')}) * 1000`, { table: true }))
    .withTarget(query('C', `max by (${by('source')}) (${sel('sourceDuration')})`, { table: true }))
    .withTarget(query('D', `sum by (${by('source')}) (increase(${sel('sourceErrors')}[1h]))`, { table: true }))
    .transformations(
      mergeAndOrganize(
        { 'Value #A': 'state', 'Value #B': 'last success', 'Value #C': 'duration', 'Value #D': 'errors (1 h)' },
        ...(config.multiPlatform
          ? [['Time'], [config.platformLabel, 'source', 'Value #A', 'Value #B', 'Value #C', 'Value #D']]
          : [['Time', config.platformLabel], ['source', 'Value #A', 'Value #B', 'Value #C', 'Value #D']]) as [string[], string[]],
      ),
    )
    .unit('short')
    .overrideByName('state', [{ id: 'mappings', value: upDown }, { id: 'custom.cellOptions', value: { type: 'color-background' } }])
    .overrideByName('last success', [unitOverride('dateTimeFromNow')])
    .overrideByName('duration', [unitOverride('s')])
    .overrideByName('errors (1 h)', [{ id: 'decimals', value: 0 }, thresholdsOverride('green', [1, 'orange']), { id: 'custom.cellOptions', value: { type: 'color-text' } }]);

  const durations = series(P.durations, 'Collection duration', 'Wall time of each source\'s last collection; a source near the scrape timeout makes scrapes fail.', `max by (${by('source')}) (${sel('sourceDuration')})`, '{{source}}', 's')
    .thresholds(thresholds('green', [durationSeconds(config.stack.scrapeTimeout), 'red']))
    .thresholdsStyle(dashedThresholds());

  const errors = series(
    P.errors,
    'Collection error ratio',
    'Share of each source\'s collections that failed (errors / attempts over the rate interval).',
    `sum by (${by('source')}) (rate(${sel('sourceErrors')}[$__rate_interval]))\n/\nsum by (${by('source')}) (rate(${sel('sourceCollections')}[$__rate_interval]))`,
    '{{source}}',
    'percentunit',
  ).max(1);

  const invalid = series(P.invalidValues, 'Unusable values', 'Values in each source\'s last collection that could not be used as they are (NULL, unrecognised, out of range ...), by reason. They are still counted under UNKNOWN: a rise means the platform writes something new.', `sum by (${by('source', 'reason')}) (${acrossReplicas(sel('sourceInvalidValues'))})`, '{{source}} {{reason}}', 'short');

  const samples = series(P.scrapeSamples, 'Scrape size', 'Samples in each scrape of the exporter (scrape_samples_scraped): grows with nodes, queues, actions and resource types; a jump means a label is exploding.', `scrape_samples_scraped{${job}}`, '{{instance}}', 'short');

  const scrapeDuration = series(P.scrapeDuration, 'Scrape duration', `How long Prometheus's scrapes of the exporter take; the dashed line is the scrape timeout (${config.stack.scrapeTimeout}).`, `scrape_duration_seconds{${job}}`, '{{instance}}', 's')
    .thresholds(thresholds('green', [durationSeconds(config.stack.scrapeTimeout), 'red']))
    .thresholdsStyle(dashedThresholds());

  // prom-client's default metrics (PROCESS_METRICS): one line per replica.
  const pm = PROCESS_METRICS;
  const memory = series(P.residentMemory, 'Resident memory', `Resident memory of each exporter replica (${pm.residentMemory.name}); the README gives the expected peak for each platform size.`, `${pm.residentMemory.name}{${job}}`, '{{instance}}', 'bytes');
  const cpu = series(P.cpu, 'CPU', `CPU time each exporter replica uses per second (rate of ${pm.cpuSeconds.name}); 1 is one core.`, `rate(${pm.cpuSeconds.name}{${job}}[$__rate_interval])`, '{{instance}}', 'percentunit');
  const lag = series(P.eventLoopLag, 'Event-loop lag (p99)', `99th percentile of each replica's event-loop delay (${pm.eventLoopLagP99.name}): how long a scrape or API call waits before Node.js runs it.`, `${pm.eventLoopLagP99.name}{${job}}`, '{{instance}}', 's');
  const heap = series(P.heapUsed, 'Heap used', `V8 heap in use per replica (${pm.heapUsed.name}); the start command caps the old space at 64 MiB.`, `${pm.heapUsed.name}{${job}}`, '{{instance}}', 'bytes');

  const build = new TableBuilder()
    .id(P.buildInfo)
    .title('Build')
    .description('Version of the exporter and of Node.js per instance.')
    .height(5)
    .span(24)
    .withTarget(query('A', sel('buildInfo'), { table: true }))
    .transformations([{ id: 'organize', options: { excludeByName: { Time: true, Value: true, __name__: true } } }])
    .unit('short');

  const dashboard = bundleDashboard('Ops overview: exporter', 'exporter', 'Health of the ops-overview exporter itself: scrapes, sources, durations, errors, scrape size, and the process (memory, CPU, event-loop lag, heap).')
    .link(link('Ops overview', dashboardPath('overview')))
    .link(link('Firing exporter alerts', firingAlertsUrl('exporter'), false))
    .withPanel(up)
    .withPanel(sources)
    .withPanel(durations)
    .withPanel(errors)
    .withPanel(invalid)
    .withPanel(samples)
    .withPanel(scrapeDuration)
    .withPanel(memory)
    .withPanel(cpu)
    .withPanel(lag)
    .withPanel(heap)
    .withPanel(build);
  return withoutLinkPlacement(dashboard.build());
}
