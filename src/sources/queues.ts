/**
 * BullMQ queues (Redis): per queue, the jobs in each state, since when the
 * longest-waiting job has been ready to run (when it became due or re-entered
 * the wait list, not when it was created), the workers connected and whether
 * it is paused; per prefix, totals over every queue read.
 *
 * Queues are discovered, not configured: a SCAN for `<prefix>:*:meta` hashes
 * (BullMQ writes that hash with every job added), repeated on a slow schedule,
 * a bounded number of calls per collection, and cached; a queue whose meta
 * hash is gone drops out at once. Every known
 * queue is then read by one Lua script, pipelined by QUEUES_PER_ROUND_TRIP
 * queues a round trip, plus one CLIENT LIST for the workers. BullMQ's own
 * getJobCounts() is one script per queue and per call, and its
 * getWorkersCount() one CLIENT LIST per queue: the same reads, batched. The
 * counts match BullMQ's (tested). The same round trips read each queue's
 * events stream for the flow counters and histograms (queue-flow.ts).
 *
 * Series are bounded by design (rankQueues): what can page is always served,
 * the healthy remainder only up to a maximum, and totals stay true.
 */
import type { Redis } from 'ioredis';
import { KNOWN, type MetricKey } from '../catalog.js';
import { countInvalid, SampleSet, toSeconds, type InvalidCounts, type Sample } from '../metrics/sample.js';
import type { QueueOverview } from '../contract.js';
import type { CollectContext, Source, SourceData } from './types.js';
import { CLOCK_SKEW_MS } from './valid-time.js';
import {
  applyFlowRead,
  cumulative,
  flowView,
  emptyRead,
  firstWatermark,
  JOB_TIMES_LUA,
  MAX_EVENTS_PER_QUEUE,
  MAX_OBSERVED_PER_COLLECTION,
  MAX_OBSERVED_PER_QUEUE,
  newFlowState,
  observationAllowances,
  parseJobTimes,
  parseStreamInfo,
  readEvents,
  type FlowRead,
  type QueueFlowState,
  type StreamInfo,
  type QueueFlowView,
} from './queue-flow.js';

/** Options of the queues source. */
export interface QueuesOptions {
  /** BullMQ key prefixes to discover queues under (BullMQ's default is `bull`). */
  prefixes: readonly string[];
  /** Seconds between the starts of two discovery passes (SCANs); known queues are read every collection. */
  discoveryIntervalSeconds: number;
  /** SCAN calls (of COUNT 1000) one collection may spend on discovery at most. */
  scanCallsPerCollection: number;
  /** Priority levels inspected at most per queue when looking for the oldest prioritized job. */
  maxPriorityLevels: number;
  /**
   * Queues served with per-queue series at most, besides the alertable ones
   * that are always served (see rankQueues); default
   * DEFAULT_MAX_QUEUES_WITH_SERIES.
   */
  maxQueuesWithSeries?: number;
  /**
   * Finished jobs whose hash one collection reads at most, over every queue
   * (at most MAX_OBSERVED_PER_QUEUE each); default MAX_OBSERVED_PER_COLLECTION.
   */
  maxObservedPerCollection?: number;
}

/**
 * Default bound on queues with per-queue series: 18 samples each (11 counts,
 * 5 flow counters, 2 histograms), so 9,000, well under the runner's
 * per-source cap, with the prefix totals. Platforms run tens of queues; what
 * pages or tickets is always kept first.
 */
export const DEFAULT_MAX_QUEUES_WITH_SERIES = 500;

/**
 * A queue whose oldest job has waited this long (seconds) is always served,
 * like one that pages: OpsQueueBacklogGrowing's default threshold
 * (monitoring/config.ts `queues.oldestWaitingWarningSeconds`; a test keeps
 * them equal).
 */
export const ALWAYS_SERVE_WAITING_SECONDS = 600;


/** Queues read per pipelined round trip (3 commands each): bounds the commands ioredis holds at once. */
const QUEUES_PER_ROUND_TRIP = 200;

/** Events searched at most, per candidate job, for when a job promoted early re-entered the wait list. */
const EVENTS_SEARCHED = 500;

/**
 * How long a queue's oldest waiting job, read once, is reused while the same
 * jobs stay at the ends of its lists (ms). BullMQ never changes a waiting
 * job's times in place, so the answer would be the same; the bound is for a
 * hash someone else edited, or deleted under its id.
 */
export const OLDEST_RECHECK_MS = 60_000;

/** The latest millisecond a JavaScript Date can hold. */
const MAX_DATE_MS = 8.64e15;

/** BullMQ job states, as BullMQ names them. */
export type QueueState = (typeof KNOWN.queueState)[number];

/** One queue as read. */
export interface QueueView {
  prefix: string;
  name: string;
  counts: Record<QueueState, number>;
  paused: boolean;
  /**
   * Since when the longest-waiting job (waiting, prioritized or paused) has
   * been ready to run: when it became due or re-entered the wait list (see
   * the README); undefined when none waits or none has a usable time.
   */
  oldestWaitingAt?: Date;
  /** Workers connected; undefined when Redis refuses CLIENT LIST. */
  workers?: number;
  /** Jobs finished since the exporter started and how long they waited and ran (queue-flow.ts); undefined when its events stream cannot be read. */
  flow?: QueueFlowView;
}

