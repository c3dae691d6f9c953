/**
 * The incremental 24-hour count of Migra Shield decisions.
 *
 * ShieldEvent grows by hundreds of rows a second; counting the last 24 h from
 * scratch on every collection reads ten million index entries. Instead the
 * window is kept in memory, as counts per second and decision, and each
 * collection reads only what changed.
 *
 * Seconds. The window at a collection's `now` is the rows whose `timestamp`
 * is in [now − 24 h, now]. Memory holds one bucket per second in
 * [start, front) = [E − 86,400 s, E + horizon), E = `now` truncated to the
 * second: the window's whole seconds, plus the near future. The two partial
 * seconds at the window's ends ([now − 24 h, start + 1 s) and [E, now]) are
 * read from the database at each step: two index ranges under a second wide.
 *
 * One step (one REPEATABLE READ snapshot) from (E0, front F0, id watermark M0)
 * to (E1, F1):
 *   1. seconds that left the window are dropped from memory: rows are never
 *      subtracted by reading them, so retention deleting them at (or after)
 *      24 h changes nothing;
 *   2. rows with F0 <= timestamp < F1 (the future edge, where retention never
 *      deletes) and id <= the new watermark are added;
 *   3. rows with id > M0 (a primary-key range, at most `batchRows` of them)
 *      and rows that committed late in id gaps seen before, whose timestamp
 *      is in [start, F0), are added to their second.
 * Ids are allocated at insert but become visible at commit, so a lower id can
 * appear after a higher one: ids a step skipped are remembered as gaps and
 * re-read for `lateCommitMs`. Timestamps outside [0001-01-01, 10000-01-01)
 * (±infinity, BC, year 10000) never enter memory: no range read reaches them.
 *
 * The recount. What no step can see (rows deleted inside the window, commits
 * later than `lateCommitMs`) is healed by a recount, and before the first one
 * completes the window is incomplete: never served as a total. A recount is a
 * sequence of chunks, a few seconds of the window each, every chunk in its own
 * transaction after a step in the same snapshot, so replacing the chunk's
 * buckets with what the database holds there is exact at that snapshot;
 * steps keep running between chunks, and the id gaps are never touched by a
 * recount. The difference a chunk found is the drift it healed.
 *
 * This file holds the state machine and its arithmetic; security.ts reads.
 */
import { KNOWN, UNKNOWN_LABEL } from '../catalog.js';

/** Columns of a bucket: the known decisions, then NULL, then any other value. */
export const DECISION_COLUMNS = [...KNOWN.decision, 'NULL', 'OTHER'] as const;
const COLS = DECISION_COLUMNS.length;
const NULL_COL = COLS - 2;
const OTHER_COL = COLS - 1;

/** Rows a first recount chunk aims at (about 50 ms of index-only scan). */
const FIRST_CHUNK_ROWS = 200_000;

/** Counts per decision column (DECISION_COLUMNS order). */
export type ColumnCounts = number[];

/** Counts per decision label (known decisions and UNKNOWN). */
export type DecisionCounts = Map<string, number>;

/** Rows of one second, by decision column. */
export interface SecondCounts {
  /** Unix seconds of the bucket (the second the rows' timestamps fall in). */
  second: number;
  counts: ColumnCounts;
}

/**
 * Rows per second, packed as PostgreSQL's array_agg returns them (one array
 * per column rather than an object per second: a chunk can hold 86,400
 * seconds). `seconds` ascending; `columns[c][j]` counts column c in `seconds[j]`.
 */
export interface PerSecond {
  seconds: number[];
  columns: number[][];
}

/** An empty PerSecond. */
export function noSeconds(): PerSecond {
  return { seconds: [], columns: DECISION_COLUMNS.map(() => []) };
}

/** Packs rows of single seconds (ascending order is restored). */
export function packSeconds(rows: readonly SecondCounts[]): PerSecond {
  const sorted = [...rows].sort((a, b) => a.second - b.second);
  return { seconds: sorted.map((r) => r.second), columns: DECISION_COLUMNS.map((_, c) => sorted.map((r) => r.counts[c] ?? 0)) };
}

