/**
 * The few metrics of prom-client's `collectDefaultMetrics()` (no prefix) that
 * the exporter dashboard reads: the exporter's own memory, CPU, event-loop lag
 * and heap, as every Node exporter serves them. An explicit list, not a
 * `process_*` / `nodejs_*` wildcard: the PromQL checks accept these names and
 * no other metric outside the exporter's catalog.
 */

/** One default metric the bundle reads, as prom-client documents it. */
export interface ProcessMetricDef {
  name: string;
  type: 'gauge' | 'counter';
  help: string;
}

/** The default metrics the exporter dashboard reads, by what they are for. */
export const PROCESS_METRICS = {
  residentMemory: { name: 'process_resident_memory_bytes', type: 'gauge', help: 'Resident memory size in bytes.' },
  cpuSeconds: { name: 'process_cpu_seconds_total', type: 'counter', help: 'Total user and system CPU time spent in seconds.' },
  eventLoopLagP99: { name: 'nodejs_eventloop_lag_p99_seconds', type: 'gauge', help: 'The 99th percentile of the recorded event loop delays.' },
  heapUsed: { name: 'nodejs_heap_size_used_bytes', type: 'gauge', help: 'Process heap size used from Node.js in bytes.' },
} as const satisfies Record<string, ProcessMetricDef>;

/** The same, as a list. */
export const PROCESS_METRIC_LIST: readonly ProcessMetricDef[] = Object.values(PROCESS_METRICS);
