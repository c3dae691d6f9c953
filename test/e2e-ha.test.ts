/**
 * End to end, several platforms and no single point of failure, with the real
 * binaries on loopback: platform A served by two exporter replicas and
 * platform B by one (each platform its own database and Redis prefix), a
 * Prometheus pair running prometheus/prometheus.ha.yml (the same rules, the
 * platform as a target label, external labels `replica="1"` and `"2"` that
 * are dropped from alerts), an Alertmanager cluster of three peers gossiping
 * on 127.0.0.1 (`--cluster.listen-address`, `--cluster.peer`) that both
 * Prometheus send every alert to, and one webhook receiver for all receivers.
 *
 * Time is compressed as in e2e-alerts.test.ts (every duration divided by 60:
 * `for: 5m` is 5 s, group_interval 5m is 5 s; see helpers/e2e-stack.ts), and
 * the peers' gossip is fast (peer timeout 1 s, gossip every 100 ms).
 * Nothing is waited for by sleeping: each step waits for a webhook delivery
 * or a Prometheus answer. "Exactly once" is counted when the alert's
 * resolved notification has arrived: a second peer that missed the first
 * one's notification would have sent its duplicate one or two peer timeouts
 * after the first, well before the resolution, which comes a group_interval
 * (5 s) later at the earliest.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { config } from '../monitoring/config.js';
import { exporterDashboard } from '../monitoring/dashboards/exporter.js';
import { overviewDashboard } from '../monitoring/dashboards/overview.js';
import { OVERVIEW_PANELS, EXPORTER_PANELS } from '../monitoring/dashboards/ids.js';
import { SOURCE_NAMES } from '../src/catalog.js';
import { pgDemoDb } from '../src/demo/demo-db.js';
import { seed } from '../src/demo/seed.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { compressDuration, parseDuration, startHaStack, type HaStack, type Notification } from './helpers/e2e-stack.js';
import { allPanels } from './helpers/monitoring-promql.js';
import { shouldRunWith, waitFor } from './helpers/monitoring-tools.js';
import { createTestRedis, type TestRedis } from './helpers/redis.js';

/** Longest wait for one notification: the compressed `for:` (5 s) plus scrape, evaluation, grouping and gossip, with room for a busy machine. */
const NOTIFY_TIMEOUT_MS = 30_000;
const STEP_TIMEOUT_MS = 2 * NOTIFY_TIMEOUT_MS + 10_000;
const P = config.platformLabel;
const CRITICAL_SYSTEMS = ['DB_CORE', 'MPANEL_CORE', 'CLOUD_POD'] as const;

const iso = (msAgo: number) => new Date(Date.now() - msAgo).toISOString();

/** A platform's database and Redis prefix, seeded healthy. */
async function healthyPlatform(label: string): Promise<{ db: TestDatabase; redis: TestRedis }> {
  // The simulator's seed (a demo-named database) gives a whole, healthy platform.
  const db = await createTestDatabase(`demo_e2e_ha_${label}`);
  const redis = await createTestRedis(`e2e-ha-${label}`);
  await seed(pgDemoDb(db.admin), new Date(), { historyDays: 2, jobHistoryScale: 0.005, shieldEventsPerMinute: 1, findingDays: 3 });
  for (const type of CRITICAL_SYSTEMS) {
    await db.admin.query(`INSERT INTO "Backup" ("id", "resourceType", "resourceId", "status", "startedAt", "completedAt") VALUES ($1, $2, NULL, 'COMPLETED', $3::timestamp, $4::timestamp)`, [
      `bk_e2e_ha_${type}`,
      type,
      iso(3_600_000),
      iso(3_000_000),
    ]);
  }
  return { db, redis };
}

const stuckJob = (id: string, type: string): [string, unknown[]] => [
    `INSERT INTO "ProvisioningJob" ("id", "type", "action", "resourceType", "resourceId", "tenantId", "status", "attempts", "createdAt", "startedAt", "updatedAt")
     VALUES ($1, $2, $2 || '.create', 'CLOUD_POD', 'pod_e2e', 'tenant_e2e', 'RUNNING', 1, $3::timestamp, $4::timestamp, $4::timestamp)`,
  [id, type, iso(31 * 60_000), iso(30 * 60_000)],
];
const finishJob = (id: string): [string, unknown[]] => [`UPDATE "ProvisioningJob" SET "status" = 'COMPLETED', "finishedAt" = $2::timestamp, "updatedAt" = $2::timestamp WHERE "id" = $1`, [id, iso(0)]];

