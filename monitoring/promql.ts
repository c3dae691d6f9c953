/**
 * PromQL building blocks shared by the rules and the dashboards: metric
 * selectors taken from the exporter's catalog (never a hand-typed name) and
 * the recording rules' names.
 */
import { parser } from '@prometheus-io/lezer-promql';
import { METRICS, type MetricKey } from '../src/catalog.js';
import { config } from './config.js';

/**
 * A selector for a catalog metric with extra label matchers, plus the
 * configured `selectors.ops` matchers: `sel('queueJobs', 'state="failed"')`.
 */
export function sel(key: MetricKey, matchers = ''): string {
  const all = [matchers, config.selectors.ops].filter((m) => m !== '').join(', ');
  return all === '' ? METRICS[key].name : `${METRICS[key].name}{${all}}`;
}

/** A selector for one series of a catalog histogram (`_bucket`, `_sum`, `_count`), like `sel()`. */
export function histSel(key: MetricKey, part: '_bucket' | '_sum' | '_count', matchers = ''): string {
  if (METRICS[key].type !== 'histogram') throw new Error(`${METRICS[key].name} is not a histogram`);
  const all = [matchers, config.selectors.ops].filter((m) => m !== '').join(', ');
  return all === '' ? `${METRICS[key].name}${part}` : `${METRICS[key].name}${part}{${all}}`;
}

/** `up` of the exporter's scrape job, with extra matchers. */
export function exporterUp(): string {
  return `up{${config.selectors.exporterJob}}`;
}

/**
 * A label list for `by (...)` / `on (...)` that keeps the platform label
 * first: `by('node')` is `platform, node`, so an aggregation never merges
 * two platforms' nodes, queues or jobs.
 */
export function by(...labels: string[]): string {
  return [config.platformLabel, ...labels].join(', ');
}

/**
 * `expr` with the exporter's replicas merged: `max without (instance, pod)`,
 * one series per platform and object whichever replica scraped it. Wrap
 * every input of a `sum` or `count` in it, so two replicas never count a job
 * twice (both read the same database and Redis, so their values agree).
 */
export function acrossReplicas(expr: string): string {
  return `max without (${config.replicaLabels.join(', ')}) (${expr})`;
}

/**
 * `expr` with `matcher` (`platform=~"$platform"`) added to every vector
 * selector but those of the metrics in `skip`, found with Prometheus's own
 * PromQL grammar: the dashboards' queries get their platform filter without
 * a selector being forgotten.
 */
export function withMatcher(expr: string, matcher: string, skip: readonly string[] = []): string {
  const edits: { at: number; text: string }[] = [];
  // Grafana's interval variables (`[$__rate_interval]`) parsed as durations of the same length.
  const parsable = expr.replace(/\$__[a-z_]+/g, (v) => `${'9'.repeat(v.length - 1)}s`);
  parser.parse(parsable).iterate({
    enter(ref) {
      if (ref.type.isError) throw new Error(`cannot parse ${JSON.stringify(expr)} at ${ref.from}`);
      if (ref.name !== 'VectorSelector') return;
      const id = ref.node.getChild('Identifier');
      if (id && skip.includes(parsable.slice(id.from, id.to))) return false;
      const matchers = ref.node.getChild('LabelMatchers');
      if (!matchers) edits.push({ at: ref.to, text: `{${matcher}}` });
      else {
        const empty = parsable.slice(matchers.from + 1, matchers.to - 1).trim() === '';
        edits.push({ at: matchers.from + 1, text: empty ? matcher : `${matcher}, ` });
      }
      return false;
    },
  });
  let out = expr;
  for (const e of edits.sort((a, b) => b.at - a.at)) out = out.slice(0, e.at) + e.text + out.slice(e.at);
  return out;
}

/** A regex alternative of label values, for `label=~"..."` matchers. */
export function oneOf(values: readonly string[]): string {
  return values.join('|');
}

/** BullMQ states that count as backlog: jobs waiting for a worker, including paused ones. */
export const BACKLOG_STATES = ['waiting', 'prioritized', 'paused'] as const;

/** BullMQ states a connected, unpaused worker would take right now. */
export const READY_STATES = ['waiting', 'prioritized'] as const;

/** Seconds of a Prometheus duration string. */
export function durationSeconds(d: string): number {
  const m = /^(\d+)(s|m|h|d)$/.exec(d);
  if (!m) throw new Error(`unsupported duration ${d}`);
  const unit = { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}

/**
 * Prometheus's template function `humanizeDuration` for whole seconds
 * ("1d 1h 0m 0s", "15m 0s"): literal limits in alerts and dashboards read
 * the way Prometheus renders the values they are compared with.
 */
export function humanizeDuration(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  if (d > 0) return `${d}d ${h}h ${m}m ${s}s`;
  if (h > 0) return `${h}h ${m}m ${s}s`;
  if (m > 0) return `${m}m ${s}s`;
  return `${s}s`;
}
