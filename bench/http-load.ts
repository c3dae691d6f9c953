/**
 * The one HTTP load generator of the bench and the load test: autocannon, in
 * this process (no system binary), keep-alive connections on loopback.
 */
import autocannon from 'autocannon';

/** What a load run measured. */
export interface LoadResult {
  /** Requests answered. */
  requests: number;
  requestsPerSecond: number;
  p50Ms: number;
  p75Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Socket errors (timeouts included) plus answers outside 2xx. */
  errors: number;
}

/** How hard and how long to load. */
export interface LoadOptions {
  connections: number;
  seconds: number;
  /** Sent with every request (e.g. Authorization). */
  headers?: Record<string, string>;
  /** Seconds without an answer before a request counts as an error. Default 10. */
  timeoutSeconds?: number;
}

/** The `p`th percentile (nearest rank) of ascending `sorted`; NaN when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Loads `url` with `connections` keep-alive connections for `seconds`. */
export async function runLoad(url: string, options: LoadOptions): Promise<LoadResult> {
  // autocannon's own histogram keeps whole milliseconds; scrapes take less, so
  // latencies are kept from each answer's sub-millisecond response time.
  const latencies: number[] = [];
  const run = autocannon({
    url,
    connections: options.connections,
    duration: options.seconds,
    timeout: options.timeoutSeconds ?? 10,
    headers: options.headers ?? {},
  });
  run.on('response', (_client, _status, _bytes, ms) => latencies.push(ms));
  const r = await run;
  const sorted = Float64Array.from(latencies).sort();
  return {
    requests: r.requests.total,
    requestsPerSecond: r.duration > 0 ? r.requests.total / r.duration : 0,
    p50Ms: percentile(sorted, 50),
    p75Ms: percentile(sorted, 75),
    p90Ms: percentile(sorted, 90),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted.length > 0 ? sorted[sorted.length - 1]! : Number.NaN,
    errors: r.errors + r.non2xx,
  };
}
