/**
 * BullMQ queues (Redis): per queue, the jobs in each state, when the oldest
 * waiting job was enqueued, the workers connected and whether it is paused.
 *
 * Queues are discovered, not configured: a SCAN for `<prefix>:*:meta` hashes
 * (BullMQ writes that hash with every job added), repeated on a slow schedule,
 * a bounded number of calls per collection, and cached; a queue whose meta
 * hash is gone drops out at once. Every known
 * queue is then read by one Lua script, all of them in one pipelined round
 * trip, plus one CLIENT LIST for the workers. BullMQ's own getJobCounts() is
 * one script per queue and per call, and its getWorkersCount() one CLIENT LIST
 * per queue: the same reads, batched. The counts match BullMQ's (tested).
 */
import type { Redis } from 'ioredis';
import { KNOWN } from '../catalog.js';
import { countInvalid, SampleSet, toSeconds, type InvalidCounts, type Sample } from '../metrics/sample.js';
import type { QueueOverview } from '../contract.js';
import type { CollectContext, Source, SourceData } from './types.js';

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
}

/** BullMQ job states, as BullMQ names them. */
export type QueueState = (typeof KNOWN.queueState)[number];

/** One queue as read. */
export interface QueueView {
  prefix: string;
  name: string;
  counts: Record<QueueState, number>;
  paused: boolean;
  /** Enqueue time of the oldest waiting job (waiting, prioritized or paused); undefined when none waits. */
  oldestWaitingAt?: Date;
  /** Workers connected; undefined when Redis refuses CLIENT LIST. */
  workers?: number;
}

/** What a queues collection returns. */
export interface QueuesData extends SourceData {
  queues: QueueView[];
}

/**
 * Reads one queue atomically. KEYS[1] is the queue's key prefix
 * (`<prefix>:<name>:`); ARGV[1] the most priority levels to inspect.
 * Returns: meta exists, is a BullMQ meta, paused, wait, paused, active,
 * delayed, prioritized, failed, completed, waiting-children, oldest enqueue
 * time in ms (or -1), candidate jobs without a usable timestamp.
 */
const QUEUE_STATS_LUA = `
local p = KEYS[1]
local rcall = redis.call
local meta = p .. 'meta'
if rcall('EXISTS', meta) == 0 then return {0} end
local m = rcall('HMGET', meta, 'paused', 'opts.maxLenEvents', 'version')
local isQueue = (m[1] or m[2] or m[3]) and 1 or 0
local function listCount(key)
  local n = rcall('LLEN', key)
  -- BullMQ 4 left a "0:" marker at the tail of wait/paused; it is not a job.
  local tail = rcall('LINDEX', key, -1)
  if tail and string.sub(tail, 1, 2) == '0:' then n = n - 1 end
  return n
end
local wait = listCount(p .. 'wait')
local paused = listCount(p .. 'paused')
local candidates = {}
local seen = {}
local function candidate(id)
  if not seen[id] then
    seen[id] = true
    candidates[#candidates + 1] = id
  end
end
-- FIFO jobs are pushed at the head and LIFO ones at the tail: the oldest is at one end.
local function ends(key)
  for _, i in ipairs({0, -1}) do
    local id = rcall('LINDEX', key, i)
    if id and string.sub(id, 1, 2) ~= '0:' then candidate(id) end
  end
end
ends(p .. 'wait')
ends(p .. 'paused')
-- Prioritized scores are priority * 2^32 + insertion counter: the first member
-- of each priority band is that band's oldest. Jump from band to band.
local prio = p .. 'prioritized'
local minScore = '-inf'
for _ = 1, tonumber(ARGV[1]) do
  local r = rcall('ZRANGEBYSCORE', prio, minScore, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #r == 0 then break end
  candidate(r[1])
  local band = math.floor(tonumber(r[2]) / 4294967296)
  minScore = string.format('%.0f', (band + 1) * 4294967296)
end
-- tonumber() accepts "NaN" and "inf": only finite values are times.
local function finite(x)
  if x and x == x and x > -math.huge and x < math.huge then return x end
  return nil
end
local oldest = -1
local bad = 0
for _, id in ipairs(candidates) do
  local h = rcall('HMGET', p .. id, 'timestamp', 'delay')
  local ts = finite(tonumber(h[1]))
  if ts then
    local at = ts + (finite(tonumber(h[2])) or 0)
    if oldest < 0 or at < oldest then oldest = at end
  elseif rcall('EXISTS', p .. id) == 1 then
    bad = bad + 1
  end
end
return {1, isQueue, m[1] and 1 or 0, wait, paused, rcall('LLEN', p .. 'active'),
  rcall('ZCARD', p .. 'delayed'), rcall('ZCARD', prio), rcall('ZCARD', p .. 'failed'),
  rcall('ZCARD', p .. 'completed'), rcall('ZCARD', p .. 'waiting-children'),
  string.format('%.0f', oldest), bad}
`;

