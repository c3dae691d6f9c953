/**
 * Queue flow from BullMQ's own events stream, proved with real BullMQ on a
 * Redis of the test's own: the counters equal the jobs that really completed,
 * failed and stalled; a trimmed stream is detected and counted, never
 * invented; the histograms' counts and sums equal the jobs' own processedOn
 * and finishedOn; the per-collection bound holds; promtool accepts the
 * histograms. Every wait is on a BullMQ event, never a sleep.
 */
import type { Job, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { WORK_DURATION_BUCKETS } from '../src/catalog.js';
import { boundSamples } from '../src/metrics/bound.js';
import { createRegistries } from '../src/metrics/registry.js';
import type { InvalidCounts } from '../src/metrics/sample.js';
import { CollectionSnapshot } from '../src/snapshot.js';
import { MAX_OBSERVED_PER_QUEUE, observationAllowances, quantile, readEvents, type StreamInfo } from '../src/sources/queue-flow.js';
import { queuesOverview, queuesSource, type QueuesData, type QueueView } from '../src/sources/queues.js';
import { promtoolCheck, value } from './helpers/prom-text.js';
import { useBullmqServer } from './helpers/bullmq.js';

const PREFIX = 'flow';

const mq = useBullmqServer(PREFIX);
const { queue, events, worker } = mq;

/** Resolves once `source` has emitted `name` `n` times. */
function count(source: QueueEvents, name: 'completed' | 'failed' | 'stalled', n: number): Promise<void> {
  return new Promise((resolve) => {
    let seen = 0;
    const f = () => {
      seen += 1;
      if (seen >= n) {
        source.off(name, f);
        resolve();
      }
    };
    source.on(name, f);
  });
}

type Collector = (now?: Date) => Promise<QueuesData>;

function flowSource(): { collect: Collector; source: ReturnType<typeof queuesSource> } {
  const source = queuesSource(mq.client, { prefixes: [PREFIX], discoveryIntervalSeconds: 0, scanCallsPerCollection: 100, maxPriorityLevels: 8 });
  return { source, collect: (now = new Date()) => source.collect({ now, signal: new AbortController().signal, timeoutMs: 5000 }) };
}

function view(data: QueuesData, name: string): QueueView {
  const v = data.queues.find((q) => q.name === name);
  if (!v) throw new Error(`queue ${name} not read`);
  return v;
}

/** Expected cumulative buckets of `values` (seconds), written independently of the source's code. */
function expectedBuckets(values: number[]): number[] {
  return WORK_DURATION_BUCKETS.map((b) => values.filter((v) => v <= b).length);
}

describe('queue flow from the events stream', () => {
  it('counts exactly the jobs that completed, failed and stalled after the first read, and none before it', async () => {
    const q = queue('exact');
    const ev = await events('exact');
    // Finished before the exporter's first read: not counted.
    const before = count(ev, 'completed', 3);
    await q.addBulk([1, 2, 3].map((i) => ({ name: 'pre', data: { i } })));
    const w0 = worker('exact', async () => 'ok');
    await before;
    await w0.close();
    const { collect } = flowSource();
    const first = view(await collect(), 'exact');
    expect(first.flow).toMatchObject({ completed: 0, failed: 0, stalled: 0, lost: 0, unobserved: 0 });

    // 40 complete, 7 fail for good (one retry each: only the last failure is counted).
    const done = Promise.all([count(ev, 'completed', 40), count(ev, 'failed', 7)]);
    await q.addBulk(Array.from({ length: 40 }, (_, i) => ({ name: 'ok', data: { i } })));
    await q.addBulk(Array.from({ length: 7 }, (_, i) => ({ name: 'bad', data: { i }, opts: { attempts: 2 } })));
    worker('exact', async (job) => {
      if (job.name === 'bad') throw new Error('no');
      return 'ok';
    });
    await done;
    const data = await collect();
    const v = view(data, 'exact');
    expect(v.flow).toMatchObject({ completed: 40, failed: 7, stalled: 0, lost: 0, unobserved: 0 });
    expect(await q.getCompletedCount()).toBe(43);
    expect(await q.getFailedCount()).toBe(7);
    expect(data.totals[0]!.flow).toEqual({ completed: 40, failed: 7, stalled: 0, eventsLost: 0 });
    // A read with nothing new adds nothing.
    expect(view(await collect(), 'exact').flow).toMatchObject({ completed: 40, failed: 7 });
  });

  it('counts every completion of a queue created after the exporter\'s first collection, from its first job on', async () => {
    const { collect } = flowSource();
    await collect();
    const q = queue('late');
    const ev = await events('late');
    const done = count(ev, 'completed', 6);
    await q.addBulk(Array.from({ length: 6 }, (_, i) => ({ name: 'x', data: { i } })));
    worker('late', async () => 'ok');
    await done;
    // Discovered now, after its jobs finished: read from the first collection's instant.
    expect(view(await collect(), 'late').flow).toMatchObject({ completed: 6, lost: 0, unobserved: 0 });
  });

  it('counts a stalled job once and observes no wait for it (BullMQ keeps only its last start)', async () => {
    const q = queue('stall');
    const ev = await events('stall');
    const { collect } = flowSource();
    await collect();
    // A job taken by hand and never extended: its lock expires and the stalled checker moves it back.
    const manual = worker('stall', null, { lockDuration: 300 });
    const stalled = count(ev, 'stalled', 1);
    const completed = count(ev, 'completed', 2);
    await q.add('s', {});
    await q.add('t', {});
    const job = await manual.getNextJob('token-1');
    expect(job).toBeDefined();
    worker('stall', async () => 'ok', { stalledInterval: 300, lockDuration: 300 });
    await stalled;
    await completed;
    const v = view(await collect(), 'stall');
    expect(v.flow).toMatchObject({ completed: 2, failed: 0, stalled: 1, lost: 0, unobserved: 0 });
    expect(v.flow!.processing.count).toBe(2);
    // The stalled job was started twice: only the other one's wait is known.
    expect(v.flow!.wait.count).toBe(1);
  });

  it('observes wait and processing times exactly from the jobs\' own processedOn and finishedOn', async () => {
    const q = queue('times');
    const ev = await events('times');
    const { collect } = flowSource();
    await collect();
    const done = count(ev, 'completed', 12);
    await q.addBulk(Array.from({ length: 10 }, (_, i) => ({ name: 'n', data: { i } })));
    await q.add('d', {}, { delay: 150 });
    await q.add('d', {}, { delay: 250 });
    worker('times', async (job) => {
      await new Promise((r) => setTimeout(r, (job.data as { i?: number }).i ?? 5));
      return 'ok';
    });
    await done;
    const data = await collect();
    const v = view(data, 'times');
    const jobs = (await q.getJobs(['completed'])) as Job[];
    expect(jobs.length).toBe(12);
    const waits = jobs.map((j) => (j.processedOn! - (j.timestamp + (j.opts.delay ?? 0))) / 1000);
    const runs = jobs.map((j) => (j.finishedOn! - j.processedOn!) / 1000);
    for (const w of waits) expect(w).toBeGreaterThanOrEqual(0);
    expect(v.flow!.processing.count).toBe(12);
    expect(v.flow!.processing.sum).toBeCloseTo(runs.reduce((a, b) => a + b, 0), 9);
    expect(v.flow!.wait.count).toBe(12);
    expect(v.flow!.wait.sum).toBeCloseTo(waits.reduce((a, b) => a + b, 0), 9);
    expect(data.invalid).toEqual({});
  });

  it('puts each time in its bucket, bounds included, and beyond the last one in +Inf', async () => {
    const q = queue('buckets');
    const ev = await events('buckets');
    const { collect, source } = flowSource();
    await collect();
    // Real BullMQ jobs, run without a processor, their times then set on their hashes.
    const runsMs = [0, 999, 1000, 1001, 2500, 45_000, 299_999, 300_000, 3_600_000, 3_600_001, 7_200_000];
    const waitsMs = [1000, 5000, 5001, 60_000, 600_000, 1_800_000, 3_600_000, 4_000_000, 0, 10, 20];
    const done = count(ev, 'completed', runsMs.length);
    const added = await q.addBulk(runsMs.map((_, i) => ({ name: 'b', data: { i } })));
    const manual = worker('buckets', null);
    for (let i = 0; i < runsMs.length; i++) {
      const job = (await manual.getNextJob(`t${i}`))!;
      const base = job.timestamp;
      await mq.client.hset(`${PREFIX}:buckets:${job.id}`, 'processedOn', String(base + waitsMs[i]!));
      await job.moveToCompleted('ok', `t${i}`, false);
      await mq.client.hset(`${PREFIX}:buckets:${job.id}`, 'finishedOn', String(base + waitsMs[i]! + runsMs[i]!));
    }
    expect(added.length).toBe(runsMs.length);
    await done;
    const v = view(await collect(), 'buckets');
    const runs = runsMs.map((ms) => ms / 1000);
    const waits = waitsMs.map((ms) => ms / 1000);
    expect(v.flow!.processing.count).toBe(11);
    expect(v.flow!.processing.perBucket).toEqual([3, 2, 0, 0, 0, 1, 0, 2, 0, 0, 0, 1, 2]);
    expect(v.flow!.wait.perBucket).toEqual([4, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 1]);
    const samples = source.samples({ ...(await collect()), invalid: {} });
    const proc = samples.find((s) => s.metric === 'queueJobProcessing' && s.labels.queue === 'buckets')!;
    expect(proc.value).toBe(11);
    expect(proc.histogram!.buckets).toEqual(expectedBuckets(runs));
    expect(proc.histogram!.sum).toBeCloseTo(runs.reduce((a, b) => a + b, 0), 9);
    const wait = samples.find((s) => s.metric === 'queueJobWait' && s.labels.queue === 'buckets')!;
    expect(wait.histogram!.buckets).toEqual(expectedBuckets(waits));
    expect(wait.histogram!.sum).toBeCloseTo(waits.reduce((a, b) => a + b, 0), 9);
  });

  it('detects a stream trimmed past the last id read, counts the loss once, and counts only the completions still in the stream', async () => {
    const q = queue('trim');
    const ev = await events('trim');
    const { collect } = flowSource();
    await collect();
    const first = count(ev, 'completed', 5);
    await q.addBulk(Array.from({ length: 5 }, (_, i) => ({ name: 'a', data: { i } })));
    const w = worker('trim', async () => 'ok');
    await first;
    expect(view(await collect(), 'trim').flow).toMatchObject({ completed: 5, lost: 0 });

    // Trimmed to exactly the end: nothing unread was lost.
    await mq.client.xtrim(`${PREFIX}:trim:events`, 'MAXLEN', 0);
    expect(view(await collect(), 'trim').flow).toMatchObject({ completed: 5, lost: 0 });

    // 20 more complete; then all but the last 6 entries are trimmed before the exporter reads.
    const second = count(ev, 'completed', 20);
    await q.addBulk(Array.from({ length: 20 }, (_, i) => ({ name: 'b', data: { i } })));
    await second;
    await w.close();
    await mq.client.xtrim(`${PREFIX}:trim:events`, 'MAXLEN', 6);
    const kept = await mq.client.xrange(`${PREFIX}:trim:events`, '-', '+');
    const keptCompleted = kept.filter(([, f]) => f[f.indexOf('event') + 1] === 'completed').length;
    expect(keptCompleted).toBeLessThan(20);
    const data = await collect();
    expect(view(data, 'trim').flow).toMatchObject({ completed: 5 + keptCompleted, lost: 1 });
    expect(data.totals[0]!.flow!.eventsLost).toBe(1);
    // The next read starts where this one stopped: no second loss.
    expect(view(await collect(), 'trim').flow).toMatchObject({ completed: 5 + keptCompleted, lost: 1 });
  });

  it('reads at most the per-queue bound of hashes per collection and counts the rest unobserved', async () => {
    const q = queue('bound', { defaultJobOptions: { removeOnComplete: false } });
    const ev = await events('bound');
    const { collect } = flowSource();
    await collect();
    const n = MAX_OBSERVED_PER_QUEUE + 37;
    const done = count(ev, 'completed', n);
    await q.addBulk(Array.from({ length: n }, (_, i) => ({ name: 'x', data: { i } })));
    worker('bound', async () => 'ok', { concurrency: 50 });
    await done;
    const v = view(await collect(), 'bound');
    expect(v.flow).toMatchObject({ completed: n, unobserved: 37 });
    expect(v.flow!.processing.count).toBe(MAX_OBSERVED_PER_QUEUE);
  });

  it('leaves the flow of a queue whose events key is not a stream unknown, counted wrong_type, and reads the others', async () => {
    const q = queue('broken');
    const ev = await events('broken');
    const done = count(ev, 'completed', 1);
    await q.add('x', {});
    worker('broken', async () => 'ok');
    await done;
    const { collect } = flowSource();
    await collect();
    await ev.close();
    await mq.client.del(`${PREFIX}:broken:events`);
    await mq.client.set(`${PREFIX}:broken:events`, 'not a stream');
    const data = await collect();
    expect(view(data, 'broken').flow).toBeUndefined();
    expect(view(data, 'broken').counts.completed).toBe(1);
    expect(data.invalid.wrong_type).toBe(1);
    expect(view(data, 'exact').flow).toBeDefined();
  });

  it('leaves the flow unknown, not zero, when Redis forbids XINFO, XRANGE and TIME, and still reads the counts', async () => {
    const q = queue('acl');
    await q.add('x', {});
    await mq.client.call('ACL', 'SETUSER', 'noflow', 'on', '>noflow-pw', '~*', '&*', '+@all', '-xinfo', '-xrange', '-time');
    const limited = new Redis(mq.server.url, { username: 'noflow', password: 'noflow-pw' });
    mq.closeAtEnd(async () => limited.disconnect());
    const source = queuesSource(limited, { prefixes: [PREFIX], discoveryIntervalSeconds: 0, scanCallsPerCollection: 100, maxPriorityLevels: 8 });
    const collect = () => source.collect({ now: new Date(), signal: new AbortController().signal, timeoutMs: 5000 });
    await collect();
    const data = await collect();
    expect(view(data, 'acl').counts.waiting).toBe(1);
    expect(view(data, 'acl').flow).toBeUndefined();
    expect(data.invalid).toEqual({});
    expect(queuesOverview(data, new Date()).find((o) => o.name === 'acl')).not.toHaveProperty('completedLastHour');
  });

  it('reads no hash when the collection\'s bound is 0, and still counts every job', async () => {
    const q = queue('nohash');
    const ev = await events('nohash');
    const source = queuesSource(mq.client, { prefixes: [PREFIX], discoveryIntervalSeconds: 0, scanCallsPerCollection: 100, maxPriorityLevels: 8, maxObservedPerCollection: 0 });
    const collect = () => source.collect({ now: new Date(), signal: new AbortController().signal, timeoutMs: 5000 });
    await collect();
    const done = count(ev, 'completed', 3);
    await q.addBulk(Array.from({ length: 3 }, (_, i) => ({ name: 'x', data: { i } })));
    worker('nohash', async () => 'ok');
    await done;
    const v = view(await collect(), 'nohash');
    expect(v.flow).toMatchObject({ completed: 3, unobserved: 3 });
    expect(v.flow!.processing.count).toBe(0);
  });

  it('counts a job whose hash is already removed as unobserved', async () => {
    const q = queue('removed', { defaultJobOptions: { removeOnComplete: true } });
    const ev = await events('removed');
    const { collect } = flowSource();
    await collect();
    const done = count(ev, 'completed', 4);
    await q.addBulk(Array.from({ length: 4 }, (_, i) => ({ name: 'x', data: { i } })));
    worker('removed', async () => 'ok');
    await done;
    const v = view(await collect(), 'removed');
    expect(v.flow).toMatchObject({ completed: 4, unobserved: 4 });
    expect(v.flow!.processing.count).toBe(0);
  });

  it('serves histograms promtool accepts, and the JSON API\'s last-hour figures', async () => {
    const q = queue('served');
    const ev = await events('served');
    const { collect, source } = flowSource();
    const t0 = new Date();
    await collect(t0);
    const done = Promise.all([count(ev, 'completed', 25), count(ev, 'failed', 2)]);
    await q.addBulk(Array.from({ length: 27 }, (_, i) => ({ name: i < 2 ? 'bad' : 'ok', data: { i } })));
    worker('served', async (job) => {
      if (job.name === 'bad') throw new Error('no');
      return 'ok';
    });
    await done;
    const data = await collect(new Date(t0.getTime() + 1000));
    const invalid: InvalidCounts = {};
    const samples = boundSamples(source.samples(data), invalid);
    expect(invalid).toEqual({});
    const snapshot = new CollectionSnapshot(1, [
      { name: 'queues', backend: 'redis', up: true, samples, invalid: {}, collections: 1, errors: 0, durationSeconds: 0.01 },
    ]);
    const { prometheus } = createRegistries(() => snapshot, { version: 'test', processMetrics: false });
    const text = await prometheus.metrics();
    const check = promtoolCheck(text);
    expect(check.output).toBe('');
    expect(check.ok).toBe(true);
    expect(value(text, 'ops_queue_jobs_completed_total', { prefix: PREFIX, queue: 'served' })).toBe(25);
    expect(value(text, 'ops_queue_jobs_failed_total', { prefix: PREFIX, queue: 'served' })).toBe(2);
    expect(value(text, 'ops_queue_job_processing_seconds_count', { prefix: PREFIX, queue: 'served' })).toBe(27);
    expect(value(text, 'ops_queue_job_processing_seconds_bucket', { prefix: PREFIX, queue: 'served', le: '+Inf' })).toBe(27);
    expect(value(text, 'ops_queue_job_wait_seconds_count', { prefix: PREFIX, queue: 'served' })).toBe(27);

    const row = queuesOverview(data, new Date()).find((o) => o.name === 'served')!;
    expect(row.completedLastHour).toBe(25);
    expect(row.failedLastHour).toBe(2);
    // p95 of the 27 waits, interpolated within the bucket that holds it: never
    // past the bucket of the longest real wait (how long depends on the machine).
    expect(row.p95WaitSeconds).toBeCloseTo(quantile(0.95, view(data, 'served').flow!.wait.perBucket)!, 12);
    const jobs = (await q.getJobs(['completed', 'failed'])) as Job[];
    expect(jobs).toHaveLength(27);
    const longestWait = Math.max(...jobs.map((j) => (j.processedOn! - j.timestamp) / 1000));
    expect(row.p95WaitSeconds).toBeLessThanOrEqual(WORK_DURATION_BUCKETS.find((le) => le >= longestWait) ?? Infinity);
    // An hour and a minute later the ring has forgotten them; the counters have not.
    const later = view(await collect(new Date(t0.getTime() + 61 * 60_000)), 'served').flow!;
    expect(later).toMatchObject({ completed: 25, failed: 2, completedLastHour: 0, failedLastHour: 0 });
    expect(later.p95WaitSeconds).toBeUndefined();
  });
});

describe('reading the stream after a watermark (pure)', () => {
  const entry = (id: string, event: string, jobId = `j${id}`) => [id, ['event', event, 'jobId', jobId, 'prev', 'active']];
  const info = (o: Partial<StreamInfo>): StreamInfo => ({ lastGeneratedId: '10-0', entriesAdded: 10, length: 10, firstId: '1-0', ...o });

  it('counts completed, failed and stalled after the watermark and numbers the new one', () => {
    const r = readEvents(info({}), [entry('8-0', 'completed'), entry('9-0', 'active'), entry('10-0', 'failed')], { id: '7-0', added: 7 }, 100);
    expect(r).toMatchObject({ lost: 0, completed: 1, failed: 1, stalled: 0, finishedIds: ['j8-0', 'j10-0'], watermark: { id: '10-0', added: 10 } });
  });

  it('counts a loss when entries after the watermark were trimmed, and none when the trim stopped at it', () => {
    // 10 added, 2 left (9, 10): 8 was after the watermark 7 and is gone.
    const lost = readEvents(info({ length: 2, firstId: '9-0' }), [entry('9-0', 'completed'), entry('10-0', 'completed')], { id: '7-0', added: 7 }, 100);
    expect(lost).toMatchObject({ lost: 1, completed: 2, watermark: { id: '10-0', added: 10 } });
    // 3 left (8, 9, 10): trimmed exactly up to the watermark.
    const none = readEvents(info({ length: 3, firstId: '8-0' }), [entry('8-0', 'completed'), entry('9-0', 'completed'), entry('10-0', 'completed')], { id: '7-0', added: 7 }, 100);
    expect(none).toMatchObject({ lost: 0, completed: 3 });
  });

  it('counts a loss when the stream lost entries between XINFO and XRANGE', () => {
    // XINFO announced 8, 9, 10 after the watermark; XRANGE found only 10 and a newer 11.
    const r = readEvents(info({}), [entry('10-0', 'completed'), entry('11-0', 'completed')], { id: '7-0', added: 7 }, 100);
    expect(r).toMatchObject({ lost: 1, completed: 2, watermark: { id: '11-0', added: 11 } });
  });

  it('counts a deleted or recreated stream as a loss', () => {
    expect(readEvents(info({ lastGeneratedId: '0-0', entriesAdded: 0, length: 0, firstId: undefined }), [], { id: '7-0', added: 7 }, 100)).toMatchObject({ lost: 1, completed: 0 });
  });

  it('stops at the bound of entries and carries on from there', () => {
    const r = readEvents(info({}), [entry('8-0', 'completed'), entry('9-0', 'completed')], { id: '7-0', added: 7 }, 2);
    expect(r).toMatchObject({ lost: 0, completed: 2, watermark: { id: '9-0', added: 9 } });
  });

  it('with a watermark that is an instant (unknown number), counts a loss only for a trimmed stream starting after it', () => {
    const w = { id: '5-0', added: -2 };
    expect(readEvents(info({ length: 4, firstId: '7-0' }), [entry('7-0', 'completed')], w, 100)).toMatchObject({ lost: 1, completed: 1 });
    expect(readEvents(info({ length: 10, firstId: '1-0' }), [entry('7-0', 'completed')], w, 100)).toMatchObject({ lost: 0, completed: 1 });
  });
});

describe('flow arithmetic (pure)', () => {
  it('interpolates the p95 like histogram_quantile and stops at the last finite bound', () => {
    const per = new Array<number>(WORK_DURATION_BUCKETS.length + 1).fill(0);
    per[0] = 50; // ≤ 1 s
    per[3] = 50; // 5..10 s
    // rank 95 of 100: 45 of the 50 in (5, 10] → 5 + 5 × 45/50.
    expect(quantile(0.95, per)).toBe(9.5);
    const inf = new Array<number>(WORK_DURATION_BUCKETS.length + 1).fill(0);
    inf[WORK_DURATION_BUCKETS.length] = 10;
    expect(quantile(0.95, inf)).toBe(3600);
    expect(quantile(0.95, new Array<number>(13).fill(0))).toBeUndefined();
  });

  it('shares the collection\'s observation budget in proportion to last collection\'s finishing, never above the bounds', () => {
    const idle = new Array<number>(1999).fill(0);
    const shares = observationAllowances([750, ...idle]);
    expect(shares[0]).toBe(500);
    expect(shares[1]).toBe(1);
    expect(shares.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(5000);
    const busy = observationAllowances(new Array<number>(20).fill(1000));
    expect(busy.every((n) => n === 250)).toBe(true);
    expect(observationAllowances([0])).toEqual([500]);
  });
});