/** A range of ids [from, to] not seen yet, watched for a late commit. */
export interface IdGap {
  from: bigint;
  to: bigint;
  /** When the gap was first seen, epoch ms. */
  seenAt: number;
}

/** What a step must read: computed by `plan()`, read by security.ts, applied by `apply()`. */
export interface StepPlan {
  /** No state yet: read the id watermark and recent gaps only. */
  init: boolean;
  /** Window start and end for this step, Unix seconds (memory's buckets: [start, end)). */
  start: number;
  end: number;
  /** The window itself, ms: [fromMs, toMs] (now − 24 h to now, both inclusive). */
  fromMs: number;
  toMs: number;
  /** New and late rows are added when their second is in [start, addBefore). */
  addBefore: number;
  /** Future edge to read: rows in [frontFrom, frontTo) with id <= the new watermark (none when equal). */
  frontFrom: number;
  frontTo: number;
  /** Id watermark: new rows have a higher id. */
  watermark: bigint;
  gaps: readonly IdGap[];
  /** Recount chunk [from, to) to read after the step, Unix seconds; null for none. */
  chunk: { from: number; to: number } | null;
}

/** What one step read, in one snapshot. */
export interface StepRead {
  /** init: the highest id; otherwise the highest id among the new rows (watermark when none). */
  maxId: bigint;
  /** init only: the planner's estimate of ShieldEvent's rows (pg_class.reltuples; negative when never analyzed). */
  rowEstimate?: number;
  /** init only: id ranges below maxId not visible (in-flight inserts), to watch. */
  initGaps: Array<{ from: bigint; to: bigint }>;
  /** True when the batch of new rows was full: more may follow (no chunk was read). */
  truncated: boolean;
  /** New and late rows in [start, addBefore), per second. */
  added: PerSecond[];
  /** Every new and late row whatever its timestamp, by column (the since-start counter). */
  inserted: ColumnCounts;
  /** Rows in the future edge, per second. */
  front: PerSecond;
  /** Id ranges skipped by the new rows (not visible yet), to watch. */
  newGaps: Array<{ from: bigint; to: bigint }>;
  /** Ranges of ids found inside watched gaps. */
  found: Array<{ from: bigint; to: bigint }>;
  /** The recount chunk's rows per second (the plan's chunk, unless truncated); null when none was read. */
  chunk: PerSecond | null;
  /** Wall ms the chunk's statement took (its cost alone, for the next chunk's width). */
  chunkMs?: number;
  /** Rows in [fromMs, start + 1 s) and in [end, toMs], by column: the window's two partial seconds. */
  edges: { left: ColumnCounts; right: ColumnCounts };
}

/** Options of the window. */
export interface ShieldWindowOptions {
  /** Window length, seconds (86,400). */
  windowSeconds: number;
  /** Future seconds kept in memory beyond the window's end; later rows are read when they come this close. */
  horizonSeconds: number;
  /** How long a gap is watched for a late commit, ms. */
  lateCommitMs: number;
  /** Gap ranges watched at most; the oldest are given up beyond it. */
  maxGaps: number;
  /** Ms between the starts of two recounts (after the first). */
  recountIntervalMs: number;
  /** Width of the first recount chunk, seconds of window; it adapts to the chunk budget after. */
  initialChunkSeconds: number;
  /** Widest chunk, seconds (a test forces small chunks with it). */
  maxChunkSeconds: number;
}

/** One zero per column. */
export function zeros(): ColumnCounts {
  return new Array<number>(COLS).fill(0);
}

/** What a step that read nothing gives: the source fills it in as it reads; tests apply it as is. */
export function emptyStepRead(plan: StepPlan): StepRead {
  return {
    maxId: plan.watermark,
    initGaps: [],
    truncated: false,
    added: [],
    inserted: zeros(),
    front: noSeconds(),
    newGaps: [],
    found: [],
    chunk: null,
    edges: { left: zeros(), right: zeros() },
  };
}

