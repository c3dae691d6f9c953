/**
 * Flow of BullMQ queues: jobs completed, failed and stalled, read from what
 * BullMQ itself records, its per-queue events stream `<prefix>:<queue>:events`
 * (moveToFinished writes `completed`/`failed` with the job id, the stalled
 * checker `stalled`), read incrementally from the last id seen; and how long
 * the jobs that finished waited and ran, from their hashes (`timestamp`,
 * `processedOn`, `finishedOn`), read in the same script while they still
 * exist. The counts live here between collections, like the Shield window's.
 *
 * Counters start at the exporter's start: the first collection only sets each
 * queue's watermark at its stream's end; a queue found later is read from the
 * first collection's instant (Redis' TIME), its events since then counted. A stream trimmed past the watermark
 * between two reads (BullMQ trims to `opts.maxLenEvents`, 10,000 by default)
 * is detected from Redis' `entries-added` (XINFO STREAM) and counted as one
 * loss; the events lost are never guessed.
 */
import { WORK_DURATION_BUCKETS } from '../catalog.js';
import type { HistogramValue } from '../metrics/sample.js';

/** Stream entries read at most per queue and collection (BullMQ keeps 10,000 by default). */
export const MAX_EVENTS_PER_QUEUE = 10_000;
/** Finished jobs whose hash is read at most per queue and collection. */
export const MAX_OBSERVED_PER_QUEUE = 500;
/** Finished jobs whose hash is read at most per collection, over every queue. */
export const MAX_OBSERVED_PER_COLLECTION = 5_000;
/** Wait observations the last hour needs before `p95WaitSeconds` is given. */
export const MIN_P95_OBSERVATIONS = 20;
/** A job started this much (ms) before it was due still counts as waiting 0 s: the clocks of the host that added it and the worker's differ. */
export const DUE_SKEW_MS = 1000;

/**
 * Reads one queue's new events. KEYS[1] is the queue's key prefix
 * (`<prefix>:<name>:`); ARGV[1] the last stream id seen ('' for none yet),
 * ARGV[2] the stream's `entries-added` at that id (-2: unknown, -1: Redis
 * before 7 does not tell), ARGV[3] the most entries
 * to read, ARGV[4] the most finished jobs whose hash to read.
 * Returns {0, id, added} on a first read (the watermark at the stream's end);
 * else {1, id, added, lost, completed, failed, stalled, unobserved, bad,
 * waits (ms), processing times (ms)}.
 */
