/**
 * End to end, the whole alerting path: a condition written into the
 * platform's database or into BullMQ is read by the exporter (in-process, the
 * read-only role, this file's Redis prefix), scraped by a real Prometheus 2.42
 * under the bundle's job name, turned into an alert by the bundle's own rule
 * files, routed by the bundle's own alertmanager.yml in a real Alertmanager
 * 0.25 to the right receiver, and resolved once the condition is removed.
 *
 * Time is compressed: every duration of prometheus.yml, the rule files and
 * alertmanager.yml is divided by 60 (scrapes and evaluations every 500 ms,
 * `for: 5m` is 5 s, `[15m]` is `[15s]`, group_interval 5m is 5 s, and
 * Prometheus's --rules.alert.resend-delay 1m is 1 s; see
 * helpers/e2e-stack.ts). Nothing else changed: expressions with their data
 * thresholds (ages in seconds such as `> 90000` are not durations and are
 * not scaled: the conditions below are made truly old in the database),
 * labels, annotations, routes, receiver names and inhibitions are the
 * generated ones; only target addresses and the receivers' integrations (one
 * webhook per receiver, to this test) are swapped. The exporter keeps its
 * default stuck threshold (900 s) and only collects every second.
 *
 * The five conditions run concurrently (each has its own alert group), after
 * a healthy baseline has shown that nothing but the Watchdog fires.
 */
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, type ExpectStatic } from 'vitest';
import { SOURCE_NAMES } from '../src/catalog.js';
import { pgDemoDb } from '../src/demo/demo-db.js';
import { seed } from '../src/demo/seed.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { compressDuration, compressExpr, startE2EStack, type E2EStack } from './helpers/e2e-stack.js';
import { shouldRunWith, waitFor } from './helpers/monitoring-tools.js';
import { createTestRedis, type TestRedis } from './helpers/redis.js';

/** Longest wait for one notification: the compressed `for:` (at most 15 s) plus scrape, evaluation and grouping delays, with room for a busy machine. */
const NOTIFY_TIMEOUT_MS = 45_000;
/** Longest one condition may take: two notifications. */
const CONDITION_TIMEOUT_MS = 2 * NOTIFY_TIMEOUT_MS + 15_000;
const CRITICAL_SYSTEMS = ['DB_CORE', 'MPANEL_CORE', 'CLOUD_POD'] as const;
const QUEUE = 'e2e-orders';
const STALLED_QUEUE = 'e2e-mail';

const iso = (msAgo: number) => new Date(Date.now() - msAgo).toISOString();

describe('the time compression of the bundle', () => {
  it('divides durations by 60 and leaves the data thresholds and label matchers of expressions alone', () => {
    expect(['30s', '25s', '5m', '15m', '2h', '12h', '0s'].map(compressDuration)).toEqual(['500ms', '417ms', '5s', '15s', '2m', '12m', '0s']);
    expect(compressExpr('(time() - max(x{q=~"[5m]"})) > 90000 and deriv(y[15m]) > 0 or max_over_time(z[1h:30s] offset 1h) >= 600')).toBe(
      '(time() - max(x{q=~"[5m]"})) > 90000 and deriv(y[15s]) > 0 or max_over_time(z[1m:500ms] offset 1m) >= 600',
    );
  });
});

