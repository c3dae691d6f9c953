/**
 * `npm run bench -- --scale small|large`: the exporter's collection cost
 * against the naive implementation of the same overview, on a generated
 * platform, in the bench's own PostgreSQL cluster and Redis server (under
 * bench/.cache/, reused between runs). Prints a markdown report on stdout
 * (progress goes to stderr) and keeps a copy in bench/.cache/results/.
 *
 * Phases, for the scale's main database:
 *   1. first collection: an exporter that collects once (full recount);
 *   2. steady state: an exporter collecting every --interval s while the
 *      platform writes; its first collections are logged with their plans
 *      (auto_explain), then a --window s window is measured
 *      (pg_stat_statements), then Redis's counters for a window, then the
 *      exactness check, then /metrics under concurrent scrapers;
 *   3. the naive implementation on the same data;
 * and phases 1 and 2 (database only) again on the history database, which
 * holds a tenth of the shield events.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { prepareRecentJobs, SCALES, type ScaleName } from './dataset.js';
import { applyReaderRole, ensureDatabases, ensureQueues, type BenchDatabase } from './datasets.js';
import { StatementStats } from './db-stats.js';
import { freePort } from '../test/helpers/ports.js';
import { waitForCollections, type ExporterProcess } from './exporter-process.js';
import { checkExactness, EXPORTER_REDIS_COMMANDS, measureCold, measureFlow, measureNaive, measureRedis, measureScrapes, measureStartup, measureSteady, startSteadyWithPlans, type PhaseContext, type ScrapeResult } from './measure.js';
import { FlowWorkers } from './queue-workers.js';
import { openWorkerConnections } from './queue-dataset.js';
import { describe as describeRedis } from './redis-stats.js';
import { renderReport, type BenchResults, type DbRun } from './report.js';
import { CACHE_DIR, pgQuery, startPg, startRedis, type PgCluster, type RedisServer } from './services.js';
import { removeWrites, SteadyWriter, type WriterStats } from './writer.js';

const USAGE = `usage: npm run bench -- [--scale small|large|xlarge] [options]
  --scale S            dataset size: small (CI, ~2 min), large (platform-schema.md's large platform)
                       or xlarge (issue 12's ten times the platform; by hand, not in CI)
  --interval S         every source's collection interval during the steady state, seconds (default 1)
  --window S           length of each measured window, seconds (default 20)
  --scrape-seconds S   /metrics load duration (default 20)
  --connections N      concurrent scrapers (default 10)
  --naive-runs N       naive SQL collections to average (default 5 small, 3 large and xlarge)
  --flow-rate N        jobs finishing a second in the flow phase, in PostgreSQL and in BullMQ each (default 50)
  --baseline FILE      a previous run's JSON (bench/.cache/results/*.json): its steady DB time beside this one's
  --no-history         skip the history comparison database
  --regenerate         generate the dataset even if a cached one is fresh
  --max-age-hours H    regenerate a cached dataset older than this (default 12)
  --exporter-node-options="FLAGS"
                       node flags for the exporter process (with "=": --exporter-node-options="--max-old-space-size=64")
  --reader-setting NAME=VALUE
                       a setting for the exporter's role on top of sql/readonly-role.sql
                       (e.g. jit=off), to measure a proposed change; repeatable
  --out FILE           also write the report to FILE`;

const { values } = parseArgs({
  options: {
    scale: { type: 'string', default: 'small' },
    interval: { type: 'string', default: '1' },
    window: { type: 'string', default: '20' },
    'scrape-seconds': { type: 'string', default: '20' },
    connections: { type: 'string', default: '10' },
    'naive-runs': { type: 'string' },
    'flow-rate': { type: 'string', default: '50' },
    baseline: { type: 'string' },
    'no-history': { type: 'boolean', default: false },
    regenerate: { type: 'boolean', default: false },
    'max-age-hours': { type: 'string', default: '12' },
    out: { type: 'string' },
    'exporter-node-options': { type: 'string', default: '' },
    'reader-setting': { type: 'string', multiple: true, default: [] },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const scaleName = values.scale as ScaleName;
if (scaleName !== 'small' && scaleName !== 'large' && scaleName !== 'xlarge') {
  console.error(`unknown scale "${values.scale}"\n${USAGE}`);
  process.exit(2);
}
const spec = SCALES[scaleName];
const intervalSeconds = Number(values.interval);
const windowSeconds = Number(values.window);
const scrapeSeconds = Number(values['scrape-seconds']);
const connections = Number(values.connections);
const naiveRuns = Number(values['naive-runs'] ?? (scaleName === 'small' ? 5 : 3));
const maxAgeHours = Number(values['max-age-hours']);
const flowRate = Number(values['flow-rate']);
for (const [k, v] of Object.entries({ intervalSeconds, windowSeconds, scrapeSeconds, connections, naiveRuns, maxAgeHours, flowRate })) {
  if (!Number.isFinite(v) || v <= 0) {
    console.error(`${k} must be a positive number\n${USAGE}`);
    process.exit(2);
  }
}

const exporterNodeOptions = (values['exporter-node-options'] ?? '').split(/\s+/).filter((f) => f !== '');
const readerSettings = values['reader-setting'] ?? [];

const t0 = Date.now();
/** The machine's 1-minute load average at each progress line: other work on the machine skews timings. */
const loads: number[] = [];
const log = (s: string) => {
  const load = Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  if (Number.isFinite(load)) loads.push(load);
  process.stderr.write(`[bench ${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s, load ${load.toFixed(1)}] ${s}\n`);
};