/** Flow counters of one prefix since the exporter started, over every queue read (never decreasing). */
export interface QueuePrefixFlow {
  completed: number;
  failed: number;
  stalled: number;
  /** Reads that found events trimmed away after the last one seen. */
  eventsLost: number;
}

/** Totals of one prefix over every queue read, whether served with per-queue series or not. */
export interface QueuePrefixTotals {
  prefix: string;
  /** Queues read. */
  queues: number;
  /** Queues read but left without per-queue series by the bound. */
  withoutSeries: number;
  /** Jobs by state, summed over every queue read. */
  counts: Record<QueueState, number>;
  /** Flow since the exporter started, over every queue read, with or without series; absent in data built without it. */
  flow?: QueuePrefixFlow;
}

/** What a queues collection returns. */
export interface QueuesData extends SourceData {
  /** The queues served with per-queue series, the most alertable first (rankQueues). */
  queues: QueueView[];
  /** Per prefix (every configured one), totals over every queue read. */
  totals: QueuePrefixTotals[];
}

/**
 * Reads one queue atomically. KEYS[1] is the queue's key prefix
 * (`<prefix>:<name>:`); ARGV[1] the most priority levels to inspect, ARGV[2]
 * the collection's instant (ms since the epoch), ARGV[3] the clock skew
 * allowed (ms), ARGV[4] the most events searched for one early-promoted job,
 * ARGV[5] the candidates' signature of the last full read ('' for none).
 * Returns: meta exists, is a BullMQ meta, paused, wait, paused, active,
 * delayed, prioritized, failed, completed, waiting-children, the earliest
 * time (ms) a candidate job has been ready since (or -1), candidate jobs
 * without a usable timestamp, and the candidates' signature: '' when the
 * answer depends on the time (a job due in the future) and must be read
 * again; when it equals ARGV[5], the oldest and the bad count are not read
 * (-2, 0): the same jobs are at the ends, and a waiting job's hash keeps its
 * times (OLDEST_RECHECK_MS bounds how long the reader trusts that).
 */
