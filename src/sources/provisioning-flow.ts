/**
 * Provisioning flow: jobs reaching a terminal status, counted since the
 * exporter started (`ops_provisioning_jobs_finished_total`), with their run
 * time (`finishedAt − createdAt`) and queue time (`startedAt − createdAt`) as
 * histograms, all kept incrementally at a cost that follows the rate of
 * finishing, never the size of history.
 *
 * The platform sets `finishedAt` in the transaction that finishes the job, so
 * a row can become visible after a collection already passed its second.
 * Memory keeps a watermark W (Unix seconds: every second below it has been
 * passed) and, for each second of the lookback [W − L, W), how many terminal
 * rows the database had there, a checksum of their ids (the sum of
 * `hashtext(id)`) and the ids themselves (as MD5, 32 characters whatever the
 * id's length). One step, in the collection's REPEATABLE READ snapshot, at
 * `now` (H = now truncated to the second):
 *   1. per second of [W − L, H), count and checksum of the terminal rows
 *      (an index-only range on "ProvisioningJob_finished_idx");
 *   2. the seconds whose count or checksum differ from memory (every new
 *      second in [W, H) with rows, and a second of the lookback where a late
 *      commit landed) are read in full: their rows' ids, type, status, times;
 *   3. a row whose id memory does not hold is counted (and its times
 *      observed); one it holds (already counted, or moved to another second)
 *      is not; ids that left a second are forgotten; W becomes H, and seconds
 *      below H − L are dropped.
 * So a row is counted once, when first seen, if it commits at most L seconds
 * (`OPS_PROVISIONING_LATE_COMMIT_SECONDS`) after its `finishedAt` second was
 * passed. The step reads at most MAX_STEP_SECONDS of new seconds: after a long
 * outage it catches up over several collections; and at most
 * MAX_ROWS_PER_SECOND rows of one second (see there).
 *
 * At start (and a restart) the lookback's rows are read as a baseline, not
 * counted: counters start at 0 and count what finishes after the start.
 *
 * Invalid (`bad_timestamp`, never counted): a row whose finishedAt is before
 * its createdAt or whose createdAt is out of range (seen when its second is
 * passed), and terminal rows whose finishedAt is now beyond now + clock skew
 * (infinity, year 10000, the future) or before 0001-01-01 (BC, −infinity),
 * read each collection (at most BAD_CAP of each); the ids of the future ones
 * are remembered (at most FUTURE_IDS_CAP) so that when their time comes they
 * are still not counted. A start time out of [createdAt, finishedAt] is
 * `bad_timestamp` too: the job is counted, its queue time is not observed.
 *
 * A terminal row with a NULL finishedAt has no finishing time: it is never
 * counted (unobserved). How many there are (at most BAD_CAP) is its own gauge,
 * not an invalid value: a platform that added finishedAt late keeps millions
 * of such rows in history, which would make `null_value` a permanent signal.
 *
 * This file holds the state and its arithmetic (pure, tested without a
 * database) and the SQL the step reads; provisioning.ts runs it.
 */
import { KNOWN, OVERFLOW_LABEL, UNKNOWN_LABEL, WORK_DURATION_BUCKETS } from '../catalog.js';
import type { DbTx } from '../db/client.js';
import { isOneOf, presentLabels, type EnumLabels } from '../db/enum-labels.js';
import { join, raw, sql, utcInstant, type Sql } from '../db/sql.js';
import { countInvalid, type HistogramValue, type InvalidCounts } from '../metrics/sample.js';
import { CLOCK_SKEW_MS } from './valid-time.js';

/** New seconds one step reads at most (a long outage is caught up over several collections). */
export const MAX_STEP_SECONDS = 600;
/**
 * Jobs of one second read row by row at most. A second with more (a bulk
 * update finishing a million jobs at once) is not read: its jobs are counted
 * as `out_of_range`, left out of the counter and the histograms, so that one
 * such statement cannot take the source down collection after collection.
 */
export const MAX_ROWS_PER_SECOND = 10_000;
/** Impossible or NULL finishing times counted per kind and collection at most (a signal, not an inventory). */
export const BAD_CAP = 1000;
/** Ids of future-dated rows remembered at most, so that they stay uncounted when their time comes. */
export const FUTURE_IDS_CAP = 10_000;

/** Options of the flow. */
export interface ProvisioningFlowOptions {
  /** Seconds a passed second is re-checked for late commits (L). */
  lateCommitSeconds: number;
  /** Distinct type labels kept since start; later types are counted under OTHER. */
  labelValueLimit: number;
  /** Rows of one second read at most (MAX_ROWS_PER_SECOND unless a test lowers it). */
  maxRowsPerSecond?: number;
}

