/**
 * The exporter's families render themselves (src/metrics/registry.ts,
 * renderFamily) instead of going through prom-client Gauges and Counters:
 * the exposition must stay byte for byte what prom-client renders for the
 * same samples, in the Prometheus text format and in OpenMetrics, with
 * escapes, label-less families, special values and histograms.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { METRICS, type MetricKey } from '../src/catalog.js';
import { createRegistries } from '../src/metrics/registry.js';
import type { Sample } from '../src/metrics/sample.js';
import { CollectionSnapshot, type SourceSnapshot } from '../src/snapshot.js';

const HOSTILE = ['plain', 'back\\slash', 'quote"d', 'new\nline', '', 'ünïcødé ✓', '{a="b"},c'];

function samples(): Sample[] {
  const out: Sample[] = [];
  HOSTILE.forEach((queue, i) => {
    for (const state of ['waiting', 'active']) out.push({ metric: 'queueJobs', labels: { prefix: 'bull', queue, state }, value: i * 1.5 });
    out.push({ metric: 'queueJobsCompleted', labels: { prefix: 'bull', queue }, value: i * 1e21 });
    out.push({ metric: 'queueJobWait', labels: { prefix: 'bull', queue }, value: 3, histogram: { buckets: METRICS.queueJobWait.buckets!.map((_, j) => Math.min(3, j)), sum: 0.25 * i } });
  });
  out.push({ metric: 'queuesRead', labels: { prefix: 'bull' }, value: Number.POSITIVE_INFINITY });
  out.push({ metric: 'queuesWithoutSeries', labels: { prefix: 'bull' }, value: Number.NaN });
  out.push({ metric: 'provisioningStuckThreshold', labels: {}, value: 900 });
  out.push({ metric: 'shieldEventsTotal', labels: { decision: 'BLOCK' }, value: 0 });
  // Labels in another order than the catalog's: served in the sample's order, as prom-client did.
  out.push({ metric: 'provisioningJobs', labels: { status: 'RUNNING', type: 'hosting' }, value: -2 });
  return out;
}

function snapshot(list: Sample[]): CollectionSnapshot {
  const source: SourceSnapshot = { name: 'queues', backend: 'redis', up: true, samples: list, invalid: {}, collections: 1, errors: 0, durationSeconds: 0.1 };
  return new CollectionSnapshot(1, [source]);
}

/** What the registry served before: prom-client Gauges and Counters filled from the samples, histograms from their values. */
function reference(list: Sample[], openMetrics: boolean, families: ReturnType<Registry['getMetricsAsArray']>): Registry {
  const register = new Registry();
  if (openMetrics) register.setContentType(Registry.OPENMETRICS_CONTENT_TYPE as never);
  for (const [key, def] of Object.entries(METRICS) as Array<[MetricKey, (typeof METRICS)[MetricKey]]>) {
    if (def.source === 'exporter') continue;
    const mine = list.filter((s) => s.metric === key);
    const common = { name: def.name, help: def.help, labelNames: [...def.labels], registers: [register] };
    if (def.type === 'histogram') {
      const family = families.find((f) => f.name === def.name) as unknown as { get(): Promise<unknown> };
      register.registerMetric({ name: def.name, help: def.help, type: 'histogram', aggregator: 'sum', get: () => family.get(), reset: () => undefined } as never);
    } else if (def.type === 'counter') {
      const c = new Counter(common);
      if (def.labels.length === 0) c.remove();
      for (const s of mine) c.inc(s.labels, s.value);
    } else {
      const g = new Gauge(common);
      if (def.labels.length === 0) g.remove();
      for (const s of mine) g.set(s.labels, s.value);
    }
  }
  return register;
}

describe('the exposition rendered from samples', () => {
  for (const format of ['text', 'openmetrics'] as const) {
    it(`is byte for byte prom-client's, ${format}`, async () => {
      const list = samples();
      const registries = createRegistries(() => snapshot(list), { version: 'test', processMetrics: false });
      const mine = format === 'text' ? registries.prometheus : registries.openMetrics;
      const families = mine.getMetricsAsArray().filter((f) => !/^ops_(source_|exporter_build)/.test(f.name));
      const selfNames = new Set(mine.getMetricsAsArray().filter((f) => !families.includes(f)).map((f) => f.name));
      for (const name of selfNames) mine.removeSingleMetric(name);
      const expected = await reference(list, format === 'openmetrics', families).metrics();
      const actual = await mine.metrics();
      expect(actual).toBe(expected);
      // The cases above are all there.
      expect(actual).toContain('queue="back\\\\slash"');
      expect(actual).toContain('queue="quote\\"d"');
      expect(actual).toContain('queue="new\\nline"');
      expect(actual).toContain('ops_provisioning_stuck_threshold_seconds 900');
      expect(actual).toMatch(/_bucket\{prefix="bull",queue="plain",le="\+Inf"\} 3/);
      if (format === 'openmetrics') expect(actual).toMatch(/^ops_queue_jobs_completed_total\{prefix="bull",queue="plain"\} 0$/m);
    });
  }
});