const QUEUE_STATS_LUA = `
local p = KEYS[1]
local rcall = redis.call
local now = tonumber(ARGV[2])
local latest = now + tonumber(ARGV[3])
local meta = p .. 'meta'
if rcall('EXISTS', meta) == 0 then return {0} end
local m = rcall('HMGET', meta, 'paused', 'opts.maxLenEvents', 'version')
local isQueue = (m[1] or m[2] or m[3]) and 1 or 0
local candidates = {}
local seen = {}
local function candidate(id)
  if not seen[id] then
    seen[id] = true
    candidates[#candidates + 1] = id
  end
end
-- Counts a list and takes its candidates for the oldest job. FIFO jobs are
-- pushed at the head and LIFO ones at the tail: the oldest is at one end.
-- Stalled and rate-limited jobs go back to the tail (the front of the line),
-- in front of the oldest FIFO job: look a few deep there. BullMQ 4 left a
-- "0:" marker at the tail of wait/paused; it is not a job.
local function list(key)
  local len = rcall('LLEN', key)
  if len == 0 then return 0 end
  local ids = rcall('LRANGE', key, -4, -1)
  local n = len
  if string.sub(ids[#ids], 1, 2) == '0:' then n = n - 1 end
  if len > #ids then ids[#ids + 1] = rcall('LINDEX', key, 0) end
  for _, id in ipairs(ids) do
    if id and string.sub(id, 1, 2) ~= '0:' then candidate(id) end
  end
  return n
end
local wait = list(p .. 'wait')
local paused = list(p .. 'paused')
-- Prioritized scores are priority * 2^32 + insertion counter: the first member
-- of each priority band is that band's oldest. Jump from band to band.
local prio = p .. 'prioritized'
local prioritized = rcall('ZCARD', prio)
local minScore = '-inf'
for _ = 1, prioritized > 0 and tonumber(ARGV[1]) or 0 do
  local r = rcall('ZRANGEBYSCORE', prio, minScore, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #r == 0 then break end
  candidate(r[1])
  local band = math.floor(tonumber(r[2]) / 4294967296)
  minScore = string.format('%.0f', (band + 1) * 4294967296)
end
local counts = {1, isQueue, m[1] and 1 or 0, wait, paused, rcall('LLEN', p .. 'active'),
  rcall('ZCARD', p .. 'delayed'), prioritized, rcall('ZCARD', p .. 'failed'),
  rcall('ZCARD', p .. 'completed'), rcall('ZCARD', p .. 'waiting-children')}
-- The candidates, length-prefixed (ids are arbitrary strings), bounded.
local parts = {}
for i, id in ipairs(candidates) do parts[i] = #id .. ':' .. id end
local sig = table.concat(parts, ',')
if #sig > 1024 then sig = '' end
if sig ~= '' and sig == ARGV[5] then
  counts[12], counts[13], counts[14] = '-2', 0, sig
  return counts
end
-- Whether the answer depends on the time, so that it cannot be reused.
local volatile = false
-- A time in ms: tonumber() accepts "NaN", "inf" and negatives; only
-- 0 < t <= now + skew is a time a job can carry (and a JS Date can hold).
local function time(x)
  x = tonumber(x)
  if x and x == x and x > 0 then
    if x <= latest then return x end
    volatile = true
  end
  return nil
end
local function duration(x)
  x = tonumber(x)
  if x and x == x and x > 0 and x < math.huge then return x end
  return 0
end
-- The job's options (BullMQ's JSON, a few hundred bytes), unless too big to
-- decode cheaply, not JSON, or this call has decoded enough already: hostile
-- options cannot make the script slow. Without them a job's earliest
-- possible time (its creation or last start) is used.
local decodes = 0
local function options(key)
  if decodes >= 32 or rcall('HSTRLEN', key, 'opts') > 4096 then return {} end
  decodes = decodes + 1
  local ok, o = pcall(cjson.decode, rcall('HGET', key, 'opts') or '')
  if ok and type(o) == 'table' then return o end
  return {}
end
-- The least delay BullMQ's built-in backoffs give before attempt n + 1
-- (classes/backoffs.js: jitter only shortens it); 0 for a custom strategy.
local function backoff(b, n)
  local kind, delay, jitter = 'fixed', b, 0
  if type(b) == 'table' then kind, delay, jitter = b.type, b.delay, duration(b.jitter) end
  delay = duration(delay)
  if kind == 'exponential' then delay = math.floor(2 ^ (n - 1) * delay + 0.5)
  elseif kind ~= 'fixed' then return 0 end
  if jitter > 0 then delay = math.floor(delay * (1 - math.min(jitter, 1))) end
  return delay
end
-- When a job promoted before it was due re-entered the wait list: the newest
-- "waiting" event of the job in the stream (its id is the time), searching at
-- most ARGV[4] events back to its creation, once per call. Nil when trimmed away.
local searched = false
local function promotedAt(id, since)
  if searched then return nil end
  searched = true
  local events = redis.pcall('XREVRANGE', p .. 'events', '+', string.format('%.0f', since), 'COUNT', tonumber(ARGV[4]))
  if type(events) ~= 'table' or events.err then return nil end
  for _, e in ipairs(events) do
    local f = e[2]
    local event, job
    for i = 1, #f - 1, 2 do
      if f[i] == 'event' then event = f[i + 1] elseif f[i] == 'jobId' then job = f[i + 1] end
    end
    if job == id and event == 'waiting' then return time(string.match(e[1], '^(%d+)')) end
  end
  return nil
end
local bad = 0
-- What a candidate's hash alone tells, no options decoded: its fields, and
-- the earliest it can have been ready since (its start, or its creation if
-- never started; the ready time below is never earlier). Nil without a
-- usable timestamp. Bad times are counted here, once per candidate.
local function bound(id)
  local key = p .. id
  local h = rcall('HMGET', key, 'timestamp', 'processedOn', 'ats', 'atm')
  local ts = time(h[1])
  if not ts then
    if rcall('EXISTS', key) == 1 then bad = bad + 1 end
    return nil
  end
  if h[2] then
    local started = time(h[2])
    if started then return {id = id, h = h, ts = ts, low = started} end
    bad = bad + 1
  end
  return {id = id, h = h, ts = ts, low = ts}
end
-- Since when the job has been ready to run: when it became due or re-entered
-- the wait list, from what BullMQ keeps on its hash (see the README).
local function readySince(c)
  local key, h, ts = p .. c.id, c.h, c.ts
  if h[2] then
    local started = time(h[2])
    if not started then return ts end
    -- Every attempt started was made: the last one failed and was retried
    -- (moveToDelayed/retryJob), a backoff after it failed. Otherwise it
    -- stalled or was moved back while active, after it started.
    if h[3] and h[3] == h[4] then
      local due = started + backoff(options(key).backoff, tonumber(h[4]))
      if due <= latest then return due end
      volatile = true
    end
    return started
  end
  -- Never started: due at creation plus its delay (BullMQ resets the hash's
  -- "delay" to 0 when it promotes the job, not the one in its options).
  local due = ts + duration(options(key).delay)
  if due <= now then return due end
  volatile = true
  -- Due in the future: promoted early (job.promote()), which BullMQ does not
  -- date on the hash; else a clock a little ahead of Redis' clients.
  local promoted = promotedAt(c.id, ts)
  if promoted then return promoted end
  if due <= latest then return due end
  return ts
end
-- Candidates by their earliest possible ready time; the options (JSON) of a
-- candidate are decoded only while it could still be older than the oldest
-- found, which in a FIFO list is mostly the first one.
local bounded = {}
for _, id in ipairs(candidates) do
  local c = bound(id)
  if c then bounded[#bounded + 1] = c end
end
table.sort(bounded, function(a, b) return a.low < b.low end)
local oldest = -1
for _, c in ipairs(bounded) do
  if oldest >= 0 and c.low >= oldest then break end
  local at = readySince(c)
  if oldest < 0 or at < oldest then oldest = at end
end
counts[12], counts[13], counts[14] = string.format('%.0f', oldest), bad, volatile and '' or sig
return counts
`;

