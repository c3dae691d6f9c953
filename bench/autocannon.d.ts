/** The part of autocannon's API the load runs use (the package ships no types). */
declare module 'autocannon' {
  interface Options {
    url: string;
    connections?: number;
    /** Seconds. */
    duration?: number;
    /** Seconds without an answer before a request counts as a timeout (an error). */
    timeout?: number;
    headers?: Record<string, string>;
  }
  interface Histogram {
    average: number;
    p50: number;
    p75: number;
    p90: number;
    p99: number;
    max: number;
    total: number;
  }
  interface Result {
    /** Milliseconds. */
    latency: Histogram;
    /** Requests a second, per one-second sample; `total` is every request answered. */
    requests: Histogram;
    /** Seconds the run took. */
    duration: number;
    /** Socket errors, timeouts included. */
    errors: number;
    timeouts: number;
    /** Answers outside 2xx. */
    non2xx: number;
  }
  /** A run: it resolves with the result, and emits `response` per answer (response time in milliseconds, sub-millisecond). */
  interface Instance extends PromiseLike<Result> {
    on(event: 'response', listener: (client: unknown, statusCode: number, resBytes: number, responseTimeMs: number) => void): Instance;
  }
  function autocannon(options: Options): Instance;
  export default autocannon;
}
