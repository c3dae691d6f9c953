/**
 * The measurements, one function per phase; run.ts sequences them and
 * report.ts prints what they return.
 */
import pg from 'pg';
import type { Redis } from 'ioredis';
import { markServerCpu, ownerOf, readPlans, logOffset, serverCpuSince, setAutoExplain, totals, type LoggedPlan, type StatementOwner, type StatementStat, type StatementStats } from './db-stats.js';
import { DB_SOURCES, ALL_SOURCES, collections, startExporter, waitForCollections, type ExporterProcess, type ParsedMetrics } from './exporter-process.js';
import { runLoad, type LoadResult } from './http-load.js';
import { NaiveQueues, naivePlans, naiveSqlCollection } from './naive.js';
import { delta, readClientLog, snapshot, startClientLog, sumOf, type ClientCommands, type RedisDelta } from './redis-stats.js';
import type { FlowCounts, FlowWorkers } from './queue-workers.js';
import { request } from 'node:http';
import { freePort } from '../test/helpers/ports.js';
import type { BenchDatabase } from './datasets.js';
import { NAIVE_ROLE, READER_ROLE } from './datasets.js';
import { pgQuery } from './services.js';
import type { SteadyWriter } from './writer.js';

/**
 * Commands the exporter sends itself (the rest in commandstats run inside its
 * scripts); XINFO STREAM and XRANGE read the events streams (queue flow).
 */
export const EXPORTER_REDIS_COMMANDS = ['evalsha', 'eval', 'client|list', 'scan', 'script|load', 'xinfo|stream', 'xrange'] as const;
/** The exporter's Redis connection name (src/redis.ts). */
export const EXPORTER_REDIS_CLIENT = 'ops-overview-exporter';

/** Everything one phase needs. */
export interface PhaseContext {
  db: BenchDatabase;
  redisUrl: string;
  redis: Redis;
  queuePrefix: string;
  stats: StatementStats;
  writer: SteadyWriter;
  pgLogFile: string;
  /** The cluster's data directory (the postmaster's pid, for CPU times). */
  pgDataDir: string;
  adminUrl: string;
  /** Extra node flags for the exporter process (e.g. V8 heap limits), split on spaces. */
  exporterNodeOptions: string[];
  log: (s: string) => void;
}

/** DB time of one owner (source or transaction control), per collection. */
export interface OwnerTime {
  owner: StatementOwner;
  execMs: number;
  planMs: number;
  calls: number;
  /** Shared buffers hit + read, per collection. */
  buffers: number;
}

/** Database time of a set of collections, per full collection. */
export interface DbTime {
  /** Collections each source finished during the window. */
  collections: Record<string, number>;
  perOwner: OwnerTime[];
  /** One collection of every database source, transaction control included. */
  fullExecMs: number;
  fullPlanMs: number;
  fullCalls: number;
  /** CPU time of the server processes per full collection, ms (set for measured windows). */
  fullServerCpuMs?: number;
  statements: StatementStat[];
}

/** Splits pg_stat_statements totals by source and divides by each source's collections. */
export function dbTimePerCollection(statements: StatementStat[], counts: Record<string, number>): DbTime {
  const perOwner: OwnerTime[] = [];
  const dbCollections = DB_SOURCES.reduce((n, s) => n + (counts[s] ?? 0), 0);
  for (const owner of [...DB_SOURCES, 'transaction'] as const) {
    const mine = statements.filter((s) => ownerOf(s.query) === owner);
    const t = totals(mine);
    // Transaction control (BEGIN, SET, COMMIT) is shared: per source collection, times the four sources.
    const per = owner === 'transaction' ? dbCollections / DB_SOURCES.length : (counts[owner] ?? 0);
    const d = Math.max(per, 1e-9);
    perOwner.push({ owner, execMs: t.execMs / d, planMs: t.planMs / d, calls: t.calls / d, buffers: (t.sharedHit + t.sharedRead) / d });
  }
  return {
    collections: counts,
    perOwner,
    fullExecMs: perOwner.reduce((n, o) => n + o.execMs, 0),
    fullPlanMs: perOwner.reduce((n, o) => n + o.planMs, 0),
    fullCalls: perOwner.reduce((n, o) => n + o.calls, 0),
    statements,
  };
}

function diffCounts(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of ALL_SOURCES) out[s] = (b[s] ?? 0) - (a[s] ?? 0);
  return out;
}