/** Count and checksum of the terminal rows of one second. */
export interface SecondSummary {
  second: number;
  n: number;
  /** Sum of hashtext(id), as text (a bigint). */
  hash: string;
}

/** One terminal row of a second that changed. */
export interface FinishedRow {
  second: number;
  /** md5 of the id. */
  id: string;
  /** The type, cut as labels are cut (provisioning.ts' labelText). */
  type: string;
  typeCut: boolean;
  status: string;
  /** finishedAt − createdAt, seconds; null when the times are impossible. */
  duration: number | null;
  /** startedAt − createdAt, seconds; null when not started or impossible. */
  queue: number | null;
  /** startedAt is set but outside [createdAt, finishedAt]. */
  badStart: boolean;
}

/** What one step read, in one snapshot. */
export interface FlowRead {
  /** The flow's generation the step was planned at (see ProvisioningFlow.apply). */
  generation?: number;
  /** Seconds [from, to) the summaries cover. */
  from: number;
  to: number;
  summaries: SecondSummary[];
  /** Rows of the seconds `changedSeconds()` named. */
  rows: FinishedRow[];
  /** md5 ids of terminal rows dated beyond now + skew (at most BAD_CAP), and how many there are. */
  futureIds: string[];
  /** Terminal rows dated before 0001-01-01 (at most BAD_CAP). */
  beforeRange: number;
  /** Terminal rows with NULL finishedAt (at most BAD_CAP). */
  nullFinished: number;
}

/** One histogram series' state: non-cumulative bucket counts (the last one is +Inf), sum. */
interface Histo {
  counts: number[];
  sum: number;
}

/** What the flow serves, as of the last step. */
export interface FlowData {
  /** Terminal statuses the column can hold (the enum's among COMPLETED, FAILED, CANCELLED). */
  statuses: string[];
  /** Type labels seen since start (kept with 0 series for every status). */
  types: string[];
  finished: Array<{ type: string; status: string; jobs: number }>;
  duration: Array<{ type: string; status: string; count: number; histogram: HistogramValue }>;
  queue: Array<{ type: string; count: number; histogram: HistogramValue }>;
  /** Index entries the step's summary read (the lookback plus the new seconds). */
  rowsScanned: number;
  /** Rows the step read in full (the changed seconds). */
  rowsRead: number;
  /** The watermark after the step, Unix seconds. */
  watermark: number;
  /** Terminal jobs whose finishedAt is NULL (never counted), at most BAD_CAP. */
  nullFinished: number;
}

const BUCKETS: readonly number[] = WORK_DURATION_BUCKETS;

function histo(): Histo {
  return { counts: new Array<number>(BUCKETS.length + 1).fill(0), sum: 0 };
}

function observe(h: Histo, v: number): void {
  let i = BUCKETS.findIndex((b) => v <= b);
  if (i < 0) i = BUCKETS.length;
  h.counts[i]! += 1;
  h.sum += v;
}

function cumulative(h: Histo): { count: number; histogram: HistogramValue } {
  const buckets: number[] = [];
  let acc = 0;
  for (let i = 0; i < BUCKETS.length; i++) {
    acc += h.counts[i]!;
    buckets.push(acc);
  }
  return { count: acc + h.counts[BUCKETS.length]!, histogram: { buckets, sum: h.sum } };
}

const SEP = '\u0000';

/** The incrementally kept counters and histograms of finished jobs. */
export class ProvisioningFlow {
  /** Every second below it has been passed; null before the first step. */
  private watermark: number | null = null;
  /** Per second of the lookback: count, checksum, ids; `giant` once it held more than maxRowsPerSecond rows. */
  private readonly seconds = new Map<number, { n: number; hash: string; ids: string[]; giant?: boolean }>();
  /** md5 id → the second memory holds it in. */
  private readonly counted = new Map<string, number>();
  /** md5 ids of rows seen dated beyond now + skew (insertion order: the oldest are given up first). */
  private readonly future = new Set<string>();
  /** Types that keep their own label (at most labelValueLimit). */
  private readonly named = new Set<string>();
  /** Every type label served: the named ones, OTHER and UNKNOWN once met. */
  private readonly types = new Set<string>();
  private readonly finished = new Map<string, number>();
  private readonly duration = new Map<string, Histo>();
  private readonly queue = new Map<string, Histo>();
  private lastScanned = 0;
  private lastRead = 0;
  private lastNullFinished = 0;
  /** Steps applied: a read planned at an older generation is refused. */
  private generation = 0;

