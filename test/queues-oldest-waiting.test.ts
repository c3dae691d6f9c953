/**
 * The oldest waiting job's time is when the job became ready to run, not
 * when it was created: proved with real BullMQ (Queue, Worker, QueueEvents)
 * for each way a job re-enters the wait list, on a Redis of the test's own.
 * Every wait is on a BullMQ event or a Redis state, never a sleep.
 */
import { QueueEvents, type Job, type Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { OLDEST_RECHECK_MS, queuesSource, type QueueView } from '../src/sources/queues.js';
import { useBullmqServer } from './helpers/bullmq.js';

const PREFIX = 'oldest';
const STATES = ['waiting', 'active', 'delayed', 'failed', 'completed', 'paused', 'prioritized', 'waiting-children'] as const;

const gates: Array<() => void> = [];
const mq = useBullmqServer(PREFIX, () => {
  for (const open of gates) open();
});
const { queue, events, worker } = mq;

/** A promise that resolves on the first event `name` of `source` that `match` accepts, with its arguments. */
function next<A extends unknown[]>(source: { on(e: string, f: (...a: A) => void): unknown; off(e: string, f: (...a: A) => void): unknown }, name: string, match: (...a: A) => boolean): Promise<A> {
  return new Promise((resolve) => {
    const f = (...a: A) => {
      if (!match(...a)) return;
      source.off(name, f);
      resolve(a);
    };
    source.on(name, f);
  });
}

/** The millisecond a stream event id names. */
const idMs = (id: string) => Number(id.split('-')[0]);

async function collect(name: string): Promise<QueueView> {
  const source = queuesSource(mq.client, { prefixes: [PREFIX], discoveryIntervalSeconds: 0, scanCallsPerCollection: 100, maxPriorityLevels: 8 });
  const data = await source.collect({ now: new Date(), signal: new AbortController().signal, timeoutMs: 5000 });
  const view = data.queues.find((q) => q.name === name);
  if (!view) throw new Error(`queue ${name} not read`);
  expect(data.invalid).toEqual({});
  return view;
}

async function expectBullMQCounts(q: Queue, view: QueueView): Promise<void> {
  const counts = await q.getJobCounts(...STATES);
  for (const state of STATES) expect(view.counts[state], state).toBe(counts[state]);
}

/** A gate a processor can hold on until the test ends. */
function gate(): Promise<void> {
  return new Promise((resolve) => gates.push(resolve));
}

describe('oldest waiting job, after a delay or a retry', () => {
  it('a delayed job promoted by a worker waits since it became due (timestamp + opts.delay), not since it was added', async () => {
    const name = 'promoted-by-worker';
    const q = queue(name);
    const qe = await events(name);
    // One job at a time across the queue, taken by a blocker: the worker still
    // promotes the delayed job when it is due, but cannot take it.
    await q.setGlobalConcurrency(1);
    const held = gate();
    const w = worker(name, async () => held, { concurrency: 2 });
    const blocker = await q.add('blocker', {});
    await next(w, 'active', (job: Job) => job.id === blocker.id);

    const promoted = new Promise<[{ jobId: string; prev?: string }, string]>((resolve) => {
      qe.on('waiting', (args, id) => {
        if (args.prev === 'delayed') resolve([args, id]);
      });
    });
    const job = await q.add('mail.box.create', {}, { delay: 1500 });
    const [args, eventId] = await promoted;
    expect(args.jobId).toBe(job.id);

    const view = await collect(name);
    expect(view.counts.waiting).toBe(1);
    const hash = await mq.client.hgetall(`${PREFIX}:${name}:${job.id}`);
    // BullMQ reset the hash's delay: timestamp + delay would be the creation time.
    expect(hash.delay).toBe('0');
    expect(view.oldestWaitingAt?.getTime()).toBe(job.timestamp + 1500);
    // The worker promoted it once due, not before.
    expect(idMs(eventId)).toBeGreaterThanOrEqual(job.timestamp + 1500);
    await expectBullMQCounts(q, view);
  });

  it('a job promoted early with job.promote() waits since its promotion (the waiting event), or since it was added once the stream is trimmed', async () => {
    const name = 'promoted-by-hand';
    const q = queue(name);
    const qe = await events(name);
    // Added a minute ago (BullMQ's timestamp option), due in an hour from then.
    const job = await q.add('dns.zone.sync', {}, { delay: 3_600_000, timestamp: Date.now() - 60_000 });
    const promoted = next(qe, 'waiting', (a: { jobId: string }) => a.jobId === job.id);
    await job.promote();
    const [, eventId] = (await promoted) as unknown as [unknown, string];

    let view = await collect(name);
    expect(view.counts).toMatchObject({ waiting: 1, delayed: 0 });
    expect(view.oldestWaitingAt?.getTime()).toBe(idMs(eventId));
    expect(idMs(eventId)).toBeGreaterThan(job.timestamp);
    expect(idMs(eventId)).toBeLessThan(job.timestamp + 3_600_000);
    await expectBullMQCounts(q, view);

    // The stream no longer holds the promotion: the earliest it can have been is its creation.
    await mq.client.xtrim(`${PREFIX}:${name}:events`, 'MAXLEN', 0);
    view = await collect(name);
    expect(view.oldestWaitingAt?.getTime()).toBe(job.timestamp);
  });

  it('a job retried with exponential backoff waits since its backoff ended after its last start (processedOn + backoff), not since its first attempt', async () => {
    const name = 'retried';
    const q = queue(name);
    const qe = await events(name);
    await q.setGlobalConcurrency(2);
    const held = gate();
    let blockerActive: () => void = () => undefined;
    const blockerRunning = new Promise<void>((resolve) => {
      blockerActive = resolve;
    });
    const w = worker(
      name,
      async (job: Job) => {
        if (job.name === 'blocker') {
          blockerActive();
          return held;
        }
        // First attempt: take the queue's only slot with a blocker, so that
        // the retry, once promoted, stays waiting; then fail.
        await q.add('blocker', {});
        await blockerRunning;
        await q.setGlobalConcurrency(1);
        throw new Error('pod quota exceeded');
      },
      { concurrency: 3 },
    );
    const delayed = next(qe, 'delayed', (a: { jobId: string }) => a.jobId === '1');
    const promoted = next(qe, 'waiting', (a: { jobId: string; prev?: string }) => a.jobId === '1' && a.prev === 'delayed');
    const job = await q.add('cloudpod.create', {}, { attempts: 3, backoff: { type: 'exponential', delay: 1000 } });
    expect(job.id).toBe('1');
    const [delayedArgs, delayedId] = (await delayed) as unknown as [{ delay: string }, string];
    await promoted;

    const view = await collect(name);
    expect(view.counts).toMatchObject({ waiting: 1, active: 1 });
    const hash = await mq.client.hgetall(`${PREFIX}:${name}:${job.id}`);
    expect(hash).toMatchObject({ ats: '1', atm: '1', delay: '0' });
    const processedOn = Number(hash.processedOn);
    // Attempt 1 failed: exponential backoff 2^0 * 1000 ms after it.
    expect(view.oldestWaitingAt?.getTime()).toBe(processedOn + 1000);
    expect(view.oldestWaitingAt!.getTime()).toBeGreaterThan(job.timestamp);
    // BullMQ's own due time (the delayed event) is that plus the failed
    // attempt's run time, which the hash does not keep: never earlier.
    const due = Number(delayedArgs.delay);
    expect(due).toBeGreaterThanOrEqual(processedOn + 1000);
    expect(due - (processedOn + 1000)).toBeLessThanOrEqual(idMs(delayedId) - processedOn);
    await expectBullMQCounts(q, view);
    void w;
  });

  it('a job moved back to wait by the stalled-job checker waits since its last start (processedOn), not since it was added', async () => {
    const name = 'stalled';
    const q = queue(name);
    const qe = await events(name);
    const held = gate();
    // A worker that dies mid-job: its lock is never renewed.
    const dying = worker(name, async () => held, { lockDuration: 300, skipLockRenewal: true, skipStalledCheck: true });
    const job = await q.add('hosting.create', {}, { timestamp: Date.now() - 60_000 });
    await next(dying, 'active', (j: Job) => j.id === job.id);
    await dying.close(true);

    const checker = worker(name, null, { autorun: false, stalledInterval: 1 });
    const check = () => (checker as unknown as { moveStalledJobsToWait(): Promise<void> }).moveStalledJobsToWait();
    // First check marks the active job as possibly stalled; the second, once its lock expired, moves it.
    await check();
    const lock = `${PREFIX}:${name}:${job.id}:lock`;
    for (let ttl = await mq.client.pttl(lock); ttl > 0; ttl = await mq.client.pttl(lock)) await new Promise((r) => setTimeout(r, ttl));
    await mq.client.del(`${PREFIX}:${name}:stalled-check`);
    const stalled = next(qe, 'stalled', (a: { jobId: string }) => a.jobId === job.id);
    await check();
    const [, stalledId] = (await stalled) as unknown as [unknown, string];

    const view = await collect(name);
    expect(view.counts).toMatchObject({ waiting: 1, active: 0 });
    const hash = await mq.client.hgetall(`${PREFIX}:${name}:${job.id}`);
    expect(hash).toMatchObject({ stc: '1', ats: '1' });
    expect(hash.atm).toBeUndefined();
    expect(view.oldestWaitingAt?.getTime()).toBe(Number(hash.processedOn));
    expect(view.oldestWaitingAt!.getTime()).toBeGreaterThan(job.timestamp);
    // The checker moved it later than that: the age is overstated, never understated.
    expect(idMs(stalledId)).toBeGreaterThanOrEqual(Number(hash.processedOn));
    await expectBullMQCounts(q, view);

    // The stalled job went back to the front of the line (the tail), so the
    // oldest FIFO job is no longer at an end of the list: it is still found.
    const older = await q.add('hosting.create', {}, { timestamp: Date.now() - 120_000 });
    await q.add('hosting.create', {});
    expect(await mq.client.lrange(`${PREFIX}:${name}:wait`, 0, -1)).toEqual(['3', older.id, job.id]);
    const after = await collect(name);
    expect(after.oldestWaitingAt?.getTime()).toBe(older.timestamp);
  });
});

describe('backoff strategies after a retry (hashes as BullMQ leaves them)', () => {
  // A job in wait after attempt 2 failed and its backoff was promoted: BullMQ
  // keeps processedOn (attempt 2's start), ats = atm = 2 and the options.
  const started = Date.now() - 3_600_000;
  const cases: Array<[string, unknown, number]> = [
    ['fixed', { type: 'fixed', delay: 5000 }, started + 5000],
    ['a bare number (fixed)', 7000, started + 7000],
    ['exponential: 2^(2-1) x delay', { type: 'exponential', delay: 1500 }, started + 3000],
    ['exponential with jitter: the shortest it can draw', { type: 'exponential', delay: 1500, jitter: 0.5 }, started + 1500],
    ['fixed with jitter above 1: no delay', { type: 'fixed', delay: 1500, jitter: 3 }, started],
    ['a custom strategy: unknown, its last start', { type: 'my-strategy', delay: 1500 }, started],
    ['a backoff longer than the time since: promoted early, its last start', { type: 'fixed', delay: 86_400_000 }, started],
    ['no backoff: retried at once', undefined, started],
  ];

  it.each(cases)('%s', async (label, backoff, expected) => {
    const name = `backoff-${label.replace(/\W+/g, '-')}`;
    const key = `${PREFIX}:${name}`;
    await mq.client.hset(`${key}:meta`, 'opts.maxLenEvents', '10000');
    await mq.client.lpush(`${key}:wait`, '1');
    await mq.client.hset(`${key}:1`, {
      name: 'job',
      data: '{}',
      opts: JSON.stringify({ attempts: 5, ...(backoff === undefined ? {} : { backoff }) }),
      timestamp: String(started - 60_000),
      delay: '0',
      priority: '0',
      processedOn: String(started),
      ats: '2',
      atm: '2',
    });
    expect((await collect(name)).oldestWaitingAt?.getTime()).toBe(expected);
  });
});

describe('the oldest job read once, reused while the same jobs are at the ends', () => {
  /** One source, collected at the instants the test gives (its own prefix: no other test's queue is read). */
  function reader(prefix: string) {
    const source = queuesSource(mq.client, { prefixes: [prefix], discoveryIntervalSeconds: 0, scanCallsPerCollection: 100, maxPriorityLevels: 8 });
    return async (name: string, nowMs: number): Promise<QueueView> => {
      const data = await source.collect({ now: new Date(nowMs), signal: new AbortController().signal, timeoutMs: 5000 });
      expect(data.invalid).toEqual({});
      const view = data.queues.find((q) => q.name === name);
      if (!view) throw new Error(`queue ${name} not read`);
      return view;
    };
  }

  it('is read again as soon as the ends change, and at least every OLDEST_RECHECK_MS for a hash edited in place', async () => {
    const prefix = 'reuse';
    const name = 'edited';
    const q = queue(name, { prefix });
    const now = Date.now();
    const first = await q.add('hosting.create', {}, { timestamp: now - 300_000 });
    await q.add('hosting.create', {}, { timestamp: now - 200_000 });
    const read = reader(prefix);
    expect((await read(name, now)).oldestWaitingAt?.getTime()).toBe(now - 300_000);

    // Not something BullMQ does to a waiting job: its time edited in place.
    await mq.client.hset(`${prefix}:${name}:${first.id}`, 'timestamp', String(now - 400_000));
    // The same jobs at the ends: the last read stands, up to the bound.
    expect((await read(name, now + 1_000)).oldestWaitingAt?.getTime()).toBe(now - 300_000);
    expect((await read(name, now + OLDEST_RECHECK_MS)).oldestWaitingAt?.getTime()).toBe(now - 400_000);

    // A new job at an end: read again at once, whatever the bound.
    await mq.client.hset(`${prefix}:${name}:${first.id}`, 'timestamp', String(now - 500_000));
    await q.add('hosting.create', {}, { timestamp: now - 100_000 });
    expect((await read(name, now + OLDEST_RECHECK_MS + 1_000)).oldestWaitingAt?.getTime()).toBe(now - 500_000);

    // The job taken (its hash and id gone): no oldest from the last read survives it.
    await mq.client.del(`${prefix}:${name}:${first.id}`);
    await mq.client.lrem(`${prefix}:${name}:wait`, 0, first.id!);
    expect((await read(name, now + OLDEST_RECHECK_MS + 2_000)).oldestWaitingAt?.getTime()).toBe(now - 200_000);
  });

  it('is never reused when the answer depends on the time: a job promoted early is due at its delay once that has passed', async () => {
    const prefix = 'reuse';
    const name = 'due-later';
    const q = queue(name, { prefix });
    const qe = new QueueEvents(name, { connection: { host: '127.0.0.1', port: mq.server.port }, prefix, lastEventId: '0-0' });
    mq.closeAtEnd(() => qe.close());
    await qe.waitUntilReady();
    // Added a minute ago, due 30 s from now, promoted now.
    const job = await q.add('dns.zone.sync', {}, { delay: 90_000, timestamp: Date.now() - 60_000 });
    const promoted = next(qe, 'waiting', (a: { jobId: string }) => a.jobId === job.id);
    await job.promote();
    const [, eventId] = (await promoted) as unknown as [unknown, string];
    const read = reader(prefix);
    const now = Date.now();
    expect((await read(name, now)).oldestWaitingAt?.getTime()).toBe(idMs(eventId));
    // The same job at the ends, within OLDEST_RECHECK_MS: once its delay has
    // run out, it is due since then (the time the script compares to changed).
    const due = job.timestamp + 90_000;
    expect(due - now).toBeLessThan(OLDEST_RECHECK_MS / 2);
    expect((await read(name, due + 1)).oldestWaitingAt?.getTime()).toBe(due);
  });
});