export const QUEUE_FLOW_LUA = `
local p = KEYS[1]
local rcall = redis.call
local stream = p .. 'events'
local last, lastAdded = ARGV[1], tonumber(ARGV[2]) or 0
local info = redis.pcall('XINFO', 'STREAM', stream)
local gen, added, len, first = '0-0', 0, 0, nil
if type(info) == 'table' and not info.err then
  added = nil
  for i = 1, #info - 1, 2 do
    local k = info[i]
    if k == 'last-generated-id' then gen = info[i + 1]
    elseif k == 'entries-added' then added = tonumber(info[i + 1])
    elseif k == 'length' then len = tonumber(info[i + 1])
    elseif k == 'first-entry' and type(info[i + 1]) == 'table' then first = info[i + 1][1] end
  end
elseif type(info) == 'table' and info.err and not string.find(info.err, 'no such key') then
  return redis.error_reply(info.err)
end
if last == '' then return {0, gen, string.format('%.0f', added or -1)} end
local function idLess(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, bm = tonumber(am) or 0, tonumber(bm) or 0
  if am ~= bm then return am < bm end
  return (tonumber(as) or 0) < (tonumber(bs) or 0)
end
local lost = 0
local known = lastAdded >= 0
if added and not known then
  -- The watermark's number is unknown (a queue found after the exporter
  -- started, watermark at that instant): a stream trimmed at some point
  -- whose first entry is after the watermark may have lost entries.
  if first and last ~= '0-0' and idLess(last, first) and added > len then lost = 1 end
elseif added then
  -- Redis 7: entries are numbered by entries-added; the stream holds the
  -- last len of them. Fewer than lastAdded: deleted and recreated.
  if added < lastAdded or idLess(gen, last) then
    lost = 1
    last, lastAdded = '0-0', 0
    if added - len > 0 then lastAdded = added - len end
  elseif added - len > lastAdded then
    lost = 1
    lastAdded = added - len
  end
elseif first and last ~= '0-0' and idLess(last, first) then
  -- Before Redis 7: the first entry newer than the watermark (counts a loss
  -- also when the trim stopped exactly at it).
  lost = 1
end
local entries = rcall('XRANGE', stream, '(' .. last, '+', 'COUNT', tonumber(ARGV[3]))
local maxObserve = tonumber(ARGV[4])
local completed, failed, stalled, unobserved, bad, observed = 0, 0, 0, 0, 0, 0
local waits, runs = {}, {}
local function time(x)
  x = tonumber(x)
  if x and x == x and x > 0 and x < 8.64e15 then return x end
  return nil
end
-- The job's delay from its options (BullMQ resets the hash's "delay" when it
-- promotes the job): decoded only when present, options of at most 4 KiB.
local function delayOf(raw)
  if not raw then return nil end
  if not string.find(raw, '"delay"', 1, true) then return 0 end
  local ok, o = pcall(cjson.decode, raw)
  if not ok or type(o) ~= 'table' then return nil end
  local d = tonumber(o.delay)
  if d and d == d and d >= 0 and d < 8.64e15 then return d end
  return 0
end
local function observe(id)
  if observed >= maxObserve then
    unobserved = unobserved + 1
    return
  end
  observed = observed + 1
  local key = p .. id
  local h
  if rcall('HSTRLEN', key, 'opts') <= 4096 then
    h = rcall('HMGET', key, 'timestamp', 'processedOn', 'finishedOn', 'ats', 'atm', 'opts')
  else
    h = rcall('HMGET', key, 'timestamp', 'processedOn', 'finishedOn', 'ats', 'atm')
  end
  if not h[1] and not h[2] and not h[3] then
    unobserved = unobserved + 1
    return
  end
  local created, started, finished = time(h[1]), time(h[2]), time(h[3])
  if not started or not finished or finished < started then
    bad = bad + 1
    unobserved = unobserved + 1
    return
  end
  runs[#runs + 1] = finished - started
  -- The wait is known for a job started once: created (plus its delay) to its start.
  local starts = tonumber(h[4]) or tonumber(h[5])
  if starts == 1 and created then
    local d = delayOf(h[6])
    if d then
      local due = created + d
      if started >= due then waits[#waits + 1] = started - due
      elseif due - started <= ${DUE_SKEW_MS} then waits[#waits + 1] = 0 end
    end
  end
end
-- A field of an entry: BullMQ writes "event" first and "jobId" second; any other order is searched.
local function field(f, name, at)
  if f[at] == name then return f[at + 1] end
  for j = 1, #f - 1, 2 do
    if f[j] == name then return f[j + 1] end
  end
  return nil
end
local newLast = last
for i = 1, #entries do
  local e = entries[i]
  local f = e[2]
  local event = field(f, 'event', 1)
  if event == 'completed' or event == 'failed' then
    if event == 'completed' then completed = completed + 1 else failed = failed + 1 end
    local job = field(f, 'jobId', 3)
    if job then observe(job) else unobserved = unobserved + 1 end
  elseif event == 'stalled' then
    stalled = stalled + 1
  end
end
if #entries > 0 then newLast = entries[#entries][1] end
-- The number of the last entry read: the stream's last when read to its end.
local newAdded = -1
if added then
  if #entries < tonumber(ARGV[3]) then newAdded = added
  elseif known then newAdded = lastAdded + #entries
  else newAdded = -2 end
end
return {1, newLast, string.format('%.0f', newAdded), lost,
  completed, failed, stalled, unobserved, bad, waits, runs}
`;

/** Where the reading of one queue's stream stands. */
export interface FlowWatermark {
  /** The last stream id read. */
  id: string;
  /** The stream's `entries-added` at that id: -2 when unknown, -1 before Redis 7 (which does not tell). */
  added: number;
}

