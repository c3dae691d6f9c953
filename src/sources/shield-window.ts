/**
 * The incremental 24-hour count of Migra Shield decisions.
 *
 * ShieldEvent grows by hundreds of rows a second; counting the last 24 h from
 * scratch on every collection reads ten million index entries. Instead the
 * window is kept in memory and each collection reads only what changed:
 *
 *   C = visible rows with timestamp >= S, by decision (S = window start)
 *
 * From one collection (start S0, id watermark M) to the next (start S1):
 *   1. add the rows inserted since (id > M, plus ids in earlier gaps that have
 *      committed late) whose timestamp >= S0;
 *   2. subtract the rows with S0 <= timestamp < S1 (they left the window);
 *   3. the window's count is C minus the rows dated after now.
 * All three read one REPEATABLE READ snapshot, so the result equals a
 * brute-force count at that snapshot. Ids are allocated at insert but become
 * visible at commit, so a lower id can appear after a higher one: ids skipped
 * by a collection are remembered as gaps and re-read for `lateCommitMs`.
 * A full recount at start-up and on a slow schedule heals what this cannot
 * see (rows deleted inside the window, commits later than `lateCommitMs`) and
 * reports the difference it found as drift.
 *
 * This file holds the state machine and its arithmetic; security.ts reads.
 */
import { KNOWN, UNKNOWN_LABEL } from '../catalog.js';
import { countInvalid as countInvalidValue, knownLabel, type InvalidCounts } from '../metrics/sample.js';

/** Counts per decision label (known decisions and UNKNOWN). */
export type DecisionCounts = Map<string, number>;

/** A range of ids [from, to] not seen yet, watched for a late commit. */
export interface IdGap {
  from: bigint;
  to: bigint;
  /** When the gap was first seen, epoch ms. */
  seenAt: number;
}

/** Rows grouped by raw decision. */
export interface DecisionCountRow {
  decision: string | null;
  count: number;
}

/** What one incremental step read. */
export interface WindowDelta {
  /** New rows (id > watermark, or found in a gap) with timestamp >= the previous start, by decision. */
  enteredRows: DecisionCountRow[];
  /** All new rows whatever their timestamp, by decision (for the _total counter). */
  insertedRows: DecisionCountRow[];
  /** Rows with previousStart <= timestamp < newStart, by decision. */
  leftRows: DecisionCountRow[];
  /** Rows dated after now, by decision. */
  futureRows: DecisionCountRow[];
  /** Highest id seen; unchanged when nothing new arrived. */
  maxId: bigint;
  /** Ranges of ids skipped by this read (not visible yet), to watch. */
  newGaps: Array<{ from: bigint; to: bigint }>;
  /** Ids found inside watched gaps. */
  foundGapIds: bigint[];
}

/** A full recount's result. */
export interface WindowRecount {
  /** Rows with timestamp >= start, by decision. */
  sinceStart: DecisionCountRow[];
  futureRows: DecisionCountRow[];
  maxId: bigint;
  /** Ranges of ids below maxId not visible at the recount (recent in-flight inserts). */
  gaps: Array<{ from: bigint; to: bigint }>;
}

/** Options of the window. */
export interface ShieldWindowOptions {
  /** Window length, ms (24 h). */
  windowMs: number;
  /** How long a gap is watched for a late commit, ms. */
  lateCommitMs: number;
  /** Gap ranges watched at most; the oldest are given up beyond it. */
  maxGaps: number;
}

/** Adds (or subtracts) rows into counts by decision label. */
function addInto(target: DecisionCounts, rows: readonly DecisionCountRow[], sign: 1 | -1): void {
  for (const r of rows) {
    const label = knownLabel(r.decision, KNOWN.decision, {});
    target.set(label, (target.get(label) ?? 0) + sign * r.count);
  }
}

/** Zeroed counts for every decision label. */
export function emptyDecisionCounts(): DecisionCounts {
  return new Map([...KNOWN.decision, UNKNOWN_LABEL].map((d) => [d, 0]));
}

