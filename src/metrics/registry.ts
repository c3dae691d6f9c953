/**
 * The exporter's private prom-client registries (Prometheus text and
 * OpenMetrics), with one family per catalog entry plus prom-client's default
 * process and Node.js metrics (`process_*`, `nodejs_*`). Families are filled
 * from the current collection snapshot when a scrape gathers them: no I/O
 * happens in a collect callback, so a scrape can neither wait on nor fail
 * because of a source.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry, type OpenMetricsContentType, type PrometheusContentType, type RegistryContentType } from 'prom-client';
import { INVALID_REASONS, METRICS, type MetricKey } from '../catalog.js';
import type { CollectionSnapshot, SourceSnapshot } from '../snapshot.js';
import type { MetricDef } from '../catalog.js';
import type { Sample } from './sample.js';

/** Both registries; a scrape picks one by its Accept header. */
export interface ExporterRegistries {
  prometheus: Registry;
  openMetrics: Registry<'application/openmetrics-text; version=1.0.0; charset=utf-8'>;
}

/** Options of the registry. */
export interface RegistryOptions {
  version: string;
  /** Also serve prom-client's default process and Node.js metrics (default true). */
  processMetrics?: boolean;
}

/** prom-client default metrics left out: gauges with a counter's `_total` suffix. */
const MISNAMED_DEFAULT_METRICS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** prom-client's escaping of a name or HELP text (lib/registry.js `escapeString`). */
function escapeString(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** prom-client's rendering of a value (lib/util.js `getValueAsString`). */
function valueString(value: number): string {
  if (Number.isNaN(value)) return 'Nan';
  if (!Number.isFinite(value)) return value < 0 ? '-Inf' : '+Inf';
  return `${value}`;
}

/** One series' value as prom-client's registry reads it. */
interface SeriesValue {
  metricName?: string;
  labels: Readonly<Record<string, string | number>>;
  value: number;
}

/**
 * A family in the exposition format, byte for byte as prom-client 15 renders
 * it (lib/registry.js `getMetricsAsString`, for values without shared labels
 * or exemplars), in one string built as it goes: prom-client makes an array of
 * formatted labels, an array of parts and a line string per series, then joins
 * them, which with ~30,000 series was ~13 MiB of garbage per render.
 */
function renderFamily(family: { name: string; help: string; type: string }, openMetrics: boolean, values: Iterable<SeriesValue>): string {
  const name = escapeString(family.name);
  // OpenMetrics: the registry has already dropped a counter's `_total` from its name; every series carries it.
  const suffix = openMetrics && family.type === 'counter' ? '_total' : '';
  let out = `# HELP ${name} ${escapeString(family.help)}\n# TYPE ${name} ${family.type}`;
  for (const v of values) {
    let labels = '';
    for (const label in v.labels) {
      const value = v.labels[label];
      labels += `${labels === '' ? '{' : ','}${label}="${typeof value === 'string' ? escapeString(value).replace(/"/g, '\\"') : value}"`;
    }
    out += `\n${v.metricName ?? name}${suffix}${labels === '' ? '' : `${labels}}`} ${valueString(v.value)}`;
  }
  return out;
}

/**
 * A histogram family served from samples that carry their cumulative bucket
 * counts (prom-client's own Histogram only observes values one at a time):
 * the object a prom-client registry serialises, `_bucket` per bound and
 * +Inf, `_sum` and `_count` per series, in both formats.
 */
function histogramFamily(def: MetricDef, samples: () => Sample[]) {
  const bounds = def.buckets ?? [];
  const values = () => {
    const out: SeriesValue[] = [];
    for (const s of samples()) {
      if (!s.histogram) continue;
      s.histogram.buckets.forEach((n, i) => out.push({ metricName: `${def.name}_bucket`, labels: { ...s.labels, le: bounds[i]! }, value: n }));
      out.push({ metricName: `${def.name}_bucket`, labels: { ...s.labels, le: '+Inf' }, value: s.value });
      out.push({ metricName: `${def.name}_sum`, labels: s.labels, value: s.histogram.sum });
      out.push({ metricName: `${def.name}_count`, labels: s.labels, value: s.value });
    }
    return out;
  };
  const family = {
    name: def.name,
    help: def.help,
    type: 'histogram' as const,
    aggregator: 'sum' as const,
    // Read synchronously when the registry asks, like the other families' collect().
    get: () => Promise.resolve({ name: def.name, help: def.help, type: 'histogram', values: values(), aggregator: 'sum' }),
    render: (openMetrics: boolean) => renderFamily(family, openMetrics, values()),
    reset: () => undefined,
  };
  return family;
}

/**
 * A gauge or counter family served straight from the snapshot's samples: the
 * object a prom-client registry serialises (its `get()`), without a
 * prom-client Gauge or Counter in between. A Gauge would copy every sample
 * into its hash map at each render (a sorted-key hash and an entry per
 * series, ~30,000 series with 2,000 queues) only to hand the same labels and
 * values back; the samples are already one per series (SampleSet merges
 * equal labels, and each metric has one source) and valid (boundSamples).
 * `name` is read at each render: the OpenMetrics registry drops a counter's
 * `_total` from it in place and adds it back on every series.
 */
