/**
 * Hostile BullMQ content, on a Redis of the test's own: job times beyond the
 * JS Date range, negative or in the future, an empty queue name, and 2,000
 * queues where one has waiting jobs and no worker. Each is counted and
 * ignored for that job or queue only; what can page always keeps its series;
 * totals stay true under the bound. Plus the pure ranking, without Redis.
 */
import { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KNOWN } from '../src/catalog.js';
import type { InvalidCounts } from '../src/metrics/sample.js';
import { config as monitoring } from '../monitoring/config.js';
import { ALWAYS_SERVE_WAITING_SECONDS, DEFAULT_MAX_QUEUES_WITH_SERIES, parseQueueStats, queueSamples, rankQueues, type QueueView } from '../src/sources/queues.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { buildTestExporter, overview } from './helpers/exporter.js';
import { promtoolCheck, samples, value } from './helpers/prom-text.js';
import { startRedisServer, type RedisServer } from './helpers/redis-server.js';

const T0 = 1_700_000_000_000;
/** "Now" of the pure ranking tests: a minute after T0, before any backlog counts as old. */
const NOW = new Date(T0 + 60_000);

let server: RedisServer;
let client: Redis;
let db: TestDatabase;

beforeAll(async () => {
  server = await startRedisServer();
  client = new Redis(server.url);
  db = await createTestDatabase('queues_hostile');
});

afterAll(async () => {
  client?.disconnect();
  await server?.destroy();
  await db?.drop();
});

/** Adds `n` jobs with BullMQ, one second apart from T0, and returns their ids, oldest first. */
async function addJobs(prefix: string, name: string, n: number, paused = false): Promise<string[]> {
  const q = new Queue(name, { connection: { host: '127.0.0.1', port: server.port }, prefix });
  if (paused) await q.pause();
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push((await q.add('job', { i }, { timestamp: T0 + i * 1000 })).id!);
  await q.close();
  return ids;
}

async function collectOnce(prefix: string): Promise<{ app: FastifyInstance; text: string; invalid: Record<string, number> }> {
  const app = await buildTestExporter({ db, env: { REDIS_URL: server.url, OPS_QUEUE_PREFIXES: prefix } });
  await app.collection.collectAll();
  const res = await app.inject('/metrics');
  expect(res.statusCode).toBe(200);
  const text = res.body;
  const invalid = Object.fromEntries(
    samples(text, 'ops_source_invalid_values', { source: 'queues' })
      .filter((s) => s.value !== 0)
      .map((s) => [s.labels.reason!, s.value]),
  );
  return { app, text, invalid };
}