let pgc: PgCluster | undefined;
let redisServer: RedisServer | undefined;
const cleanups: Array<() => Promise<unknown>> = [];
let stopping = false;
async function shutdown(): Promise<void> {
  if (stopping) return;
  stopping = true;
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await redisServer?.stop().catch(() => undefined);
  pgc?.stop();
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    log(`${sig}: stopping`);
    void shutdown().finally(() => process.exit(130));
  });
}

function environment(pgVersion: string, redisVersion: string): BenchResults['environment'] {
  return { cpu: (cpus()[0]?.model ?? 'unknown CPU').replace(/\s+/g, ' ').trim(), cores: cpus().length, postgres: pgVersion, redis: redisVersion, node: process.version };
}

/** Provisioning jobs the writer creates a second outside the flow phase. */
const BASE_JOBS_PER_SECOND = 3;
/** Queues the flow phase's workers take jobs from (the rate is shared among them). */
const FLOW_QUEUES = 5;

/** What only the main database is measured for. */
interface MainMeasurements {
  plans: BenchResults['plans'];
  redis: BenchResults['redis'];
  exactness: BenchResults['exactness'];
  scrape: ScrapeResult;
  scrapeStress: ScrapeResult;
  peakRssBytes: number;
  naive: BenchResults['naive'];
  startup: BenchResults['startup'];
  flow: BenchResults['flow'];
}

/**
 * Measures one database while the platform writes: the first collection and
 * the steady state; with `full`, also Redis, exactness, /metrics under load
 * and the naive implementation.
 */
