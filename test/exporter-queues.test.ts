/**
 * BullMQ queues, created with BullMQ itself, discovered without any queue
 * list, and read with the same numbers BullMQ's own API gives; and a Redis
 * that stops takes down the queues source only.
 */
import { Queue, Worker, type Job } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { buildTestExporter, overview, scrape } from './helpers/exporter.js';
import { series, value } from './helpers/metrics.js';
import { startRedisServer, type RedisServer } from './helpers/redis-server.js';
import { createTestRedis, type TestRedis } from './helpers/redis.js';

const STATES = ['waiting', 'active', 'delayed', 'failed', 'completed', 'paused', 'prioritized', 'waiting-children'] as const;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(50);
  }
}

describe('BullMQ queues', () => {
  let db: TestDatabase;
  let redis: TestRedis;
  let app: FastifyInstance;
  const queues: Queue[] = [];
  const workers: Worker[] = [];
  const firstAdded: Record<string, number> = {};
  let release: () => void = () => undefined;

  const connection = () => ({ host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null });
  const queue = (name: string) => {
    const q = new Queue(name, { connection: connection(), prefix: redis.prefix });
    queues.push(q);
    return q;
  };

  beforeAll(async () => {
    db = await createTestDatabase('queues');
    redis = await createTestRedis('queues');

    // hosting: plain FIFO backlog, oldest job added first.
    const hosting = queue('hosting');
    const h1 = await hosting.add('hosting.create', { n: 1 });
    firstAdded.hosting = h1.timestamp;
    await sleep(5);
    await hosting.addBulk([{ name: 'hosting.create', data: { n: 2 } }, { name: 'hosting.create', data: { n: 3 } }]);

    // dns: priorities. The oldest job has the lowest priority (5), so it is
    // last in processing order but first in age.
    const dns = queue('dns');
    const d1 = await dns.add('dns.zone.sync', {}, { priority: 5 });
    firstAdded.dns = d1.timestamp;
    await sleep(5);
    await dns.add('dns.zone.sync', {}, { priority: 1 });
    await dns.add('dns.zone.sync', {}, { priority: 1 });
    await dns.add('dns.zone.sync', {}, { priority: 3 });
    await dns.add('dns.zone.sync', {}, { delay: 60_000 });

    // mail: only delayed jobs, so nothing waits.
    const mail = queue('mail');
    await mail.add('mail.box.create', {}, { delay: 60_000 });

    // ssl: paused, with a backlog.
    const ssl = queue('ssl');
    await ssl.pause();
    const s1 = await ssl.add('ssl.issue', {});
    firstAdded.ssl = s1.timestamp;
    await ssl.add('ssl.issue', {});

    // cloudpod: two live workers, one job running, one failed, one completed.
    const cloudpod = queue('cloudpod');
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const processor = async (job: Job) => {
      if (job.data.fail) throw new Error('pod quota exceeded');
      if (job.data.hold) await gate;
    };
    for (const name of ['w1', 'w2']) {
      const w = new Worker('cloudpod', processor, { connection: connection(), prefix: redis.prefix, name, concurrency: 1 });
      w.on('error', () => undefined);
      workers.push(w);
    }
    await Promise.all(workers.map((w) => w.waitUntilReady()));
    await cloudpod.add('cloudpod.create', { fail: true }, { attempts: 1 });
    await cloudpod.add('cloudpod.create', {});
    await until(async () => (await cloudpod.getFailedCount()) === 1 && (await cloudpod.getCompletedCount()) === 1);
    await cloudpod.add('cloudpod.create', { hold: true });
    await until(async () => (await cloudpod.getActiveCount()) === 1);

    // A key under the prefix that only looks like a queue.
    await redis.client.hset(`${redis.prefix}:not-a-queue:meta`, 'owner', 'someone else');
    await redis.client.set(`${redis.prefix}:stray:meta`, 'a string, not a hash');

    app = await buildTestExporter({ db, redis });
    await app.collection.collectAll();
  });

  afterAll(async () => {
    release();
    await Promise.all(workers.map((w) => w.close()));
    await Promise.all(queues.map((q) => q.close()));
    await app?.close();
    await redis?.cleanup();
    await db?.drop();
  });

  it('discovers every queue under the prefix without configuration, and nothing that is not a queue', async () => {
    const { samples } = await scrape(app);
    expect(value(samples, 'ops_source_up', { source: 'queues' })).toBe(1);
    const names = [...new Set(series(samples, 'ops_queue_paused').map((s) => s.labels.queue))].sort();
    expect(names).toEqual(['cloudpod', 'dns', 'hosting', 'mail', 'ssl']);
    expect(series(samples, 'ops_queue_jobs', { queue: 'hosting' }).every((s) => s.labels.prefix === redis.prefix)).toBe(true);
    expect(value(samples, 'ops_source_invalid_values', { source: 'queues', reason: 'not_a_queue' })).toBe(1);
  });

  it('reports the same job counts and worker counts as BullMQ', async () => {
    const { samples } = await scrape(app);
    for (const q of queues) {
      const counts = await q.getJobCounts(...STATES);
      for (const state of STATES) {
        expect(value(samples, 'ops_queue_jobs', { queue: q.name, state }), `${q.name} ${state}`).toBe(counts[state]);
      }
      expect(value(samples, 'ops_queue_workers', { queue: q.name }), `${q.name} workers`).toBe(await q.getWorkersCount());
    }
    // And the values themselves, so BullMQ's semantics are pinned too.
    expect(value(samples, 'ops_queue_jobs', { queue: 'hosting', state: 'waiting' })).toBe(3);
    expect(value(samples, 'ops_queue_jobs', { queue: 'dns', state: 'prioritized' })).toBe(4);
    expect(value(samples, 'ops_queue_jobs', { queue: 'dns', state: 'delayed' })).toBe(1);
    expect(value(samples, 'ops_queue_jobs', { queue: 'cloudpod', state: 'active' })).toBe(1);
    expect(value(samples, 'ops_queue_jobs', { queue: 'cloudpod', state: 'failed' })).toBe(1);
    expect(value(samples, 'ops_queue_jobs', { queue: 'cloudpod', state: 'completed' })).toBe(1);
    expect(value(samples, 'ops_queue_workers', { queue: 'cloudpod' })).toBe(2);
    expect(value(samples, 'ops_queue_workers', { queue: 'hosting' })).toBe(0);
  });

  it('reports paused queues', async () => {
    const { samples } = await scrape(app);
    expect(value(samples, 'ops_queue_paused', { queue: 'ssl' })).toBe(1);
    expect(value(samples, 'ops_queue_paused', { queue: 'hosting' })).toBe(0);
    const ssl = queues.find((q) => q.name === 'ssl')!;
    const c = await ssl.getJobCounts('waiting', 'paused');
    expect((c.waiting ?? 0) + (c.paused ?? 0)).toBe(2);
  });

  it('finds the oldest waiting job by enqueue time, across priorities and in paused queues', async () => {
    const { samples } = await scrape(app);
    expect(value(samples, 'ops_queue_oldest_waiting_job_timestamp_seconds', { queue: 'hosting' })).toBe(firstAdded.hosting! / 1000);
    expect(value(samples, 'ops_queue_oldest_waiting_job_timestamp_seconds', { queue: 'dns' })).toBe(firstAdded.dns! / 1000);
    expect(value(samples, 'ops_queue_oldest_waiting_job_timestamp_seconds', { queue: 'ssl' })).toBe(firstAdded.ssl! / 1000);
    // Only delayed jobs, or only running ones: nothing waits.
    expect(series(samples, 'ops_queue_oldest_waiting_job_timestamp_seconds', { queue: 'mail' })).toEqual([]);
    expect(series(samples, 'ops_queue_oldest_waiting_job_timestamp_seconds', { queue: 'cloudpod' })).toEqual([]);
  });

  it('serves the queues in the API with backlog = waiting + prioritized + paused', async () => {
    const api = (await overview(app)).body;
    const dns = api.queues.find((q: any) => q.name === 'dns');
    expect(dns).toMatchObject({ name: 'dns', waiting: 4, active: 0, failed: 0, delayed: 1, prefix: redis.prefix, workers: 0, paused: false });
    expect(dns.oldestWaitingSeconds).toBeGreaterThanOrEqual(0);
    const mail = api.queues.find((q: any) => q.name === 'mail');
    expect(mail).not.toHaveProperty('oldestWaitingSeconds');
    const ssl = api.queues.find((q: any) => q.name === 'ssl');
    expect(ssl).toMatchObject({ waiting: 2, paused: true });
    const cloudpod = api.queues.find((q: any) => q.name === 'cloudpod');
    expect(cloudpod).toMatchObject({ waiting: 0, active: 1, failed: 1, workers: 2 });
  });

  it('counts a job hash without a timestamp as invalid instead of inventing an age', async () => {
    const broken = queue('broken');
    const job = await broken.add('x', {});
    await redis.client.hdel(`${redis.prefix}:broken:${job.id}`, 'timestamp');
    const fresh = await buildTestExporter({ db, redis });
    try {
      await fresh.collection.collectAll();
      const { samples } = await scrape(fresh);
      expect(value(samples, 'ops_queue_jobs', { queue: 'broken', state: 'waiting' })).toBe(1);
      expect(series(samples, 'ops_queue_oldest_waiting_job_timestamp_seconds', { queue: 'broken' })).toEqual([]);
      expect(value(samples, 'ops_source_invalid_values', { source: 'queues', reason: 'bad_timestamp' })).toBe(1);
    } finally {
      await fresh.close();
    }
  });

  it('drops a queue that disappears at the next collection', async () => {
    const gone = queue('short-lived');
    await gone.add('x', {});
    const fresh = await buildTestExporter({ db, redis });
    try {
      await fresh.collection.collectAll();
      expect(series((await scrape(fresh)).samples, 'ops_queue_paused', { queue: 'short-lived' })).toHaveLength(1);
      await gone.obliterate({ force: true });
      await fresh.collection.collect('queues');
      expect(series((await scrape(fresh)).samples, 'ops_queue_paused', { queue: 'short-lived' })).toEqual([]);
    } finally {
      await fresh.close();
    }
  });
});


