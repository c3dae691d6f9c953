/**
 * Load test of the exporter process: autocannon (bench/http-load.ts) on
 * loopback against /metrics and the
 * JSON API while the sources collect (every 5 s), with a seeded database and
 * BullMQ queues; reports requests a second, p50/p99 latency, errors and the
 * process's RSS (first vs last 10 s of each run).
 *
 *   npm run load                      # 60 s per run, 10 and 100 connections
 *   LOAD_SECONDS=20 npm run load      # shorter
 *
 * Needs PostgreSQL as the tests do (TEST_PG_ADMIN_URL) and redis-server on
 * PATH (a Redis of its own). test/load.test.ts runs a short version.
 */
import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { Queue } from 'bullmq';
import { runLoad, type LoadResult } from '../bench/http-load.js';
import { makeToken } from '../test/helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { startExporterProcess, type ExporterProcess } from '../test/helpers/exporter-process.js';
import { createTestRedis, type TestRedis } from '../test/helpers/redis.js';

/** How much data the load runs against (a mid-size platform). */
export interface LoadDataset {
  nodes: number;
  queues: number;
  jobsPerQueue: number;
  provisioningJobs: number;
  shieldEvents: number;
}

export const DEFAULT_DATASET: LoadDataset = { nodes: 500, queues: 30, jobsPerQueue: 200, provisioningJobs: 50_000, shieldEvents: 200_000 };

/** Seeds `db` and `redis` with generate_series and BullMQ itself. */
export async function seed(db: TestDatabase, redis: TestRedis, d: LoadDataset): Promise<void> {
  await db.admin.query(`
    INSERT INTO "CoreNode" (id, hostname, role, status, metrics, "lastMetricsAt", "updatedAt")
      SELECT 'n' || i, 'NODE-' || i, (ARRAY['WEB','MAIL','DNS','CLOUD'])[1 + i % 4], (ARRAY['ONLINE','DEGRADED','OFFLINE'])[1 + i % 3],
             jsonb_build_object('cpuPercent', i % 100, 'ramPercent', (i * 7) % 100, 'diskPercent', (i * 13) % 100), now(), now()
        FROM generate_series(1, ${d.nodes}) i;
    INSERT INTO "ProvisioningJob" (id, type, action, "resourceType", status, "errorMessage", "createdAt", "updatedAt")
      SELECT 'j' || i, (ARRAY['hosting','dns','mail','ssl','backup','cloudpod'])[1 + i % 6], 'action.' || (i % 40), 'TYPE_' || (i % 8),
             (ARRAY['COMPLETED','COMPLETED','COMPLETED','FAILED','PENDING','RUNNING'])[1 + i % 6],
             CASE WHEN i % 6 = 3 THEN 'failed: token=abc' || i END, now() - (i % 2880) * interval '1 minute', now()
        FROM generate_series(1, ${d.provisioningJobs}) i;
    INSERT INTO "ShieldEvent" ("timestamp", decision)
      SELECT now() - (i % 86000) * interval '1 second', (ARRAY['ALLOW','ALLOW','ALLOW','BLOCK','CHALLENGE','RATE_LIMITED'])[1 + i % 6]
        FROM generate_series(1, ${d.shieldEvents}) i;
    INSERT INTO "ShieldPolicy" (id, name, mode, "updatedAt")
      SELECT 'p' || i, 'policy ' || i, (ARRAY['ENFORCE','MONITOR','DISABLED'])[1 + i % 3], now() FROM generate_series(1, 2000) i;
    INSERT INTO "GuardianFinding" (id, severity, status, title)
      SELECT 'f' || i, (ARRAY['CRITICAL','HIGH','MEDIUM','LOW'])[1 + i % 4], (ARRAY['OPEN','RESOLVED'])[1 + i % 2], 't' FROM generate_series(1, 20000) i;
    INSERT INTO "Backup" (id, "resourceType", status, "startedAt", "completedAt")
      SELECT 'b' || i, (ARRAY['DB_CORE','MPANEL_CORE','CLOUD_POD'])[1 + i % 3], (ARRAY['COMPLETED','FAILED'])[1 + i % 2],
             now() - i * interval '1 hour', now() - i * interval '1 hour' + interval '5 minutes' FROM generate_series(1, 10000) i;
    ANALYZE;`);
  const url = new URL(redis.url);
  for (let q = 0; q < d.queues; q++) {
    const queue = new Queue(`queue-${q}`, { connection: { host: url.hostname, port: Number(url.port || 6379) }, prefix: redis.prefix });
    await queue.addBulk(Array.from({ length: d.jobsPerQueue }, (_, i) => ({ name: 'job', data: { i }, opts: { delay: i % 5 === 0 ? 60_000 : 0 } })));
    await queue.close();
  }
}