/** Column counts as counts per decision label (NULL and OTHER under UNKNOWN). */
export function labelCounts(cols: readonly number[]): DecisionCounts {
  const out: DecisionCounts = new Map();
  KNOWN.decision.forEach((d, i) => out.set(d, cols[i] ?? 0));
  out.set(UNKNOWN_LABEL, (cols[NULL_COL] ?? 0) + (cols[OTHER_COL] ?? 0));
  return out;
}

/** The recount under way. */
interface Recount {
  /** The first recount since start (or a reset): it completes the window, its differences are not drift. */
  first: boolean;
  startedAtMs: number;
  from: number;
  to: number;
  cursor: number;
  drift: ColumnCounts;
}

/** Incrementally maintained 24 h window, since-start totals and recount. */
export class ShieldWindow {
  private readonly slots: number;
  /** Counts per (second mod slots, column). */
  private readonly buckets: Uint32Array;
  /** Sums of the buckets in [start, end) and in [end, front). */
  private windowSum = zeros();
  private futureSum = zeros();
  private start = 0;
  private end = 0;
  private front = 0;
  private initialized = false;
  private watermark = 0n;
  private gaps: IdGap[] = [];
  private recount: Recount | null = null;
  private lastRecountStartMs: number | null = null;
  private chunkSeconds: number;
  private edges: StepRead['edges'] = { left: zeros(), right: zeros() };
  /** Events inserted since the exporter started, by column. */
  readonly inserted = zeros();
  /** Whether a recount has completed since start: only then is the window a total. */
  complete = false;
  /** Recount minus incremental over the last completed recount (not the first), by column. */
  drift = zeros();
  /**
   * Seconds the last completed recount took, from its start to its last
   * chunk: the collection clock across collections plus the time into each
   * collection (`elapsedMs`), so one done within a single collection does not
   * read 0.
   */
  lastRecountSeconds: number | null = null;
  /** Recount chunks applied since start. */
  chunks = 0;

  constructor(private readonly options: ShieldWindowOptions) {
    this.slots = options.windowSeconds + options.horizonSeconds;
    this.buckets = new Uint32Array(this.slots * COLS);
    this.chunkSeconds = Math.min(options.initialChunkSeconds, options.maxChunkSeconds);
  }

  /** Window end for a collection at `now`, Unix seconds (now truncated to the second). */
  static endFor(now: Date): number {
    return Math.floor(now.getTime() / 1000);
  }

  get watchedGaps(): readonly IdGap[] {
    return this.gaps;
  }

  /** Ratio of the recount under way that is done; 1 when none is. */
  get recountProgress(): number {
    const r = this.recount;
    if (!r) return 1;
    return r.to > r.from ? Math.min(1, Math.max(0, (r.cursor - r.from) / (r.to - r.from))) : 1;
  }

  get recountRunning(): boolean {
    return this.recount !== null;
  }

  /**
   * Counts in the window [now − 24 h, now], by column: the whole seconds from
   * memory, the two partial seconds at its ends from the last step's `edges`.
   */
  windowColumns(): ColumnCounts {
    const first = this.slot(this.start);
    return this.windowSum.map((n, c) => n - this.buckets[first + c]! + (this.edges.left[c] ?? 0) + (this.edges.right[c] ?? 0));
  }

  /**
   * What a step at `now` reads. `withChunk` asks for the next recount chunk
   * (null in the plan when no recount is under way or it is done).
   */
  plan(now: Date, withChunk: boolean): StepPlan {
    let end = ShieldWindow.endFor(now);
    // The clock never moves the window back.
    if (this.initialized && end < this.end) end = this.end;
    const start = end - this.options.windowSeconds;
    const front = end + this.options.horizonSeconds;
    const nowMs = Math.max(now.getTime(), end * 1000);
    // A pause longer than memory holds: start over, like a restart.
    const init = !this.initialized || start >= this.front;
    let chunk: StepPlan['chunk'] = null;
    if (!init && withChunk && this.recount) {
      const from = Math.max(this.recount.cursor, start);
      if (from < this.recount.to) chunk = { from, to: Math.min(from + this.chunkSeconds, this.recount.to) };
    }
    return {
      init,
      start,
      end,
      fromMs: nowMs - this.options.windowSeconds * 1000,
      toMs: nowMs,
      addBefore: init ? front : this.front,
      frontFrom: init ? front : this.front,
      frontTo: front,
      watermark: this.watermark,
      gaps: init ? [] : this.gaps,
      chunk,
    };
  }

