/**
 * Flow of BullMQ queues: jobs completed, failed and stalled, read from what
 * BullMQ itself records, its per-queue events stream `<prefix>:<queue>:events`
 * (moveToFinished writes `completed`/`failed` with the job id, the stalled
 * checker `stalled`), read incrementally from the last id seen; and how long
 * the jobs that finished waited and ran, from their hashes (`timestamp`,
 * `processedOn`, `finishedOn`), read by one small script per queue right
 * after, while they still exist. The stream itself is read with XINFO STREAM
 * and XRANGE in the counts' pipeline, not in a script: converting thousands of
 * entries into Lua values costs several milliseconds of Redis time. The
 * counts live here between collections, like the Shield window's.
 *
 * Counters start at the exporter's start: the first collection only sets each
 * queue's watermark at its stream's end; a queue found later is read from the
 * first collection's instant (Redis' TIME), its events since then counted. A stream trimmed past the watermark
 * between two reads (BullMQ trims to `opts.maxLenEvents`, 10,000 by default)
 * is detected from Redis' `entries-added` (XINFO STREAM) and counted as one
 * loss; the events lost are never guessed (readEvents).
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
 * Reads the times of finished jobs from their hashes. KEYS[1] is the queue's
 * key prefix (`<prefix>:<name>:`); ARGV the job ids. Returns {unobserved,
 * bad, waits (ms), processing times (ms)}: unobserved counts the hashes gone
 * or with unusable times, bad the latter.
 */
export const JOB_TIMES_LUA = `
local p = KEYS[1]
local rcall = redis.call
local unobserved, bad = 0, 0
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
for i = 1, #ARGV do
  local key = p .. ARGV[i]
  local h
  if rcall('HSTRLEN', key, 'opts') <= 4096 then
    h = rcall('HMGET', key, 'timestamp', 'processedOn', 'finishedOn', 'ats', 'atm', 'opts')
  else
    h = rcall('HMGET', key, 'timestamp', 'processedOn', 'finishedOn', 'ats', 'atm')
  end
  local created, started, finished = time(h[1]), time(h[2]), time(h[3])
  if not h[1] and not h[2] and not h[3] then
    unobserved = unobserved + 1
  elseif not started or not finished or finished < started then
    bad = bad + 1
    unobserved = unobserved + 1
  else
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
end
return {unobserved, bad, waits, runs}
`;

/** Where the reading of one queue's stream stands. */
export interface FlowWatermark {
  /** The last stream id read. */
  id: string;
  /** The stream's `entries-added` at that id: -2 when unknown, -1 before Redis 7 (which does not tell). */
  added: number;
}

/** What XINFO STREAM told, as far as the flow needs it. */
export interface StreamInfo {
  /** The last id the stream generated ('0-0' when there is no stream). */
  lastGeneratedId: string;
  /** Entries ever added (Redis 7+); undefined before Redis 7. */
  entriesAdded?: number;
  length: number;
  /** The id of the stream's first entry; undefined when empty. */
  firstId?: string;
}

/** Decodes an XINFO STREAM reply; a missing stream (`ERR no such key`) is an empty one (pure). */
export function parseStreamInfo(err: Error | null, reply: unknown): StreamInfo | Error {
  if (err) return /no such key/i.test(err.message) ? { lastGeneratedId: '0-0', entriesAdded: 0, length: 0 } : err;
  if (!Array.isArray(reply)) return new Error('XINFO STREAM gave no array');
  const info: StreamInfo = { lastGeneratedId: '0-0', length: 0 };
  for (let i = 0; i + 1 < reply.length; i += 2) {
    const k = reply[i];
    const v = reply[i + 1];
    if (k === 'last-generated-id' && typeof v === 'string') info.lastGeneratedId = v;
    else if (k === 'entries-added') info.entriesAdded = Number(v);
    else if (k === 'length') info.length = Number(v);
    else if (k === 'first-entry' && Array.isArray(v) && typeof v[0] === 'string') info.firstId = v[0];
  }
  return info;
}

/** Compares two stream ids (`ms-seq`) numerically: negative when a < b (pure). */
export function compareIds(a: string, b: string): number {
  const [am = 0n, as = 0n] = a.split('-').map((x) => (/^\d+$/.test(x) ? BigInt(x) : 0n));
  const [bm = 0n, bs = 0n] = b.split('-').map((x) => (/^\d+$/.test(x) ? BigInt(x) : 0n));
  return am !== bm ? (am < bm ? -1 : 1) : as === bs ? 0 : as < bs ? -1 : 1;
}

