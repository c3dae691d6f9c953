/**
 * End to end, the dashboards: while the platform simulator runs (its own
 * demo-named database and Redis prefix, real BullMQ workers), the exporter
 * collects it, a real Prometheus 2.42 scrapes the exporter and evaluates the
 * bundle's rules, and every query of every panel of grafana/dashboards/*.json
 * returns data from that Prometheus, with the values the platform's state
 * implies.
 *
 * Time is compressed as in e2e-alerts.test.ts: every duration of
 * prometheus.yml, the rule files and alertmanager.yml is divided by 60
 * (scrapes and evaluations every 500 ms, `for: 5m` is 5 s, `[5m]` is `[5s]`;
 * see helpers/e2e-stack.ts); expressions, thresholds, labels and routes are
 * unchanged. Grafana's variables are given the values Grafana would compute
 * for that scrape interval: `$__interval` 1s, `$__rate_interval` 2s
 * (max(interval + scrape, 4 × scrape)), `$__range` the time since Prometheus
 * started, `$queue` a real queue (`mail`, one of the values the
 * dashboard's own `label_values` query offers), and `$platform` `.*` (the
 * hidden variable's "All": one platform, no platform label).
 *
 * The exporter dashboard's process panels read prom-client's default
 * metrics (monitoring/process-metrics.ts), which the exporter's /metrics
 * serves: they must have data like every other panel.
 *
 * The flow panels (issue 13: queue throughput, failure ratio, wait and
 * processing times, the provisioning SLO row) read counters and histograms
 * that another part of issue 13 adds to the exporter: each query must have
 * data when the exporter serves every flow family it reads (directly or
 * through a recording rule), and be empty when it serves none of them yet
 * (never data made up from something else).
 *
 * No panel is exempt. Three are empty on a healthy simulator (checked: the
 * rest all have data without any scenario), and get their data from the
 * scenario that produces their condition:
 * - "Firing alerts": node-offline (DB-CORE), so OpsCoreNodeDown fires;
 * - "Oldest waiting job" ($queue = mail): workers-down on mail, a job waits;
 * - "Backups per system" E (last failure): backup-failing on MPANEL_CORE
 *   (the seeded history may hold no failed backup).
 * Others make panels that show zeros on a healthy platform show what they
 * are for: job-stuck (cloudpod) for "Stuck jobs by type" and "Stuck
 * provisioning jobs", critical-finding for "Open findings", block-burst for
 * "Shield blocks", failure-burst (ssl) for "Failure hotspots (24 h)" (which
 * otherwise shows the seeded history's failures), node-offline for "Core
 * nodes" C, and workers-down for "Workers" of mail at 0.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgDemoDb } from '../src/demo/demo-db.js';
import { createSimulator, type Simulator } from '../src/demo/simulator.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { captureLogger } from './helpers/demo-wait.js';
import { compressDuration, parseDuration, startE2EStack, type E2EStack, type PromSample } from './helpers/e2e-stack.js';
import { PROCESS_METRIC_LIST } from '../monitoring/process-metrics.js';
import { SLO_NAMES, SLO_WINDOWS, sloRecord } from '../monitoring/rules.js';
import { METRICS } from '../src/catalog.js';
import { allPanels, loadDashboards } from './helpers/monitoring-promql.js';
import { shouldRunWith } from './helpers/monitoring-tools.js';
import { createTestRedis, type TestRedis } from './helpers/redis.js';

/** The queue the `$queue` variable is set to: the one whose workers the test stops. */
const QUEUE = 'mail';
/** The bundle's scrape interval, compressed. */
const SCRAPE = compressDuration('30s');
/** How long every panel has to show its data. */
const DATA_DEADLINE_MS = 90_000;

/** One panel query, ready to run. */
interface PanelQuery {
  where: string;
  title: string;
  refId: string;
  expr: string;
}

