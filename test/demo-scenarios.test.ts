/**
 * Each scenario switch writes its exact condition into the database and
 * BullMQ, and clearing it undoes it. One running simulator (real PostgreSQL,
 * real Redis under this file's prefix), scenarios one after another.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgDemoDb } from '../src/demo/demo-db.js';
import { createSimulator, type Simulator } from '../src/demo/simulator.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { captureLogger, FAST_INTERVALS, startStillSimulator, waitFor, type StillSimulator } from './helpers/demo-wait.js';
import { createTestRedis, type TestRedis } from './helpers/redis.js';

let tdb: TestDatabase;
let redis: TestRedis;
let sim: Simulator;
const log = captureLogger();

async function one<T>(sql: string, params: unknown[] = []): Promise<T> {
  return (await tdb.admin.query(sql, params)).rows[0] as T;
}

const epoch = (col: string) => `extract(epoch FROM ${col})::float8`;

beforeAll(async () => {
  tdb = await createTestDatabase('demo-scenarios');
  // DROP DATABASE ... WITH (FORCE) in drop() may reach a connection still closing.
  tdb.admin.on('error', () => undefined);
  redis = await createTestRedis('demo-scenarios');
  sim = createSimulator({
    db: pgDemoDb(tdb.admin),
    redisUrl: redis.url,
    queuePrefix: redis.prefix,
    randomSeed: 11,
    logger: log,
    intervals: FAST_INTERVALS,
    jobDurationScale: 0.01,
    backupDurationScale: 0.0001,
    naturalBlockBurstEverySeconds: 0,
  });
  await sim.seed();
  await sim.start();
});

afterAll(async () => {
  await sim?.stop();
  await redis?.cleanup();
  await tdb?.drop();
});

describe('scenario switches', () => {
  it('refuse to run before start and return the running instance when switched on twice', async () => {
    const idle = createSimulator({ db: pgDemoDb(tdb.admin), logger: captureLogger() });
    await expect(idle.scenario('node-offline')).rejects.toThrow(/start the simulator/);
    const a = await sim.scenario('critical-finding', { node: 'DNS-CORE' });
    const b = await sim.scenario('critical-finding', { node: 'DNS-CORE' });
    expect(b).toBe(a);
    expect(await sim.clear('critical-finding')).toBe(1);
    expect(await sim.clear('critical-finding')).toBe(0);
  });

  it('node-offline: the node goes OFFLINE and its metrics stop while the others go on; clear brings it back', async () => {
    await sim.scenario('node-offline', { node: 'DB-CORE' });
    const off = await one<{ status: string; at: number }>(`SELECT "status", ${epoch('"lastMetricsAt"')} AS at FROM "CoreNode" WHERE "hostname" = 'DB-CORE'`);
    expect(off.status).toBe('OFFLINE');
    await waitFor('another node to report twice more', async () => {
      const r = await one<{ at: number }>(`SELECT ${epoch('"lastMetricsAt"')} AS at FROM "CoreNode" WHERE "hostname" = 'DNS-CORE'`);
      return r.at > off.at + 0.25;
    });
    const still = await one<{ status: string; at: number }>(`SELECT "status", ${epoch('"lastMetricsAt"')} AS at FROM "CoreNode" WHERE "hostname" = 'DB-CORE'`);
    expect(still).toEqual(off);
    const before = Date.now() / 1000;
    expect(await sim.clear('node-offline')).toBe(1);
    const on = await one<{ status: string; at: number }>(`SELECT "status", ${epoch('"lastMetricsAt"')} AS at FROM "CoreNode" WHERE "hostname" = 'DB-CORE'`);
    expect(on.status).toBe('ONLINE');
    expect(on.at).toBeGreaterThanOrEqual(Math.floor(before * 1000) / 1000);
  });

  it('node-metrics-stale: lastMetricsAt goes ageSeconds back and stays there, status stays ONLINE; clear refreshes it', async () => {
    const t0 = Date.now() / 1000;
    await sim.scenario('node-metrics-stale', { node: 'VOIP-CORE', ageSeconds: 900 });
    const r = await one<{ status: string; at: number }>(`SELECT "status", ${epoch('"lastMetricsAt"')} AS at FROM "CoreNode" WHERE "hostname" = 'VOIP-CORE'`);
    expect(r.status).toBe('ONLINE');
    expect(r.at).toBeGreaterThan(t0 - 901);
    expect(r.at).toBeLessThan(t0 - 899);
    await new Promise((res) => setTimeout(res, 350));
    expect(await one(`SELECT ${epoch('"lastMetricsAt"')} AS at FROM "CoreNode" WHERE "hostname" = 'VOIP-CORE'`)).toEqual({ at: r.at });
    await sim.clear('node-metrics-stale', { node: 'VOIP-CORE' });
    const fresh = await one<{ at: number }>(`SELECT ${epoch('"lastMetricsAt"')} AS at FROM "CoreNode" WHERE "hostname" = 'VOIP-CORE'`);
    expect(fresh.at).toBeGreaterThan(Date.now() / 1000 - 2);
  });

  it('node-disk-full: diskPercent holds at the given percent; clear returns it to its usual level', async () => {
    await sim.scenario('node-disk-full', { node: 'MAIL-CORE', percent: 97 });
    const samples: number[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await one<{ disk: number }>(`SELECT ("metrics"->>'diskPercent')::float8 AS disk FROM "CoreNode" WHERE "hostname" = 'MAIL-CORE'`);
      samples.push(r.disk);
      await new Promise((res) => setTimeout(res, 120));
    }
    for (const d of samples) expect(Math.abs(d - 97)).toBeLessThanOrEqual(2);
    await sim.clear('node-disk-full');
    const r = await one<{ disk: number }>(`SELECT ("metrics"->>'diskPercent')::float8 AS disk FROM "CoreNode" WHERE "hostname" = 'MAIL-CORE'`);
    expect(Math.abs(r.disk - 67)).toBeLessThanOrEqual(3);
  });

  it('workers-down: the queue has no worker, its jobs wait in BullMQ and stay PENDING; clear drains them', async () => {
    const queue = sim.bullQueue('mail')!;
    expect(await queue.getWorkersCount()).toBeGreaterThan(0);
    await sim.scenario('workers-down', { queue: 'mail' });
    expect(await queue.getWorkersCount()).toBe(0);
    const id = await sim.enqueueJob('mail');
    await new Promise((res) => setTimeout(res, 300));
    expect(await queue.getJob(id).then((j) => j?.getState())).toBe('waiting');
    expect(await queue.getWaitingCount()).toBeGreaterThanOrEqual(1);
    expect(await one(`SELECT "status", "startedAt" FROM "ProvisioningJob" WHERE "id" = $1`, [id])).toEqual({ status: 'PENDING', startedAt: null });
    await sim.clear('workers-down');
    expect(await queue.getWorkersCount()).toBeGreaterThan(0);
    const done = await waitFor('the parked job to finish', async () => {
      const r = await one<{ status: string }>(`SELECT "status" FROM "ProvisioningJob" WHERE "id" = $1`, [id]);
      return ['COMPLETED', 'FAILED'].includes(r.status) ? r.status : undefined;
    });
    expect(await queue.getJob(id).then((j) => j?.getState())).toBe(done === 'COMPLETED' ? 'completed' : 'failed');
    await waitFor('the mail queue to drain', async () => (await queue.getWaitingCount()) === 0);
  });

  it('stalled-worker: the workers stay connected, every job they take hangs active and the rest wait, none finishes; clear drains them', async () => {
    const queue = sim.bullQueue('hosting')!;
    await sim.scenario('stalled-worker', { queue: 'hosting' });
    // Jobs taken before the switch may still finish; these six are taken, if at all, by a hung worker.
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push(await sim.enqueueJob('hosting'));
    const states = async () => Promise.all(ids.map((id) => queue.getJob(id).then((j) => j?.getState())));
    // Concurrency 4: once the worker holds four hung jobs, the rest wait.
    await waitFor('the hung worker to hold four jobs', async () => (await queue.getActiveCount()) === 4 && (await queue.getWaitingCount()) >= 2);
    expect((await states()).every((st) => st === 'active' || st === 'waiting')).toBe(true);
    expect((await states()).filter((st) => st === 'waiting').length).toBeGreaterThanOrEqual(2);
    expect(await queue.getWorkersCount()).toBeGreaterThan(0);
    const rows = (await tdb.admin.query(`SELECT "status" FROM "ProvisioningJob" WHERE "id" = ANY($1)`, [ids])).rows as Array<{ status: string }>;
    expect(rows.map((r) => r.status)).toEqual(ids.map(() => 'PENDING'));
    await sim.clear('stalled-worker');
    await waitFor('the six jobs to finish', async () => (await states()).every((st) => st === 'completed' || st === 'failed'));
    await waitFor('the hosting queue to drain', async () => (await queue.getWaitingCount()) === 0);
  });

  it('job-stuck: a RUNNING row started ageSeconds ago, held active by a worker; clear completes it', async () => {
    const t0 = Date.now() / 1000;
    const { ids } = await sim.scenario('job-stuck', { queue: 'cloudpod', ageSeconds: 1800 });
    expect(ids).toHaveLength(1);
    const id = ids[0]!;
    const row = await one<{ type: string; status: string; started: number; created: number; finishedAt: null }>(
      `SELECT "type", "status", ${epoch('"startedAt"')} AS started, ${epoch('"createdAt"')} AS created, "finishedAt" FROM "ProvisioningJob" WHERE "id" = $1`,
      [id],
    );
    expect(row).toMatchObject({ type: 'cloudpod', status: 'RUNNING', finishedAt: null });
    expect(row.started).toBeGreaterThan(t0 - 1801);
    expect(row.started).toBeLessThan(t0 - 1799);
    expect(row.created).toBeLessThan(row.started);
    const queue = sim.bullQueue('cloudpod')!;
    await waitFor('the stuck job to be active', async () => (await queue.getJob(id).then((j) => j?.getState())) === 'active');
    await new Promise((res) => setTimeout(res, 300));
    expect(await queue.getJob(id).then((j) => j?.getState())).toBe('active');
    expect((await one<{ status: string }>(`SELECT "status" FROM "ProvisioningJob" WHERE "id" = $1`, [id])).status).toBe('RUNNING');
    await sim.clear('job-stuck');
    await waitFor('the stuck job to complete', async () => (await queue.getJob(id).then((j) => j?.getState())) === 'completed');
    const after = await one<{ status: string; finished: number }>(`SELECT "status", ${epoch('"finishedAt"')} AS finished FROM "ProvisioningJob" WHERE "id" = $1`, [id]);
    expect(after.status).toBe('COMPLETED');
    expect(after.finished).toBeGreaterThan(Date.now() / 1000 - 5);
  });

  it('failure-burst: count jobs fail in BullMQ and the table, most new jobs fail; clear restores the usual rate', async () => {
    const queue = sim.bullQueue('dns')!;
    const failedBefore = await queue.getFailedCount();
    const { ids } = await sim.scenario('failure-burst', { queue: 'dns', count: 20 });
    expect(ids).toHaveLength(20);
    await waitFor('20 FAILED rows', async () => {
      const r = await one<{ n: number }>(`SELECT count(*)::int AS n FROM "ProvisioningJob" WHERE "id" = ANY($1) AND "status" = 'FAILED'`, [ids]);
      return r.n === 20;
    });
    const rows = (await tdb.admin.query(`SELECT "action", "errorMessage", "attempts", "finishedAt" IS NOT NULL AS finished FROM "ProvisioningJob" WHERE "id" = ANY($1)`, [ids])).rows;
    for (const r of rows) {
      expect(r.action).toMatch(/^dns\./);
      expect(r.errorMessage.length).toBeGreaterThan(10);
      expect(r.attempts).toBe(1);
      expect(r.finished).toBe(true);
    }
    await waitFor('BullMQ to count the 20 failures', async () => (await queue.getFailedCount()) >= failedBefore + 20);
    for (const id of ids) expect(await queue.getJob(id).then((j) => j?.getState())).toBe('failed');

    const outcome = async (n: number) => {
      const jobIds: string[] = [];
      for (let i = 0; i < n; i++) jobIds.push(await sim.enqueueJob('dns'));
      await waitFor('the jobs to finish', async () => {
        const r = await one<{ n: number }>(`SELECT count(*)::int AS n FROM "ProvisioningJob" WHERE "id" = ANY($1) AND "status" IN ('COMPLETED', 'FAILED')`, [jobIds]);
        return r.n === n;
      }, { timeoutMs: 15_000 });
      return one<{ failed: number }>(`SELECT count(*) FILTER (WHERE "status" = 'FAILED')::int AS failed FROM "ProvisioningJob" WHERE "id" = ANY($1)`, [jobIds]);
    };
    expect((await outcome(20)).failed).toBeGreaterThanOrEqual(8);
    await sim.clear('failure-burst');
    expect((await outcome(20)).failed).toBeLessThanOrEqual(3);
  });

  it('critical-finding: one OPEN CRITICAL finding on the node; clear resolves it', async () => {
    const openCritical = async () => (await one<{ n: number }>(`SELECT count(*)::int AS n FROM "GuardianFinding" WHERE "status" = 'OPEN' AND "severity" = 'CRITICAL'`)).n;
    expect(await openCritical()).toBe(0);
    const { ids } = await sim.scenario('critical-finding', { node: 'SRV1-WEB' });
    expect(await openCritical()).toBe(1);
    const f = await one<{ nodeId: string; title: string; resolvedAt: null }>(`SELECT "nodeId", "title", "resolvedAt" FROM "GuardianFinding" WHERE "id" = $1`, [ids[0]]);
    expect(f).toMatchObject({ nodeId: 'node_srv1_web', resolvedAt: null });
    await new Promise((res) => setTimeout(res, 500));
    expect(await openCritical()).toBe(1);
    await sim.clear('critical-finding');
    expect(await openCritical()).toBe(0);
    const resolved = await one<{ status: string; age: number }>(
      `SELECT "status", extract(epoch FROM (now() AT TIME ZONE 'UTC') - "resolvedAt")::float8 AS age FROM "GuardianFinding" WHERE "id" = $1`,
      [ids[0]],
    );
    expect(resolved.status).toBe('RESOLVED');
    expect(Math.abs(resolved.age)).toBeLessThan(5);
  });

  const lastBackups = (type: string) =>
    one<{ success_age_h: number | null; failure_age_h: number | null; running: number; successes: number }>(
      `SELECT extract(epoch FROM (now() AT TIME ZONE 'UTC') - max(coalesce("completedAt", "startedAt")) FILTER (WHERE "status" = 'COMPLETED'))::float8 / 3600 AS success_age_h,
              extract(epoch FROM (now() AT TIME ZONE 'UTC') - max(coalesce("completedAt", "startedAt")) FILTER (WHERE "status" = 'FAILED'))::float8 / 3600 AS failure_age_h,
              count(*) FILTER (WHERE "status" = 'RUNNING')::int AS running,
              count(*) FILTER (WHERE "status" = 'COMPLETED')::int AS successes
       FROM "Backup" WHERE "resourceType" = $1`,
      [type],
    );

  it('backup-stale: the last success is more than `hours` old and no run starts; clear writes a success now', async () => {
    await waitFor('no DB_CORE backup running', async () => (await lastBackups('DB_CORE')).running === 0);
    expect((await lastBackups('DB_CORE')).success_age_h).toBeLessThan(26);
    await sim.scenario('backup-stale', { resourceType: 'DB_CORE', hours: 50 });
    const stale = await lastBackups('DB_CORE');
    expect(stale.success_age_h).toBeGreaterThan(50);
    expect(stale.successes).toBeGreaterThan(0);
    await new Promise((res) => setTimeout(res, 400));
    const later = await lastBackups('DB_CORE');
    expect(later.running).toBe(0);
    expect(later.success_age_h).toBeGreaterThan(50);
    await sim.clear('backup-stale');
    const fresh = await lastBackups('DB_CORE');
    expect(fresh.success_age_h).toBeLessThan(0.01);
    // The scheduler does not start another run right after.
    await new Promise((res) => setTimeout(res, 300));
    expect((await lastBackups('DB_CORE')).running).toBe(0);
  });

  it('backup-failing: a FAILED backup now, newer than the last success, for every pod; clear writes a success now', async () => {
    const { ids } = await sim.scenario('backup-failing', { resourceType: 'CLOUD_POD' });
    expect(ids).toHaveLength(6);
    const failing = await lastBackups('CLOUD_POD');
    expect(failing.failure_age_h).toBeLessThan(0.01);
    expect(failing.success_age_h!).toBeGreaterThan(failing.failure_age_h!);
    const pods = await one<{ pods: number }>(`SELECT count(DISTINCT "resourceId")::int AS pods FROM "Backup" WHERE "id" = ANY($1) AND "status" = 'FAILED'`, [ids]);
    expect(pods.pods).toBe(6);
    await sim.clear('backup-failing');
    const ok = await lastBackups('CLOUD_POD');
    expect(ok.success_age_h!).toBeLessThanOrEqual(ok.failure_age_h!);
    expect(ok.success_age_h).toBeLessThan(0.01);
  });

  it('leaves nothing active, and logs one line per switch', async () => {
    expect(sim.activeScenarios()).toEqual([]);
    expect(log.lines.filter((l) => / on$/.test(l)).length).toBe(log.lines.filter((l) => / off$/.test(l)).length);
    expect(log.lines.filter((l) => /failing: .*logged once/.test(l))).toEqual([]);
  });
});

describe('block-burst, on a clock of the test\'s own', () => {
  // Counted per tick of simulated time, never against the wall clock.
  let still: StillSimulator;
  let clocked: Simulator;
  async function q<T>(sql: string, params: unknown[] = []): Promise<T> {
    return (await still.db.admin.query(sql, params)).rows[0] as T;
  }
  const maxId = async () => (await q<{ id: string }>(`SELECT coalesce(max("id"), 0)::text AS id FROM "ShieldEvent"`)).id;

  beforeAll(async () => {
    still = await startStillSimulator(
      'demo-block-burst',
      { randomSeed: 11, logger: captureLogger(), shieldEventsPerSecond: [30, 30], naturalBlockBurstEverySeconds: 0 },
      true,
    );
    clocked = still.sim;
  });
  afterAll(async () => {
    await still?.stop();
  });

  it('writes perSecond BLOCK events from a few IPs at once, perSecond a simulated second while on, none after clear', async () => {
    const start = await maxId();
    await clocked.scenario('block-burst', { perSecond: 400 });
    // The burst's first second is written at once, and nothing else was.
    const first = await q<{ n: number; block: number; ips: string[] }>(
      `SELECT count(*)::int AS n, count(*) FILTER (WHERE "decision" = 'BLOCK')::int AS block, array_agg(DISTINCT "ip") AS ips FROM "ShieldEvent" WHERE "id" > $1`,
      [start],
    );
    expect(first.n).toBe(400);
    expect(first.block).toBe(400);
    expect(first.ips.length).toBeGreaterThanOrEqual(1);
    expect(first.ips.length).toBeLessThanOrEqual(4);
    const attacks = async (from: string) =>
      q<{ block: number; all: number }>(
        `SELECT count(*) FILTER (WHERE "decision" = 'BLOCK' AND "ip" = ANY($2))::int AS block, count(*)::int AS "all" FROM "ShieldEvent" WHERE "id" > $1`,
        [from, first.ips],
      );

    // One simulated second while on: 10 steps of 100 ms, 40 attack events each.
    const mid = await maxId();
    for (let i = 0; i < 10; i++) await clocked.tick();
    expect((await attacks(mid)).block).toBe(400);

    // Cleared: a simulated second of the usual traffic (30 a second), and no attack.
    await clocked.clear('block-burst');
    const after = await maxId();
    for (let i = 0; i < 10; i++) await clocked.tick();
    const quiet = await attacks(after);
    expect(quiet.block).toBe(0);
    expect(quiet.all).toBeGreaterThan(0);
  });
});