/** Decodes the script's reply; null when the queue is gone (pure). */
export function parseQueueStats(prefix: string, name: string, reply: unknown[], invalid: InvalidCounts): QueueView | null {
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
  if (Number.isFinite(oldestMs) && oldestMs >= 0) view.oldestWaitingAt = new Date(oldestMs);
  return view;
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
  for (const q of data.queues) {
    const labels = { prefix: q.prefix, queue: q.name };
    for (const state of KNOWN.queueState) s.add('queueJobs', { ...labels, state }, q.counts[state]);
    s.add('queuePaused', labels, q.paused ? 1 : 0);
    if (q.workers !== undefined) s.add('queueWorkers', labels, q.workers);
    if (q.oldestWaitingAt) s.add('queueOldestWaiting', labels, toSeconds(q.oldestWaitingAt));
  }
  return s.list();
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

type RedisWithStats = Redis & { opsQueueStats(keyPrefix: string, maxLevels: number): Promise<unknown[]> };

/** The queues source. Holds the discovered queues between collections. */
export function queuesSource(redis: Redis, options: QueuesOptions): Source<QueuesData, 'queues'> {
  const client = redis as RedisWithStats;
  if (typeof client.opsQueueStats !== 'function') {
    client.defineCommand('opsQueueStats', { numberOfKeys: 1, lua: QUEUE_STATS_LUA });
  }
  let known: Array<{ prefix: string; name: string }> = [];
  /** The discovery pass under way: where its SCAN stands. */
  let pass: { prefixIndex: number; cursor: string; undecodable: number } | null = null;
  let passStartedAt = -Infinity;
  /** Keys found by the last complete pass whose queue name is not UTF-8 (unusable as a label). */
  let undecodable = 0;
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
      pass = { prefixIndex: 0, cursor: '0', undecodable: 0 };
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
          pass.undecodable += 1;
          continue;
        }
        addKnown({ prefix, name: key.slice(prefix.length + 1, -':meta'.length) });
      }
      pass.cursor = next.toString();
      if (pass.cursor === '0') {
        pass.prefixIndex += 1;
        if (pass.prefixIndex >= options.prefixes.length) {
          undecodable = pass.undecodable;
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
      if (undecodable > 0) countInvalid(invalid, 'wrong_type', undecodable);
      const pipeline = client.pipeline();
      for (const q of known) (pipeline as unknown as RedisWithStats).opsQueueStats(`${q.prefix}:${q.name}:`, options.maxPriorityLevels);
      pipeline.client('LIST');
      const replies = (await pipeline.exec()) ?? [];
      const queues: QueueView[] = [];
      const stillThere: typeof known = [];
      const listReply = replies[known.length];
      // CLIENT LIST may be forbidden (managed Redis, ACLs): workers are then unknown, not zero.
      const workers = listReply && !listReply[0] && typeof listReply[1] === 'string' ? countWorkers(listReply[1], known) : null;
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
        const r = reply as unknown[];
        // A queue whose meta hash disappeared is forgotten until rediscovered.
        if (Number(r[0]) === 1) stillThere.push(q);
        const view = parseQueueStats(q.prefix, q.name, r, invalid);
        if (!view) return;
        const w = workers?.get(queueKey(q.prefix, q.name));
        if (w !== undefined) view.workers = w;
        queues.push(view);
      });
      known = stillThere;
      return { queues, invalid };
    },
    samples: queueSamples,
    section: { name: 'queues', overview: queuesOverview },
  };
}
