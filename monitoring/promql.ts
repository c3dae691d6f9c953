/**
 * PromQL building blocks shared by the rules and the dashboards: metric
 * selectors taken from the exporter's catalog (never a hand-typed name) and
 * the recording rules' names.
 */
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

/** `up` of the exporter's scrape job, with extra matchers. */
export function exporterUp(): string {
  return `up{${config.selectors.exporterJob}}`;
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