describe('a Redis that stops', () => {
  let db: TestDatabase;
  let app: FastifyInstance;
  let server: RedisServer | undefined;

  beforeAll(async () => {
    db = await createTestDatabase('redis_stop');
    server = await startRedisServer();
    const q = new Queue('hosting', { connection: { host: '127.0.0.1', port: server.port, maxRetriesPerRequest: null }, prefix: 'bull' });
    await q.add('hosting.create', {});
    await q.close();
    app = await buildTestExporter({ db, env: { REDIS_URL: server.url, OPS_QUEUE_PREFIXES: 'bull' } });
  });
  afterAll(async () => {
    await server?.destroy();
    await app?.close();
    await db?.drop();
  });

  it('takes down the queues source only; the other sources and /metrics keep serving', async () => {
    await app.collection.collectAll();
    let { samples } = await scrape(app);
    expect(value(samples, 'ops_source_up', { source: 'queues' })).toBe(1);
    expect(value(samples, 'ops_queue_jobs', { queue: 'hosting', state: 'waiting' })).toBe(1);

    await server!.kill('SIGKILL');
    await app.collection.collectAll();
    ({ samples } = await scrape(app));
    expect(value(samples, 'ops_source_up', { source: 'queues' })).toBe(0);
    expect(value(samples, 'ops_source_errors_total', { source: 'queues' })).toBe(1);
    // Its data is not passed off as fresh: the series are gone, its last success stays.
    expect(series(samples, 'ops_queue_jobs')).toEqual([]);
    expect(value(samples, 'ops_source_last_success_timestamp_seconds', { source: 'queues' })).toBeGreaterThan(0);
    for (const source of ['core_nodes', 'provisioning', 'security', 'backups']) {
      expect(value(samples, 'ops_source_up', { source }), source).toBe(1);
    }
    const api = await overview(app);
    expect(api.statusCode).toBe(200);
    expect(api.body.sources.find((s: any) => s.name === 'queues')).toMatchObject({ up: false, stale: true });
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json().sources.queues).toBe('down');
  });
});

