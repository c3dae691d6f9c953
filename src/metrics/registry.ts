/**
 * The exporter's private prom-client registries (Prometheus text and
 * OpenMetrics), with one family per catalog entry plus prom-client's default
 * process and Node.js metrics (`process_*`, `nodejs_*`). Families are filled
 * from the current collection snapshot when a scrape gathers them: no I/O
 * happens in a collect callback, so a scrape can neither wait on nor fail
 * because of a source.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
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

/**
 * A histogram family served from samples that carry their cumulative bucket
 * counts (prom-client's own Histogram only observes values one at a time):
 * the object a prom-client registry serialises, `_bucket` per bound and
 * +Inf, `_sum` and `_count` per series, in both formats.
 */
function histogramFamily(def: MetricDef, samples: () => Sample[]) {
  const bounds = def.buckets ?? [];
  const family = {
    name: def.name,
    help: def.help,
    type: 'histogram' as const,
    aggregator: 'sum' as const,
    // Read synchronously when the registry asks, like the other families' collect().
    get: () => {
      const values = [];
      for (const s of samples()) {
        if (!s.histogram) continue;
        s.histogram.buckets.forEach((n, i) => values.push({ metricName: `${def.name}_bucket`, labels: { ...s.labels, le: bounds[i] }, value: n }));
        values.push({ metricName: `${def.name}_bucket`, labels: { ...s.labels, le: '+Inf' }, value: s.value });
        values.push({ metricName: `${def.name}_sum`, labels: s.labels, value: s.histogram.sum });
        values.push({ metricName: `${def.name}_count`, labels: s.labels, value: s.value });
      }
      return Promise.resolve({ name: def.name, help: def.help, type: 'histogram', values, aggregator: 'sum' });
    },
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

/** Builds the registries over the snapshot `current()` returns at each scrape. */
export function createRegistries(current: () => CollectionSnapshot, options: RegistryOptions): ExporterRegistries {
  const prometheus = new Registry();
  const openMetrics = new Registry<'application/openmetrics-text; version=1.0.0; charset=utf-8'>();
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
      } else if (def.type === 'counter') {
        new Counter({
          ...common,
          collect(this: Counter) {
            clear(this);
            if (fill) fill(this);
            else for (const s of samplesFor(key)) this.inc(s.labels, s.value);
          },
        });
      } else {
        new Gauge({
          ...common,
          collect(this: Gauge) {
            clear(this);
            if (fill) fill(this);
            else for (const s of samplesFor(key)) this.set(s.labels, s.value);
          },
        });
      }
    }
  }
  return { prometheus, openMetrics: openMetrics as ExporterRegistries['openMetrics'] };
}