/** Grafana's variables replaced as the header says; throws on one it does not know. */
function substitute(expr: string, rangeSeconds: number): string {
  const scrapeMs = parseDuration(SCRAPE);
  const intervalMs = 2 * scrapeMs;
  const out = expr
    .replaceAll('$__rate_interval', `${Math.max(intervalMs + scrapeMs, 4 * scrapeMs) / 1000}s`)
    .replaceAll('$__interval', `${intervalMs / 1000}s`)
    .replaceAll('$__range', `${Math.ceil(rangeSeconds)}s`)
    // The scenario's queue has no worker, so it finishes no job: its wait and
    // processing histograms have no observation and no series (a histogram
    // appears with its first observation, as prom-client's do). Their panels
    // are checked over every queue.
    .replace(/\$\{queue\}|\$queue\b/g, /_seconds_bucket\{/.test(expr) ? '.*' : QUEUE)
    // One platform, no platform label: the hidden variable's "All".
    .replace(/\$\{platform\}|\$platform\b/g, '.*');
  if (out.includes('$')) throw new Error(`unknown Grafana variable in ${JSON.stringify(expr)}`);
  return out;
}

const value = (s: PromSample | undefined) => (s ? Number(s.value[1]) : NaN);

/** The flow families (issue 13) the dashboards read, by name. */
const FLOW_FAMILIES: string[] = [
  METRICS.queueJobsCompleted,
  METRICS.queueJobsFailed,
  METRICS.queueJobWait,
  METRICS.queueJobProcessing,
  METRICS.provisioningJobsFinished,
  METRICS.provisioningJobDuration,
].map((m) => m.name);
/** The SLO recording rules and the family each reads. */
const SLO_RECORDS = SLO_NAMES.flatMap((slo) =>
  SLO_WINDOWS.map((w) => [sloRecord(slo, w), slo === 'success' ? METRICS.provisioningJobsFinished.name : METRICS.provisioningJobDuration.name] as const),
);

/** The flow families a query reads, directly or through an SLO recording rule. */
function flowFamilies(expr: string): string[] {
  const direct = FLOW_FAMILIES.filter((name) => new RegExp(`\\b${name}(_bucket|_count|_sum)?\\b`).test(expr));
  const recorded = SLO_RECORDS.filter(([record]) => expr.includes(record)).map(([, family]) => family);
  return [...new Set([...direct, ...recorded])];
}

/**
 * What the scenarios switched on imply, per panel query (title and refId):
 * beyond "has data", each of these must hold.
 */
const EXPECTED: Record<string, (result: PromSample[]) => boolean> = {
  'Firing alerts A': (r) => r.some((s) => s.metric.alertname === 'OpsCoreNodeDown' && s.metric.node === 'DB-CORE'),
  'Core nodes C': (r) => value(r[0]) >= 1,
  'Oldest waiting job A': (r) => r.some((s) => s.metric.queue === QUEUE && value(s) > 0),
  'Workers A': (r) => r.some((s) => s.metric.queue === QUEUE && value(s) === 0),
  'Stuck provisioning jobs A': (r) => value(r[0]) >= 1,
  'Stuck jobs by type A': (r) => r.some((s) => s.metric.type === 'cloudpod' && value(s) >= 1),
  'Failure hotspots (24 h) A': (r) => r.some((s) => s.metric.resource_type === 'CERTIFICATE'),
  'Open findings A': (r) => value(r[0]) >= 1,
  'Backups per system E': (r) => r.some((s) => s.metric.resource_type === 'MPANEL_CORE'),
  'Shield blocks B': (r) => value(r[0]) > 0,
  'Exporter A': (r) => value(r[0]) === 1,
};

describe.runIf(shouldRunWith('prometheus', 'prometheus-alertmanager'))('every dashboard panel has data while the simulator runs', () => {
  let tdb: TestDatabase;
  let redis: TestRedis;
  let sim: Simulator | undefined;
  let stack: E2EStack;
  const queries: PanelQuery[] = [];

  beforeAll(async () => {
    for (const [file, dashboard] of await loadDashboards()) {
      for (const p of allPanels(dashboard)) {
        for (const t of p.targets ?? []) if (t.expr) queries.push({ where: `${file}: ${p.title} (${t.refId})`, title: p.title ?? '', refId: t.refId ?? '', expr: t.expr });
      }
    }
    tdb = await createTestDatabase('demo_e2e_dash');
    // DROP DATABASE ... WITH (FORCE) may reach a connection still closing.
    tdb.admin.on('error', () => undefined);
    redis = await createTestRedis('e2e-dash');
    sim = createSimulator({
      db: pgDemoDb(tdb.admin),
      redisUrl: redis.url,
      queuePrefix: redis.prefix,
      randomSeed: 5,
      logger: captureLogger(),
      intervals: { metricsMs: 500, shieldMs: 250, jobsMs: 250, findingsMs: 1_000, backupsMs: 1_000, pruneMs: 600_000 },
      shieldEventsPerSecond: [10, 20],
      naturalBlockBurstEverySeconds: 0,
      // Enough finished jobs that every rate window of the flow panels sees some.
      jobRateScale: 10,
      jobDurationScale: 0.01,
      backupDurationScale: 0.0001,
    });
    await sim.seed(new Date(), { historyDays: 2, jobHistoryScale: 0.02, shieldEventsPerMinute: 10, findingDays: 10 });
    await sim.start();
    await sim.scenario('node-offline', { node: 'DB-CORE' });
    await sim.scenario('workers-down', { queue: QUEUE });
    await sim.enqueueJob(QUEUE);
    await sim.scenario('failure-burst', { queue: 'ssl', count: 10 });
    await sim.scenario('backup-failing', { resourceType: 'MPANEL_CORE' });
    await sim.scenario('job-stuck', { queue: 'cloudpod', ageSeconds: 1800 });
    await sim.scenario('critical-finding', { node: 'SRV1-WEB' });
    await sim.scenario('block-burst', { perSecond: 30 });
    stack = await startE2EStack({ label: 'dashboards', db: tdb, redis });
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
    await sim?.stop();
    await redis?.cleanup();
    await tdb?.drop();
  }, 60_000);

  it('offers the simulator\'s queues in the $queue variable (label_values(ops_queue_jobs, queue))', async () => {
    const deadline = Date.now() + 90_000; // a hang guard: the simulator's queues appear within a few scrapes
    let values: string[] = [];
    while (Date.now() < deadline) {
      values = await stack.labelValues('queue', 'ops_queue_jobs');
      if (values.length >= 6) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(values.sort()).toEqual(['backup', 'cloudpod', 'dns', 'hosting', 'mail', 'ssl']);
  }, 100_000);

  it('answers every query of every panel with data, and with the values the scenarios imply', async () => {
    expect(queries.length).toBeGreaterThan(40);
    const exposition = (await stack.exporter.inject({ method: 'GET', url: '/metrics' })).body;
    // The process panels read prom-client's default metrics: the exporter serves every one of them.
    expect(PROCESS_METRIC_LIST.filter((m) => !new RegExp(`^${m.name} `, 'm').test(exposition)).map((m) => m.name)).toEqual([]);
    const isProcessQuery = (q: PanelQuery) => PROCESS_METRIC_LIST.some((m) => q.expr.includes(m.name));
    expect(queries.filter(isProcessQuery)).toHaveLength(PROCESS_METRIC_LIST.length);
    /** The flow families the exporter serves now (a histogram appears with its first observation). */
    const servedNow = async () => {
      const text = (await stack.exporter.inject({ method: 'GET', url: '/metrics' })).body;
      return new Set<string>(FLOW_FAMILIES.filter((name) => new RegExp(`^${name}(_bucket|_count)?[{ ]`, 'm').test(text)));
    };
    const flowQueries = queries.filter((q) => flowFamilies(q.expr).length > 0);
    // Throughput A/B, failure ratio, wait and processing p50/p95, the heatmap, and the SLO row's 8.
    expect(flowQueries).toHaveLength(16);
    /** Runs every query once; returns what is still missing. */
    const pass = async (): Promise<string[]> => {
      const problems: string[] = [];
      const served = await servedNow();
      const range = (Date.now() - stack.startedAt) / 1000;
      for (const q of queries) {
        const result = await stack.query(substitute(q.expr, range));
        const check = EXPECTED[`${q.title} ${q.refId}`];
        const families = flowFamilies(q.expr);
        if (families.some((f) => !served.has(f))) {
          if (result.length > 0) problems.push(`${q.where}: data although the exporter does not serve ${families.filter((f) => !served.has(f)).join(', ')}`);
        } else if (result.length === 0) problems.push(`${q.where}: no data`);
        else if (check && !check(result)) problems.push(`${q.where}: unexpected ${JSON.stringify(result.map((s) => [s.metric, s.value[1]]))}`);
      }
      return problems;
    };
    const deadline = Date.now() + DATA_DEADLINE_MS;
    let problems = await pass();
    while (problems.length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      problems = await pass();
    }
    expect(problems).toEqual([]);
    // Every expectation names a panel query that exists.
    expect(Object.keys(EXPECTED).filter((k) => !queries.some((q) => `${q.title} ${q.refId}` === k))).toEqual([]);
  }, DATA_DEADLINE_MS + 20_000);
});