/** Wall time samples of each source's collections (ops_source_collect_duration_seconds). */
export type WallTimes = Record<string, number[]>;

function sampleWall(m: ParsedMetrics, seen: Map<string, number>, wall: WallTimes): void {
  for (const s of ALL_SOURCES) {
    const at = m.value('ops_source_last_success_timestamp_seconds', { source: s });
    const d = m.value('ops_source_collect_duration_seconds', { source: s });
    if (at === undefined || d === undefined || seen.get(s) === at) continue;
    seen.set(s, at);
    (wall[s] ??= []).push(d * 1000);
  }
}

function upSources(m: ParsedMetrics): Record<string, boolean> {
  const out: Record<string, boolean> = {};
  for (const s of ALL_SOURCES) out[s] = m.value('ops_source_up', { source: s }) === 1;
  return out;
}

function exporterEnv(ctx: PhaseContext, port: number, intervalSeconds: number) {
  return { databaseUrl: ctx.db.readerUrl, redisUrl: ctx.redisUrl, queuePrefix: ctx.queuePrefix, port, intervalSeconds, nodeOptions: ctx.exporterNodeOptions };
}

/** The first collection after start-up, each source once. */
export interface ColdResult {
  db: DbTime;
  wallMs: Record<string, number>;
  up: Record<string, boolean>;
  redis: RedisDelta;
  peakRssBytes: number;
  errors: string[];
}

/** Starts an exporter that collects once (interval 3600 s) and measures that first collection. */
export async function measureCold(ctx: PhaseContext): Promise<ColdResult> {
  await ctx.stats.reset(READER_ROLE, ctx.db.name);
  const before = await snapshot(ctx.redis);
  const exporter = await startExporter(exporterEnv(ctx, await freePort(), 3600));
  try {
    const m = await waitForCollections(exporter, 1, 300_000);
    const after = await snapshot(ctx.redis);
    const statements = await ctx.stats.read(READER_ROLE, ctx.db.name);
    const wallMs: Record<string, number> = {};
    for (const s of ALL_SOURCES) wallMs[s] = (m.value('ops_source_collect_duration_seconds', { source: s }) ?? NaN) * 1000;
    return {
      db: dbTimePerCollection(statements, collections(m)),
      wallMs,
      up: upSources(m),
      redis: delta(before, after),
      peakRssBytes: exporter.peakRssBytes(),
      errors: exporter.output().filter((l) => /"level":(50|60)/.test(l)),
    };
  } finally {
    await exporter.stop();
  }
}

/** Plans the exporter's statements used, from auto_explain. */
export interface PlanCapture {
  /** Statements of the first (cold) collection that later collections did not run (the recount). */
  coldOnly: Array<LoggedPlan & { runs: number }>;
  /** The last plan of every statement of the steady collections. */
  steady: Array<LoggedPlan & { runs: number }>;
}

/**
 * Starts the steady-state exporter with auto_explain logging every statement
 * (ANALYZE, BUFFERS) for its first `collectionsToCapture` collections, then
 * turns logging off and hands the running exporter back.
 */
export async function startSteadyWithPlans(ctx: PhaseContext, intervalSeconds: number, collectionsToCapture: number): Promise<{ exporter: ExporterProcess; plans: PlanCapture }> {
  const a = logOffset(ctx.pgLogFile);
  await setAutoExplain(ctx.adminUrl, true);
  let exporter: ExporterProcess | undefined;
  try {
    exporter = await startExporter(exporterEnv(ctx, await freePort(), intervalSeconds));
    await waitForCollections(exporter, 1, 300_000);
    const b = logOffset(ctx.pgLogFile);
    await waitForCollections(exporter, collectionsToCapture + 1, 120_000);
    await setAutoExplain(ctx.adminUrl, false);
    const mine = (p: LoggedPlan) => p.user === READER_ROLE && p.database === ctx.db.name;
    const all = readPlans(ctx.pgLogFile, a).filter(mine);
    // Plans logged before offset b belong to the first (cold) collections.
    const late = readPlans(ctx.pgLogFile, b).filter(mine);
    const early = all.slice(0, all.length - late.length);
    const key = (p: LoggedPlan) => p.query.replace(/\s+/g, ' ');
    const runs = new Map<string, number>();
    for (const p of all) runs.set(key(p), (runs.get(key(p)) ?? 0) + 1);
    const lateKeys = new Set(late.map(key));
    const lastOf = new Map<string, LoggedPlan>();
    for (const p of late) lastOf.set(key(p), p);
    const coldOnly = new Map<string, LoggedPlan>();
    for (const p of early) if (!lateKeys.has(key(p)) && !coldOnly.has(key(p))) coldOnly.set(key(p), p);
    const withRuns = (p: LoggedPlan) => ({ ...p, runs: runs.get(key(p)) ?? 0 });
    const order = (x: LoggedPlan, y: LoggedPlan) => sourceOrder(x.query) - sourceOrder(y.query);
    return {
      exporter,
      plans: {
        coldOnly: [...coldOnly.values()].sort(order).map(withRuns),
        steady: [...lastOf.values()].sort(order).map(withRuns),
      },
    };
  } catch (err) {
    await setAutoExplain(ctx.adminUrl, false);
    await exporter?.stop();
    throw err;
  }
}

