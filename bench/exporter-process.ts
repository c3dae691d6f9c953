/**
 * The exporter under test, in a child process of its own (so its RSS is its
 * own), started with the command `npm start` runs (after its build step),
 * configured through the environment like a deployment.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const REPO = path.join(import.meta.dirname, '..');

let built = false;
/**
 * Runs `npm run build` once per bench run and returns the `npm start` command
 * (`node [flags] dist/main.js`) with `nodeOptions` added after `node`.
 */
function startCommand(nodeOptions: readonly string[]): string[] {
  if (!built) {
    const r = spawnSync('npm', ['run', '-s', 'build'], { cwd: REPO, stdio: 'inherit' });
    if (r.status !== 0) throw new Error('npm run build failed');
    built = true;
  }
  const start = (JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start;
  const [node, ...args] = start.split(/\s+/);
  if (node !== 'node') throw new Error(`npm start is not a node command: ${start}`);
  return [...nodeOptions, ...args];
}

/** One sample of the Prometheus text format. */
export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parsed /metrics text. */
export interface ParsedMetrics {
  samples(name: string): MetricSample[];
  /** The value of the sample of `name` whose labels include `labels`; undefined when none. */
  value(name: string, labels?: Record<string, string>): number | undefined;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses the Prometheus text exposition format (pure; enough for the bench's reads). */
export function parseMetrics(text: string): ParsedMetrics {
  const byName = new Map<string, MetricSample[]>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1] as string] = (l[2] as string).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    const sample = { name: m[1] as string, labels, value: Number(m[3]) };
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

function statusField(pid: number, field: string): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/** Starts the exporter and waits until it answers /healthz. */
export async function startExporter(options: ExporterOptions): Promise<ExporterProcess> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'production',
    DATABASE_URL: options.databaseUrl,
    REDIS_URL: options.redisUrl,
    HOST: '127.0.0.1',
    PORT: String(options.port),
    LOG_LEVEL: 'warn',
    OPS_API_AUTH_DISABLED: 'true',
    OPS_QUEUE_PREFIXES: options.queuePrefix,
    ...(options.intervalSeconds === undefined ? {} : { OPS_COLLECT_INTERVAL_SECONDS: String(options.intervalSeconds) }),
    ...options.env,
  };
  const child: ChildProcess = spawn(process.execPath, startCommand(options.nodeOptions ?? []), { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    for (const l of chunk.toString('utf8').split('\n')) if (l.trim() !== '' && lines.length < 200) lines.push(l);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const url = `http://127.0.0.1:${options.port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`exporter exited with ${child.exitCode}: ${lines.slice(-5).join(' | ')}`);
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`exporter did not answer /healthz within 60 s: ${lines.slice(-5).join(' | ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const pid = child.pid as number;
  return {
    pid,
    url,
    async metrics() {
      const res = await fetch(`${url}/metrics`);
      if (!res.ok) throw new Error(`/metrics answered ${res.status}`);
      return parseMetrics(await res.text());
    },
    peakRssBytes: () => statusField(pid, 'VmHWM'),
    rssBytes: () => statusField(pid, 'VmRSS'),
    output: () => lines,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
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