/** What the events after a watermark say (pure data). */
export interface EventsRead {
  watermark: FlowWatermark;
  /** 1 when entries after the last watermark were trimmed or deleted before this read. */
  lost: number;
  completed: number;
  failed: number;
  stalled: number;
  /** Ids of the jobs that completed or failed, in stream order. */
  finishedIds: string[];
  /** Finished events without a job id (not BullMQ's: counted, never observed). */
  withoutJobId: number;
}

/** The watermark of a queue's first read: the stream's end (pure). */
export function firstWatermark(info: StreamInfo): FlowWatermark {
  return { id: info.lastGeneratedId, added: info.entriesAdded ?? -1 };
}

/**
 * Counts the events read after `watermark` (XRANGE `(<id> + COUNT max`,
 * issued right after the XINFO STREAM that gave `info`) and decides whether
 * entries were lost (pure). With Redis 7's `entries-added` the stream's
 * entries are numbered: those after the watermark's number that are no
 * longer in the stream were trimmed unread; entries trimmed between the
 * XINFO and the XRANGE show as fewer entries up to the XINFO's last id than
 * it announced. Without a number (before Redis 7, or a watermark that is an
 * instant) a stream whose first entry is after the watermark, and which was
 * trimmed, counts as a loss.
 */
export function readEvents(info: StreamInfo, entries: unknown, watermark: FlowWatermark, maxEvents: number): EventsRead {
  const list = Array.isArray(entries) ? (entries as unknown[]) : [];
  const out: EventsRead = { watermark, lost: 0, completed: 0, failed: 0, stalled: 0, finishedIds: [], withoutJobId: 0 };
  const added = info.entriesAdded;
  const known = watermark.added >= 0 && added !== undefined && Number.isFinite(added);
  let base = watermark.added;
  const firstAfter = info.firstId !== undefined && watermark.id !== '0-0' && compareIds(watermark.id, info.firstId) < 0;
  if (known) {
    if (added < watermark.added || compareIds(info.lastGeneratedId, watermark.id) < 0) {
      // Deleted or recreated: whatever it held after the watermark is gone.
      out.lost = 1;
      base = -2;
    } else if (added - info.length > watermark.added) {
      out.lost = 1;
      base = added - info.length;
    }
  } else if (firstAfter && (added === undefined || added > info.length)) {
    out.lost = 1;
  }
  let id = watermark.id;
  let upToInfo = 0;
  for (const e of list) {
    if (!Array.isArray(e) || typeof e[0] !== 'string') continue;
    id = e[0];
    if (compareIds(id, info.lastGeneratedId) <= 0) upToInfo += 1;
    const f = Array.isArray(e[1]) ? (e[1] as unknown[]) : [];
    let event: unknown;
    let job: unknown;
    for (let i = 0; i + 1 < f.length; i += 2) {
      if (f[i] === 'event') event = f[i + 1];
      else if (f[i] === 'jobId') job = f[i + 1];
    }
    if (event === 'completed' || event === 'failed') {
      if (event === 'completed') out.completed += 1;
      else out.failed += 1;
      if (typeof job === 'string' && job !== '') out.finishedIds.push(job);
      else out.withoutJobId += 1;
    } else if (event === 'stalled') out.stalled += 1;
  }
  if (known && out.lost === 0 && added !== undefined && upToInfo < Math.min(maxEvents, added - watermark.added)) {
    // Trimmed between the XINFO and the XRANGE.
    out.lost = 1;
    base = -2;
  }
  let next: number;
  if (added === undefined) next = -1;
  else if (list.length < maxEvents) next = added + (list.length - upToInfo);
  else next = base >= 0 ? base + list.length : -2;
  out.watermark = { id, added: next };
  return out;
}

/** What one read of one queue's events and job hashes found (pure data). */
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

/** A read that found nothing (pure). */
export function emptyRead(): FlowRead {
  return { counted: true, watermark: { id: '0-0', added: 0 }, lost: 0, completed: 0, failed: 0, stalled: 0, unobserved: 0, badTimes: 0, waits: [], processing: [] };
}

/** Decodes JOB_TIMES_LUA's reply into seconds (pure). */
export function parseJobTimes(reply: unknown): { unobserved: number; bad: number; waits: number[]; processing: number[] } {
  const r = Array.isArray(reply) ? reply : [];
  const n = (i: number) => {
    const v = Number(r[i] ?? 0);
    return Number.isFinite(v) && v >= 0 ? v : 0;
  };
  const seconds = (list: unknown) => (Array.isArray(list) ? list : []).map((x) => Number(x) / 1000).filter((x) => Number.isFinite(x) && x >= 0);
  return { unobserved: n(0), bad: n(1), waits: seconds(r[2]), processing: seconds(r[3]) };
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