async function measureDatabase(
  ctxBase: Omit<PhaseContext, 'db' | 'writer'>,
  db: BenchDatabase,
  queueNames: string[],
  full: boolean,
): Promise<{ run: DbRun; writer: WriterStats; main?: MainMeasurements }> {
  const removed = await removeWrites(db.adminUrl, db.manifest.shieldEvents);
  if (removed.events + removed.jobs > 0) log(`removed ${removed.events} events and ${removed.jobs} jobs left by an earlier run`);
  const prep = new pg.Client({ connectionString: db.adminUrl });
  await prep.connect();
  try {
    await prepareRecentJobs(prep);
  } finally {
    await prep.end();
  }
  const writer = new SteadyWriter({ adminUrl: db.adminUrl, redisUrl: ctxBase.redisUrl, queuePrefix: ctxBase.queuePrefix, queueNames, eventsPerSecond: 115.74, jobsPerSecond: BASE_JOBS_PER_SECOND });
  const ctx: PhaseContext = { ...ctxBase, db, writer };
  await writer.start();
  cleanups.push(() => writer.stop());
  let run: DbRun;
  let main: MainMeasurements | undefined;
  try {
    await new Promise((r) => setTimeout(r, 2000));
    log(`${db.name}: first collection (exporter collecting once)`);
    const cold = await measureCold(ctx);
    log(`${db.name}: first collection took ${Object.entries(cold.wallMs).map(([k, v]) => `${k} ${v.toFixed(0)} ms`).join(', ')}`);
    if (cold.errors.length > 0) log(`exporter errors: ${cold.errors.slice(0, 3).join(' | ')}`);
    log(`${db.name}: steady state, collections every ${intervalSeconds} s; capturing plans`);
    const { exporter, plans } = await startSteadyWithPlans(ctx, intervalSeconds, 3);
    cleanups.push(() => exporter.stop());
    try {
      await new Promise((r) => setTimeout(r, 3000));
      // The start-up recount spans collections on a big window (about 75 s at
      // xlarge): a window measured while it runs is not the steady state.
      const recountMs = await waitForWindowComplete(exporter, 600_000);
      if (recountMs > 0) log(`${db.name}: waited ${(recountMs / 1000).toFixed(0)} s more for the start-up recount to finish`);
      log(`${db.name}: measuring ${windowSeconds} s of steady state`);
      const steady = await measureSteady(ctx, exporter, windowSeconds);
      log(`${db.name}: ${(steady.db.fullExecMs + steady.db.fullPlanMs).toFixed(2)} ms DB per full collection`);
      run = { shieldEvents: db.manifest.shieldEvents, shieldWindow: db.manifest.shieldWindow, cold, steady };
      if (full) {
        log(`${db.name}: Redis counters over ${Math.max(10, windowSeconds / 2)} s`);
        const redis = await measureRedis(ctx, exporter, Math.max(10, windowSeconds / 2));
        log(`${db.name}: exactness check`);
        const exactness = await checkExactness(ctx, exporter);
        log(`${db.name}: flow, ${flowRate} jobs/s finishing in PostgreSQL and in BullMQ, ${windowSeconds} s measured`);
        const workers = await FlowWorkers.open({ redisUrl: ctx.redisUrl, prefix: ctx.queuePrefix, queueNames: queueNames.slice(0, FLOW_QUEUES), jobsPerSecond: flowRate });
        cleanups.push(() => workers.close());
        let flow: BenchResults['flow'];
        try {
          flow = await measureFlow(ctx, exporter, workers, flowRate, windowSeconds, BASE_JOBS_PER_SECOND);
        } finally {
          await workers.close();
        }
        log(
          `${db.name}: flow: ${(flow.steady.db.fullExecMs + flow.steady.db.fullPlanMs).toFixed(2)} ms DB per full collection, ` +
            `${(flow.redis.own.usec / Math.max(1, flow.redis.collections) / 1000).toFixed(2)} ms Redis per queue collection; ` +
            `provisioning ${flow.provisioning.equal ? 'equal' : 'DIFFERENT'}, queues ${flow.queues.equal ? 'equal' : 'DIFFERENT'}`,
        );
        log(`${db.name}: /metrics under ${connections} scrapers for ${scrapeSeconds} s, collections every ${intervalSeconds} s`);
        const scrapeStress = await measureScrapes(exporter, connections, scrapeSeconds);
        let peakRssBytes = Math.max(exporter.peakRssBytes(), cold.peakRssBytes);
        await exporter.stop();
        log(`${db.name}: start-up at the default schedule: sources up, the Shield window's recount, the index check`);
        const { exporter: defaults, startup } = await measureStartup(ctx, await freePort(), 300_000);
        cleanups.push(() => defaults.stop());
        log(`${db.name}: all sources up after ${(startup.allUpMs / 1000).toFixed(1)} s, window complete after ${(startup.windowCompleteMs / 1000).toFixed(1)} s (${startup.chunks} chunks)`);
        log(`${db.name}: /metrics under ${connections} scrapers for ${scrapeSeconds} s, default schedule`);
        let scrape: ScrapeResult;
        try {
          await waitForCollections(defaults, 1, 300_000);
          await new Promise((r) => setTimeout(r, 2000));
          scrape = await measureScrapes(defaults, connections, scrapeSeconds);
          peakRssBytes = Math.max(peakRssBytes, defaults.peakRssBytes());
        } finally {
          await defaults.stop();
        }
        log(`${db.name}: naive implementation, ${naiveRuns} collections`);
        const naive = await measureNaive(ctx, naiveRuns, 10, queueNames);
        main = { plans, redis, exactness, scrape, scrapeStress, peakRssBytes, naive, startup, flow };
      }
    } finally {
      await exporter.stop();
    }
  } finally {
    await writer.stop();
    await removeWrites(db.adminUrl, db.manifest.shieldEvents);
  }
  return { run, writer: writer.stats(), main };
}