/** A queue's last full read of its oldest waiting job: the candidates' signature, the script's answer, when (ms). */
export interface OldestRead {
  signature: string;
  oldest: unknown;
  bad: unknown;
  atMs: number;
}

/**
 * The script's reply with the oldest job and bad count of the last full read
 * where the script found the same candidates (reply[11] = -2), and the read
 * remembered for the next collection: a full read whose answer does not
 * depend on the time (a signature) is kept, any other forgets it.
 */
export function reuseOldest(reads: Map<string, OldestRead>, key: string, reply: unknown[], nowMs: number): unknown[] {
  const last = reads.get(key);
  const signature = typeof reply[13] === 'string' ? reply[13] : '';
  if (Number(reply[0]) !== 1 || Number(reply[1]) !== 1) {
    reads.delete(key);
    return reply;
  }
  if (String(reply[11]) === '-2') {
    // The script only answers so for the signature it was sent, which came from `last`.
    if (last && last.signature === signature) return [...reply.slice(0, 11), last.oldest, last.bad];
    reads.delete(key);
    return [...reply.slice(0, 11), '-1', 0];
  }
  if (signature === '') reads.delete(key);
  else reads.set(key, { signature, oldest: reply[11], bad: reply[12], atMs: nowMs });
  return reply;
}

/**
 * Decodes the script's reply; null when the queue is gone (pure). A time
 * that is not a Date, not after the epoch or later than `latest` (the
 * collection's instant plus clock skew) is counted bad_timestamp and left out.
 */
export function parseQueueStats(prefix: string, name: string, reply: unknown[], invalid: InvalidCounts, latest?: Date): QueueView | null {
  const n = (i: number) => Number(reply[i] ?? 0);
  if (n(0) !== 1) return null;
  if (n(1) !== 1) {
    countInvalid(invalid, 'not_a_queue');
    return null;
  }
  if (n(12) > 0) countInvalid(invalid, 'bad_timestamp', n(12));
  const oldestMs = Number(reply[11]);
  const view: QueueView = {
    prefix,
    name,
    paused: n(2) === 1,
    counts: {
      waiting: n(3),
      paused: n(4),
      active: n(5),
      delayed: n(6),
      prioritized: n(7),
      failed: n(8),
      completed: n(9),
      'waiting-children': n(10),
    },
  };
  if (oldestMs !== -1) {
    const limit = Math.min(MAX_DATE_MS, latest ? latest.getTime() : MAX_DATE_MS);
    if (Number.isFinite(oldestMs) && oldestMs > 0 && oldestMs <= limit) view.oldestWaitingAt = new Date(oldestMs);
    else countInvalid(invalid, 'bad_timestamp');
  }
  return view;
}

function zeroCounts(): Record<QueueState, number> {
  return Object.fromEntries(KNOWN.queueState.map((s) => [s, 0])) as Record<QueueState, number>;
}

/** Jobs a worker could take now or once the queue resumes: waiting, prioritized and paused. */
function backlog(q: QueueView): number {
  return q.counts.waiting + q.counts.prioritized + q.counts.paused;
}

/**
 * Orders queues by how alertable they are and bounds the healthy remainder
 * (pure). Always served, whatever the bound: a queue with jobs ready and no
 * worker connected (OpsQueueNoWorkers pages on it), a paused queue with a
 * backlog, and a queue whose oldest job has waited ALWAYS_SERVE_WAITING_SECONDS
 * or more at `now`. Then, up to `max` queues in all: queues with a backlog,
 * longest waiting first (those whose jobs have no usable time after them),
 * then queues with failed jobs, most first, then the rest by prefix and name.
 * Each queue left out is counted once as label_overflow; the totals cover
 * every queue read, so sums over the prefix stay true.
 */