describe('out-of-range job times and an empty queue name', () => {
  const P = 'times';
  let app: FastifyInstance;
  let text: string;
  let invalid: Record<string, number>;

  beforeAll(async () => {
    // The tail of the wait list (the oldest job) carries each bad time; the
    // jobs after it good ones.
    const huge = await addJobs(P, 'huge', 3);
    await client.hset(`${P}:huge:${huge[0]}`, 'timestamp', '9000000000000000');
    const negative = await addJobs(P, 'negative', 3);
    await client.hset(`${P}:negative:${negative[0]}`, 'timestamp', '-5');
    const future = await addJobs(P, 'future', 2);
    await client.hset(`${P}:future:${future[0]}`, 'timestamp', String(Date.now() + 86_400_000));
    const started = await addJobs(P, 'bad-started', 2);
    // A start time that is not one: the job falls back to its creation time.
    await client.hset(`${P}:bad-started:${started[0]}`, 'processedOn', '9e300');
    const nothing = await addJobs(P, 'nothing-usable', 1);
    await client.hset(`${P}:nothing-usable:${nothing[0]}`, 'timestamp', '-1');
    const garbage = await addJobs(P, 'garbage-opts', 1);
    await client.hset(`${P}:garbage-opts:${garbage[0]}`, 'opts', '{"delay": "soon", "backoff": [');
    // A queue whose name is empty: key "times::meta", as BullMQ would write it.
    await client.hset(`${P}::meta`, 'opts.maxLenEvents', '10000');
    await client.lpush(`${P}::wait`, '1');
    await client.hset(`${P}::1`, 'timestamp', String(T0), 'opts', '{}');
    ({ app, text, invalid } = await collectOnce(P));
  });

  afterAll(async () => {
    await app?.close();
  });

  it('serves /metrics that promtool accepts, with each bad time counted once as bad_timestamp and the empty name as null_value', () => {
    expect(promtoolCheck(text)).toEqual({ ok: true, output: '' });
    expect(value(text, 'ops_source_up', { source: 'queues' })).toBe(1);
    expect(invalid).toEqual({ bad_timestamp: 5, null_value: 1 });
  });

  it('ignores a bad time for that job only: the queue keeps its oldest-waiting series from its other jobs', () => {
    const oldest = (queue: string) => value(text, 'ops_queue_oldest_waiting_job_timestamp_seconds', { prefix: P, queue });
    expect(oldest('huge')).toBe(1_700_000_001);
    expect(oldest('negative')).toBe(1_700_000_001);
    expect(oldest('future')).toBe(1_700_000_001);
    expect(oldest('bad-started')).toBe(1_700_000_000);
    expect(oldest('garbage-opts')).toBe(1_700_000_000);
    expect(oldest('nothing-usable')).toBeUndefined();
    expect(value(text, 'ops_queue_jobs', { prefix: P, queue: 'nothing-usable', state: 'waiting' })).toBe(1);
  });

  it('never serves an empty queue label', () => {
    const names = new Set(samples(text, 'ops_queue_jobs', { prefix: P }).map((s) => s.labels.queue));
    expect([...names].sort()).toEqual(['bad-started', 'future', 'garbage-opts', 'huge', 'negative', 'nothing-usable']);
    expect(text).not.toMatch(/queue=""/);
  });

  it('answers the API with finite ages only, never an invalid date', async () => {
    const api = await overview(app);
    expect(api.statusCode).toBe(200);
    const byName = Object.fromEntries(api.body.queues.map((q: any) => [q.name, q]));
    expect(Object.keys(byName).sort()).toEqual(['bad-started', 'future', 'garbage-opts', 'huge', 'negative', 'nothing-usable']);
    for (const q of api.body.queues) {
      if ('oldestWaitingSeconds' in q) expect(Number.isFinite(q.oldestWaitingSeconds), q.name).toBe(true);
    }
    expect(byName['nothing-usable']).not.toHaveProperty('oldestWaitingSeconds');
    expect(byName.huge.oldestWaitingSeconds).toBeGreaterThan(0);
  });
});