  constructor(private readonly options: ProvisioningFlowOptions) {}

  /** Seconds [from, to) the summary of a step at `now` covers. */
  range(now: Date): { from: number; to: number; init: boolean; generation: number } {
    const h = Math.floor(now.getTime() / 1000);
    const L = this.options.lateCommitSeconds;
    const generation = this.generation;
    if (this.watermark === null) return { from: h - L, to: h, init: true, generation };
    const w = this.watermark;
    // The clock never moves the watermark back; a long pause is caught up in steps.
    return { from: w - L, to: Math.min(Math.max(h, w), w + MAX_STEP_SECONDS), init: false, generation };
  }

  /** The changed seconds whose rows are read (at most maxRowsPerSecond rows each). */
  secondsToRead(from: number, to: number, summaries: readonly SecondSummary[]): number[] {
    const max = this.options.maxRowsPerSecond ?? MAX_ROWS_PER_SECOND;
    const n = new Map(summaries.map((s) => [s.second, s.n]));
    return this.changedSeconds(from, to, summaries).filter((s) => (n.get(s) ?? 0) <= max && !this.seconds.get(s)?.giant);
  }

  /** The seconds of `summaries` (over [from, to)) that differ from memory. */
  changedSeconds(from: number, to: number, summaries: readonly SecondSummary[]): number[] {
    const out = new Set<number>();
    const seen = new Set<number>();
    for (const s of summaries) {
      seen.add(s.second);
      const m = this.seconds.get(s.second);
      if (!m || m.n !== s.n || m.hash !== s.hash) out.add(s.second);
    }
    // Seconds memory holds that are empty now (their rows left or were deleted).
    for (const second of this.seconds.keys()) if (second >= from && second < to && !seen.has(second)) out.add(second);
    return [...out].sort((a, b) => a - b);
  }

  /** Applies what a step read at the range `range()` gave; counts the invalid values it met. */
  apply(read: FlowRead, init: boolean, invalid: InvalidCounts): void {
    // A collection given up after its timeout may still settle after the next
    // one applied: its read is stale, and applying it would count twice.
    if (read.generation !== undefined && read.generation !== this.generation) {
      throw new Error('provisioning flow: a newer step was applied while this one was reading');
    }
    this.generation += 1;
    const changed = this.changedSeconds(read.from, read.to, read.summaries);
    const bySecond = new Map<number, FinishedRow[]>();
    for (const r of read.rows) {
      const list = bySecond.get(r.second);
      if (list) list.push(r);
      else bySecond.set(r.second, [r]);
    }
    const present = new Set(read.rows.map((r) => r.id));
    const readable = new Set(this.secondsToRead(read.from, read.to, read.summaries));
    // Forget ids that left the changed seconds, unless they moved to another one.
    for (const second of changed) {
      if (!readable.has(second)) continue;
      for (const id of this.seconds.get(second)?.ids ?? []) {
        if (!present.has(id) && this.counted.get(id) === second) this.counted.delete(id);
      }
    }
    const summary = new Map(read.summaries.map((s) => [s.second, s]));
    let bad = 0;
    for (const second of changed) {
      if (!readable.has(second)) {
        // Too many rows to read: remembered by count and checksum only, never counted.
        const s = summary.get(second) ?? { n: 0, hash: '' };
        const before = this.seconds.get(second)?.n ?? 0;
        if (!init && s.n > before) countInvalid(invalid, 'out_of_range', s.n - before);
        this.seconds.set(second, { n: s.n, hash: s.hash, ids: this.seconds.get(second)?.ids ?? [], giant: true });
        continue;
      }
      const rows = bySecond.get(second) ?? [];
      for (const r of rows) {
        const known = this.counted.has(r.id);
        this.counted.set(r.id, second);
        if (known || init) continue;
        if (this.future.delete(r.id) || r.duration === null) {
          bad += 1;
          continue;
        }
        if (r.badStart) bad += 1;
        this.count(r, invalid);
      }
      const s = summary.get(second);
      if (s && s.n > 0) this.seconds.set(second, { n: s.n, hash: s.hash, ids: rows.map((r) => r.id) });
      else this.seconds.delete(second);
    }
    // Seconds that left the lookback.
    const keepFrom = read.to - this.options.lateCommitSeconds;
    for (const [second, m] of this.seconds) {
      if (second >= keepFrom) continue;
      for (const id of m.ids) if (this.counted.get(id) === second) this.counted.delete(id);
      this.seconds.delete(second);
    }
    this.watermark = Math.max(this.watermark ?? read.to, read.to);
    for (const id of read.futureIds) {
      this.future.delete(id);
      this.future.add(id);
    }
    while (this.future.size > FUTURE_IDS_CAP) this.future.delete(this.future.values().next().value as string);
    bad += read.futureIds.length + read.beforeRange;
    if (bad > 0) countInvalid(invalid, 'bad_timestamp', bad);
    this.lastScanned = read.summaries.reduce((n, s) => n + s.n, 0);
    this.lastRead = read.rows.length;
    this.lastNullFinished = read.nullFinished;
  }

