/**
 * The exporter's private prom-client registries (Prometheus text and
 * OpenMetrics), with one family per catalog entry. Families are filled from
 * the runner's last collections when a scrape gathers them: no I/O happens in
 * a collect callback, so a scrape can neither wait on nor fail because of a
 * source.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import { INVALID_REASONS, METRICS, SOURCE_NAMES, type MetricKey } from '../catalog.js';
import type { CollectionRunner } from '../collector/runner.js';
import type { Sample } from './sample.js';

/** Both registries; a scrape picks one by its Accept header. */
export interface ExporterRegistries {
  prometheus: Registry;
  openMetrics: Registry<'application/openmetrics-text; version=1.0.0; charset=utf-8'>;
}

/** Options of the registry. */
export interface RegistryOptions {
  version: string;
}

/** Groups the samples of every source that is up by metric key. */
function currentSamples(runner: CollectionRunner): Map<MetricKey, Sample[]> {
  const byMetric = new Map<MetricKey, Sample[]>();
  for (const state of runner.states()) {
    if (!state.up) continue;
    for (const sample of state.samples) {
      const list = byMetric.get(sample.metric);
      if (list) list.push(sample);
      else byMetric.set(sample.metric, [sample]);
    }
  }
  return byMetric;
}

/** Builds the registries over `runner`'s collections. */
export function createRegistries(runner: CollectionRunner, options: RegistryOptions): ExporterRegistries {
  const prometheus = new Registry();
  const openMetrics = new Registry<'application/openmetrics-text; version=1.0.0; charset=utf-8'>();
  openMetrics.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
  const registers = [prometheus, openMetrics] as unknown as Registry[];

  // Samples are regrouped only when a collection has finished since.
  let cache: { generation: number; samples: Map<MetricKey, Sample[]> } | null = null;
  const samplesFor = (key: MetricKey): Sample[] => {
    if (!cache || cache.generation !== runner.generation) cache = { generation: runner.generation, samples: currentSamples(runner) };
    return cache.samples.get(key) ?? [];
  };

  const selfMetrics: Partial<Record<MetricKey, (metric: Gauge | Counter) => void>> = {
    sourceUp: (m) => eachSource(runner, (s) => (m as Gauge).set({ source: s.name }, s.up ? 1 : 0)),
    sourceDuration: (m) =>
      eachSource(runner, (s) => s.durationSeconds !== undefined && (m as Gauge).set({ source: s.name }, s.durationSeconds)),
    sourceLastSuccess: (m) =>
      eachSource(runner, (s) => s.lastSuccessAt && (m as Gauge).set({ source: s.name }, s.lastSuccessAt.getTime() / 1000)),
    sourceErrors: (m) => eachSource(runner, (s) => (m as Counter).inc({ source: s.name }, s.errors)),
    sourceCollections: (m) => eachSource(runner, (s) => (m as Counter).inc({ source: s.name }, s.collections)),
    sourceInvalidValues: (m) =>
      eachSource(runner, (s) => {
        for (const reason of INVALID_REASONS) (m as Gauge).set({ source: s.name, reason }, s.invalid[reason] ?? 0);
      }),
    buildInfo: (m) => (m as Gauge).set({ version: options.version, nodejs: process.version }, 1),
  };

  // One set of metric objects per registry: prom-client's OpenMetrics
  // serialiser renames a counter object in place (dropping `_total`), which
  // would corrupt the text format if the objects were shared.
  for (const register of registers) {
    for (const [key, def] of Object.entries(METRICS) as Array<[MetricKey, (typeof METRICS)[MetricKey]]>) {
      const fill = selfMetrics[key];
      const common = { name: def.name, help: def.help, labelNames: [...def.labels], registers: [register] };
      // reset() leaves a label-less gauge at 0, which would read as a value
      // ("not installed") while its source is down: remove it instead.
      const clear = (m: Counter | Gauge) => {
        m.reset();
        if (def.labels.length === 0) m.remove();
      };
      if (def.type === 'counter') {
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

function eachSource(runner: CollectionRunner, fn: (s: ReturnType<CollectionRunner['states']>[number]) => unknown): void {
  for (const name of SOURCE_NAMES) {
    const s = runner.state(name);
    if (s) fn(s);
  }
}