  /**
   * Applies what `plan` asked for and was read at `now`, in one snapshot;
   * `elapsedMs` is how far into the collection it was read (for the
   * recount's duration only: the window moves with `now`).
   */
  apply(plan: StepPlan, read: StepRead, now: Date, elapsedMs = 0): void {
    const nowMs = now.getTime();
    const atMs = nowMs + elapsedMs;
    if (plan.init) {
      this.reset(plan);
      this.watermark = read.maxId;
      this.gaps = read.initGaps.map((g) => ({ ...g, seenAt: nowMs })).slice(-this.options.maxGaps);
      this.startRecount(nowMs, atMs, true);
      this.chunkSeconds = this.firstChunkSeconds(read.rowEstimate);
      return;
    }
    this.advance(plan.start, plan.end, plan.frontTo);
    // A recount slower than the window is long: what it had left has left.
    if (this.recount && this.start >= this.recount.to) this.finishRecount(this.recount, atMs);
    this.add(read.front, this.front);
    for (const p of read.added) this.add(p, plan.addBefore);
    for (let c = 0; c < COLS; c++) this.inserted[c]! += read.inserted[c] ?? 0;
    if (read.maxId > this.watermark) this.watermark = read.maxId;
    this.gaps = this.nextGaps(read, nowMs);
    this.edges = read.edges;
    if (plan.chunk && read.chunk) this.replace(plan.chunk.from, plan.chunk.to, read.chunk, atMs);
  }

  /** Starts a recount when one is due at `now` (none under way, the interval since the last start passed); `elapsedMs` as in apply(). */
  startRecountIfDue(now: Date, elapsedMs = 0): void {
    const t = now.getTime();
    if (this.recount || !this.initialized) return;
    if (this.lastRecountStartMs !== null && t - this.lastRecountStartMs < this.options.recountIntervalMs) return;
    this.startRecount(t, t + elapsedMs, !this.complete);
  }

  /** Adapts the chunk width after a chunk took `tookMs` against a budget of `budgetMs`. */
  chunkTook(tookMs: number, budgetMs: number): void {
    const factor = Math.min(4, Math.max(0.25, budgetMs / 2 / Math.max(tookMs, 1)));
    this.chunkSeconds = Math.max(1, Math.min(this.options.maxChunkSeconds, Math.round(this.chunkSeconds * factor)));
  }

  /**
   * The first chunk's width: the whole range for a table of up to
   * FIRST_CHUNK_ROWS rows (or never analyzed), else the seconds that many rows
   * take if the table's rows were all in the window (an underestimate of the
   * width: history outside the window makes chunks cheaper).
   */
  private firstChunkSeconds(rowEstimate: number | undefined): number {
    const range = this.options.windowSeconds + this.options.horizonSeconds;
    let seconds = this.options.initialChunkSeconds;
    if (rowEstimate !== undefined) {
      seconds = rowEstimate <= FIRST_CHUNK_ROWS ? range : Math.max(60, Math.floor((range * FIRST_CHUNK_ROWS) / rowEstimate));
    }
    return Math.max(1, Math.min(seconds, this.options.maxChunkSeconds));
  }

  /** A chunk failed (most likely its budget ran out): the next one is a quarter as wide. */
  chunkFailed(): void {
    this.chunkSeconds = Math.max(1, Math.floor(this.chunkSeconds / 4));
  }

  private reset(plan: StepPlan): void {
    this.buckets.fill(0);
    this.windowSum = zeros();
    this.futureSum = zeros();
    this.start = plan.start;
    this.end = plan.end;
    this.front = plan.frontTo;
    this.initialized = true;
    this.complete = false;
    this.recount = null;
  }