describe.runIf(shouldRunWith('prometheus', 'prometheus-alertmanager'))('two platforms, exporter replicas, a Prometheus pair and an Alertmanager cluster', () => {
  let a: { db: TestDatabase; redis: TestRedis };
  let b: { db: TestDatabase; redis: TestRedis };
  let stack: HaStack;

  /** Notifications to `receiver` since `since` holding a firing alert whose labels include `labels`. */
  const firing = (receiver: string, labels: Record<string, string>, since: number): Notification[] =>
    stack.receiver.notifications.filter(
      (n) =>
        n.receivedAt >= since &&
        n.payload.receiver === receiver &&
        n.payload.alerts.some((x) => x.status === 'firing' && Object.entries(labels).every(([k, v]) => x.labels[k] === v)),
    );

  /** Waits for `labels` firing at `receiver`, runs `end`, waits for the resolution; the firing notification. */
  async function firesOnceAndResolves(receiver: string, labels: Record<string, string>, since: number, end: () => Promise<unknown>): Promise<Notification> {
    const fired = await stack.receiver.waitForAlert(receiver, labels, 'firing', since, NOTIFY_TIMEOUT_MS);
    const endedAt = Date.now();
    await end();
    await stack.receiver.waitForAlert(receiver, labels, 'resolved', endedAt, NOTIFY_TIMEOUT_MS);
    expect(firing(receiver, { alertname: labels.alertname! }, since)).toEqual([fired]);
    return fired;
  }

  beforeAll(async () => {
    [a, b] = await Promise.all([healthyPlatform('a'), healthyPlatform('b')]);
    stack = await startHaStack({
      label: 'ha',
      platforms: [
        { name: 'A', ...a, replicas: 2 },
        { name: 'B', ...b, replicas: 1 },
      ],
      alertmanagers: 3,
      prometheus: 2,
    });
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
    for (const p of [a, b]) {
      await p?.redis.cleanup();
      await p?.db.drop();
    }
  }, 60_000);

  it('is healthy: the peers form one cluster, both Prometheus scrape A twice and B once, and only the Watchdog fires, without its replica label', async () => {
    for (const am of stack.alertmanagers) {
      await waitFor(
        `${am} to see all three peers`,
        async () => {
          const status = (await (await fetch(`${am}/api/v2/status`)).json()) as { cluster: { status: string; peers: unknown[] } };
          return status.cluster.status === 'ready' && status.cluster.peers.length === 3 ? true : undefined;
        },
        20_000,
        200,
      );
    }
    for (const prom of stack.prometheus) {
      await waitFor(
        'every source of every replica collected and scraped',
        async () => {
          const r = await prom.query(`count by (${P}) (ops_source_up{job="ops-overview"} == 1)`);
          const by = Object.fromEntries(r.map((s) => [s.metric[P], s.value[1]]));
          // Every source, the index check among them, on A's two replicas and B's one.
          return by.A === String(2 * SOURCE_NAMES.length) && by.B === String(SOURCE_NAMES.length) ? true : undefined;
        },
        30_000,
        200,
      );
    }
    const watchdog = await stack.receiver.waitForAlert('ops-watchdog', { alertname: 'Watchdog', severity: 'info', area: 'monitoring' }, 'firing', 0, NOTIFY_TIMEOUT_MS);
    expect(watchdog.payload.alerts).toHaveLength(1);
    // Platform alerts would be pending within a few evaluations; the exporter's own may flicker pending when a 417 ms scrape is dropped.
    for (const prom of stack.prometheus) {
      await waitFor(
        'no platform alert active',
        async () => ((await prom.alerts()).filter((x) => x.labels.alertname !== 'Watchdog' && !(x.labels.area === 'exporter' && x.state === 'pending')).length === 0 ? true : undefined),
        20_000,
        200,
      );
    }
    expect(stack.receiver.notifications.filter((n) => n.payload.receiver !== 'ops-watchdog')).toEqual([]);
  }, 60_000);

  it('with multiPlatform, every dashboard query runs over both platforms at once and keeps them apart', async () => {
    const saved = config.multiPlatform;
    config.multiPlatform = true;
    let dashboards;
    try {
      dashboards = [overviewDashboard(), exporterDashboard()];
    } finally {
      config.multiPlatform = saved;
    }
    // Grafana's values for the compressed scrape interval (as in e2e-dashboards.test.ts), both platforms selected.
    const scrape = parseDuration(compressDuration('30s')) / 1000;
    const substitute = (expr: string) =>
      expr
        .replaceAll('$__rate_interval', `${4 * scrape}s`)
        .replaceAll('$__interval', `${2 * scrape}s`)
        .replaceAll('$__range', '30s')
        .replaceAll('$platform', 'A|B')
        .replaceAll('$queue', '.*');
    const platformsOf: Record<string, Set<string>> = {};
    for (const d of dashboards) {
      for (const p of allPanels(d as never) as { id?: number; targets?: unknown[] }[]) {
        for (const t of (p.targets ?? []) as { expr?: string; refId?: string }[]) {
          const key = `${d.uid} ${p.id} ${t.refId}`;
          // A Prometheus error (a many-to-many match between platforms, say) throws here.
          const result = await stack.prometheus[0]!.query(substitute(t.expr!));
          platformsOf[key] = new Set(result.map((r) => r.metric[P]).filter((x): x is string => x !== undefined));
        }
      }
    }
    expect(Object.keys(platformsOf).length).toBeGreaterThan(45);
    // Per-object panels show each platform's own rows and lines.
    for (const key of [
      `ops-overview ${OVERVIEW_PANELS.coreNodesTable} A`,
      `ops-overview ${OVERVIEW_PANELS.coreNodesDisk} A`,
      `ops-overview ${OVERVIEW_PANELS.backupsTable} B`,
      `ops-overview ${OVERVIEW_PANELS.backupsTable} C`,
      `ops-overview-exporter ${EXPORTER_PANELS.sourcesTable} A`,
      `ops-overview-exporter ${EXPORTER_PANELS.exporterUp} A`,
    ]) {
      expect([...platformsOf[key]!].sort(), key).toEqual(['A', 'B']);
    }
  }, 120_000); // ~60 queries one after another: a hang guard for a busy machine

  it('a stuck job on A pages exactly once, labelled platform="A", and nothing for B', async () => {
    const since = Date.now();
    await a.db.admin.query(...stuckJob('pj_ha_a', 'cloudpod'));
    const labels = { alertname: 'OpsProvisioningJobsStuck', severity: 'critical', area: 'provisioning', [P]: 'A', type: 'cloudpod' };
    const fired = await firesOnceAndResolves('ops-pager', labels, since, () => a.db.admin.query(...finishJob('pj_ha_a')));
    expect(fired.payload.groupLabels[P]).toBe('A');
    expect(fired.payload.alerts.map((x) => x.labels)).toEqual([labels]);
    expect(firing('ops-pager', { [P]: 'B' }, since)).toEqual([]);
    expect(firing('ops-ticket', {}, since)).toEqual([]);
  }, STEP_TIMEOUT_MS);

  it('one exporter replica of A down tickets exactly once and pages nobody', async () => {
    const since = Date.now();
    const killed = stack.targets.A![1]!;
    await stack.killExporter('A', 1);
    const labels = { alertname: 'OpsExporterReplicaDown', severity: 'warning', area: 'exporter', [P]: 'A', job: 'ops-overview', instance: killed };
    await firesOnceAndResolves('ops-ticket', labels, since, async () => {
      // While it is down, the platform is still watched: nothing pages or is about to.
      for (const prom of stack.prometheus) expect((await prom.alerts()).filter((x) => x.labels.severity === 'critical')).toEqual([]);
      await stack.restartExporter('A', 1);
    });
    expect(firing('ops-pager', {}, since)).toEqual([]);
    expect(firing('ops-ticket', {}, since).flatMap((n) => n.payload.alerts.map((x) => x.labels.alertname))).toEqual(['OpsExporterReplicaDown']);
  }, STEP_TIMEOUT_MS);

  it('with one Prometheus and one Alertmanager peer killed, a stuck job on B still pages exactly once', async () => {
    await stack.killPrometheus(0);
    await stack.killAlertmanager(0);
    const since = Date.now();
    await b.db.admin.query(...stuckJob('pj_ha_b', 'hosting'));
    const labels = { alertname: 'OpsProvisioningJobsStuck', severity: 'critical', area: 'provisioning', [P]: 'B', type: 'hosting' };
    await firesOnceAndResolves('ops-pager', labels, since, () => b.db.admin.query(...finishJob('pj_ha_b')));
    expect(firing('ops-pager', { [P]: 'A' }, since)).toEqual([]);
  }, STEP_TIMEOUT_MS);

  it('both replicas of A down page once that A\'s monitoring is blind, and nothing for B', async () => {
    const since = Date.now();
    await Promise.all([stack.killExporter('A', 0), stack.killExporter('A', 1)]);
    const labels = { alertname: 'OpsExporterDown', severity: 'critical', area: 'exporter', [P]: 'A', job: 'ops-overview' };
    const fired = await firesOnceAndResolves('ops-pager', labels, since, () => stack.restartExporter('A', 0));
    expect(fired.payload.alerts[0]!.annotations.summary).toBe('Every ops-overview exporter of the platform is down: its monitoring is blind.');
    expect(firing('ops-pager', { [P]: 'B' }, since)).toEqual([]);
    // One replica down is not a ticket while all are: OpsExporterReplicaDown stayed quiet.
    expect(firing('ops-ticket', { alertname: 'OpsExporterReplicaDown' }, since).filter((n) => n.receivedAt < fired.receivedAt)).toEqual([]);
  }, STEP_TIMEOUT_MS);
});