/** What one read of one queue's events found (pure data). */
export interface FlowRead {
  /** False on the first read: only the watermark was set. */
  counted: boolean;
  watermark: FlowWatermark;
  /** 1 when entries after the last watermark were trimmed or deleted before this read. */
  lost: number;
  completed: number;
  failed: number;
  stalled: number;
  /** Finished jobs whose times were not observed: over the bound, hash gone, or bad times. */
  unobserved: number;
  /** Finished jobs whose hash had unusable times (also in unobserved). */
  badTimes: number;
  /** Seconds each observed job waited (started once: from when it was due to processedOn). */
  waits: number[];
  /** Seconds each observed job ran (processedOn to finishedOn of its last attempt). */
  processing: number[];
}

/** Decodes the flow script's reply (pure); null when it is not one. */
export function parseFlowReply(reply: unknown): FlowRead | null {
  if (!Array.isArray(reply)) return null;
  const id = typeof reply[1] === 'string' && /^\d+-\d+$/.test(reply[1]) ? reply[1] : null;
  const added = Number(reply[2]);
  if (id === null || !Number.isFinite(added)) return null;
  const n = (i: number) => {
    const v = Number(reply[i] ?? 0);
    return Number.isFinite(v) && v >= 0 ? v : 0;
  };
  const seconds = (list: unknown) =>
    (Array.isArray(list) ? list : []).map((x) => Number(x) / 1000).filter((x) => Number.isFinite(x) && x >= 0);
  const watermark = { id, added };
  if (Number(reply[0]) !== 1) {
    return { counted: false, watermark, lost: 0, completed: 0, failed: 0, stalled: 0, unobserved: 0, badTimes: 0, waits: [], processing: [] };
  }
  return {
    counted: true,
    watermark,
    lost: n(3),
    completed: n(4),
    failed: n(5),
    stalled: n(6),
    unobserved: n(7),
    badTimes: n(8),
    waits: seconds(reply[9]),
    processing: seconds(reply[10]),
  };
}

/** A histogram as kept between collections: observations per bucket (not cumulative), the last one +Inf. */
export interface HistogramState {
  perBucket: number[];
  sum: number;
  count: number;
}

export function emptyHistogram(bounds: readonly number[] = WORK_DURATION_BUCKETS): HistogramState {
  return { perBucket: new Array<number>(bounds.length + 1).fill(0), sum: 0, count: 0 };
}

/** Adds one observation (seconds) to `h` (le: a value equal to a bound falls in that bucket). */
export function observe(h: HistogramState, value: number, bounds: readonly number[] = WORK_DURATION_BUCKETS): void {
  let i = bounds.findIndex((b) => value <= b);
  if (i < 0) i = bounds.length;
  h.perBucket[i] = (h.perBucket[i] ?? 0) + 1;
  h.sum += value;
  h.count += 1;
}

/** The cumulative form a histogram sample carries (pure). */
export function cumulative(h: HistogramState, bounds: readonly number[] = WORK_DURATION_BUCKETS): HistogramValue {
  const buckets: number[] = [];
  let total = 0;
  for (let i = 0; i < bounds.length; i++) {
    total += h.perBucket[i] ?? 0;
    buckets.push(total);
  }
  return { buckets, sum: h.sum };
}

/**
 * The q-quantile of per-bucket counts, interpolated linearly inside its
 * bucket as Prometheus' histogram_quantile() does (the first bucket from 0);
 * in the +Inf bucket, the highest finite bound. Undefined when empty (pure).
 */
export function quantile(q: number, perBucket: readonly number[], bounds: readonly number[] = WORK_DURATION_BUCKETS): number | undefined {
  const total = perBucket.reduce((a, b) => a + b, 0);
  if (total === 0) return undefined;
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < bounds.length; i++) {
    const n = perBucket[i] ?? 0;
    if (below + n >= rank && n > 0) {
      const lower = i === 0 ? 0 : bounds[i - 1]!;
      return lower + (bounds[i]! - lower) * ((rank - below) / n);
    }
    below += n;
  }
  return bounds[bounds.length - 1];
}

/** One minute of the last hour: what the collections within it read. */
interface MinuteSlot {
  minute: number;
  completed: number;
  failed: number;
  waits: number[];
}

