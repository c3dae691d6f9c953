/**
 * The last line between a source's samples and prom-client: only samples
 * prom-client can serve pass. A sample prom-client would throw on fails the
 * whole scrape (its registry gathers with Promise.all), so every source's
 * samples go through here once per collection, never per scrape.
 */
import { createHash } from 'node:crypto';
import { METRICS, type MetricKey } from '../catalog.js';
import { countInvalid, type InvalidCounts, type Sample } from './sample.js';

/** Longest label value served, characters; longer ones are cut (and stay distinct by a hash suffix). */
export const MAX_LABEL_VALUE_LENGTH = 200;
/**
 * Most series one source may serve; beyond it series are dropped and counted.
 * A backstop only: each source bounds its own series by design, keeping
 * whatever can alert, well below it.
 */
export const MAX_SERIES_PER_SOURCE = 20_000;

function shortHash(value: string): string {
  return createHash('sha256').update(value).digest('hex').slice(0, 8);
}

/** A histogram sample is cumulative: one finite count per bucket, never decreasing, never above its count. */
function validHistogram(sample: Sample, buckets: readonly number[]): boolean {
  const h = sample.histogram;
  if (!h || !Array.isArray(h.buckets) || h.buckets.length !== buckets.length || !Number.isFinite(h.sum)) return false;
  let previous = 0;
  for (const n of h.buckets) {
    if (typeof n !== 'number' || !Number.isFinite(n) || n < previous || n > sample.value) return false;
    previous = n;
  }
  return true;
}

/**
 * Keeps only samples prom-client can serve: a known metric, exactly the
 * catalog's label names with string values no longer than
 * MAX_LABEL_VALUE_LENGTH, a finite number (and not negative for a counter or
 * a histogram, whose buckets must be cumulative),
 * at most MAX_SERIES_PER_SOURCE of them. What is dropped is counted in
 * `invalid` as wrong_type (one per sample) or label_overflow (beyond the
 * series cap); a cut value once as label_overflow however many series carry
 * it (pure).
 */
export function boundSamples(samples: readonly Sample[], invalid: InvalidCounts): Sample[] {
  const out: Sample[] = [];
  // A long value (one hostname) appears in several series: counted once.
  const cut = new Set<string>();
  for (const sample of samples) {
    const def = sample && typeof sample === 'object' ? METRICS[sample.metric as MetricKey] : undefined;
    if (!def || typeof sample.value !== 'number' || !Number.isFinite(sample.value) || (def.type !== 'gauge' && sample.value < 0)) {
      countInvalid(invalid, 'wrong_type');
      continue;
    }
    if (def.type === 'histogram' && !validHistogram(sample, def.buckets ?? [])) {
      countInvalid(invalid, 'wrong_type');
      continue;
    }
    const raw = sample.labels && typeof sample.labels === 'object' ? sample.labels : {};
    const names = Object.keys(raw);
    if (names.length !== def.labels.length || !def.labels.every((l) => typeof raw[l] === 'string')) {
      countInvalid(invalid, 'wrong_type');
      continue;
    }
    let labels = raw;
    for (const name of def.labels) {
      const value = raw[name] as string;
      if (value.length > MAX_LABEL_VALUE_LENGTH) {
        if (labels === raw) labels = { ...raw };
        labels[name] = `${value.slice(0, MAX_LABEL_VALUE_LENGTH - 10)}…${shortHash(value)}`;
        if (!cut.has(value)) countInvalid(invalid, 'label_overflow');
        cut.add(value);
      }
    }
    if (out.length >= MAX_SERIES_PER_SOURCE) {
      countInvalid(invalid, 'label_overflow');
      continue;
    }
    out.push(labels === raw ? sample : { ...sample, labels });
  }
  return out;
}