function sourceOrder(query: string): number {
  return ['core_nodes', 'provisioning', 'security', 'backups', 'transaction'].indexOf(ownerOf(query));
}

/** Steady-state database time and wall times over a window. */
export interface SteadyResult {
  db: DbTime;
  wallMs: WallTimes;
  seconds: number;
  up: Record<string, boolean>;
}

/** Measures `seconds` of steady-state collections of a running exporter. */
export async function measureSteady(ctx: PhaseContext, exporter: ExporterProcess, seconds: number): Promise<SteadyResult> {
  await ctx.stats.reset(READER_ROLE, ctx.db.name);
  const cpu = await markServerCpu(ctx.adminUrl, ctx.pgDataDir, READER_ROLE, ctx.db.name);
  const m0 = await exporter.metrics();
  const c0 = collections(m0);
  const seen = new Map<string, number>();
  const wall: WallTimes = {};
  sampleWall(m0, seen, wall);
  for (const k of Object.keys(wall)) wall[k] = [];
  const end = Date.now() + seconds * 1000;
  let m = m0;
  while (Date.now() < end) {
    await new Promise((r) => setTimeout(r, 200));
    m = await exporter.metrics();
    sampleWall(m, seen, wall);
  }
  const statements = await ctx.stats.read(READER_ROLE, ctx.db.name);
  const cpuMs = await serverCpuSince(cpu, ctx.adminUrl, ctx.pgDataDir, READER_ROLE, ctx.db.name);
  const counts = diffCounts(c0, collections(await exporter.metrics()));
  const db = dbTimePerCollection(statements, counts);
  const full = DB_SOURCES.reduce((n, s) => n + (counts[s] ?? 0), 0) / DB_SOURCES.length;
  db.fullServerCpuMs = cpuMs / Math.max(full, 1e-9);
  return { db, wallMs: wall, seconds, up: upSources(m) };
}

/** Redis cost of the exporter's queue collections. */
export interface RedisResult {
  collections: number;
  delta: RedisDelta;
  /** The exporter's own commands over the same window from SLOWLOG: the flow phase's method, checked against commandstats here. */
  own: ClientCommands;
}

/** Reads Redis's counters around `seconds` of queue collections, with the writer's BullMQ adds paused. */
export async function measureRedis(ctx: PhaseContext, exporter: ExporterProcess, seconds: number): Promise<RedisResult> {
  ctx.writer.pauseBull(true);
  try {
    await new Promise((r) => setTimeout(r, 1000));
    const c0 = collections(await exporter.metrics()).queues ?? 0;
    await startClientLog(ctx.redis);
    const s0 = await snapshot(ctx.redis);
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const s1 = await snapshot(ctx.redis);
    const own = await readClientLog(ctx.redis, EXPORTER_REDIS_CLIENT);
    const c1 = collections(await exporter.metrics()).queues ?? 0;
    return { collections: c1 - c0, delta: delta(s0, s1), own };
  } finally {
    ctx.writer.pauseBull(false);
  }
}

/** Exporter's 24 h counts against a brute-force count at the same instant. */
export interface ExactnessResult {
  at: Date;
  exporter: Record<string, number>;
  bruteForce: Record<string, number>;
  equal: boolean;
}

const DECISIONS = ['ALLOW', 'BLOCK', 'CHALLENGE', 'RATE_LIMITED'];

/**
 * Pauses the shield writer, waits for two more security collections, and
 * compares their 24 h counts with a brute-force count of
 * [now - 24 h, now] at the collection's own instant.
 */