/** Everything kept for one queue between collections. */
export interface QueueFlowState {
  watermark?: FlowWatermark;
  completed: number;
  failed: number;
  stalled: number;
  lost: number;
  unobserved: number;
  /** Finished jobs the last read returned: its share of the next collection's observation budget. */
  lastFinished: number;
  wait: HistogramState;
  processing: HistogramState;
  /** The last 60 minutes, by the minute of the collection that read them. */
  ring: MinuteSlot[];
}

export function newFlowState(): QueueFlowState {
  return { completed: 0, failed: 0, stalled: 0, lost: 0, unobserved: 0, lastFinished: 0, wait: emptyHistogram(), processing: emptyHistogram(), ring: [] };
}

/** Applies one read to a queue's state at the collection's instant `nowMs`. */
export function applyFlowRead(state: QueueFlowState, read: FlowRead, nowMs: number): void {
  state.watermark = read.watermark;
  if (!read.counted) return;
  state.completed += read.completed;
  state.failed += read.failed;
  state.stalled += read.stalled;
  state.lost += read.lost;
  state.unobserved += read.unobserved;
  state.lastFinished = read.completed + read.failed;
  for (const w of read.waits) observe(state.wait, w);
  for (const p of read.processing) observe(state.processing, p);
  const minute = Math.floor(nowMs / 60_000);
  state.ring = state.ring.filter((s) => s.minute > minute - 60);
  let slot = state.ring.find((s) => s.minute === minute);
  if (!slot) {
    slot = { minute, completed: 0, failed: 0, waits: new Array<number>(WORK_DURATION_BUCKETS.length + 1).fill(0) };
    state.ring.push(slot);
  }
  slot.completed += read.completed;
  slot.failed += read.failed;
  const hour = emptyHistogram();
  for (const w of read.waits) observe(hour, w);
  slot.waits = slot.waits.map((n, i) => n + (hour.perBucket[i] ?? 0));
}

/** A queue's flow as served: counters since the exporter started and the last hour's figures. */
export interface QueueFlowView {
  completed: number;
  failed: number;
  stalled: number;
  lost: number;
  unobserved: number;
  wait: HistogramState;
  processing: HistogramState;
  /** Completed in the minutes of the last hour (the current one included). */
  completedLastHour: number;
  failedLastHour: number;
  /** The last hour's p95 wait, seconds; undefined below MIN_P95_OBSERVATIONS observations. */
  p95WaitSeconds?: number;
}

/** A snapshot of a queue's flow at `nowMs` (copies: the state keeps changing). */
export function flowView(state: QueueFlowState, nowMs: number): QueueFlowView {
  const minute = Math.floor(nowMs / 60_000);
  const hour = state.ring.filter((s) => s.minute > minute - 60);
  const waits = new Array<number>(WORK_DURATION_BUCKETS.length + 1).fill(0);
  for (const s of hour) s.waits.forEach((n, i) => (waits[i] = (waits[i] ?? 0) + n));
  const observations = waits.reduce((a, b) => a + b, 0);
  const view: QueueFlowView = {
    completed: state.completed,
    failed: state.failed,
    stalled: state.stalled,
    lost: state.lost,
    unobserved: state.unobserved,
    wait: { ...state.wait, perBucket: [...state.wait.perBucket] },
    processing: { ...state.processing, perBucket: [...state.processing.perBucket] },
    completedLastHour: hour.reduce((a, s) => a + s.completed, 0),
    failedLastHour: hour.reduce((a, s) => a + s.failed, 0),
  };
  if (observations >= MIN_P95_OBSERVATIONS) view.p95WaitSeconds = quantile(0.95, waits);
  return view;
}

/**
 * Shares the collection's observation budget between queues in proportion to
 * the jobs each finished in the previous collection (at least 1 each as a
 * weight), at most `perQueue` each; the sum never exceeds `total` (pure).
 */
export function observationAllowances(lastFinished: readonly number[], perQueue = MAX_OBSERVED_PER_QUEUE, total = MAX_OBSERVED_PER_COLLECTION): number[] {
  const weights = lastFinished.map((n) => Math.max(1, n));
  const sum = weights.reduce((a, b) => a + b, 0);
  return weights.map((w) => Math.min(perQueue, Math.floor((total * w) / sum)));
}