/** The exporter in a child process, with the API token the load runs send. */
export interface LoadExporter {
  process: ExporterProcess;
  port: number;
  authorization: string;
  stop(): Promise<number | null>;
}

/** Starts the exporter on `db` and `redis`: the `npm start` build when `built`, else the sources through tsx. */
export async function startExporter(db: TestDatabase, redis: TestRedis, env: Record<string, string> = {}, built = false): Promise<LoadExporter> {
  const token = makeToken('load', ['ops:overview:read']);
  const p = await startExporterProcess({
    run: built ? 'built' : 'source',
    env: {
      DATABASE_URL: db.readerUrl,
      REDIS_URL: redis.url,
      OPS_QUEUE_PREFIXES: redis.prefix,
      OPS_API_TOKENS: JSON.stringify([token.entry]),
      OPS_API_RATE_LIMIT_PER_MINUTE: '1000000',
      OPS_COLLECT_INTERVAL_SECONDS: '5',
      OPS_QUEUE_DISCOVERY_INTERVAL_SECONDS: '10',
      LOG_LEVEL: 'warn',
      ...env,
    },
  });
  return { process: p, port: p.port, authorization: `Bearer ${token.token}`, stop: () => p.stop() };
}

/** One load run: the load generator's figures plus RSS sampled every second. */
export interface LoadRun extends LoadResult {
  label: string;
  connections: number;
  seconds: number;
  /** Mean RSS over the first and the last 10 s (or third, for short runs), MiB. */
  rssFirstMiB: number;
  rssLastMiB: number;
}

export async function loadRun(e: LoadExporter, label: string, urlPath: string, connections: number, seconds: number): Promise<LoadRun> {
  const rss: number[] = [];
  const sampler = setInterval(() => rss.push(e.process.rssBytes() / 2 ** 20), 1_000);
  try {
    const headers: Record<string, string> = urlPath.startsWith('/api/') ? { Authorization: e.authorization } : {};
    const result = await runLoad(`http://127.0.0.1:${e.port}${urlPath}`, { connections, seconds, headers });
    const window = Math.max(1, Math.min(10, Math.floor(rss.length / 3)));
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    return { ...result, label, connections, seconds, rssFirstMiB: mean(rss.slice(0, window)), rssLastMiB: mean(rss.slice(-window)) };
  } finally {
    clearInterval(sampler);
  }
}

/** A Markdown table of runs, as the README shows them. */
export function table(runs: readonly LoadRun[]): string {
  const rows = runs.map(
    (r) =>
      `| ${r.label} | ${r.connections} | ${r.seconds} s | ${r.requests} | ${r.requestsPerSecond.toFixed(0)} | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} | ${r.maxMs.toFixed(1)} | ${r.errors} | ${r.rssFirstMiB.toFixed(0)} → ${r.rssLastMiB.toFixed(0)} |`,
  );
  return [
    '| endpoint | connections | duration | requests | req/s | p50 ms | p99 ms | max ms | errors | RSS MiB (first → last 10 s) |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

/** RSS growth allowed between the first and the last 10 s of a run, MiB. */
export const RSS_GROWTH_BOUND_MIB = 50;

async function main(): Promise<void> {
  const seconds = Number(process.env.LOAD_SECONDS ?? 60);
  const db = await createTestDatabase('load');
  const redis = await createTestRedis('load');
  let e: LoadExporter | undefined;
  try {
    console.error(`seeding ${JSON.stringify(DEFAULT_DATASET)} ...`);
    await seed(db, redis, DEFAULT_DATASET);
    // The code `npm start` runs (built first).
    e = await startExporter(db, redis, {}, true);
    const runs: LoadRun[] = [];
    for (const [label, url] of [['/metrics', '/metrics'], ['/api/ops/overview', '/api/ops/overview']] as const) {
      for (const connections of [10, 100]) {
        console.error(`${label} ${connections} connections ${seconds} s ...`);
        runs.push(await loadRun(e, label, url, connections, seconds));
      }
    }
    console.log(table(runs));
    const exit = await e.stop();
    e = undefined;
    console.log(`\nexporter exited ${exit} on SIGTERM; node ${process.version}, ${spawnSync('nproc').stdout.toString().trim()} CPUs`);
    const failed = runs.filter((r) => r.errors > 0 || r.rssLastMiB - r.rssFirstMiB > RSS_GROWTH_BOUND_MIB);
    if (failed.length > 0) {
      console.error(`FAILED: ${failed.map((r) => `${r.label} c=${r.connections}`).join(', ')} (errors, or RSS grew more than ${RSS_GROWTH_BOUND_MIB} MiB)`);
      process.exitCode = 1;
    }
  } finally {
    await e?.stop();
    await db.drop();
    await redis.cleanup();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