export function rankQueues(
  queues: readonly QueueView[],
  prefixes: readonly string[],
  max: number,
  now: Date,
  invalid: InvalidCounts,
): { queues: QueueView[]; totals: QueuePrefixTotals[] } {
  const oldBefore = now.getTime() - ALWAYS_SERVE_WAITING_SECONDS * 1000;
  const pages = (q: QueueView) =>
    (q.paused ? backlog(q) > 0 : q.counts.waiting + q.counts.prioritized > 0 && q.workers === 0) ||
    (q.oldestWaitingAt !== undefined && q.oldestWaitingAt.getTime() <= oldBefore);
  const always = queues.filter(pages);
  const rest = queues.filter((q) => !pages(q));
  const waitedSince = (q: QueueView) => q.oldestWaitingAt?.getTime() ?? Infinity;
  const byName = (a: QueueView, b: QueueView) => (a.prefix === b.prefix ? (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) : a.prefix < b.prefix ? -1 : 1);
  const tier = (q: QueueView) => (backlog(q) > 0 ? 0 : q.counts.failed > 0 ? 1 : 2);
  rest.sort((a, b) => tier(a) - tier(b) || (tier(a) === 0 ? waitedSince(a) - waitedSince(b) || 0 : tier(a) === 1 ? b.counts.failed - a.counts.failed : 0) || byName(a, b));
  always.sort((a, b) => waitedSince(a) - waitedSince(b) || byName(a, b));
  const served = [...always, ...rest.slice(0, Math.max(0, max - always.length))];
  const left = rest.slice(Math.max(0, max - always.length));
  if (left.length > 0) countInvalid(invalid, 'label_overflow', left.length);
  const totals = new Map<string, QueuePrefixTotals>(
    prefixes.map((prefix) => [prefix, { prefix, queues: 0, withoutSeries: 0, counts: zeroCounts() }]),
  );
  for (const q of queues) {
    const t = totals.get(q.prefix);
    if (!t) continue;
    t.queues += 1;
    for (const state of KNOWN.queueState) t.counts[state] += q.counts[state];
  }
  for (const q of left) {
    const t = totals.get(q.prefix);
    if (t) t.withoutSeries += 1;
  }
  return { queues: served, totals: [...totals.values()] };
}

/**
 * Counts BullMQ workers per queue from one CLIENT LIST reply, with BullMQ's
 * own rule: a worker's connection is named `<prefix>:<base64 name>`,
 * optionally followed by `:w:<worker name>` (pure).
 */
export function countWorkers(clientList: string, queues: ReadonlyArray<{ prefix: string; name: string }>): Map<string, number> {
  const names: string[] = [];
  for (const line of clientList.split(/\r?\n/)) {
    const m = / name=(\S*)/.exec(` ${line}`);
    if (m?.[1]) names.push(m[1]);
  }
  const counts = new Map<string, number>();
  for (const q of queues) {
    const base = `${q.prefix}:${Buffer.from(q.name).toString('base64')}`;
    counts.set(queueKey(q.prefix, q.name), names.filter((n) => n === base || n.startsWith(`${base}:w:`)).length);
  }
  return counts;
}

function queueKey(prefix: string, name: string): string {
  return `${prefix}\u0000${name}`;
}

/** Metric samples of the queues. */
export function queueSamples(data: QueuesData): Sample[] {
  const s = new SampleSet();
  // Totals first, then queues most alertable first: if the runner's series
  // cap ever cuts, it cuts the least alertable.
  for (const t of data.totals ?? []) {
    s.add('queuesRead', { prefix: t.prefix }, t.queues);
    s.add('queuesWithoutSeries', { prefix: t.prefix }, t.withoutSeries);
    for (const state of KNOWN.queueState) s.add('queueJobsAll', { prefix: t.prefix, state }, t.counts[state]);
    if (t.flow) {
      s.add('queueJobsCompletedAll', { prefix: t.prefix }, t.flow.completed);
      s.add('queueJobsFailedAll', { prefix: t.prefix }, t.flow.failed);
      s.add('queueJobsStalledAll', { prefix: t.prefix }, t.flow.stalled);
      s.add('queueEventsLostAll', { prefix: t.prefix }, t.flow.eventsLost);
    }
  }
  // Per-queue series are listed, not merged through the SampleSet: a
  // (prefix, queue) pair is read once per collection, so its series are
  // distinct already, and with 2,000 queues the set's keys alone were ~20 MiB
  // of garbage per collection.
  const out = s.list();
  const seen = new Set<string>();
  for (const q of data.queues) {
    const id = queueKey(q.prefix, q.name);
    if (seen.has(id)) continue;
    seen.add(id);
    const labels = { prefix: q.prefix, queue: q.name };
    const add = (metric: MetricKey, value: number, l: Record<string, string> = labels) => out.push({ metric, labels: l, value });
    for (const state of KNOWN.queueState) add('queueJobs', q.counts[state], { ...labels, state });
    add('queuePaused', q.paused ? 1 : 0);
    if (q.workers !== undefined) add('queueWorkers', q.workers);
    if (q.oldestWaitingAt) add('queueOldestWaiting', toSeconds(q.oldestWaitingAt));
    if (q.flow) {
      add('queueJobsCompleted', q.flow.completed);
      add('queueJobsFailed', q.flow.failed);
      add('queueJobsStalled', q.flow.stalled);
      add('queueEventsLost', q.flow.lost);
      add('queueJobsUnobserved', q.flow.unobserved);
      // A histogram appears with its queue's first observation.
      if (q.flow.wait.count > 0) {
        out.push({ metric: 'queueJobWait', labels, value: q.flow.wait.count, histogram: cumulative(q.flow.wait) });
      }
      if (q.flow.processing.count > 0) {
        out.push({ metric: 'queueJobProcessing', labels, value: q.flow.processing.count, histogram: cumulative(q.flow.processing) });
      }
    }
  }
  return out;
}