function sampleFamily(def: MetricDef, samples: () => readonly Sample[]) {
  const family = {
    name: def.name,
    help: def.help,
    type: def.type,
    aggregator: 'sum' as const,
    // A sample carries what prom-client reads of a value (labels, value) and
    // nothing it would misread (no metricName, sharedLabels or exemplar).
    get: () => Promise.resolve({ name: family.name, help: def.help, type: def.type, values: samples(), aggregator: 'sum' }),
    render: (openMetrics: boolean) => renderFamily(family, openMetrics, samples()),
    reset: () => undefined,
  };
  return family;
}

/** Groups the samples of every source that is up by metric key. */
function samplesByMetric(snapshot: CollectionSnapshot): Map<MetricKey, Sample[]> {
  const byMetric = new Map<MetricKey, Sample[]>();
  for (const state of snapshot.sources) {
    if (!state.up) continue;
    for (const sample of state.samples) {
      const list = byMetric.get(sample.metric);
      if (list) list.push(sample);
      else byMetric.set(sample.metric, [sample]);
    }
  }
  return byMetric;
}

/** A family that renders itself (histogramFamily, sampleFamily). */
interface RenderedFamily {
  render(openMetrics: boolean): string;
}

/**
 * A prom-client registry whose sample-backed families render themselves
 * (renderFamily); prom-client's own metrics (process, Node.js, the exporter's
 * health) are rendered by prom-client. prom-client 15's `metrics()` renders
 * each family through `getMetricsAsString` (lib/registry.js), an undeclared
 * method: were that to change, the families would still be rendered, by
 * prom-client from their `get()`, only with more garbage. The output is the
 * same either way (test/metrics-render.test.ts).
 */
class SampleRegistry<T extends RegistryContentType = PrometheusContentType> extends Registry<T> {
  getMetricsAsString(metric: object): Promise<string> {
    if ('render' in metric) return Promise.resolve((metric as RenderedFamily).render(this.contentType === Registry.OPENMETRICS_CONTENT_TYPE));
    return (Registry.prototype as unknown as { getMetricsAsString(m: object): Promise<string> }).getMetricsAsString.call(this, metric);
  }
}

/** Builds the registries over the snapshot `current()` returns at each scrape. */
export function createRegistries(current: () => CollectionSnapshot, options: RegistryOptions): ExporterRegistries {
  const prometheus = new SampleRegistry();
  const openMetrics = new SampleRegistry<OpenMetricsContentType>();
  openMetrics.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
  const registers = [prometheus, openMetrics] as unknown as Registry[];

  const samplesFor = (key: MetricKey): Sample[] => {
    const snapshot = current();
    return snapshot.derive('samplesByMetric', () => samplesByMetric(snapshot)).get(key) ?? [];
  };
  const eachSource = (fn: (s: SourceSnapshot) => unknown): void => {
    for (const s of current().sources) fn(s);
  };

  const selfMetrics: Partial<Record<MetricKey, (metric: Gauge | Counter) => void>> = {
    sourceUp: (m) => eachSource((s) => (m as Gauge).set({ source: s.name }, s.up ? 1 : 0)),
    sourceDuration: (m) => eachSource((s) => s.durationSeconds !== undefined && (m as Gauge).set({ source: s.name }, s.durationSeconds)),
    sourceLastSuccess: (m) => eachSource((s) => s.lastSuccessAt && (m as Gauge).set({ source: s.name }, s.lastSuccessAt.getTime() / 1000)),
    sourceErrors: (m) => eachSource((s) => (m as Counter).inc({ source: s.name }, s.errors)),
    sourceCollections: (m) => eachSource((s) => (m as Counter).inc({ source: s.name }, s.collections)),
    sourceInvalidValues: (m) =>
      eachSource((s) => {
        for (const reason of INVALID_REASONS) (m as Gauge).set({ source: s.name, reason }, s.invalid[reason] ?? 0);
      }),
    buildInfo: (m) => (m as Gauge).set({ version: options.version, nodejs: process.version }, 1),
  };

  // One set of metric objects per registry: prom-client's OpenMetrics
  // serialiser renames a counter object in place (dropping `_total`), which
  // would corrupt the text format if the objects were shared.
  for (const register of registers) {
    if (options.processMetrics !== false) {
      collectDefaultMetrics({ register });
      // Gauges that prom-client names like counters: `promtool check metrics`
      // rejects them, and `nodejs_active_resources` says the same per type.
      for (const misnamed of MISNAMED_DEFAULT_METRICS) register.removeSingleMetric(misnamed);
    }
    for (const [key, def] of Object.entries(METRICS) as Array<[MetricKey, (typeof METRICS)[MetricKey]]>) {
      const fill = selfMetrics[key];
      const common = { name: def.name, help: def.help, labelNames: [...def.labels], registers: [register] };
      // reset() leaves a label-less gauge at 0, which would read as a value
      // ("not installed") while its source is down: remove it instead.
      const clear = (m: Counter | Gauge) => {
        m.reset();
        if (def.labels.length === 0) m.remove();
      };
      if (def.type === 'histogram') {
        register.registerMetric(histogramFamily(def, () => samplesFor(key)) as unknown as Counter);
      } else if (!fill) {
        register.registerMetric(sampleFamily(def, () => samplesFor(key)) as unknown as Counter);
      } else if (def.type === 'counter') {
        new Counter({
          ...common,
          collect(this: Counter) {
            clear(this);
            fill(this);
          },
        });
      } else {
        new Gauge({
          ...common,
          collect(this: Gauge) {
            clear(this);
            fill(this);
          },
        });
      }
    }
  }
  return { prometheus, openMetrics: openMetrics as ExporterRegistries['openMetrics'] };
}