  private typeLabel(r: FinishedRow, invalid: InvalidCounts): string {
    if (r.type === '') {
      countInvalid(invalid, 'unknown_value');
      return UNKNOWN_LABEL;
    }
    if (this.named.has(r.type)) return r.type;
    if (this.named.size < this.options.labelValueLimit) {
      this.named.add(r.type);
      this.types.add(r.type);
      if (r.typeCut) countInvalid(invalid, 'label_overflow');
      return r.type;
    }
    countInvalid(invalid, 'label_overflow');
    this.types.add(OVERFLOW_LABEL);
    return OVERFLOW_LABEL;
  }

  private count(r: FinishedRow, invalid: InvalidCounts): void {
    const type = this.typeLabel(r, invalid);
    if (type === UNKNOWN_LABEL) this.types.add(UNKNOWN_LABEL);
    const key = `${type}${SEP}${r.status}`;
    this.finished.set(key, (this.finished.get(key) ?? 0) + 1);
    let d = this.duration.get(key);
    if (!d) this.duration.set(key, (d = histo()));
    observe(d, r.duration!);
    if (r.queue !== null && !r.badStart) {
      let q = this.queue.get(type);
      if (!q) this.queue.set(type, (q = histo()));
      observe(q, r.queue);
    }
  }

  /** The counters and histograms as of the last step; `statuses` are the terminal ones the column can hold. */
  data(statuses: readonly string[]): FlowData {
    return {
      statuses: [...statuses],
      types: [...this.types].sort(),
      finished: [...this.finished].map(([key, jobs]) => {
        const [type, status] = key.split(SEP) as [string, string];
        return { type, status, jobs };
      }),
      duration: [...this.duration].map(([key, h]) => {
        const [type, status] = key.split(SEP) as [string, string];
        return { type, status, ...cumulative(h) };
      }),
      queue: [...this.queue].map(([type, h]) => ({ type, ...cumulative(h) })),
      rowsScanned: this.lastScanned,
      rowsRead: this.lastRead,
      watermark: this.watermark ?? 0,
      nullFinished: this.lastNullFinished,
    };
  }
}

/** A Unix second as SQL (utcInstant). */
function at(second: number): Sql {
  return utcInstant(second * 1000);
}

const MIN_TIME = raw(`'0001-01-01 00:00:00'`);

/** Adjacent seconds as [from, to) ranges. */
function ranges(seconds: readonly number[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const s of seconds) {
    const last = out[out.length - 1];
    if (last && last[1] === s) last[1] = s + 1;
    else out.push([s, s + 1]);
  }
  return out;
}

/**
 * The type as a label, cut like provisioning.ts cuts labels (190 characters,
 * `…`, 8 hex digits of its SHA-256).
 */
const TYPE_LABEL = raw(
  `CASE WHEN length("type"::text) > 200 ` +
    `THEN left("type"::text, 190) || '…' || left(encode(sha256(convert_to("type"::text, 'UTF8')), 'hex'), 8) ` +
    `ELSE "type"::text END`,
);

/**
 * The statements of one step: the summary of [from, to), the rows of the
 * `changed` seconds, the future-dated ids and the before-0001 / NULL counts.
 * Every one is a range of "ProvisioningJob_finished_idx" (partial on the
 * terminal statuses, keyed on "finishedAt", "id").
 */