/** The queues' section of the JSON overview, ages measured at the collection's instant (pure). */
export function queuesOverview(data: QueuesData, collectedAt: Date): QueueOverview[] {
  return data.queues.map((q) => {
    const o: QueueOverview = {
      name: q.name,
      waiting: q.counts.waiting + q.counts.prioritized + q.counts.paused,
      active: q.counts.active,
      failed: q.counts.failed,
      delayed: q.counts.delayed,
      prefix: q.prefix,
      paused: q.paused,
    };
    if (q.oldestWaitingAt) o.oldestWaitingSeconds = Math.max(0, (collectedAt.getTime() - q.oldestWaitingAt.getTime()) / 1000);
    if (q.workers !== undefined) o.workers = q.workers;
    if (q.flow) {
      o.completedLastHour = q.flow.completedLastHour;
      o.failedLastHour = q.flow.failedLastHour;
      if (q.flow.p95WaitSeconds !== undefined) o.p95WaitSeconds = q.flow.p95WaitSeconds;
    }
    return o;
  });
}

/**
 * Waits for a connection attempt under way to finish, so the first collection
 * after start-up (or a reconnect) does not fail only because the socket is not
 * open yet; fails at once when Redis is known to be unreachable.
 */
async function whenConnected(client: Redis, signal: AbortSignal): Promise<void> {
  if (client.status === 'ready' || !['wait', 'connecting', 'connect'].includes(client.status)) return;
  await new Promise<void>((resolve) => {
    const done = () => {
      client.off('ready', done);
      client.off('error', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    client.once('ready', done);
    client.once('error', done);
    signal.addEventListener('abort', done, { once: true });
  });
}

type RedisWithStats = Redis & {
  opsQueueStats(keyPrefix: string, maxLevels: number, nowMs: number, skewMs: number, eventsSearched: number, signature: string): Promise<unknown[]>;
  opsJobTimes(keyPrefix: string, ...jobIds: string[]): Promise<unknown[]>;
};

/** The queues source. Holds the discovered queues between collections. */
export function queuesSource(redis: Redis, options: QueuesOptions): Source<QueuesData, 'queues'> {
  const client = redis as RedisWithStats;
  if (typeof client.opsQueueStats !== 'function') {
    client.defineCommand('opsQueueStats', { numberOfKeys: 1, lua: QUEUE_STATS_LUA });
  }
  if (typeof client.opsJobTimes !== 'function') {
    client.defineCommand('opsJobTimes', { numberOfKeys: 1, lua: JOB_TIMES_LUA });
  }
  /** Each known queue's flow between collections (queue-flow.ts), by queueKey. */
  const flows = new Map<string, QueueFlowState>();
  /** Per queue, the last full read of its oldest waiting job (see OLDEST_RECHECK_MS). */
  const oldestReads = new Map<string, OldestRead>();
  /** Redis' clock at the first collection, ms: a queue found later is read from then on. */
  let flowStartMs: number | undefined;
  /** Per prefix, flow since start over every queue ever read: never decreases, even when a queue goes away. */
  const prefixFlows = new Map<string, QueuePrefixFlow>(options.prefixes.map((p) => [p, { completed: 0, failed: 0, stalled: 0, eventsLost: 0 }]));
  let known: Array<{ prefix: string; name: string }> = [];
  const maxWithSeries = options.maxQueuesWithSeries ?? DEFAULT_MAX_QUEUES_WITH_SERIES;
  /** The discovery pass under way: where its SCAN stands. */
  let pass: { prefixIndex: number; cursor: string; unusable: InvalidCounts } | null = null;
  let passStartedAt = -Infinity;
  /**
   * Keys found by the last complete pass whose queue name cannot be a label:
   * not UTF-8 (wrong_type), or empty (`bull::meta`, null_value: Prometheus
   * reads an empty label as no label). Such queues are not read.
   */
  let unusable: InvalidCounts = {};
  const utf8 = new TextDecoder('utf-8', { fatal: true });

  const addKnown = (q: { prefix: string; name: string }) => {
    if (known.some((k) => k.prefix === q.prefix && k.name === q.name)) return;
    known.push(q);
    known.sort((a, b) => (a.prefix + a.name < b.prefix + b.name ? -1 : 1));
  };

  /**
   * Advances discovery by at most `scanCallsPerCollection` SCAN calls and
   * half the collection's timeout. Each call is bounded (COUNT 1000, under a
   * millisecond of Redis time); a whole pass is O(keyspace), so on a Redis of
   * millions of keys under load it spans several collections instead of
   * pushing one past its timeout. Queues are known as soon as their key is
   * seen. A new pass starts once the last one is done and the discovery
   * interval has passed.
   */
  async function discoverStep(nowMs: number, signal: AbortSignal, budgetMs: number): Promise<void> {
    const started = Date.now();
    if (!pass) {
      if (nowMs - passStartedAt < options.discoveryIntervalSeconds * 1000) return;
      pass = { prefixIndex: 0, cursor: '0', unusable: {} };
      passStartedAt = nowMs;
    }
    for (let calls = 0; pass && calls < options.scanCallsPerCollection && Date.now() - started < budgetMs; calls++) {
      if (signal.aborted) throw new Error('queue discovery timed out');
      const prefix = options.prefixes[pass.prefixIndex]!;
      // SCAN with a pattern and a type: never KEYS, never one call over the whole keyspace.
      const [next, keys] = await client.scanBuffer(pass.cursor, 'MATCH', `${prefix}:*:meta`, 'COUNT', 1000, 'TYPE', 'hash');
      for (const raw of keys) {
        let key: string;
        try {
          key = utf8.decode(raw);
        } catch {
          countInvalid(pass.unusable, 'wrong_type');
          continue;
        }
        const name = key.slice(prefix.length + 1, -':meta'.length);
        if (name === '') {
          countInvalid(pass.unusable, 'null_value');
          continue;
        }
        addKnown({ prefix, name });
      }
      pass.cursor = next.toString();
      if (pass.cursor === '0') {
        pass.prefixIndex += 1;
        if (pass.prefixIndex >= options.prefixes.length) {
          unusable = pass.unusable;
          pass = null;
        }
      }
    }
  }

  return {
    name: 'queues',
    backend: 'redis',
    async collect(ctx: CollectContext): Promise<QueuesData> {
      await whenConnected(client, ctx.signal);
      const invalid: InvalidCounts = {};
      await discoverStep(ctx.now.getTime(), ctx.signal, ctx.timeoutMs / 2);
      for (const [reason, n] of Object.entries(unusable) as Array<[keyof InvalidCounts, number]>) countInvalid(invalid, reason, n);
      const nowMs = ctx.now.getTime();
      const states = known.map((q) => {
        const key = queueKey(q.prefix, q.name);
        let state = flows.get(key);
        if (!state) {
          flows.set(key, (state = newFlowState()));
          if (flowStartMs !== undefined) state.watermark = { id: `${flowStartMs}-0`, added: -2 };
        }
        return state;
      });
      // Pipelined by chunks of queues, a round trip each: ioredis holds every
      // command of a pipeline (its arguments, encoding, promise and timer)
      // until the last reply, which for 2,000 queues in one pipeline was
      // ~20 MiB alive at once. The replies themselves are small. CLIENT LIST
      // (and TIME) go with the last chunk: one round trip up to 200 queues.
      type Reply = [Error | null, unknown];
      const replies: Reply[] = [];
      const flowReplies: Reply[] = [];
      let tail: Reply[] = [];
      for (let from = 0; ; from += QUEUES_PER_ROUND_TRIP) {
        if (ctx.signal.aborted) throw new Error('queue read timed out');
        const chunk = known.slice(from, from + QUEUES_PER_ROUND_TRIP);
        const last = from + QUEUES_PER_ROUND_TRIP >= known.length;
        const pipeline = client.pipeline();
        for (const q of chunk) {
          const previous = oldestReads.get(queueKey(q.prefix, q.name));
          const signature = previous && nowMs - previous.atMs < OLDEST_RECHECK_MS ? previous.signature : '';
          (pipeline as unknown as RedisWithStats).opsQueueStats(`${q.prefix}:${q.name}:`, options.maxPriorityLevels, nowMs, CLOCK_SKEW_MS, EVENTS_SEARCHED, signature);
        }
        chunk.forEach((q, j) => {
          // XINFO and XRANGE side by side: the same round trip as the counts,
          // no script (converting stream entries into Lua values is what costs).
          const stream = `${q.prefix}:${q.name}:events`;
          const w = states[from + j]!.watermark;
          pipeline.xinfo('STREAM', stream);
          if (w) pipeline.xrange(stream, `(${w.id}`, '+', 'COUNT', MAX_EVENTS_PER_QUEUE);
          else pipeline.xrange(stream, '+', '+', 'COUNT', 1);
        });
        if (last) {
          pipeline.client('LIST');
          if (flowStartMs === undefined) pipeline.time();
        }
        const chunkReplies = ((await pipeline.exec()) ?? []) as Reply[];
        for (let j = 0; j < 3 * chunk.length; j++) (j < chunk.length ? replies : flowReplies).push(chunkReplies[j] ?? [new Error('no reply'), null]);
        if (last) {
          tail = chunkReplies.slice(3 * chunk.length);
          break;
        }
      }
      replies.push(tail[0] ?? [new Error('no reply'), null]);
      if (flowStartMs === undefined) {
        const [timeErr, time] = tail[1] ?? [new Error('no reply'), null];
        const redisMs = !timeErr && Array.isArray(time) ? Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000) : Number.NaN;
        // TIME refused (ACLs): the exporter's clock, as near as it gets.
        flowStartMs = Number.isFinite(redisMs) && redisMs > 0 ? redisMs : nowMs;
      }
      const queues: QueueView[] = [];
      const stillThere: typeof known = [];
      const listReply = replies[known.length];
      // CLIENT LIST may be forbidden (managed Redis, ACLs): workers are then unknown, not zero.
      const workers = listReply && !listReply[0] && typeof listReply[1] === 'string' ? countWorkers(listReply[1], known) : null;
      const reads: Array<{ q: (typeof known)[number]; state: QueueFlowState; view: QueueView; read: FlowRead; ids: string[] }> = [];
      const allowances = observationAllowances(
        states.map((f) => f.lastFinished),
        MAX_OBSERVED_PER_QUEUE,
        options.maxObservedPerCollection ?? MAX_OBSERVED_PER_COLLECTION,
      );
      known.forEach((q, i) => {
        const [err, reply] = replies[i] ?? [new Error('no reply'), null];
        if (err) {
          // One damaged queue (a key of the wrong type) is counted and
          // skipped; the other queues are still reported.
          if (!/WRONGTYPE/.test(err.message)) throw err;
          countInvalid(invalid, 'wrong_type');
          stillThere.push(q);
          return;
        }
        const r = reuseOldest(oldestReads, queueKey(q.prefix, q.name), reply as unknown[], nowMs);
        // A queue whose meta hash disappeared is forgotten until rediscovered.
        if (Number(r[0]) === 1) stillThere.push(q);
        const view = parseQueueStats(q.prefix, q.name, r, invalid, new Date(nowMs + CLOCK_SKEW_MS));
        if (!view) return;
        const w = workers?.get(queueKey(q.prefix, q.name));
        if (w !== undefined) view.workers = w;
        queues.push(view);
        const [infoErr, infoReply] = flowReplies[2 * i] ?? [new Error('no reply'), null];
        const [rangeErr, rangeReply] = flowReplies[2 * i + 1] ?? [new Error('no reply'), null];
        const info = parseStreamInfo(infoErr, infoReply);
        const failure = info instanceof Error ? info : rangeErr && !/no such key/i.test(rangeErr.message) ? rangeErr : null;
        if (failure) {
          // XINFO or XRANGE forbidden (ACLs): the flow is unknown, not zero, like the workers.
          if (/NOPERM/.test(failure.message)) return;
          // An events key of another type: this queue's flow is unknown, the rest is read.
          if (!/WRONGTYPE/.test(failure.message)) throw failure;
          countInvalid(invalid, 'wrong_type');
          return;
        }
        const streamInfo = info as StreamInfo;
        const state = states[i]!;
        if (!state.watermark) {
          reads.push({ q, state, view, ids: [], read: { ...emptyRead(), counted: false, watermark: firstWatermark(streamInfo) } });
          return;
        }
        const events = readEvents(streamInfo, rangeErr ? [] : rangeReply, state.watermark, MAX_EVENTS_PER_QUEUE);
        const ids = events.finishedIds.slice(0, allowances[i]);
        reads.push({
          q,
          state,
          view,
          ids,
          read: {
            ...emptyRead(),
            counted: true,
            watermark: events.watermark,
            lost: events.lost,
            completed: events.completed,
            failed: events.failed,
            stalled: events.stalled,
            unobserved: events.withoutJobId + events.finishedIds.length - ids.length,
          },
        });
      });
      // The finished jobs' hashes, while they still exist: a second round trip, only when jobs finished.
      const observing = reads.filter((r) => r.ids.length > 0);
      if (observing.length > 0) {
        const times = client.pipeline();
        for (const r of observing) (times as unknown as RedisWithStats).opsJobTimes(`${r.q.prefix}:${r.q.name}:`, ...r.ids);
        const timeReplies = (await times.exec()) ?? [];
        observing.forEach((r, j) => {
          const [err, reply] = timeReplies[j] ?? [new Error('no reply'), null];
          if (err) {
            if (!/WRONGTYPE/.test(err.message)) throw err;
            countInvalid(invalid, 'wrong_type');
            r.read.unobserved += r.ids.length;
            return;
          }
          const t = parseJobTimes(reply);
          r.read.unobserved += t.unobserved;
          r.read.badTimes = t.bad;
          r.read.waits = t.waits;
          r.read.processing = t.processing;
        });
      }
      for (const { q, state, view, read } of reads) {
        applyFlowRead(state, read, nowMs);
        if (read.badTimes > 0) countInvalid(invalid, 'bad_timestamp', read.badTimes);
        const total = prefixFlows.get(q.prefix);
        if (total && read.counted) {
          total.completed += read.completed;
          total.failed += read.failed;
          total.stalled += read.stalled;
          total.eventsLost += read.lost;
        }
        view.flow = flowView(state, nowMs);
      }
      known = stillThere;
      const current = new Set(known.map((q) => queueKey(q.prefix, q.name)));
      for (const key of flows.keys()) if (!current.has(key)) flows.delete(key);
      for (const key of oldestReads.keys()) if (!current.has(key)) oldestReads.delete(key);
      const ranked = rankQueues(queues, options.prefixes, maxWithSeries, ctx.now, invalid);
      for (const t of ranked.totals) {
        const f = prefixFlows.get(t.prefix);
        if (f) t.flow = { ...f };
      }
      return { ...ranked, invalid };
    },
    samples: queueSamples,
    section: { name: 'queues', overview: queuesOverview },
  };
}