describe.runIf(shouldRunWith('prometheus', 'prometheus-alertmanager'))('an alert travels from the database or BullMQ to its receiver and back', () => {
  let tdb: TestDatabase;
  let redis: TestRedis;
  let stack: E2EStack;

  const sql = (text: string, params: unknown[] = []) => tdb.admin.query(text, params);

  beforeAll(async () => {
    // The simulator's seed (a demo-named database) gives a whole, healthy platform to start from.
    tdb = await createTestDatabase('demo_e2e_alerts');
    redis = await createTestRedis('e2e-alerts');
    await seed(pgDemoDb(tdb.admin), new Date(), { historyDays: 3, jobHistoryScale: 0.01, shieldEventsPerMinute: 2, findingDays: 5 });
    // Whatever the time of day, every critical system was backed up within the last hour.
    for (const type of CRITICAL_SYSTEMS) {
      await sql(`INSERT INTO "Backup" ("id", "resourceType", "resourceId", "status", "startedAt", "completedAt") VALUES ($1, $2, NULL, 'COMPLETED', $3::timestamp, $4::timestamp)`, [
        `bk_e2e_base_${type}`,
        type,
        iso(3_600_000),
        iso(3_000_000),
      ]);
    }
    stack = await startE2EStack({ label: 'alerts', db: tdb, redis });
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
    await redis?.cleanup();
    await tdb?.drop();
  }, 60_000);

  describe('a healthy platform', () => {
    it('pages nobody: only the Watchdog fires, and it reaches the dead man\'s switch receiver', async () => {
      await waitFor(
        'every source collected and scraped',
        // Every source, the index check among them.
        async () => ((await stack.query('count(ops_source_up{job="ops-overview"} == 1)'))[0]?.value[1] === String(SOURCE_NAMES.length) ? true : undefined),
        30_000,
        200,
      );
      // Alerts are evaluated every 500 ms: anything the platform's data makes true is pending within
      // a few rounds. The exporter's own health alerts (area exporter) may go pending for a moment
      // when a loaded machine drops one 417 ms scrape; that is not the platform's state, and they
      // would have to last the compressed 5 s to page, which the last check of this file rules out.
      const platformAlerts = async () =>
        (await stack.alerts()).filter((a) => a.labels.alertname !== 'Watchdog' && !(a.labels.area === 'exporter' && a.state === 'pending'));
      await waitFor('no platform alert active', async () => ((await platformAlerts()).length === 0 ? true : undefined), 20_000, 200);
      const watchdog = await stack.receiver.waitForAlert('ops-watchdog', { alertname: 'Watchdog', severity: 'info', area: 'monitoring' }, 'firing', 0, 20_000);
      expect(watchdog.path).toBe('/ops-watchdog');
      expect((await stack.alerts()).filter((a) => a.labels.alertname === 'Watchdog').map((a) => a.state)).toEqual(['firing']);
      // Five more evaluation rounds over fresh collections: still nothing else, not even pending.
      const until = Date.now() + 2_500;
      while (Date.now() < until) {
        expect((await platformAlerts()).map((a) => `${a.labels.alertname} ${a.state}`)).toEqual([]);
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(stack.receiver.notifications.filter((n) => n.payload.receiver !== 'ops-watchdog')).toEqual([]);
    }, 90_000);
  });

  describe.concurrent('each condition pages, then resolves', () => {
    /** Writes a condition, waits for its page, removes it, waits for the resolved notification. */
    async function pagesAndResolves(expect: ExpectStatic, labels: Record<string, string>, create: () => Promise<unknown>, remove: () => Promise<unknown>) {
      const createdAt = Date.now();
      await create();
      const fired = await stack.receiver.waitForAlert('ops-pager', labels, 'firing', createdAt, NOTIFY_TIMEOUT_MS);
      expect(fired.path).toBe('/ops-pager');
      // Grouped by the domain label: the page is about this condition alone.
      expect(fired.payload.alerts.map((a) => a.labels)).toEqual([labels]);
      const removedAt = Date.now();
      await remove();
      const resolved = await stack.receiver.waitForAlert('ops-pager', labels, 'resolved', removedAt, NOTIFY_TIMEOUT_MS);
      expect(resolved.payload.status).toBe('resolved');
      expect(resolved.payload.alerts.map((a) => a.fingerprint)).toEqual(fired.payload.alerts.map((a) => a.fingerprint));
    }

    it('a provisioning job RUNNING for 30 min (threshold 900 s): OpsProvisioningJobsStuck{type} pages', async ({ expect }) => {
      await pagesAndResolves(
        expect,
        { alertname: 'OpsProvisioningJobsStuck', severity: 'critical', area: 'provisioning', type: 'cloudpod' },
        () =>
          sql(
            `INSERT INTO "ProvisioningJob" ("id", "type", "action", "resourceType", "resourceId", "tenantId", "status", "attempts", "createdAt", "startedAt", "updatedAt")
             VALUES ('pj_e2e_stuck', 'cloudpod', 'cloudpod.create', 'CLOUD_POD', 'pod_e2e', 'tenant_e2e', 'RUNNING', 1, $1::timestamp, $2::timestamp, $2::timestamp)`,
            [iso(31 * 60_000), iso(30 * 60_000)],
          ),
        () => sql(`UPDATE "ProvisioningJob" SET "status" = 'COMPLETED', "finishedAt" = $1::timestamp, "updatedAt" = $1::timestamp WHERE "id" = 'pj_e2e_stuck'`, [iso(0)]),
      );
    }, CONDITION_TIMEOUT_MS);

    it('DB_CORE last backed up 30 h ago (limit 25 h): OpsBackupTooOld{resource_type} pages', async ({ expect }) => {
      await pagesAndResolves(
        expect,
        { alertname: 'OpsBackupTooOld', severity: 'critical', area: 'backups', resource_type: 'DB_CORE' },
        async () => {
          // The backups of the last 30 hours are gone; the one before them finished exactly 30 h ago.
          await sql(`DELETE FROM "Backup" WHERE "resourceType" = 'DB_CORE' AND COALESCE("completedAt", "startedAt") > $1::timestamp`, [iso(30 * 3_600_000)]);
          await sql(`INSERT INTO "Backup" ("id", "resourceType", "status", "startedAt", "completedAt") VALUES ('bk_e2e_old', 'DB_CORE', 'COMPLETED', $1::timestamp, $2::timestamp)`, [
            iso(30 * 3_600_000 + 20 * 60_000),
            iso(30 * 3_600_000),
          ]);
        },
        () => sql(`INSERT INTO "Backup" ("id", "resourceType", "status", "startedAt", "completedAt") VALUES ('bk_e2e_new', 'DB_CORE', 'COMPLETED', $1::timestamp, $2::timestamp)`, [iso(60_000), iso(0)]),
      );
    }, CONDITION_TIMEOUT_MS);

    it('core node DB-CORE OFFLINE: OpsCoreNodeDown{node} pages', async ({ expect }) => {
      await pagesAndResolves(
        expect,
        { alertname: 'OpsCoreNodeDown', severity: 'critical', area: 'core_nodes', node: 'DB-CORE' },
        () => sql(`UPDATE "CoreNode" SET "status" = 'OFFLINE', "updatedAt" = $1::timestamp WHERE "hostname" = 'DB-CORE'`, [iso(0)]),
        () => sql(`UPDATE "CoreNode" SET "status" = 'ONLINE', "updatedAt" = $1::timestamp WHERE "hostname" = 'DB-CORE'`, [iso(0)]),
      );
    }, CONDITION_TIMEOUT_MS);

    it('a BullMQ queue with waiting jobs and no worker: OpsQueueNoWorkers{prefix, queue} pages, a worker draining it resolves it', async ({ expect }) => {
      const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
      const workerConnection = new Redis(redis.url, { maxRetriesPerRequest: null });
      const queue = new Queue(QUEUE, { connection, prefix: redis.prefix });
      let worker: Worker | undefined;
      try {
        await pagesAndResolves(
          expect,
          { alertname: 'OpsQueueNoWorkers', severity: 'critical', area: 'queues', prefix: redis.prefix, queue: QUEUE },
          () => queue.addBulk([1, 2, 3].map((n) => ({ name: 'provision', data: { n } }))),
          async () => {
            worker = new Worker(QUEUE, async () => undefined, { connection: workerConnection, prefix: redis.prefix });
            await waitFor('the worker to drain the queue', async () => ((await queue.getWaitingCount()) === 0 ? true : undefined), 10_000);
          },
        );
      } finally {
        await worker?.close();
        await queue.close();
        await Promise.all([connection.quit(), workerConnection.quit()]);
      }
    }, CONDITION_TIMEOUT_MS);

    it('a BullMQ worker that completed jobs hangs, connected, while jobs wait: OpsQueueStalled{prefix, queue} pages, not OpsQueueNoWorkers; released, it resolves', async ({
      expect,
    }) => {
      const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
      const workerConnection = new Redis(redis.url, { maxRetriesPerRequest: null });
      const queue = new Queue(STALLED_QUEUE, { connection, prefix: redis.prefix });
      const labels = { prefix: redis.prefix, queue: STALLED_QUEUE };
      const selector = `{prefix="${redis.prefix}", queue="${STALLED_QUEUE}"}`;
      const value = async (expr: string) => (await stack.query(expr))[0]?.value[1];
      // The worker's processor: passes while no gate is set, otherwise holds its job (its lock kept
      // alive by the worker: active, not stalled in BullMQ's sense) until the gate opens.
      let gate: { opened: Promise<void>; open: () => void } | undefined;
      let held = 0;
      const worker = new Worker(
        STALLED_QUEUE,
        async () => {
          if (!gate) return;
          held += 1;
          await gate.opened;
        },
        { connection: workerConnection, prefix: redis.prefix, concurrency: 1 },
      );
      const release = () => gate?.open();
      try {
        await worker.waitUntilReady();
        // A healthy flow first: three jobs completed, and Prometheus has them counted.
        await queue.addBulk([1, 2, 3].map((n) => ({ name: 'send', data: { n } })));
        const completed = () => value(`ops_queue_jobs_completed_total${selector}`);
        await waitFor('three completions of the healthy worker in Prometheus', async () => ((await completed()) === '3' ? true : undefined), 30_000, 200);
        expect(await value(`ops_queue_jobs_failed_total${selector}`)).toBe('0');
        let stalledAt = 0;
        await pagesAndResolves(
          expect,
          { alertname: 'OpsQueueStalled', severity: 'critical', area: 'queues', ...labels },
          async () => {
            let open: () => void = () => undefined;
            const opened = new Promise<void>((resolve) => (open = resolve));
            gate = { opened, open };
            stalledAt = Date.now();
            await queue.addBulk([4, 5, 6].map((n) => ({ name: 'send', data: { n } })));
            // The worker takes one job and hangs on it; the other two wait behind it.
            await waitFor('the worker to hold a job', async () => (held === 1 && (await queue.getWaitingCount()) === 2 ? true : undefined), 30_000);
          },
          async () => {
            // While it paged, the worker was connected all along and nothing had finished since the healthy three.
            const since = `${Math.ceil((Date.now() - stalledAt) / 1000)}s`;
            expect(await value(`min_over_time(ops_queue_workers${selector}[${since}])`)).toBe('1');
            expect(await completed()).toBe('3');
            expect(await value(`ops_queue_jobs_failed_total${selector}`)).toBe('0');
            release();
            await waitFor('the released worker to complete every job', async () => ((await queue.getCompletedCount()) === 6 ? true : undefined), 30_000);
          },
        );
        await waitFor('the three released completions in Prometheus', async () => ((await completed()) === '6' ? true : undefined), 30_000, 200);
        // OpsQueueNoWorkers was never even pending for this queue: its ALERTS series has no sample since the stack started.
        const sinceStart = `${Math.ceil((Date.now() - stack.startedAt) / 1000)}s`;
        expect(await stack.query(`count_over_time(ALERTS{alertname="OpsQueueNoWorkers", prefix="${redis.prefix}", queue="${STALLED_QUEUE}"}[${sinceStart}])`)).toEqual([]);
      } finally {
        release();
        await worker.close();
        await queue.close();
        await Promise.all([connection.quit(), workerConnection.quit()]);
      }
    }, CONDITION_TIMEOUT_MS + 30_000);
  });

  describe('afterwards', () => {
    it('paged for exactly those five alerts, ticketed nothing, and sent the Watchdog only to its own receiver', () => {
      const by = (receiver: string) => new Set(stack.receiver.notifications.filter((n) => n.payload.receiver === receiver).flatMap((n) => n.payload.alerts.map((a) => a.labels.alertname)));
      expect([...by('ops-pager')].sort()).toEqual(['OpsBackupTooOld', 'OpsCoreNodeDown', 'OpsProvisioningJobsStuck', 'OpsQueueNoWorkers', 'OpsQueueStalled']);
      // Each queue paged for its own condition only.
      const pagedQueues = (alertname: string) =>
        new Set(stack.receiver.notifications.flatMap((n) => n.payload.alerts.filter((a) => a.labels.alertname === alertname).map((a) => a.labels.queue)));
      expect([...pagedQueues('OpsQueueNoWorkers')]).toEqual([QUEUE]);
      expect([...pagedQueues('OpsQueueStalled')]).toEqual([STALLED_QUEUE]);
      expect([...by('ops-ticket')]).toEqual([]);
      expect([...by('ops-info')]).toEqual([]);
      expect([...by('ops-watchdog')]).toEqual(['Watchdog']);
      for (const n of stack.receiver.notifications) expect(n.path).toBe(`/${n.payload.receiver}`);
    });
  });
});