/** Waits until the Shield window is complete (the start-up recount done); returns how long that took, ms. */
async function waitForWindowComplete(exporter: ExporterProcess, timeoutMs: number): Promise<number> {
  const t = Date.now();
  for (;;) {
    const m = await exporter.metrics();
    if (m.value('ops_shield_window_complete') === 1 && m.value('ops_shield_recount_progress_ratio') === 1) return Date.now() - t;
    if (Date.now() - t > timeoutMs) throw new Error(`the Shield window was not complete after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The steady DB time of a previous run (its JSON), for a comparison across scales. */
function readBaseline(file: string): BenchResults['baseline'] {
  const b = JSON.parse(readFileSync(file, 'utf8')) as { spec: { name: string; shieldEvents: number; provisioningJobs: number }; main: { steady: { db: { fullExecMs: number; fullPlanMs: number } } }; startedAt: string };
  return { file: path.basename(file), scale: b.spec.name, shieldEvents: b.spec.shieldEvents, provisioningJobs: b.spec.provisioningJobs, steadyMs: b.main.steady.db.fullExecMs + b.main.steady.db.fullPlanMs, startedAt: b.startedAt };
}

try {
  log(`scale ${scaleName}`);
  pgc = await startPg(log);
  redisServer = await startRedis(scaleName, log);
  const datasets = await ensureDatabases(pgc, spec, { regenerate: values.regenerate, maxAgeHours, log });
  await applyReaderRole(pgc, [datasets.main.name, datasets.history.name], readerSettings);
  const queues = await ensureQueues(redisServer, spec, { regenerate: values.regenerate, log });
  const workers = await openWorkerConnections(redisServer.url, queues.prefix, spec);
  cleanups.push(async () => workers.forEach((w) => w.disconnect()));
  const stats = await StatementStats.open(pgc.url('postgres'));
  cleanups.push(() => stats.close());
  const redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  cleanups.push(async () => redis.disconnect());
  const pgVersion = (await pgQuery<{ v: string }>(pgc.url('postgres'), `SELECT current_setting('server_version') AS v`))[0]?.v ?? '?';
  const redisVersion = /redis_version:(\S+)/.exec((await redis.info('server')) as string)?.[1] ?? '?';
  const liveJobs = (await pgQuery<{ n: number }>(datasets.main.adminUrl, `SELECT count(*)::int AS n FROM "ProvisioningJob" WHERE "status" NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')`))[0]?.n ?? 0;

  const base = { redisUrl: redisServer.url, redis, queuePrefix: queues.prefix, stats, pgLogFile: pgc.logFile, pgDataDir: pgc.dataDir, adminUrl: pgc.url('postgres'), exporterNodeOptions, log };
  const measured = await measureDatabase(base, datasets.main, queues.names, true);
  const main = measured.main;
  if (!main) throw new Error('main database measurements incomplete');
  const history = values['no-history'] ? undefined : (await measureDatabase(base, datasets.history, queues.names, false)).run;

  const results: BenchResults = {
    command: `npm run bench -- --scale ${scaleName}${intervalSeconds !== 1 ? ` --interval ${intervalSeconds}` : ''}${windowSeconds !== 20 ? ` --window ${windowSeconds}` : ''}${flowRate !== 50 ? ` --flow-rate ${flowRate}` : ''}${values.baseline ? ` --baseline ${path.basename(values.baseline)}` : ''}${exporterNodeOptions.length ? ` --exporter-node-options="${exporterNodeOptions.join(' ')}"` : ''}${readerSettings.map((r) => ` --reader-setting ${r}`).join('')}`,
    startedAt: new Date(t0),
    environment: environment(pgVersion, redisVersion),
    spec,
    dataset: {
      reused: datasets.reused,
      loadSeconds: datasets.loadSeconds,
      queueLoadSeconds: queues.loadSeconds,
      queueReused: queues.reused,
      ageMinutes: (Date.now() - datasets.main.manifest.anchorMs) / 60_000,
      liveJobs,
      redisKeys: queues.keys,
    },
    intervalSeconds,
    windowSeconds,
    writer: measured.writer,
    jobRates: { base: BASE_JOBS_PER_SECOND, flow: flowRate },
    main: measured.run,
    history,
    plans: main.plans,
    redis: main.redis,
    coldRedisCommands: describeRedis(measured.run.cold.redis, EXPORTER_REDIS_COMMANDS, 1),
    scrape: main.scrape,
    scrapeStress: main.scrapeStress,
    peakRssBytes: main.peakRssBytes,
    exactness: main.exactness,
    naive: main.naive,
    startup: main.startup,
    flow: main.flow,
    baseline: values.baseline ? readBaseline(values.baseline) : undefined,
    totalSeconds: (Date.now() - t0) / 1000,
    loadAverage: { min: Math.min(...loads), max: Math.max(...loads) },
  };
  const report = renderReport(results);
  const dir = path.join(CACHE_DIR, 'results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${scaleName}-${new Date(t0).toISOString().replace(/[:.]/g, '-')}.md`);
  writeFileSync(file, `${report}\n`);
  writeFileSync(file.replace(/\.md$/, '.json'), JSON.stringify(results, (_, v: unknown) => (v instanceof Map ? Object.fromEntries(v) : v), 2));
  if (values.out) writeFileSync(values.out, `${report}\n`);
  process.stdout.write(`${report}\n`);
  log(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s; report kept in ${path.relative(process.cwd(), file)}`);
} catch (err) {
  log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exitCode = 1;
} finally {
  await shutdown();
}