/** Incrementally maintained 24 h window and since-start totals. */
export class ShieldWindow {
  /** Rows with timestamp >= start (future ones included). */
  private sinceStart: DecisionCounts = emptyDecisionCounts();
  private future: DecisionCounts = emptyDecisionCounts();
  /** Events inserted since the exporter started, by decision. */
  readonly totals: DecisionCounts = emptyDecisionCounts();
  private start: Date | null = null;
  private watermark = 0n;
  private gaps: IdGap[] = [];
  /** Recount minus incremental at the last recount, by decision. */
  drift: DecisionCounts = emptyDecisionCounts();
  lastRecountAt: Date | null = null;

  constructor(private readonly options: ShieldWindowOptions) {}

  get initialized(): boolean {
    return this.start !== null;
  }

  /** The window start the next step reads from (the previous collection's). */
  get previousStart(): Date | null {
    return this.start;
  }

  get maxId(): bigint {
    return this.watermark;
  }

  /** Gaps still watched. */
  get watchedGaps(): readonly IdGap[] {
    return this.gaps;
  }

  /** Window start for a collection at `now`. */
  startFor(now: Date): Date {
    return new Date(now.getTime() - this.options.windowMs);
  }

  /** Applies one incremental step read at `now` (see the file comment). */
  applyDelta(delta: WindowDelta, now: Date, invalid: InvalidCounts): void {
    if (this.start === null) throw new Error('ShieldWindow: recount before the first delta');
    addInto(this.sinceStart, delta.enteredRows, 1);
    addInto(this.sinceStart, delta.leftRows, -1);
    addInto(this.totals, delta.insertedRows, 1);
    this.future = emptyDecisionCounts();
    addInto(this.future, delta.futureRows, 1);
    this.start = this.startFor(now);
    this.watermark = delta.maxId > this.watermark ? delta.maxId : this.watermark;
    this.gaps = this.nextGaps(delta, now.getTime());
    this.countInvalid(delta.enteredRows, invalid);
  }

  /**
   * Replaces the window with a full recount read at `now`; the difference to
   * the incremental state (advanced to the same snapshot first, when there is
   * one) is kept as drift.
   */
  applyRecount(recount: WindowRecount, now: Date, invalid: InvalidCounts): void {
    const fresh = emptyDecisionCounts();
    addInto(fresh, recount.sinceStart, 1);
    if (this.start !== null) {
      const drift = emptyDecisionCounts();
      for (const [d, n] of fresh) drift.set(d, n - (this.sinceStart.get(d) ?? 0));
      this.drift = drift;
    }
    this.sinceStart = fresh;
    this.future = emptyDecisionCounts();
    addInto(this.future, recount.futureRows, 1);
    this.start = this.startFor(now);
    if (recount.maxId > this.watermark) this.watermark = recount.maxId;
    const t = now.getTime();
    this.gaps = recount.gaps.map((g) => ({ ...g, seenAt: t })).slice(-this.options.maxGaps);
    this.lastRecountAt = now;
    this.countInvalid(recount.sinceStart, invalid);
  }

  /** The last-24 h counts by decision label (window start inclusive, now inclusive). */
  windowCounts(): DecisionCounts {
    const out = emptyDecisionCounts();
    for (const [d, n] of this.sinceStart) out.set(d, n - (this.future.get(d) ?? 0));
    return out;
  }

  /** Counts NULL and unknown decisions among `rows` (weighted by their counts). */
  private countInvalid(rows: readonly DecisionCountRow[], invalid: InvalidCounts): void {
    for (const r of rows) {
      if (r.decision === null) countInvalidValue(invalid, 'null_value', r.count);
      else if (!(KNOWN.decision as readonly string[]).includes(r.decision)) countInvalidValue(invalid, 'unknown_value', r.count);
    }
  }

  private nextGaps(delta: WindowDelta, nowMs: number): IdGap[] {
    const found = [...delta.foundGapIds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const kept: IdGap[] = [];
    for (const g of this.gaps) {
      if (nowMs - g.seenAt > this.options.lateCommitMs) continue;
      // Split the range around the ids that committed.
      let from = g.from;
      for (const id of found) {
        if (id < from || id > g.to) continue;
        if (id > from) kept.push({ from, to: id - 1n, seenAt: g.seenAt });
        from = id + 1n;
      }
      if (from <= g.to) kept.push({ from, to: g.to, seenAt: g.seenAt });
    }
    for (const g of delta.newGaps) kept.push({ ...g, seenAt: nowMs });
    return kept.slice(-this.options.maxGaps);
  }
}