  /** `nowMs` schedules the next recount (collection clock); `atMs` times this one. */
  private startRecount(nowMs: number, atMs: number, first: boolean): void {
    this.recount = { first, startedAtMs: atMs, from: this.start, to: this.front, cursor: this.start, drift: zeros() };
    this.lastRecountStartMs = nowMs;
  }

  private slot(second: number): number {
    return (((second % this.slots) + this.slots) % this.slots) * COLS;
  }

  /** Moves the window to [start, end) and memory to [start, front), dropping what left. */
  private advance(start: number, end: number, front: number): void {
    for (let s = this.start; s < Math.min(start, this.front); s++) {
      const i = this.slot(s);
      const sum = s < this.end ? this.windowSum : this.futureSum;
      for (let c = 0; c < COLS; c++) {
        sum[c]! -= this.buckets[i + c]!;
        this.buckets[i + c] = 0;
      }
    }
    // Seconds that were future and are now inside the window.
    for (let s = Math.max(this.end, start); s < Math.min(end, this.front); s++) {
      const i = this.slot(s);
      for (let c = 0; c < COLS; c++) {
        const n = this.buckets[i + c]!;
        this.futureSum[c]! -= n;
        this.windowSum[c]! += n;
      }
    }
    this.start = start;
    this.end = end;
    this.front = front;
  }

  /** Adds the rows of seconds in [start, before) (and below the front). */
  private add(p: PerSecond, before: number): void {
    p.seconds.forEach((second, j) => {
      if (second < this.start || second >= before || second >= this.front) return;
      const i = this.slot(second);
      const sum = second < this.end ? this.windowSum : this.futureSum;
      for (let c = 0; c < COLS; c++) {
        const n = p.columns[c]?.[j] ?? 0;
        this.buckets[i + c]! += n;
        sum[c]! += n;
      }
    });
  }

  /** Replaces the buckets of [from, to) with a chunk's counts; the difference is drift. */
  private replace(from: number, to: number, p: PerSecond, atMs: number): void {
    const r = this.recount;
    if (!r) return;
    const lo = Math.max(from, this.start);
    const hi = Math.min(to, this.front);
    // `p.seconds` ascend: walk them along the range.
    let j = 0;
    for (let s = lo; s < hi; s++) {
      while (j < p.seconds.length && p.seconds[j]! < s) j++;
      const here = j < p.seconds.length && p.seconds[j] === s;
      const i = this.slot(s);
      const sum = s < this.end ? this.windowSum : this.futureSum;
      for (let c = 0; c < COLS; c++) {
        const n = here ? (p.columns[c]?.[j] ?? 0) : 0;
        const d = n - this.buckets[i + c]!;
        if (d === 0) continue;
        this.buckets[i + c] = n;
        sum[c]! += d;
        if (s < this.end) r.drift[c]! += d;
      }
    }
    this.chunks += 1;
    r.cursor = Math.max(r.cursor, to);
    if (r.cursor >= r.to) this.finishRecount(r, atMs);
  }

  private finishRecount(r: Recount, atMs: number): void {
    if (!r.first) this.drift = r.drift;
    this.complete = true;
    this.lastRecountSeconds = Math.max(0, atMs - r.startedAtMs) / 1000;
    this.recount = null;
  }

  private nextGaps(read: StepRead, nowMs: number): IdGap[] {
    const found = [...read.found].sort((a, b) => (a.from < b.from ? -1 : a.from > b.from ? 1 : 0));
    const kept: IdGap[] = [];
    for (const g of this.gaps) {
      if (nowMs - g.seenAt > this.options.lateCommitMs) continue;
      // Split the range around the ids that committed.
      let from = g.from;
      for (const f of found) {
        if (f.to < from || f.from > g.to) continue;
        if (f.from > from) kept.push({ from, to: f.from - 1n, seenAt: g.seenAt });
        from = f.to + 1n;
      }
      if (from <= g.to) kept.push({ from, to: g.to, seenAt: g.seenAt });
    }
    for (const g of read.newGaps) kept.push({ ...g, seenAt: nowMs });
    return kept.slice(-this.options.maxGaps);
  }
}