export async function checkExactness(ctx: PhaseContext, exporter: ExporterProcess): Promise<ExactnessResult> {
  ctx.writer.pauseEvents(true);
  try {
    await new Promise((r) => setTimeout(r, 1000));
    const start = collections(await exporter.metrics()).security ?? 0;
    let m: ParsedMetrics;
    for (;;) {
      m = await exporter.metrics();
      if ((collections(m).security ?? 0) >= start + 2 && m.value('ops_source_up', { source: 'security' }) === 1) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    // The samples and the timestamp come from the same finished collection.
    const at = new Date(Math.round((m.value('ops_source_last_success_timestamp_seconds', { source: 'security' }) ?? 0) * 1000));
    const exp: Record<string, number> = {};
    for (const s of m.samples('ops_shield_events_24h')) exp[s.labels.decision as string] = s.value;
    const c = new pg.Client({ connectionString: ctx.db.adminUrl });
    await c.connect();
    try {
      const { rows } = await c.query<{ decision: string; n: number }>(
        `SELECT CASE WHEN "decision" = ANY($2::text[]) THEN "decision" ELSE 'UNKNOWN' END AS decision, count(*)::int AS n
           FROM "ShieldEvent"
          WHERE "timestamp" >= ($1::timestamptz AT TIME ZONE 'UTC') - interval '24 hours' AND "timestamp" <= ($1::timestamptz AT TIME ZONE 'UTC')
          GROUP BY 1`,
        [at.toISOString(), DECISIONS],
      );
      const brute: Record<string, number> = Object.fromEntries([...DECISIONS, 'UNKNOWN'].map((d) => [d, 0]));
      for (const r of rows) brute[r.decision] = r.n;
      const equal = Object.keys(brute).every((d) => brute[d] === exp[d]) && Object.keys(exp).every((d) => brute[d] === exp[d]);
      return { at, exporter: exp, bruteForce: brute, equal };
    } finally {
      await c.end();
    }
  } finally {
    ctx.writer.pauseEvents(false);
  }
}

/** /metrics under concurrent scrapers. */
export interface ScrapeResult extends LoadResult {
  tool: 'autocannon';
  connections: number;
  seconds: number;
  /** Bytes of one /metrics answer as sent, uncompressed and with Accept-Encoding: gzip (as Prometheus asks). */
  bytes: number;
  gzipBytes: number;
  series: number;
}

/** Bytes /metrics sends with Accept-Encoding `encoding`, as they come off the socket (fetch would decompress). */
export function rawBodyBytes(url: string, encoding: string): Promise<{ bytes: number; contentEncoding: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { 'accept-encoding': encoding } }, (res) => {
      let bytes = 0;
      res.on('data', (chunk: Buffer) => (bytes += chunk.length));
      res.on('end', () => resolve({ bytes, contentEncoding: String(res.headers['content-encoding'] ?? 'identity') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** The headers of a Prometheus 2.x scrape (scrape/scrape.go `scrapeAcceptHeader`, and gzip). */
const PROMETHEUS_SCRAPE_HEADERS = {
  accept: 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1',
  'accept-encoding': 'gzip',
};

export async function measureScrapes(exporter: ExporterProcess, connections: number, seconds: number): Promise<ScrapeResult> {
  const body = await (await fetch(`${exporter.url}/metrics`)).text();
  const series = body.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
  const url = `${exporter.url}/metrics`;
  const identity = await rawBodyBytes(url, 'identity');
  const gz = await rawBodyBytes(url, 'gzip');
  // Scraped as Prometheus 2.x scrapes: its Accept header (OpenMetrics first)
  // and gzip, which the exporter compresses once per collection.
  const r = await runLoad(url, { connections, seconds, headers: PROMETHEUS_SCRAPE_HEADERS });
  return { ...r, tool: 'autocannon', connections, seconds, bytes: identity.bytes, gzipBytes: gz.contentEncoding === 'gzip' ? gz.bytes : NaN, series };
}

/** What a fresh exporter at its default schedule does after start. */
export interface StartupResult {
  /** Milliseconds from spawning the exporter until each source first reported up (absent: never within the wait). */
  upMs: Record<string, number>;
  /** Until all five sources were up at once. */
  allUpMs: number;
  /** Until ops_shield_window_complete was 1 (the start-up recount done). */
  windowCompleteMs: number;
  /** ops_shield_recount_duration_seconds once complete: the recount from its first chunk to its last. */
  recountSeconds: number;
  /** Recount chunk statements run (pg_stat_statements) and their DB time, until the window was complete. */
  chunks: number;
  chunkDbMs: number;
  /** Security collections until the window was complete. */
  securityCollections: number;
  /** ops_exporter_index_missing: indexes checked and those reported missing or invalid. */
  indexesChecked: number;
  indexesMissing: string[];
}

/** A recount chunk: the window's seconds in [from, to) with no id bound (the future edge has one). */
export function isRecountChunk(query: string): boolean {
  return /FROM "ShieldEvent"/.test(query) && /floor\(extract\((epoch|\$\d+) FROM "timestamp"\)\)::float8 AS sec/.test(query) && !/"id" <=/.test(query) && !/CASE WHEN "timestamp"/.test(query);
}

/**
 * Starts an exporter at its default schedule and watches /metrics from the
 * moment it is spawned until the Shield window is complete and every source
 * is up (or `timeoutMs`). Hands the exporter back running.
 */
export async function measureStartup(ctx: PhaseContext, port: number, timeoutMs: number): Promise<{ exporter: ExporterProcess; startup: StartupResult }> {
  await ctx.stats.reset(READER_ROLE, ctx.db.name);
  const t0 = Date.now();
  const exporter = await startExporter({ databaseUrl: ctx.db.readerUrl, redisUrl: ctx.redisUrl, queuePrefix: ctx.queuePrefix, port, nodeOptions: ctx.exporterNodeOptions });
  const upMs: Record<string, number> = {};
  let allUpMs = NaN;
  let windowCompleteMs = NaN;
  let m: ParsedMetrics | undefined;
  try {
    while (Date.now() - t0 < timeoutMs) {
      m = await exporter.metrics();
      const at = Date.now() - t0;
      for (const s of [...ALL_SOURCES, 'indexes']) if (upMs[s] === undefined && m.value('ops_source_up', { source: s }) === 1) upMs[s] = at;
      if (Number.isNaN(allUpMs) && ALL_SOURCES.every((s) => upMs[s] !== undefined)) allUpMs = at;
      if (Number.isNaN(windowCompleteMs) && m.value('ops_shield_window_complete') === 1) windowCompleteMs = at;
      if (!Number.isNaN(allUpMs) && !Number.isNaN(windowCompleteMs) && upMs.indexes !== undefined) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (err) {
    await exporter.stop();
    throw err;
  }
  const chunkStatements = (await ctx.stats.read(READER_ROLE, ctx.db.name)).filter((s) => isRecountChunk(s.query));
  const index = m?.samples('ops_exporter_index_missing') ?? [];
  return {
    exporter,
    startup: {
      upMs,
      allUpMs,
      windowCompleteMs,
      recountSeconds: m?.value('ops_shield_recount_duration_seconds') ?? NaN,
      chunks: chunkStatements.reduce((n, s) => n + s.calls, 0),
      chunkDbMs: chunkStatements.reduce((n, s) => n + s.execMs + s.planMs, 0),
      securityCollections: m?.value('ops_source_collections_total', { source: 'security' }) ?? 0,
      indexesChecked: index.length,
      indexesMissing: index.filter((s) => s.value !== 0).map((s) => s.labels.index as string),
    },
  };
}

/** The flow phase: jobs finishing at a rate in PostgreSQL and in BullMQ. */
export interface FlowResult {
  /** Seconds jobs were finishing between the markers (from the start marker's resume to the end marker's pause). */
  seconds: number;
  /** ProvisioningJob rows finished between the markers (brute force) and the exporter's increments, by "type/status". */
  provisioning: { bruteForce: Record<string, number>; exporter: Record<string, number>; equal: boolean; lateCommits: number };
  /** BullMQ jobs the workers completed/failed between the markers and the exporter's increments, per queue. */
  queues: { workers: FlowCounts; exporter: FlowCounts; otherQueues: number; equal: boolean; queueNames: string[] };
  steady: SteadyResult;
  /** The exporter's own Redis commands over the window (SLOWLOG by client name), and the queue collections in it. */
  redis: { collections: number; own: ClientCommands; seconds: number };
}

function sumCounter(m: ParsedMetrics, name: string, key: (l: Record<string, string>) => string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of m.samples(name)) {
    const k = key(s.labels as Record<string, string>);
    if (k !== undefined) out[k] = (out[k] ?? 0) + s.value;
  }
  return out;
}

function diff(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const d = (b[k] ?? 0) - (a[k] ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

/** Equal counts, a missing key counting 0 (diff() leaves only the keys that differ). */
function sameCounts(a: Record<string, number>, b: Record<string, number>): boolean {
  return Object.keys(diff(a, b)).length === 0;
}

async function dbNow(url: string): Promise<string> {
  const [row] = await pgQuery<{ t: string }>(url, `SELECT (clock_timestamp() AT TIME ZONE 'UTC')::timestamp(3)::text AS t`);
  return row?.t as string;
}

/**
 * With finishing paused in both PostgreSQL and BullMQ (so nothing is in
 * flight), waits for `n` more provisioning and queue collections that began
 * after the pause and reads the exporter's counters.
 */
async function quietCounters(exporter: ExporterProcess, n: number): Promise<ParsedMetrics> {
  const c0 = collections(await exporter.metrics());
  for (;;) {
    const m = await exporter.metrics();
    const c = collections(m);
    if ((c.provisioning ?? 0) >= (c0.provisioning ?? 0) + n && (c.queues ?? 0) >= (c0.queues ?? 0) + n) return m;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The flow phase on a running exporter: the writer at `jobsPerSecond` and
 * the workers finishing as many BullMQ jobs; after a warm-up, a start marker
 * (finishing paused, counters read), a measured window (DB time as
 * measureSteady, the exporter's Redis commands from SLOWLOG), an end marker;
 * then the exporter's increments against a brute-force count.
 */
export async function measureFlow(ctx: PhaseContext, exporter: ExporterProcess, workers: FlowWorkers, jobsPerSecond: number, seconds: number, baseJobsPerSecond: number): Promise<FlowResult> {
  ctx.writer.setJobsPerSecond(jobsPerSecond);
  workers.resume();
  try {
    // Jobs take 15 s from creation to finishing: the finishing rate is reached after that.
    await new Promise((r) => setTimeout(r, 16_000));
    const mark = async () => {
      await Promise.all([ctx.writer.pauseFinishing(true), workers.pause()]);
      const pausedAt = Date.now();
      const at = await dbNow(ctx.db.adminUrl);
      const m = await quietCounters(exporter, 3);
      return { at, pausedAt, m, w: workers.snapshot(), late: ctx.writer.lateCommits };
    };
    const resume = async () => {
      await ctx.writer.pauseFinishing(false);
      workers.resume();
    };
    const start = await mark();
    const t0 = Date.now();
    await resume();
    // Let the burst of jobs held RUNNING during the marker go by.
    await new Promise((r) => setTimeout(r, 2000));
    await startClientLog(ctx.redis);
    const q0 = collections(await exporter.metrics()).queues ?? 0;
    const r0 = Date.now();
    const steady = await measureSteady(ctx, exporter, seconds);
    const q1 = collections(await exporter.metrics()).queues ?? 0;
    const own = await readClientLog(ctx.redis, EXPORTER_REDIS_CLIENT);
    const redisSeconds = (Date.now() - r0) / 1000;
    const end = await mark();
    // Finishing ran from the start marker's resume to the end marker's pause.
    const elapsed = (end.pausedAt - t0) / 1000;

    const key = (l: Record<string, string>) => `${l.type}/${l.status}`;
    const exporterJobs = diff(sumCounter(start.m, 'ops_provisioning_jobs_finished_total', key), sumCounter(end.m, 'ops_provisioning_jobs_finished_total', key));
    const rows = await pgQuery<{ k: string; n: number }>(
      ctx.db.adminUrl,
      `SELECT "type" || '/' || "status" AS k, count(*)::int AS n FROM "ProvisioningJob"
        WHERE "finishedAt" > $1::timestamp AND "finishedAt" <= $2::timestamp AND "status" IN ('COMPLETED', 'FAILED', 'CANCELLED')
        GROUP BY 1`,
      [start.at, end.at],
    );
    const brute: Record<string, number> = Object.fromEntries(rows.map((r) => [r.k, r.n]));
    const prefixKey = (l: Record<string, string>) => (l.prefix === ctx.queuePrefix ? l.queue : undefined);
    const exporterQueues: FlowCounts = {
      completed: diff(sumCounter(start.m, 'ops_queue_jobs_completed_total', prefixKey), sumCounter(end.m, 'ops_queue_jobs_completed_total', prefixKey)),
      failed: diff(sumCounter(start.m, 'ops_queue_jobs_failed_total', prefixKey), sumCounter(end.m, 'ops_queue_jobs_failed_total', prefixKey)),
    };
    const workerCounts: FlowCounts = { completed: diff(start.w.completed, end.w.completed), failed: diff(start.w.failed, end.w.failed) };
    const names = new Set(workers.queueNames);
    const otherQueues = [...Object.entries(exporterQueues.completed), ...Object.entries(exporterQueues.failed)].filter(([q]) => !names.has(q)).reduce((n, [, v]) => n + v, 0);
    return {
      seconds: elapsed,
      provisioning: { bruteForce: brute, exporter: exporterJobs, equal: sameCounts(brute, exporterJobs), lateCommits: end.late - start.late },
      queues: {
        workers: workerCounts,
        exporter: exporterQueues,
        otherQueues,
        equal: sameCounts(workerCounts.completed, exporterQueues.completed) && sameCounts(workerCounts.failed, exporterQueues.failed),
        queueNames: [...names],
      },
      steady,
      redis: { collections: q1 - q0, own, seconds: redisSeconds },
    };
  } finally {
    await workers.pause();
    ctx.writer.setJobsPerSecond(baseJobsPerSecond);
    await ctx.writer.pauseFinishing(false);
  }
}

/** The naive implementation's cost on the same data. */
export interface NaiveResult {
  runs: number;
  db: { execMs: number; planMs: number; calls: number; serverCpuMs: number; statements: StatementStat[] };
  /** Wall time per query, ms (median over runs). */
  wallMs: Map<string, number>;
  redis: { collections: number; delta: RedisDelta; sent: Map<string, number> };
  plans: Array<{ name: string; sql: string; plan: string }>;
  /** ShieldEvent rows in the last 24 h (the naive query's answer). */
  shieldWindowRows: number;
}

export async function measureNaive(ctx: PhaseContext, runs: number, redisRuns: number, queueNames: readonly string[]): Promise<NaiveResult> {
  const c = new pg.Client({ connectionString: ctx.db.naiveUrl });
  await c.connect();
  try {
    await ctx.stats.reset(NAIVE_ROLE, ctx.db.name);
    const cpu = await markServerCpu(ctx.adminUrl, ctx.pgDataDir, NAIVE_ROLE, ctx.db.name);
    const walls = new Map<string, number[]>();
    for (let i = 0; i < runs; i++) {
      for (const [k, v] of await naiveSqlCollection(c)) (walls.get(k) ?? walls.set(k, []).get(k))?.push(v);
      ctx.log(`  naive SQL collection ${i + 1}/${runs}`);
    }
    const statements = await ctx.stats.read(NAIVE_ROLE, ctx.db.name);
    const serverCpuMs = (await serverCpuSince(cpu, ctx.adminUrl, ctx.pgDataDir, NAIVE_ROLE, ctx.db.name)) / runs;
    const t = totals(statements);
    const window = await c.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM "ShieldEvent" WHERE "timestamp" >= (now() AT TIME ZONE 'UTC') - interval '24 hours' AND "timestamp" <= (now() AT TIME ZONE 'UTC')`,
    );
    const plans = await naivePlans(c);
    const wallMs = new Map([...walls].map(([k, v]) => [k, median(v)]));

    ctx.writer.pauseBull(true);
    const naive = await NaiveQueues.open(ctx.redisUrl, ctx.queuePrefix, queueNames);
    try {
      await naive.collect();
      naive.sent.clear();
      const s0 = await snapshot(ctx.redis);
      for (let i = 0; i < redisRuns; i++) await naive.collect();
      const s1 = await snapshot(ctx.redis);
      return {
        runs,
        db: { execMs: t.execMs / runs, planMs: t.planMs / runs, calls: t.calls / runs, serverCpuMs, statements },
        wallMs,
        redis: { collections: redisRuns, delta: delta(s0, s1), sent: new Map(naive.sent) },
        plans,
        shieldWindowRows: window.rows[0]?.n ?? 0,
      };
    } finally {
      await naive.close();
      ctx.writer.pauseBull(false);
    }
  } finally {
    await c.end();
  }
}

/** Redis time of the commands a client sent itself, per collection, µs. */
export function topLevelUsec(d: RedisDelta, names: readonly string[], collectionsCount: number): { calls: number; usec: number } {
  const s = sumOf(d, names);
  return { calls: s.calls / collectionsCount, usec: s.usec / collectionsCount };
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}
