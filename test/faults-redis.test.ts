/**
 * Redis killed and started again, and Redis hung (SIGSTOP), under a running
 * exporter, on a Redis of the test's own: /metrics keeps answering, the
 * queues source reports down while the database sources stay up, it
 * recovers by itself, the reconnection loop neither floods the log nor
 * blocks the event loop, and nothing escapes as an unhandled rejection.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Queue } from 'bullmq';
import type { SourceName } from '../src/catalog.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, metricsText, scrapeLoop, waitFor, type TestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { value } from './helpers/prom-text.js';
import { createTestRedis, type TestRedis } from './helpers/redis.js';
import type { RedisServer } from './helpers/redis-server.js';

let server: RedisServer;
let db: TestDatabase;
let redis: TestRedis;
let t: TestApp;
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);

/** Adds `n` waiting jobs to queue `hosting` with BullMQ itself. */
async function seedQueue(n: number): Promise<void> {
  const queue = new Queue('hosting', { connection: { host: '127.0.0.1', port: server.port }, prefix: redis.prefix });
  await queue.addBulk(Array.from({ length: n }, (_, i) => ({ name: 'hosting.create', data: { i } })));
  await queue.close();
}

const metrics = () => metricsText(t);

const up = async (source: string) => value(await metrics(), 'ops_source_up', { source });

/** Scrapes every 100 ms while `during` runs; returns every status. */
async function scraping(during: () => Promise<unknown>): Promise<number[]> {
  const loop = scrapeLoop(t);
  try {
    await during();
  } finally {
    await loop.stop();
  }
  return loop.statuses;
}

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  db = await createTestDatabase('faults_redis');
  redis = await createTestRedis('faults-redis');
  server = redis.server;
  await seedQueue(3);
  t = await createTestApp('faults-redis', {
    db,
    redis,
    startCollection: true,
    env: {
      OPS_COLLECT_INTERVAL_SECONDS: '1',
      // The database sources are not under test here: ample room, so a
      // machine busy with other work never times them out (test:stress);
      // the queues source, the one under test, times out after 1 s.
      OPS_COLLECT_TIMEOUT_SECONDS: '60',
      OPS_QUEUES_TIMEOUT_SECONDS: '1',
      OPS_QUEUE_DISCOVERY_INTERVAL_SECONDS: '1',
    },
  });
  // Every source collected once before Redis is killed: on busy cores a
  // database source's first collection can outlast the queues'.
  const sources = ['queues', 'core_nodes', 'provisioning', 'security', 'backups'];
  await waitFor(async () => (await Promise.all(sources.map(up))).every((u) => u === 1), 60_000, 'every source up');
});

afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  await t?.close();
  await db?.drop();
  await redis?.cleanup();
  expect(unhandled).toEqual([]);
});

describe('Redis killed and started again', () => {
  it('reports the queues source down, keeps everything else, and recovers without a restart', async () => {
    expect(value(await metrics(), 'ops_queue_jobs', { prefix: redis.prefix, queue: 'hosting', state: 'waiting' })).toBe(3);
    t.logs.clear();
    let reconnects = 0;
    const onReconnecting = () => (reconnects += 1);
    t.app.redis.on('reconnecting', onReconnecting);
    const loopDelay = monitorEventLoopDelay({ resolution: 10 });
    loopDelay.enable();
    const statuses = await scraping(async () => {
      await server.kill('SIGKILL');
      await waitFor(async () => (await up('queues')) === 0, 30_000, 'queues down');
      const down = await metrics();
      expect(value(down, 'ops_queue_jobs', { prefix: redis.prefix, queue: 'hosting', state: 'waiting' })).toBeUndefined();
      for (const s of ['core_nodes', 'provisioning', 'security', 'backups']) expect(value(down, 'ops_source_up', { source: s }), `${s}: ${t.app.collection.state(s as SourceName)?.lastError}`).toBe(1);
      expect((await t.app.inject('/readyz')).json()).toMatchObject({ sources: { queues: 'down', core_nodes: 'up' } });
      // A few seconds of reconnection attempts.
      await new Promise((r) => setTimeout(r, 4_000));
    });
    loopDelay.disable();
    t.app.redis.off('reconnecting', onReconnecting);

    expect(statuses.length).toBeGreaterThan(0);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    // No reconnection storm: attempts back off (200 ms, 400 ms, ... capped at
    // 2 s), about six in the ~5 s Redis is away.
    expect(reconnects).toBeGreaterThanOrEqual(2);
    expect(reconnects).toBeLessThanOrEqual(15);
    // And they never block the event loop. Generous bounds: the test files
    // share 2 cores, so this process is sometimes simply not scheduled.
    expect(loopDelay.percentile(50) / 1e6).toBeLessThan(50);
    expect(loopDelay.max / 1e6).toBeLessThan(3_000);
    // One line for the connection, one for the source: not one per attempt.
    const warnings = t.logs.lines().filter((l) => (l.level ?? 0) >= 40);
    expect(warnings.map((l) => l.msg).sort()).toEqual([
      'redis unreachable; the queues source is down until it answers (retrying)',
      'source queues is down',
    ]);
    const errors = value(await metrics(), 'ops_source_errors_total', { source: 'queues' }) ?? 0;
    expect(errors).toBeGreaterThanOrEqual(3);

    t.logs.clear();
    await server.start();
    await seedQueue(5);
    await waitFor(async () => (await up('queues')) === 1, 30_000, 'queues up again');
    await waitFor(
      async () => value(await metrics(), 'ops_queue_jobs', { prefix: redis.prefix, queue: 'hosting', state: 'waiting' }) === 5,
      30_000,
      'the new queue content',
    );
    const lines = t.logs.lines();
    expect(lines.filter((l) => l.msg === 'redis connected')).toHaveLength(1);
    expect(lines.filter((l) => l.msg === 'source queues is up')).toHaveLength(1);
    expect(unhandled).toEqual([]);
  }, 120_000);
});

describe('Redis hung (SIGSTOP)', () => {
  it('times the queues source out at its timeout, then recovers when Redis answers again', async () => {
    // Independent of the test before: Redis running, the source up.
    await server.start().catch(() => undefined);
    await waitFor(async () => (await up('queues')) === 1, 30_000, 'queues up');
    server.pause();
    try {
      // Every collection from now on waits on a server that does not answer.
      await waitFor(() => /timed out/.test(t.app.collection.state('queues')?.lastError ?? ''), 30_000, 'a timed-out queues collection');
      const state = t.app.collection.state('queues')!;
      expect(state.up).toBe(false);
      // The collection ends at its timeout (1 s), not when the hung server
      // answers (never, here); generous for a loaded machine.
      expect(state.durationSeconds).toBeLessThan(10);
      expect(await up('core_nodes')).toBe(1);
    } finally {
      server.resume();
    }
    await waitFor(async () => (await up('queues')) === 1, 30_000, 'queues up after SIGCONT');
    expect(unhandled).toEqual([]);
  }, 120_000);
});