describe('2,000 queues, one with waiting jobs and no worker', () => {
  const P = 'many';
  const HEALTHY = 2000;
  let app: FastifyInstance;
  let text: string;
  let invalid: Record<string, number>;
  let completedTotal = 0;

  beforeAll(async () => {
    // Healthy queues as BullMQ leaves them once drained: the meta hash and
    // completed jobs; every 500th also has failed jobs.
    const pipe = client.pipeline();
    for (let i = 0; i < HEALTHY; i++) {
      const name = `hq${String(i).padStart(4, '0')}`;
      pipe.hset(`${P}:${name}:meta`, 'opts.maxLenEvents', '10000');
      const completed = (i % 3) + 1;
      completedTotal += completed;
      for (let j = 0; j < completed; j++) pipe.zadd(`${P}:${name}:completed`, T0 + j, `c${j}`);
      if (i % 500 === 0) pipe.zadd(`${P}:${name}:failed`, T0, 'f1', T0 + 1, 'f2');
    }
    await pipe.exec();
    // Sorted last by name: before the bound, the series cap cut these first.
    await addJobs(P, 'zz-stuck', 1);
    await addJobs(P, 'zz-paused', 2, true);
    ({ app, text, invalid } = await collectOnce(P));
  });

  afterAll(async () => {
    await app?.close();
  });

  it('always serves the queue that pages (waiting jobs, no worker) and the paused one with a backlog', () => {
    for (const state of KNOWN.queueState) {
      expect(value(text, 'ops_queue_jobs', { prefix: P, queue: 'zz-stuck', state }), state).toBe(state === 'waiting' ? 1 : 0);
    }
    expect(value(text, 'ops_queue_workers', { prefix: P, queue: 'zz-stuck' })).toBe(0);
    expect(value(text, 'ops_queue_paused', { prefix: P, queue: 'zz-stuck' })).toBe(0);
    expect(value(text, 'ops_queue_oldest_waiting_job_timestamp_seconds', { prefix: P, queue: 'zz-stuck' })).toBe(1_700_000_000);
    expect(value(text, 'ops_queue_jobs', { prefix: P, queue: 'zz-paused', state: 'paused' })).toBe(2);
    expect(value(text, 'ops_queue_paused', { prefix: P, queue: 'zz-paused' })).toBe(1);
  });

  it('bounds the healthy remainder to 500 queues in all, queues with failed jobs first, and counts each queue left out once', () => {
    const served = new Set(samples(text, 'ops_queue_paused', { prefix: P }).map((s) => s.labels.queue));
    expect(DEFAULT_MAX_QUEUES_WITH_SERIES).toBe(500);
    expect(served.size).toBe(500);
    for (const name of ['hq0000', 'hq0500', 'hq1000', 'hq1500']) expect(served.has(name), name).toBe(true);
    // Then healthy queues by name: the first 494 of the 1,996 without failures.
    expect(served.has('hq0494')).toBe(true);
    expect(served.has('hq0495')).toBe(false);
    expect(invalid).toEqual({ label_overflow: HEALTHY + 2 - 500 });
    expect(value(text, 'ops_queues', { prefix: P })).toBe(HEALTHY + 2);
    expect(value(text, 'ops_queues_without_series', { prefix: P })).toBe(HEALTHY + 2 - 500);
    // Every served queue has its full set of series; the runner cut nothing.
    expect(samples(text, 'ops_queue_jobs', { prefix: P })).toHaveLength(500 * KNOWN.queueState.length);
    expect(promtoolCheck(text)).toEqual({ ok: true, output: '' });
  });

  it('keeps totals true over every queue read, served or not', () => {
    const all = (state: string) => value(text, 'ops_queue_jobs_all', { prefix: P, state });
    expect(all('completed')).toBe(completedTotal);
    expect(all('failed')).toBe(8);
    expect(all('waiting')).toBe(1);
    expect(all('paused')).toBe(2);
    expect(all('active')).toBe(0);
    // The served queues alone hold less: the totals are not their sum.
    const servedCompleted = samples(text, 'ops_queue_jobs', { prefix: P, state: 'completed' }).reduce((a, s) => a + s.value, 0);
    expect(servedCompleted).toBeLessThan(completedTotal);
  });
});

