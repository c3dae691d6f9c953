/**
 * The exporter under test, in a child process of its own (so its RSS is its
 * own), started with the command `npm start` runs (after its build step),
 * configured through the environment like a deployment.
 */
import { startExporterProcess } from '../test/helpers/exporter-process.js';
import { parseSamples, type ParsedSample } from '../test/helpers/prom-text.js';

/** One sample of the Prometheus text format. */
export type MetricSample = ParsedSample;

/** Parsed /metrics text. */
export interface ParsedMetrics {
  samples(name: string): MetricSample[];
  /** The value of the sample of `name` whose labels include `labels`; undefined when none. */
  value(name: string, labels?: Record<string, string>): number | undefined;
}

/** Parses the Prometheus text exposition format (the tests' parser), indexed by name. */
export function parseMetrics(text: string): ParsedMetrics {
  const byName = new Map<string, MetricSample[]>();
  for (const sample of parseSamples(text)) {
    const list = byName.get(sample.name);
    if (list) list.push(sample);
    else byName.set(sample.name, [sample]);
  }
  return {
    samples: (name) => byName.get(name) ?? [],
    value(name, labels = {}) {
      const hit = (byName.get(name) ?? []).find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v));
      return hit?.value;
    },
  };
}

/** Options of an exporter process. */
export interface ExporterOptions {
  databaseUrl: string;
  redisUrl: string;
  queuePrefix: string;
  port: number;
  /** OPS_COLLECT_INTERVAL_SECONDS: every source's interval; undefined keeps the exporter's defaults. */
  intervalSeconds?: number;
  /** Further environment (OPS_*). */
  env?: Record<string, string>;
  /** Node flags before the script (e.g. --max-old-space-size=64). */
  nodeOptions?: string[];
}

/** A running exporter. */
export interface ExporterProcess {
  pid: number;
  url: string;
  metrics(): Promise<ParsedMetrics>;
  /** Peak resident set size so far (VmHWM), bytes. */
  peakRssBytes(): number;
  /** Current resident set size (VmRSS), bytes. */
  rssBytes(): number;
  /** Lines the process wrote to stderr/stdout (warnings, errors). */
  output(): string[];
  stop(): Promise<void>;
}

/** Starts the exporter as `npm start` runs it (built first) and waits until it answers /healthz. */
export async function startExporter(options: ExporterOptions): Promise<ExporterProcess> {
  const p = await startExporterProcess({
    run: 'built',
    port: options.port,
    nodeOptions: options.nodeOptions,
    readyPath: '/healthz',
    env: {
      NODE_ENV: 'production',
      DATABASE_URL: options.databaseUrl,
      REDIS_URL: options.redisUrl,
      LOG_LEVEL: 'warn',
      OPS_API_AUTH_DISABLED: 'true',
      OPS_QUEUE_PREFIXES: options.queuePrefix,
      ...(options.intervalSeconds === undefined ? {} : { OPS_COLLECT_INTERVAL_SECONDS: String(options.intervalSeconds) }),
      ...options.env,
    },
  });
  return {
    pid: p.pid,
    url: p.url,
    async metrics() {
      const res = await fetch(`${p.url}/metrics`);
      if (!res.ok) throw new Error(`/metrics answered ${res.status}`);
      return parseMetrics(await res.text());
    },
    peakRssBytes: p.peakRssBytes,
    rssBytes: p.rssBytes,
    output: () => p.output().split('\n').filter((l) => l.trim() !== ''),
    async stop() {
      await p.stop();
    },
  };
}

/** The database-backed sources, as the catalog names them. */
export const DB_SOURCES = ['core_nodes', 'provisioning', 'security', 'backups'] as const;
/** Every source. */
export const ALL_SOURCES = ['core_nodes', 'queues', 'provisioning', 'security', 'backups'] as const;

/** Collections finished per source (attempts minus the one under way is not knowable; attempts it is). */
export function collections(m: ParsedMetrics): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of ALL_SOURCES) out[s] = m.value('ops_source_collections_total', { source: s }) ?? 0;
  return out;
}

/**
 * Waits until every source has finished at least `n` collections (a source's
 * last-success timestamp and duration are set when one finishes) and none
 * is under way according to the counters.
 */
export async function waitForCollections(exporter: ExporterProcess, n: number, timeoutMs: number): Promise<ParsedMetrics> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = await exporter.metrics();
    const done = ALL_SOURCES.every((s) => (m.value('ops_source_collections_total', { source: s }) ?? 0) >= n && m.value('ops_source_collect_duration_seconds', { source: s }) !== undefined);
    if (done) return m;
    if (Date.now() > deadline) {
      const state = ALL_SOURCES.map((s) => `${s}=${m.value('ops_source_collections_total', { source: s }) ?? 0}`).join(' ');
      throw new Error(`sources did not finish ${n} collection(s) within ${timeoutMs / 1000} s (${state}); exporter said: ${exporter.output().slice(-3).join(' | ')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