describe('queue discovery in a large keyspace', () => {
  // The README's promise: discovery SCANs `<prefix>:*:meta` hashes a bounded
  // number of calls per collection, resumes in the next, and starts a pass
  // once per discovery interval; a pass over a million keys is about a
  // thousand calls of COUNT 1000. Counted in SCAN calls and collections on a
  // Redis of the test's own, never in wall time.
  const FOREIGN_KEYS = 1_000_000;
  const QUEUES = Array.from({ length: 30 }, (_, i) => `q${String(i).padStart(2, '0')}`);
  let server: RedisServer;
  let client: import('ioredis').Redis;
  let keyspace: number;

  beforeAll(async () => {
    server = await startRedisServer(['--enable-debug-command', 'local']);
    const { Redis } = await import('ioredis');
    client = new Redis(server.url);
    // A million keys that are not queues, among them BullMQ-looking meta hashes
    // under another prefix, and 30 real queues under `bull`.
    await client.call('DEBUG', 'POPULATE', String(FOREIGN_KEYS), 'foreign');
    for (let i = 0; i < 100; i++) await client.hset(`other:q${i}:meta`, 'opts.maxLenEvents', '10000');
    const connection = { host: '127.0.0.1', port: server.port, maxRetriesPerRequest: null };
    for (const name of QUEUES) {
      const q = new Queue(name, { connection, prefix: 'bull' });
      await q.add('x', {});
      await q.close();
    }
    keyspace = await client.dbsize();
  });
  afterAll(async () => {
    client?.disconnect();
    await server?.destroy();
  });

  it('spends at most its SCAN budget per collection, resumes in the next, and finds every queue in about keys / 1000 calls', async () => {
    const { queuesSource } = await import('../src/sources/queues.js');
    const { Redis } = await import('ioredis');
    const reader = new Redis(server.url);
    // Every SCAN reply, so what is known after each collection can be compared with what SCAN returned so far.
    const metaKeysSeen = new Set<string>();
    let calls = 0;
    const scan = reader.scanBuffer.bind(reader);
    reader.scanBuffer = (async (...args: Parameters<typeof scan>) => {
      calls += 1;
      const reply = await scan(...args);
      for (const k of reply[1]) metaKeysSeen.add(k.toString());
      return reply;
    }) as typeof reader.scanBuffer;
    const passStarted = Date.parse('2026-03-01T00:00:00Z');
    // The injected clock stands still during the pass: the interval cannot start another.
    let now = passStarted;
    // A timeout so long that only the call budget bounds a collection.
    const collect = () => source.collect({ now: new Date(now), signal: new AbortController().signal, timeoutMs: 600_000 });
    const source = queuesSource(reader, { prefixes: ['bull'], discoveryIntervalSeconds: 60, maxPriorityLevels: 8, scanCallsPerCollection: 10 });
    try {
      let passCalls = 0;
      let collections = 0;
      let found: string[] = [];
      do {
        calls = 0;
        const data = await collect();
        collections += 1;
        passCalls += calls;
        expect(calls).toBeLessThanOrEqual(10);
        // Known as soon as SCAN returned it, never lost afterwards.
        found = data.queues.map((q) => q.name).sort();
        expect(found).toEqual([...metaKeysSeen].map((k) => k.slice('bull:'.length, -':meta'.length)).sort());
      } while (calls === 10 && collections < 1000);
      expect(found).toEqual(QUEUES);
      // About one call per 1,000 keys (SCAN's COUNT is a hint over hash buckets).
      expect(keyspace).toBeGreaterThan(FOREIGN_KEYS);
      expect(passCalls).toBeGreaterThanOrEqual(Math.floor(keyspace / 1000 / 2));
      expect(passCalls).toBeLessThanOrEqual(Math.ceil((keyspace / 1000) * 1.5));
      expect(collections).toBe(Math.ceil(passCalls / 10) + (passCalls % 10 === 0 ? 1 : 0));

      // No SCAN until the discovery interval (60 s from the start of the pass) has passed.
      now = passStarted + 59_999;
      calls = 0;
      expect((await collect()).queues).toHaveLength(30);
      expect(calls).toBe(0);
      now = passStarted + 60_000;
      await collect();
      expect(calls).toBe(10);
    } finally {
      reader.disconnect();
    }
  });
});