describe('ranking and bounding queues (pure)', () => {
  const view = (name: string, over: Partial<Omit<QueueView, 'counts'>> & { counts?: Partial<QueueView['counts']> } = {}): QueueView => ({
    prefix: 'bull',
    name,
    paused: false,
    workers: 1,
    ...over,
    counts: { waiting: 0, active: 0, delayed: 0, failed: 0, completed: 0, paused: 0, prioritized: 0, 'waiting-children': 0, ...over.counts },
  });
  const queues = [
    view('healthy-b'),
    view('healthy-a'),
    view('failing', { counts: { failed: 3 } }),
    view('failing-more', { counts: { failed: 9 } }),
    view('backlog-young', { counts: { waiting: 2 }, oldestWaitingAt: new Date(T0 + 5000) }),
    view('backlog-old', { counts: { prioritized: 1 }, oldestWaitingAt: new Date(T0) }),
    view('backlog-undated', { counts: { waiting: 1 } }),
    view('no-worker', { counts: { waiting: 1 }, workers: 0, oldestWaitingAt: new Date(T0 + 9000) }),
    view('paused-backlog', { paused: true, workers: 0, counts: { paused: 4 } }),
    view('paused-empty', { paused: true, workers: 0 }),
    view('unknown-workers', { counts: { waiting: 1 }, workers: undefined, oldestWaitingAt: new Date(T0 + 1000) }),
  ];

  it('serves what pages first, then backlogs longest-waiting first, then failures, then the rest by name', () => {
    const invalid: InvalidCounts = {};
    const { queues: served } = rankQueues(queues, ['bull'], 100, NOW, invalid);
    expect(served.map((q) => q.name)).toEqual([
      'no-worker',
      'paused-backlog',
      'backlog-old',
      'unknown-workers',
      'backlog-young',
      'backlog-undated',
      'failing-more',
      'failing',
      'healthy-a',
      'healthy-b',
      'paused-empty',
    ]);
    expect(invalid).toEqual({});
  });

  it('never bounds what pages, even with a bound of 0, and totals every queue per configured prefix', () => {
    const invalid: InvalidCounts = {};
    const { queues: served, totals } = rankQueues(queues, ['bull', 'other'], 3, NOW, invalid);
    expect(served.map((q) => q.name)).toEqual(['no-worker', 'paused-backlog', 'backlog-old']);
    expect(invalid).toEqual({ label_overflow: 8 });
    expect(totals).toEqual([
      {
        prefix: 'bull',
        queues: 11,
        withoutSeries: 8,
        counts: { waiting: 5, active: 0, delayed: 0, failed: 12, completed: 0, paused: 4, prioritized: 1, 'waiting-children': 0 },
      },
      { prefix: 'other', queues: 0, withoutSeries: 0, counts: Object.fromEntries(KNOWN.queueState.map((s) => [s, 0])) },
    ]);
    expect(rankQueues(queues, ['bull'], 0, NOW, {}).queues.map((q) => q.name)).toEqual(['no-worker', 'paused-backlog']);
  });

  it('always serves a queue whose oldest job has waited as long as the backlog alert\'s default threshold', () => {
    const at = (ms: number) => new Date(T0 + ms);
    const old = view('old-backlog', { counts: { waiting: 1 }, oldestWaitingAt: at(0) });
    const young = view('young-backlog', { counts: { waiting: 1 }, oldestWaitingAt: at(1) });
    const just = new Date(T0 + ALWAYS_SERVE_WAITING_SECONDS * 1000);
    expect(rankQueues([young, old], ['bull'], 0, just, {}).queues.map((q) => q.name)).toEqual(['old-backlog']);
    expect(rankQueues([young, old], ['bull'], 0, new Date(just.getTime() - 1), {}).queues).toEqual([]);
    expect(ALWAYS_SERVE_WAITING_SECONDS).toBe(monitoring.queues.oldestWaitingWarningSeconds);
  });

  it('emits the totals before any per-queue series, and the queues in rank order', () => {
    const data = { ...rankQueues(queues, ['bull'], 3, NOW, {}), invalid: {} };
    const metrics = queueSamples(data).map((s) => s.metric);
    const firstQueue = metrics.indexOf('queueJobs');
    expect(metrics.slice(0, firstQueue).every((m) => ['queuesRead', 'queuesWithoutSeries', 'queueJobsAll'].includes(m))).toBe(true);
    expect(queueSamples(data).filter((s) => s.metric === 'queuePaused').map((s) => s.labels.queue)).toEqual(['no-worker', 'paused-backlog', 'backlog-old']);
  });

  it('rejects times a Date cannot hold, not after the epoch, or beyond the allowed skew', () => {
    const reply = (oldest: string) => [1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, oldest, 0];
    const latest = new Date(T0 + 300_000);
    for (const bad of ['9000000000000000', '-5', '0', 'nan', String(T0 + 300_001)]) {
      const invalid: InvalidCounts = {};
      expect(parseQueueStats('bull', 'q', reply(bad), invalid, latest)?.oldestWaitingAt, bad).toBeUndefined();
      expect(invalid, bad).toEqual({ bad_timestamp: 1 });
    }
    const invalid: InvalidCounts = {};
    expect(parseQueueStats('bull', 'q', reply(String(T0 + 300_000)), invalid, latest)?.oldestWaitingAt).toEqual(new Date(T0 + 300_000));
    expect(parseQueueStats('bull', 'q', reply('-1'), invalid, latest)?.oldestWaitingAt).toBeUndefined();
    expect(invalid).toEqual({});
  });
});
