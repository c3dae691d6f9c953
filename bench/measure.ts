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
import { delta, snapshot, sumOf, type RedisDelta } from './redis-stats.js';
import { freePort } from '../test/helpers/ports.js';
import type { BenchDatabase } from './datasets.js';
import { NAIVE_ROLE, READER_ROLE } from './datasets.js';
import type { SteadyWriter } from './writer.js';

/** Commands the exporter sends itself (the rest in commandstats run inside its script). */
export const EXPORTER_REDIS_COMMANDS = ['evalsha', 'eval', 'client|list', 'scan', 'script|load'] as const;

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
}

/** Reads Redis's counters around `seconds` of queue collections, with the writer's BullMQ adds paused. */
export async function measureRedis(ctx: PhaseContext, exporter: ExporterProcess, seconds: number): Promise<RedisResult> {
  ctx.writer.pauseBull(true);
  try {
    await new Promise((r) => setTimeout(r, 1000));
    const c0 = collections(await exporter.metrics()).queues ?? 0;
    const s0 = await snapshot(ctx.redis);
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const s1 = await snapshot(ctx.redis);
    const c1 = collections(await exporter.metrics()).queues ?? 0;
    return { collections: c1 - c0, delta: delta(s0, s1) };
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
  bytes: number;
  series: number;
}

export async function measureScrapes(exporter: ExporterProcess, connections: number, seconds: number): Promise<ScrapeResult> {
  const body = await (await fetch(`${exporter.url}/metrics`)).text();
  const series = body.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
  const url = `${exporter.url}/metrics`;
  const r = await runLoad(url, { connections, seconds });
  return { ...r, tool: 'autocannon', connections, seconds, bytes: Buffer.byteLength(body), series };
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
