/**
 * Bad Redis content under a BullMQ prefix, table-driven: queues made with
 * BullMQ, then damaged by hand (a key that is not a queue, half-deleted
 * queues, job hashes without or with a garbage timestamp, wrong key types,
 * odd and overlong queue names, names that are not UTF-8). Each case asserts
 * the exact outcome in /metrics; every served output passes promtool.
 */
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_LABEL_VALUE_LENGTH } from '../src/metrics/bound.js';
import { createTestApp, type TestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { promtoolCheck, samples, value } from './helpers/prom-text.js';
import { createTestRedis, type TestRedis } from './helpers/redis.js';


interface Outcome {
  text: string;
  up: boolean;
  lastError?: string;
  invalid: Record<string, number>;
  /** ops_queue_jobs of `queue` by state. */
  jobs(queue: string): Record<string, number>;
}

interface Case {
  name: string;
  /** Builds the damage under `prefix` (r.client is a plain ioredis client). */
  seed(r: TestRedis): Promise<void>;
  check(o: Outcome): void;
}

/** Adds `n` jobs to `name` and returns their ids, oldest first. */
async function addJobs(r: TestRedis, name: string, n: number): Promise<string[]> {
  const q = new Queue(name, { connection: { host: '127.0.0.1', port: r.port }, prefix: r.prefix });
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    ids.push((await q.add('job', { i }, { timestamp: 1_700_000_000_000 + i * 1000 })).id!);
  }
  await q.close();
  return ids;
}

const cases: Case[] = [
  {
    name: 'a hash named like a queue\'s meta that BullMQ never wrote: not a queue, counted',
    async seed(r) {
      await addJobs(r, 'real', 1);
      await r.client.hset(`${r.prefix}:imposter:meta`, 'owner', 'someone else');
      await r.client.set(`${r.prefix}:loose-key`, 'x');
      await r.client.rpush(`${r.prefix}:imposter:wait`, '1', '2');
    },
    check({ text, jobs, invalid }) {
      expect(jobs('real').waiting).toBe(1);
      expect(samples(text, 'ops_queue_jobs', { queue: 'imposter' })).toEqual([]);
      expect(invalid).toEqual({ not_a_queue: 1 });
    },
  },
  {
    name: 'half-deleted queue, meta gone: the queue is no longer reported',
    async seed(r) {
      await addJobs(r, 'gone', 3);
      await r.client.del(`${r.prefix}:gone:meta`);
    },
    check({ text, invalid }) {
      expect(samples(text, 'ops_queue_jobs', { queue: 'gone' })).toEqual([]);
      expect(invalid).toEqual({});
    },
  },
  {
    name: 'half-deleted queue, wait list gone: reported with 0 waiting, no oldest job',
    async seed(r) {
      await addJobs(r, 'nolist', 3);
      await r.client.del(`${r.prefix}:nolist:wait`);
    },
    check({ text, jobs, invalid }) {
      expect(jobs('nolist')).toMatchObject({ waiting: 0, active: 0, failed: 0 });
      expect(value(text, 'ops_queue_oldest_waiting_job_timestamp_seconds', { queue: 'nolist' })).toBeUndefined();
      expect(invalid).toEqual({});
    },
  },
  {
    name: 'half-deleted queue, job hashes gone but ids still waiting: counted as waiting, no oldest job invented',
    async seed(r) {
      const ids = await addJobs(r, 'ghosts', 3);
      await r.client.del(...ids.map((id) => `${r.prefix}:ghosts:${id}`));
    },
    check({ text, jobs, invalid }) {
      expect(jobs('ghosts').waiting).toBe(3);
      expect(value(text, 'ops_queue_oldest_waiting_job_timestamp_seconds', { queue: 'ghosts' })).toBeUndefined();
      expect(invalid).toEqual({});
    },
  },
  {
    name: 'the oldest job\'s hash lacks its timestamp: counted bad_timestamp, the oldest usable one is served',
    async seed(r) {
      const ids = await addJobs(r, 'notime', 3);
      await r.client.hdel(`${r.prefix}:notime:${ids[0]}`, 'timestamp');
    },
    check({ text, jobs, invalid }) {
      expect(jobs('notime').waiting).toBe(3);
      // Candidates are the ends of the list (four deep at the tail): the next oldest is what is left.
      expect(value(text, 'ops_queue_oldest_waiting_job_timestamp_seconds', { queue: 'notime' })).toBe(1_700_000_001);
      expect(invalid).toEqual({ bad_timestamp: 1 });
    },
  },
  {
    name: 'a job timestamp that is not a number: counted bad_timestamp, the other end of the list is used',
    async seed(r) {
      const ids = await addJobs(r, 'badtime', 2);
      await r.client.hset(`${r.prefix}:badtime:${ids[0]}`, 'timestamp', 'yesterday');
    },
    check({ text, jobs, invalid }) {
      expect(jobs('badtime').waiting).toBe(2);
      expect(value(text, 'ops_queue_oldest_waiting_job_timestamp_seconds', { queue: 'badtime' })).toBe(1_700_000_001);
      expect(invalid).toEqual({ bad_timestamp: 1 });
    },
  },
  {
    name: 'BullMQ 4\'s "0:" marker at the tail of wait and paused is not a job: not counted, never the oldest',
    async seed(r) {
      await addJobs(r, 'marked', 6);
      await r.client.rpush(`${r.prefix}:marked:wait`, '0:1700000000000');
      await addJobs(r, 'onlymarker', 1);
      await r.client.del(`${r.prefix}:onlymarker:wait`);
      await r.client.rpush(`${r.prefix}:onlymarker:wait`, '0:1700000000000');
      await r.client.rpush(`${r.prefix}:onlymarker:paused`, '0:1700000000000');
    },
    check({ text, jobs, invalid }) {
      // Six jobs, the marker in front of the oldest: the candidates four deep at the tail still reach it.
      expect(jobs('marked').waiting).toBe(6);
      expect(value(text, 'ops_queue_oldest_waiting_job_timestamp_seconds', { queue: 'marked' })).toBe(1_700_000_000);
      expect(jobs('onlymarker')).toMatchObject({ waiting: 0, paused: 0 });
      expect(value(text, 'ops_queue_oldest_waiting_job_timestamp_seconds', { queue: 'onlymarker' })).toBeUndefined();
      expect(invalid).toEqual({});
    },
  },
  {
    name: 'quotes, backslashes and newlines in a queue name are escaped labels',
    async seed(r) {
      await addJobs(r, 'we"ird\\q\nx', 2);
    },
    check({ jobs, invalid }) {
      expect(jobs('we"ird\\q\nx').waiting).toBe(2);
      expect(invalid).toEqual({});
    },
  },
  {
    name: 'a 5,000-character queue name is cut to a bounded label and counted once',
    async seed(r) {
      await addJobs(r, 'q'.repeat(5000), 1);
    },
    check({ text, invalid }) {
      const names = [...new Set(samples(text, 'ops_queue_jobs').map((s) => s.labels.queue ?? ''))];
      expect(names).toHaveLength(1);
      expect(names[0]).toHaveLength(MAX_LABEL_VALUE_LENGTH - 1);
      expect(samples(text, 'ops_queue_jobs', { queue: names[0]!, state: 'waiting' })[0]?.value).toBe(1);
      expect(invalid).toEqual({ label_overflow: 1 });
    },
  },
];

