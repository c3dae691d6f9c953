/**
 * Metric samples: the plain data a source's mapping produces and the registry
 * serves. Keeping them as data lets the mapping be tested without prom-client
 * and lets /metrics and the JSON API read one collection.
 */
import { KNOWN, OVERFLOW_LABEL, UNKNOWN_LABEL, type InvalidReason, type MetricKey } from '../catalog.js';

/** One value of one series. */
export interface Sample {
  metric: MetricKey;
  labels: Record<string, string>;
  /** The value; for a histogram, its count of observations. */
  value: number;
  /** A histogram's cumulative count per bucket of its catalog entry (le ascending, +Inf is `value`) and sum. */
  histogram?: HistogramValue;
}

/** The state of one histogram series. */
export interface HistogramValue {
  /** Observations at or below each bucket bound, in the catalog's bucket order (cumulative). */
  buckets: number[];
  /** Sum of all observed values. */
  sum: number;
}

/** Counts of values a source could not use as they are, by reason. */
export type InvalidCounts = Partial<Record<InvalidReason, number>>;

/** Adds `n` to `counts[reason]`. */
export function countInvalid(counts: InvalidCounts, reason: InvalidReason, n = 1): void {
  counts[reason] = (counts[reason] ?? 0) + n;
}

/**
 * Maps an enum-like database value to a label: the value itself when it is
 * one of `known`, UNKNOWN otherwise (NULL, unrecognised, misspelled), counting
 * why in `invalid`. Matching is exact: " online" is not ONLINE.
 */
export function knownLabel(value: string | null | undefined, known: readonly string[], invalid: InvalidCounts): string {
  if (value === null || value === undefined) {
    countInvalid(invalid, 'null_value');
    return UNKNOWN_LABEL;
  }
  if (known.includes(value)) return value;
  countInvalid(invalid, 'unknown_value');
  return UNKNOWN_LABEL;
}

/**
 * Bounds the cardinality of a free-text label (queue type, action, resource
 * type): the first `limit` distinct values (in the order given, so callers
 * pass the biggest first) keep their name, the rest become OTHER.
 */
export class LabelLimiter {
  private readonly seen = new Set<string>();
  constructor(
    private readonly limit: number,
    private readonly invalid: InvalidCounts,
  ) {}

  label(value: string): string {
    if (this.seen.has(value)) return value;
    if (this.seen.size < this.limit) {
      this.seen.add(value);
      return value;
    }
    countInvalid(this.invalid, 'label_overflow');
    return OVERFLOW_LABEL;
  }
}

/** Milliseconds since the epoch to Prometheus' seconds. */
export function toSeconds(date: Date): number {
  return date.getTime() / 1000;
}

/**
 * One key per series; labels sorted by name, so the same labels inserted in
 * another order are the same series. Each name and value is prefixed with its
 * length, so no value can pass for a separator. Built without intermediate
 * arrays: a collection of 2,000 queues adds ~40,000 samples, and the keys
 * live until the collection ends (JSON of sorted entries was ~1 KB of
 * garbage per sample).
 */
function seriesKey(metric: MetricKey, labels: Record<string, string>): string {
  const names = Object.keys(labels);
  // Insertion sort: two or three names, usually in order already.
  for (let i = 1; i < names.length; i++) {
    const name = names[i]!;
    let j = i - 1;
    for (; j >= 0 && names[j]! > name; j--) names[j + 1] = names[j]!;
    names[j + 1] = name;
  }
  let key = metric;
  for (const name of names) {
    const raw: unknown = labels[name];
    const value = String(raw);
    // A non-string value (which boundSamples refuses later) stays its own series.
    key += `|${name.length}:${name}${typeof raw === 'string' ? 's' : 'x'}${value.length}:${value}`;
  }
  return key;
}

/** Sums `value` into the sample with the same metric and labels (used when OTHER/UNKNOWN merge rows). */
export class SampleSet {
  private readonly byKey = new Map<string, Sample>();

  add(metric: MetricKey, labels: Record<string, string>, value: number): void {
    const key = seriesKey(metric, labels);
    const existing = this.byKey.get(key);
    if (existing) existing.value += value;
    else this.byKey.set(key, { metric, labels, value });
  }

  /** Sums a histogram series into the one with the same metric and labels. */
  addHistogram(metric: MetricKey, labels: Record<string, string>, value: number, histogram: HistogramValue): void {
    const key = seriesKey(metric, labels);
    const existing = this.byKey.get(key);
    if (existing?.histogram) {
      existing.value += value;
      existing.histogram.sum += histogram.sum;
      existing.histogram.buckets = existing.histogram.buckets.map((n, i) => n + (histogram.buckets[i] ?? 0));
    } else this.byKey.set(key, { metric, labels, value, histogram: { buckets: [...histogram.buckets], sum: histogram.sum } });
  }

  /** Adds 0 for each of `values` (known label values are always present). */
  zeros(metric: MetricKey, label: string, values: readonly string[], other: Record<string, string> = {}): void {
    for (const v of values) this.add(metric, { ...other, [label]: v }, 0);
  }

  list(): Sample[] {
    return [...this.byKey.values()];
  }
}

/** The known decision labels plus UNKNOWN, in display order. */
export const DECISION_LABELS = [...KNOWN.decision, UNKNOWN_LABEL] as const;