export function flowQueries(labels: EnumLabels, from: number, to: number, changed: readonly number[], now: Date) {
  const terminal = isOneOf(labels, 'ProvisioningJob.status', KNOWN.terminalJobStatus);
  const where = changed.length
    ? join(
        ranges(changed).map(([a, b]) => sql`("finishedAt" >= ${at(a)} AND "finishedAt" < ${at(b)})`),
        ' OR ',
      )
    : raw('FALSE');
  // Times are judged in SQL: an infinite or BC createdAt never reaches a subtraction.
  const valid = sql`("createdAt" >= ${MIN_TIME} AND "createdAt" <= "finishedAt")`;
  const startValid = sql`(${valid} AND "startedAt" >= "createdAt" AND "startedAt" <= "finishedAt")`;
  const latest = at(Math.floor((now.getTime() + CLOCK_SKEW_MS) / 1000));
  return {
    summary: sql`
      SELECT floor(extract(epoch FROM "finishedAt"))::float8 AS second, count(*)::int AS n, sum(hashtext("id"::text))::text AS hash
        FROM "ProvisioningJob"
       WHERE ${terminal} AND "finishedAt" >= ${at(from)} AND "finishedAt" < ${at(to)}
       GROUP BY 1`,
    rows: sql`
      SELECT floor(extract(epoch FROM "finishedAt"))::float8 AS second, md5("id"::text) AS id,
             ${TYPE_LABEL} AS type, length("type"::text) > 200 AS "typeCut", "status"::text AS status,
             CASE WHEN ${valid} THEN extract(epoch FROM "finishedAt" - "createdAt")::float8 END AS duration,
             CASE WHEN ${startValid} THEN extract(epoch FROM "startedAt" - "createdAt")::float8 END AS queue,
             ("startedAt" IS NOT NULL AND NOT COALESCE(${startValid}, FALSE)) AS "badStart"
        FROM "ProvisioningJob"
       WHERE ${terminal} AND (${where})`,
    future: sql`
      SELECT md5("id"::text) AS id FROM "ProvisioningJob"
       WHERE ${terminal} AND "finishedAt" > ${latest} LIMIT ${BAD_CAP}`,
    counts: sql`
      SELECT (SELECT count(*) FROM (SELECT 1 FROM "ProvisioningJob" WHERE ${terminal} AND "finishedAt" < ${MIN_TIME} LIMIT ${BAD_CAP}) b)::int AS before,
             (SELECT count(*) FROM (SELECT 1 FROM "ProvisioningJob" WHERE ${terminal} AND "finishedAt" IS NULL LIMIT ${BAD_CAP}) n)::int AS nulls`,
  };
}

/** One step of the flow at `now`, in the transaction's snapshot (REPEATABLE READ, so the summaries and the rows agree). */
export async function readFlow(tx: DbTx, labels: EnumLabels, flow: ProvisioningFlow, now: Date): Promise<{ read: FlowRead; init: boolean; statuses: string[] }> {
  const statuses = presentLabels(labels, 'ProvisioningJob.status', KNOWN.terminalJobStatus);
  const { from, to, init, generation } = flow.range(now);
  const summaries =
    to > from
      ? (await tx.query<Array<{ second: number; n: number; hash: string }>>(flowQueries(labels, from, to, [], now).summary)).map((r) => ({
          second: Number(r.second),
          n: Number(r.n),
          hash: String(r.hash),
        }))
      : [];
  const changed = flow.secondsToRead(from, to, summaries);
  const q = flowQueries(labels, from, to, changed, now);
  // One row of arrays, not a row per job: Prisma's per-row cost dominates otherwise.
  type Packed = {
    second: number[] | null;
    id: string[] | null;
    type: Array<string | null> | null;
    typeCut: boolean[] | null;
    status: string[] | null;
    duration: Array<number | null> | null;
    queue: Array<number | null> | null;
    badStart: boolean[] | null;
  };
  const rows: FinishedRow[] = [];
  if (changed.length > 0) {
    const [p] = await tx.query<Packed[]>`
      SELECT array_agg(second) AS second, array_agg(id) AS id, array_agg(type) AS type, array_agg("typeCut") AS "typeCut",
             array_agg(status) AS status, array_agg(duration) AS duration, array_agg(queue) AS queue, array_agg("badStart") AS "badStart"
        FROM (${q.rows}) r`;
    (p?.id ?? []).forEach((id, i) =>
      rows.push({
        second: Number(p!.second![i]),
        id,
        type: p!.type?.[i] ?? '',
        typeCut: p!.typeCut?.[i] ?? false,
        status: p!.status?.[i] ?? '',
        duration: p!.duration?.[i] ?? null,
        queue: p!.queue?.[i] ?? null,
        badStart: p!.badStart?.[i] ?? false,
      }),
    );
  }
  const future = await tx.query<Array<{ id: string }>>(q.future);
  const [counts] = await tx.query<Array<{ before: number; nulls: number }>>(q.counts);
  return {
    read: {
      generation,
      from,
      to,
      summaries,
      rows,
      futureIds: future.map((f) => f.id),
      beforeRange: counts?.before ?? 0,
      nullFinished: counts?.nulls ?? 0,
    },
    init,
    statuses,
  };
}
