/**
 * The running simulator keeps the platform moving: node samples, WAF events,
 * provisioning jobs through real BullMQ workers mirrored into ProvisioningJob;
 * without Redis the database side runs alone; stop() leaves nothing behind.
 */
import net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgDemoDb } from '../src/demo/demo-db.js';
import { QUEUE_NAMES } from '../src/demo/platform.js';
import { createSimulator, type Simulator } from '../src/demo/simulator.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { captureLogger, FAST_INTERVALS, startStillSimulator, waitFor, type StillSimulator } from './helpers/demo-wait.js';
import { createTestRedis, type TestRedis } from './helpers/redis.js';

let tdb: TestDatabase;
let redis: TestRedis;
// No idle timers of its own, so the leak check counts only the simulator's.
let pool: pg.Pool;

async function one<T>(sql: string, params: unknown[] = []): Promise<T> {
  return (await pool.query(sql, params)).rows[0] as T;
}

function redisSockets(): number {
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  return handles.filter((h) => h instanceof net.Socket && h.remotePort === redis.port).length;
}

function timeouts(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

beforeAll(async () => {
  tdb = await createTestDatabase('demo-simulator');
  redis = await createTestRedis('demo-simulator');
  pool = new pg.Pool({ connectionString: tdb.adminUrl, max: 4, idleTimeoutMillis: 0 });
  // DROP DATABASE ... WITH (FORCE) in drop() may reach a connection still closing.
  pool.on('error', () => undefined);
  tdb.admin.on('error', () => undefined);
  await createSimulator({ db: pgDemoDb(pool), logger: captureLogger() }).seed(new Date(), { jobHistoryScale: 0.01, shieldEventsPerMinute: 2 });
});

afterAll(async () => {
  await pool?.end();
  await redis?.cleanup();
  await tdb?.drop();
});

describe('a running simulator with BullMQ', () => {
  let sim: Simulator;
  const log = captureLogger();
  let timeoutsBefore: number;
  let socketsBefore: number;
  let startedAt: number;

  beforeAll(async () => {
    await pool.query(
      `INSERT INTO "ProvisioningJob" ("id", "type", "action", "resourceType", "status", "createdAt", "updatedAt") VALUES
       ('pj_left_over', 'dns', 'dns.zone.sync', 'DNS_ZONE', 'RUNNING', now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC')`,
    );
    await pool.query(
      `INSERT INTO "ShieldEvent" ("timestamp", "decision", "path") VALUES
       ((now() AT TIME ZONE 'UTC') - interval '49 hours', 'ALLOW', '/too-old'), ((now() AT TIME ZONE 'UTC') - interval '47 hours', 'ALLOW', '/kept')`,
    );
    timeoutsBefore = timeouts();
    socketsBefore = redisSockets();
    sim = createSimulator({
      db: pgDemoDb(pool),
      redisUrl: redis.url,
      queuePrefix: redis.prefix,
      randomSeed: 3,
      logger: log,
      intervals: FAST_INTERVALS,
      jobRateScale: 40,
      jobDurationScale: 0.01,
      backupDurationScale: 0.0001,
    });
    startedAt = Date.now() / 1000;
    await sim.start();
  });

  afterAll(async () => {
    await sim?.stop();
  });

  it('cancels jobs an earlier run left unfinished', async () => {
    expect(await one(`SELECT "status", "errorMessage" IS NOT NULL AS has_reason, "finishedAt" IS NOT NULL AS finished FROM "ProvisioningJob" WHERE "id" = 'pj_left_over'`)).toEqual({
      status: 'CANCELLED',
      has_reason: true,
      finished: true,
    });
    expect(log.lines).toContain('simulator: cancelled 1 provisioning jobs left unfinished by an earlier run');
  });

  it('deletes WAF events past the 48 h retention and keeps the rest', async () => {
    await waitFor('the old event to be deleted', async () => (await one<{ n: number }>(`SELECT count(*)::int AS n FROM "ShieldEvent" WHERE "path" = '/too-old'`)).n === 0);
    expect(await one(`SELECT count(*)::int AS n FROM "ShieldEvent" WHERE "path" = '/kept'`)).toEqual({ n: 1 });
  });

  it('samples every node every interval', async () => {
    await waitFor('two more samples of every node', async () => {
      const r = await one<{ n: number }>(`SELECT count(*)::int AS n FROM "CoreNode" WHERE extract(epoch FROM "lastMetricsAt") > $1 + 0.2 AND "status" = 'ONLINE'`, [startedAt]);
      return r.n === 8;
    });
    const r = await one<{ bad: number }>(`SELECT count(*)::int AS bad FROM "CoreNode" WHERE NOT (
      ("metrics"->>'cpuPercent')::float8 BETWEEN 0 AND 100 AND ("metrics"->>'ramPercent')::float8 BETWEEN 0 AND 100 AND ("metrics"->>'diskPercent')::float8 BETWEEN 0 AND 100)`);
    expect(r.bad).toBe(0);
  });

  it('runs jobs through real BullMQ workers on every queue and mirrors each one into ProvisioningJob', async () => {
    for (const name of QUEUE_NAMES) expect(await sim.bullQueue(name)!.getWorkersCount()).toBeGreaterThan(0);
    await waitFor('finished jobs on every queue', async () => {
      const r = await one<{ n: number }>(
        `SELECT count(DISTINCT "type")::int AS n FROM "ProvisioningJob" WHERE "status" IN ('COMPLETED', 'FAILED') AND extract(epoch FROM "createdAt") >= $1::float8 - 1`,
        [startedAt],
      );
      return r.n === 6;
    }, { timeoutMs: 15_000 });
    for (const name of QUEUE_NAMES) {
      const queue = sim.bullQueue(name)!;
      const completed = await queue.getCompleted(0, 20);
      const failed = await queue.getFailed(0, 20);
      for (const job of completed) {
        const row = await one<{ type: string; action: string; status: string; ok: boolean; attempts: number }>(
          `SELECT "type", "action", "status", "attempts",
             ("createdAt" <= "startedAt" AND "startedAt" <= "finishedAt" AND "finishedAt" = "updatedAt" AND "errorMessage" IS NULL) AS ok
           FROM "ProvisioningJob" WHERE "id" = $1`,
          [job.id],
        );
        expect(row).toMatchObject({ type: name, action: job.name, status: 'COMPLETED', ok: true });
        expect([1, 2]).toContain(row.attempts);
      }
      for (const job of failed) {
        const row = await one<{ status: string; errorMessage: string }>(`SELECT "status", "errorMessage" FROM "ProvisioningJob" WHERE "id" = $1`, [job.id]);
        expect(row).toEqual({ status: 'FAILED', errorMessage: job.failedReason });
      }
    }
  });

  it('keeps a few jobs live and ends everything else in a terminal state', async () => {
    const r = await one<{ live: number; finished: number; unknown: number }>(
      `SELECT count(*) FILTER (WHERE "status" IN ('PENDING', 'RUNNING', 'DELAYED'))::int AS live,
              count(*) FILTER (WHERE "status" IN ('COMPLETED', 'FAILED', 'CANCELLED'))::int AS finished,
              count(*) FILTER (WHERE "status" NOT IN ('PENDING', 'RUNNING', 'DELAYED', 'COMPLETED', 'FAILED', 'CANCELLED'))::int AS unknown
       FROM "ProvisioningJob" WHERE extract(epoch FROM "createdAt") >= $1::float8 - 1`,
      [startedAt],
    );
    expect(r.unknown).toBe(0);
    expect(r.finished).toBeGreaterThan(r.live);
  });

  it('stop() closes workers, queues and Redis connections and clears every timer', async () => {
    expect(redisSockets()).toBeGreaterThan(socketsBefore);
    await sim.stop();
    expect(sim.isRunning).toBe(false);
    await new Promise((res) => setTimeout(res, 100));
    expect(redisSockets()).toBe(socketsBefore);
    expect(timeouts()).toBeLessThanOrEqual(timeoutsBefore);
    // Nothing writes after stop.
    const a = await one<{ n: number }>(`SELECT count(*)::int AS n FROM "ShieldEvent"`);
    await new Promise((res) => setTimeout(res, 300));
    expect(await one(`SELECT count(*)::int AS n FROM "ShieldEvent"`)).toEqual(a);
  });
});

describe('a simulator whose Redis does not answer', () => {
  let sim: Simulator;
  const log = captureLogger();

  beforeAll(async () => {
    sim = createSimulator({
      db: pgDemoDb(pool),
      redisUrl: 'redis://127.0.0.1:1',
      randomSeed: 5,
      logger: log,
      intervals: FAST_INTERVALS,
      jobRateScale: 40,
      jobDurationScale: 0.01,
    });
    await sim.start();
  });

  afterAll(async () => {
    await sim?.stop();
  });

  it('says so in one line and keeps writing jobs to ProvisioningJob', async () => {
    expect(sim.redis).toBe('unavailable');
    const t0 = Date.now() / 1000;
    await waitFor('jobs to complete without BullMQ', async () => {
      const r = await one<{ n: number }>(`SELECT count(*)::int AS n FROM "ProvisioningJob" WHERE "status" = 'COMPLETED' AND extract(epoch FROM "createdAt") >= $1`, [t0]);
      return r.n >= 10;
    });
    await new Promise((res) => setTimeout(res, 500));
    const redisLines = log.lines.filter((l) => /redis/i.test(l));
    expect(redisLines).toHaveLength(1);
    expect(redisLines[0]).toMatch(/^simulator: Redis does not answer \(.*\); running without BullMQ: provisioning jobs are written to ProvisioningJob only$/);
  });

  it('still plays workers-down and job-stuck on the table', async () => {
    await sim.scenario('workers-down', { queue: 'hosting' });
    const id = await sim.enqueueJob('hosting');
    await new Promise((res) => setTimeout(res, 300));
    expect(await one(`SELECT "status" FROM "ProvisioningJob" WHERE "id" = $1`, [id])).toEqual({ status: 'PENDING' });
    const stuck = await sim.scenario('job-stuck', { queue: 'ssl', ageSeconds: 3600 });
    await new Promise((res) => setTimeout(res, 200));
    expect(await one(`SELECT "status" FROM "ProvisioningJob" WHERE "id" = $1`, [stuck.ids[0]])).toEqual({ status: 'RUNNING' });
    await sim.clearAll();
    await waitFor('the parked job to finish', async () => {
      const r = await one<{ status: string }>(`SELECT "status" FROM "ProvisioningJob" WHERE "id" = $1`, [id]);
      return ['COMPLETED', 'FAILED'].includes(r.status);
    });
    await waitFor('the stuck job to complete', async () => (await one<{ status: string }>(`SELECT "status" FROM "ProvisioningJob" WHERE "id" = $1`, [stuck.ids[0]])).status === 'COMPLETED');
  });
});

describe('WAF events, on a clock of the test\'s own', () => {
  // Counted per tick of simulated time, never against the wall clock.
  let still: StillSimulator;
  let clocked: Simulator;

  beforeAll(async () => {
    still = await startStillSimulator('demo-sim-rate', { randomSeed: 4, logger: captureLogger(), shieldEventsPerSecond: [30, 30], naturalBlockBurstEverySeconds: 0 });
    clocked = still.sim;
  });
  afterAll(async () => {
    await still?.stop();
  });

  it('writes WAF events at the configured rate, mostly ALLOW', async () => {
    const count = async () =>
      (
        await still.db.admin.query<{ n: number; allow: number }>(
          `SELECT count(*)::int AS n, count(*) FILTER (WHERE "decision" = 'ALLOW')::int AS allow FROM "ShieldEvent"`,
        )
      ).rows[0]!;
    expect((await count()).n).toBe(0);
    // Ten simulated seconds at 30 a second: Poisson(300), outside 220..380 about once in 10^5 runs.
    for (let i = 0; i < 100; i++) await clocked.tick();
    const r = await count();
    expect(r.n).toBe(clocked.status().written.shieldEvents);
    expect(r.n).toBeGreaterThan(220);
    expect(r.n).toBeLessThan(380);
    // 93.5 % of ordinary traffic is ALLOW.
    expect(r.allow / r.n).toBeGreaterThan(0.85);
  });
});

describe('a simulator without REDIS_URL', () => {
  it('runs the database side and logs why', async () => {
    const log = captureLogger();
    const sim = createSimulator({ db: pgDemoDb(pool), logger: log, intervals: FAST_INTERVALS });
    await sim.start();
    await sim.stop();
    expect(sim.redis).toBe('disabled');
    expect(log.lines).toContain('simulator: no REDIS_URL, so no BullMQ queues: provisioning jobs are written to ProvisioningJob only');
  });

  it('refuses a pool on a database that is not demo-marked', async () => {
    const other = new pg.Pool({ connectionString: 'postgresql://postgres@127.0.0.1:5432/postgres' });
    try {
      expect(() => pgDemoDb(other)).toThrow(/refusing to write simulated platform data into database "postgres"/);
    } finally {
      await other.end();
    }
  });
});

describe('a simulator whose Redis dies while it runs', () => {
  it('logs the outage once, keeps the table moving, and still stops', async () => {
    const { startRedisServer } = await import('./helpers/redis-server.js');
    // Started and listening on return.
    const server = await startRedisServer();
    const log = captureLogger();
    const sim = createSimulator({
      db: pgDemoDb(pool),
      redisUrl: server.url,
      randomSeed: 9,
      logger: log,
      intervals: FAST_INTERVALS,
      jobRateScale: 40,
      jobDurationScale: 0.01,
    });
    try {
      await sim.start();
      expect(sim.redis).toBe('connected');
      await server.kill();
      const t0 = Date.now() / 1000;
      await waitFor('jobs to complete on timers while Redis is down', async () => {
        const r = await one<{ n: number }>(`SELECT count(*)::int AS n FROM "ProvisioningJob" WHERE "status" = 'COMPLETED' AND extract(epoch FROM "createdAt") >= $1`, [t0]);
        return r.n >= 5;
      });
      await new Promise((res) => setTimeout(res, 2000));
      const redisLines = log.lines.filter((l) => /redis/i.test(l) && !/running/.test(l));
      expect(redisLines).toHaveLength(1);
      expect(redisLines[0]).toMatch(/^simulator: Redis \(BullMQ\) failing: .* \(logged once until it recovers\)$/);
      const t1 = Date.now();
      await sim.stop();
      expect(Date.now() - t1).toBeLessThan(10_000);
    } finally {
      await sim.stop();
      await server.destroy();
    }
  });
});
