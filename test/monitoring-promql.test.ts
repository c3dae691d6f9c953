/**
 * Every PromQL expression of the bundle (rules, dashboard panels, dashboard
 * variables) parses, and references only metrics the exporter's catalog or
 * the recording rules define, with the labels the catalog declares.
 */
import { describe, expect, it } from 'vitest';
import { METRIC_LIST } from '../src/catalog.js';
import { config } from '../monitoring/config.js';
import { PROCESS_METRIC_LIST } from '../monitoring/process-metrics.js';
import { recordingRules } from '../monitoring/rules.js';
import { analyze, collectExpressions } from './helpers/monitoring-promql.js';

/**
 * Series Prometheus itself defines, allowed in queries: the exporter's scrape
 * health and size, and the alerts.
 */
const PROMETHEUS_DEFINED = new Set(['up', 'scrape_samples_scraped', 'scrape_duration_seconds', 'scrape_series_added', 'scrape_samples_post_metric_relabeling', 'ALERTS', 'ALERTS_FOR_STATE']);
/** The catalog, and the few prom-client default metrics monitoring/process-metrics.ts names (no other process_* or nodejs_*). */
const CATALOG = new Map<string, { labels: readonly string[] }>([
  ...METRIC_LIST.filter((m) => m.type !== 'histogram').map((m) => [m.name, m] as const),
  // A histogram is served as its buckets (with `le`), sum and count; never under its own name.
  ...METRIC_LIST.filter((m) => m.type === 'histogram').flatMap((m) => [
    [`${m.name}_bucket`, { labels: [...m.labels, 'le'] }] as const,
    [`${m.name}_sum`, m] as const,
    [`${m.name}_count`, m] as const,
  ]),
  ...PROCESS_METRIC_LIST.map((m) => [m.name, { labels: [] }] as const),
]);
const RECORDED = new Set(recordingRules.map((r) => r.record));
/** Labels every scraped series carries besides the catalog's: the target's, and the platform Prometheus sets. */
const TARGET_LABELS = ['job', 'instance', config.platformLabel];

describe('PromQL of the bundle', () => {
  it('finds expressions in the rules and in both dashboards', async () => {
    const found = await collectExpressions();
    expect(found.filter((f) => f.where.startsWith('ops-overview.alerts.yml')).length).toBeGreaterThan(15);
    expect(found.filter((f) => f.where.startsWith('ops-overview.json')).length).toBeGreaterThan(30);
    expect(found.filter((f) => f.where.startsWith('ops-overview-exporter.json')).length).toBeGreaterThan(5);
  });

  it('parses every expression', async () => {
    const errors = (await collectExpressions()).flatMap((f) => analyze(f.expr).syntaxErrors.map((e) => `${f.where}: ${e}`));
    expect(errors).toEqual([]);
  });

  it('references only catalog metrics, recording rules and Prometheus-defined series', async () => {
    const unknown: string[] = [];
    for (const f of await collectExpressions()) {
      for (const m of analyze(f.expr).metrics) {
        if (!CATALOG.has(m) && !RECORDED.has(m) && !PROMETHEUS_DEFINED.has(m)) unknown.push(`${f.where}: ${m}`);
      }
    }
    expect(unknown).toEqual([]);
  });

  it('matches catalog metrics only on labels the catalog declares', async () => {
    const wrong: string[] = [];
    for (const f of await collectExpressions()) {
      for (const { metric, label } of analyze(f.expr).matchers) {
        const def = CATALOG.get(metric);
        if (def && !def.labels.includes(label) && !TARGET_LABELS.includes(label)) wrong.push(`${f.where}: ${metric}{${label}}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('the checks catch a typo, an unknown metric and a wrong label', () => {
    expect(analyze('sum by (node) (ops_core_node_status{status="OFFLINE"}').syntaxErrors).not.toEqual([]);
    expect(analyze('rate(ops_core_node_stauts[5m])').metrics).toEqual(['ops_core_node_stauts']);
    expect(CATALOG.has('ops_core_node_stauts')).toBe(false);
    // Default metrics outside the explicit list stay unknown.
    expect(CATALOG.has('process_resident_memory_bytes')).toBe(true);
    expect(CATALOG.has('process_open_fds')).toBe(false);
    expect(CATALOG.has('nodejs_eventloop_lag_seconds')).toBe(false);
    expect(analyze('ops_queue_jobs{queue_name="x"}').matchers).toEqual([{ metric: 'ops_queue_jobs', label: 'queue_name' }]);
  });
});
