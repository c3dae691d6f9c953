/**
 * What the flow read costs Redis: XINFO STREAM and XRANGE per queue in the
 * counts' pipeline, and one script per queue with finished jobs in a second, with 50 jobs a second finishing (750 jobs between
 * two 15 s collections, over 30 queues, as the bench's large scale has), on a
 * Redis of the test's own. The Redis time (INFO commandstats) is printed for
 * the README, not asserted: it depends on the machine.
 */
import { Queue, QueueEvents, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queuesSource } from '../src/sources/queues.js';
import { startRedisServer, type RedisServer } from './helpers/redis-server.js';

const PREFIX = 'cost';
const QUEUES = 30;
/** 50 jobs/s for a 15 s collection interval. */
const FINISHED = 750;

let server: RedisServer;
let client: Redis;
const closers: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  server = await startRedisServer();
  client = new Redis(server.url);
});

afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  client?.disconnect();
  await server?.destroy();
});

/** Calls and microseconds per command since the server started. */
async function commandStats(): Promise<Map<string, { calls: number; usec: number }>> {
  const info = await client.info('commandstats');
  const out = new Map<string, { calls: number; usec: number }>();
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) out.set(m[1]!, { calls: Number(m[2]), usec: Number(m[3]) });
  return out;
}

function delta(before: Map<string, { calls: number; usec: number }>, after: Map<string, { calls: number; usec: number }>) {
  const d = new Map<string, { calls: number; usec: number }>();
  for (const [k, v] of after) {
    const b = before.get(k) ?? { calls: 0, usec: 0 };
    if (v.calls !== b.calls) d.set(k, { calls: v.calls - b.calls, usec: v.usec - b.usec });
  }
  d.delete('info');
  return d;
}

describe('flow read cost', () => {
  it('reads each queue\'s stream with XINFO and XRANGE and the finished jobs\' hashes with one script per queue; prints its Redis time with 750 jobs finished since the last read', async () => {
    const connection = { host: '127.0.0.1', port: server.port, maxRetriesPerRequest: null };
    const names = Array.from({ length: QUEUES }, (_, i) => `q${String(i).padStart(2, '0')}`);
    const queues = names.map((name) => {
      const q = new Queue(name, { connection, prefix: PREFIX, defaultJobOptions: { removeOnComplete: { count: 1000 }, removeOnFail: { count: 5000 } } });
      closers.push(() => q.close());
      return q;
    });
    // A backlog in every queue, so the counts script has its usual work too.
    for (const q of queues) await q.addBulk(Array.from({ length: 20 }, (_, i) => ({ name: 'backlog', data: { i }, opts: { delay: 3_600_000 } })));
    const source = queuesSource(client, { prefixes: [PREFIX], discoveryIntervalSeconds: 3600, scanCallsPerCollection: 100, maxPriorityLevels: 8 });
    const collect = () => source.collect({ now: new Date(), signal: new AbortController().signal, timeoutMs: 5000 });
    await collect();
    await collect();

    const evs = await Promise.all(
      names.map(async (name) => {
        const e = new QueueEvents(name, { connection, prefix: PREFIX, lastEventId: '0-0' });
        closers.push(() => e.close());
        await e.waitUntilReady();
        return e;
      }),
    );
    let finished = 0;
    const done = new Promise<void>((resolve) => {
      for (const e of evs) {
        const f = () => {
          finished += 1;
          if (finished === FINISHED) resolve();
        };
        e.on('completed', f);
        e.on('failed', f);
      }
    });
    const workers = names.map((name) => {
      const w = new Worker(name, async (job) => {
        if ((job.data as { i: number }).i % 25 === 0) throw new Error('no');
        return { ok: true };
      }, { connection, prefix: PREFIX, concurrency: 10 });
      w.on('error', () => undefined);
      closers.push(() => w.close(true));
      return w;
    });
    for (let i = 0; i < FINISHED; i++) await queues[i % QUEUES]!.add('work', { i });
    await done;
    await Promise.all(workers.map((w) => w.close()));
    await Promise.all(evs.map((e) => e.close()));

    // The job-times script loaded, as in an exporter that has run for a while.
    await (client as unknown as { opsJobTimes(p: string, ...ids: string[]): Promise<unknown> }).opsJobTimes(`${PREFIX}:none:`, 'none');
    const before = await commandStats();
    const data = await collect();
    const busy = delta(before, await commandStats());
    const before2 = await commandStats();
    await collect();
    const idle = delta(before2, await commandStats());

    const total = data.queues.reduce((a, q) => a + (q.flow?.completed ?? 0) + (q.flow?.failed ?? 0), 0);
    expect(total).toBe(FINISHED);
    expect(data.queues.reduce((a, q) => a + (q.flow?.unobserved ?? 0), 0)).toBe(0);
    // Per queue: the counts script, XINFO STREAM and XRANGE in the first round
    // trip (with one CLIENT LIST), and the job-times script in a second one.
    expect(busy.get('evalsha')?.calls).toBe(2 * QUEUES);
    expect(busy.get('xinfo|stream')?.calls).toBe(QUEUES);
    expect(busy.get('xrange')?.calls).toBe(QUEUES);
    expect(busy.get('client|list')?.calls).toBe(1);
    // Commands inside the scripts are counted too (in their evalsha's time as well); none is a scan, a KEYS or a whole hash.
    expect([...busy.keys()].filter((k) => /^(keys|scan|smembers|hgetall)$/.test(k))).toEqual([]);
    // Nothing finished: no second round trip.
    expect(idle.get('evalsha')?.calls).toBe(QUEUES);
    expect(idle.get('xrange')?.calls).toBe(QUEUES);
    // Top-level commands only: the commands inside a script are in its evalsha's time.
    const ms = (d: Map<string, { usec: number }>) =>
      (['evalsha', 'xinfo|stream', 'xrange', 'client|list'].reduce((a, k) => a + (d.get(k)?.usec ?? 0), 0) / 1000).toFixed(2);
    console.log(`commands inside: ${JSON.stringify(Object.fromEntries(busy))}`);
    console.log(
      `queue collection Redis time, ${QUEUES} queues: ${ms(busy)} ms with ${FINISHED} jobs finished since the last read, ${ms(idle)} ms with none`,
    );
  }, 120_000);
});