/**
 * Damage that must stay local: a NaN timestamp must not hide the real oldest
 * job, one damaged queue must not take the whole source down, and a key whose
 * name is not UTF-8 must be counted, not silently skipped.
 */
const damaged: Case[] = [
  {
    // Lua's tonumber() reads "NaN" (and "inf"): the script must keep only finite values.
    name: 'a job timestamp "NaN" is counted bad_timestamp and does not hide the real oldest job',
    async seed(r) {
      const ids = await addJobs(r, 'nantime', 3);
      // The newest job (head of the wait list) is read first.
      await r.client.hset(`${r.prefix}:nantime:${ids[2]}`, 'timestamp', 'NaN');
    },
    check({ text, invalid }) {
      expect(value(text, 'ops_queue_oldest_waiting_job_timestamp_seconds', { queue: 'nantime' })).toBe(1_700_000_000);
      expect(invalid).toEqual({ bad_timestamp: 1 });
    },
  },
  {
    name: 'a queue key of the wrong type (wait is a hash) is counted, and the other queues stay up',
    async seed(r) {
      await addJobs(r, 'fine', 2);
      await addJobs(r, 'wrongtype', 1);
      await r.client.del(`${r.prefix}:wrongtype:wait`);
      await r.client.hset(`${r.prefix}:wrongtype:wait`, 'a', 'b');
    },
    check({ up, jobs, invalid }) {
      expect(up).toBe(true);
      expect(jobs('fine').waiting).toBe(2);
      expect(invalid.wrong_type).toBe(1);
    },
  },
  {
    name: 'a queue name that is not valid UTF-8 is counted, not silently skipped',
    async seed(r) {
      await r.client.hset(Buffer.concat([Buffer.from(`${r.prefix}:`), Buffer.from([0xff, 0xfe]), Buffer.from(':meta')]), 'opts.maxLenEvents', '10000');
    },
    check({ up, invalid }) {
      expect(up).toBe(true);
      expect(Object.values(invalid).reduce((a, b) => a + b, 0)).toBe(1);
    },
  },
];

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('bad_input_redis');
  db.admin.on('error', () => undefined);
});

afterAll(async () => {
  await db?.drop();
});

async function run(c: Case): Promise<Outcome> {
  const r = await createTestRedis('bad-in');
  let t: TestApp | undefined;
  try {
    await c.seed(r);
    t = await createTestApp('bad-input-redis', { db, redis: r });
    await t.app.collection.collect('queues');
    const res = await t.app.inject('/metrics');
    expect(res.statusCode).toBe(200);
    const text = res.body;
    expect(promtoolCheck(text)).toEqual({ ok: true, output: '' });
    const state = t.app.collection.state('queues')!;
    return {
      text,
      up: state.up,
      ...(state.lastError ? { lastError: state.lastError } : {}),
      invalid: Object.fromEntries(
        samples(text, 'ops_source_invalid_values', { source: 'queues' })
          .filter((s) => s.value !== 0)
          .map((s) => [s.labels.reason, s.value]),
      ),
      jobs: (queue) => Object.fromEntries(samples(text, 'ops_queue_jobs', { prefix: r.prefix, queue }).map((s) => [s.labels.state, s.value])),
    };
  } finally {
    await t?.app.close();
    await r.cleanup();
  }
}

describe('bad BullMQ content', () => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const outcome = await run(c);
    expect(outcome.lastError).toBeUndefined();
    expect(outcome.up).toBe(true);
    c.check(outcome);
  });

  it.each(damaged.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    c.check(await run(c));
  });
});
