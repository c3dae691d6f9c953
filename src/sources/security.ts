/**
 * Security posture: Migra Shield WAF decisions (the last 24 h, kept
 * incrementally by shield-window.ts, and a since-start counter), Shield
 * policies per mode, and open Guardian findings per severity. Guardian is an
 * optional module: no table means "not installed", which is reported as such,
 * never as zero findings.
 *
 * Each collection reads one snapshot for the window's step, the policies and
 * the findings, all cheap; then, while a recount of the window is under way,
 * as many recount chunks as fit in a share of the timeout, each in its own
 * transaction with its own budget. A chunk that fails or runs out of budget
 * only makes the next one narrower: the recount can never take the source down.
 */
import { performance } from 'node:perf_hooks';
import { KNOWN, UNKNOWN_LABEL } from '../catalog.js';
import type { Database, DbTx } from '../db/client.js';
import { isNoneOf, isOneOf, readEnumLabels, type EnumColumn, type EnumLabels } from '../db/enum-labels.js';
import { empty, join, raw, sql, utcInstant, type Sql } from '../db/sql.js';
import { countInvalid as countInvalidOnce, SampleSet, type InvalidCounts, type Sample } from '../metrics/sample.js';
import {
  DECISION_COLUMNS,
  emptyStepRead,
  labelCounts,
  ShieldWindow,
  type ColumnCounts,
  type DecisionCounts,
  noSeconds,
  type PerSecond,
  type StepPlan,
  type StepRead,
  zeros,
} from './shield-window.js';
import type { SecurityOverview } from '../contract.js';
import type { CollectContext, Source, SourceData } from './types.js';

/** Options of the security source. */
export interface SecurityOptions {
  /** Seconds between the starts of two recounts of the 24 h window. */
  recountIntervalSeconds: number;
  /** Seconds an id gap is watched for a late commit. */
  lateCommitSeconds: number;
  /** Widest recount chunk, seconds of window (default: the whole window; tests force it small). */
  maxChunkSeconds?: number;
  /** Recount chunks at most per collection (default: as many as the budget allows; tests force 1). */
  chunksPerCollection?: number;
}

/** What a security collection returns. */
export interface SecurityData extends SourceData {
  /**
   * Whether `events24h` is the whole window: false until the first recount
   * completes (after a start or a pause longer than the window), and then
   * `events24h` is empty rather than a partial count.
   */
  complete: boolean;
  /** Events with a timestamp in [now − 24 h, now], by decision label; empty while incomplete. */
  events24h: Record<string, number>;
  /** Events inserted since the exporter started, by decision label. */
  eventsTotal: Record<string, number>;
  /** Recount minus incremental over the last completed recount, by decision label. */
  recountDrift: Record<string, number>;
  /** Share of the recount under way that is done (0..1); 1 when none runs. */
  recountProgress: number;
  /** Collection-clock seconds the last completed recount took; null before the first. */
  recountSeconds: number | null;
  /** Recount chunks applied since start. */
  recountChunks: number;
  policies: Record<string, number>;
  /** Open findings by severity label; null when Guardian is not installed. */
  guardianOpen: Record<string, number> | null;
}

/** Window length: 24 hours. */
export const SHIELD_WINDOW_SECONDS = 86_400;
/** Future seconds kept per second in memory; rows dated later are read when they come this close. */
const HORIZON_SECONDS = 600;
/** Ids below the highest at start-up watched for late commits (later ones are left to the recount). */
const START_GAP_LOOKBACK = 10_000;
/** New rows read per step at most: a burst is caught up over several steps. */
const BATCH_ROWS = 100_000;
/** Bad timestamps counted per kind at most (the count is a signal, not an inventory). */
const BAD_TIMESTAMP_CAP = 1_000;
/** Recount chunks must end before the collection has used this share of its timeout (the rest is margin)... */
const CHUNK_DEADLINE_SHARE = 0.75;
/** ...each has at most this share of it as its budget (its statement_timeout too)... */
const CHUNK_BUDGET_SHARE = 0.25;
/** ...and none starts with less than this share left. */
const CHUNK_MIN_SHARE = 0.05;

/** Resolves `undefined` after `ms` (a chunk that has not answered by then is abandoned). */
function expiry(ms: number): { promise: Promise<undefined>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

const ENUM_COLUMNS: readonly EnumColumn[] = ['ShieldEvent.decision', 'ShieldPolicy.mode', 'GuardianFinding.status', 'GuardianFinding.severity'];

function at(second: number): Sql {
  return utcInstant(second * 1000);
}

/**
 * `count(*) FILTER (...)` per known value, then NULL, then any other value of
 * `column`, as c0..cN: one bounded row whatever the values are.
 */
function countColumns(labels: EnumLabels, column: EnumColumn, known: readonly string[]): Sql {
  const name = raw(`"${column.slice(column.indexOf('.') + 1)}"`);
  const parts = [
    ...known.map((k) => isOneOf(labels, column, [k])),
    sql`${name} IS NULL`,
    isNoneOf(labels, column, known),
  ].map((where, i) => sql`count(*) FILTER (WHERE ${where})::int AS ${raw(`c${i}`)}`);
  return join(parts, ', ');
}

/** Counts `n` values as invalid for `reason`; nothing when none (the reasons served are the ones that occurred). */
function countInvalid(invalid: InvalidCounts, reason: Parameters<typeof countInvalidOnce>[1], n: number): void {
  if (n > 0) countInvalidOnce(invalid, reason, n);
}

type ColumnRow = Record<`c${number}`, number>;

function columns(row: ColumnRow | undefined, n: number): ColumnCounts {
  return Array.from({ length: n }, (_, i) => Number(row?.[`c${i}`] ?? 0));
}

/** Counts by known label plus UNKNOWN, counting NULL and unknown values as invalid. */
function knownCounts(cols: ColumnCounts, known: readonly string[], invalid: InvalidCounts): Record<string, number> {
  const out: Record<string, number> = Object.fromEntries(known.map((k, i) => [k, cols[i] ?? 0]));
  const nulls = cols[known.length] ?? 0;
  const others = cols[known.length + 1] ?? 0;
  out[UNKNOWN_LABEL] = nulls + others;
  countInvalid(invalid, 'null_value', nulls);
  countInvalid(invalid, 'unknown_value', others);
  return out;
}

/** Per-second counts of a query, with the totals over every group (also those outside memory's seconds). */
interface Packed {
  perSecond: PerSecond;
  totals: ColumnCounts;
  /** Rows in all. */
  n: number;
  maxId: bigint | null;
}

type PackedRow = { secs: Array<number | null> | null; ns: number[] | null; maxId: bigint | null } & Record<`c${number}`, number[] | null>;

/**
 * Runs `grouped` (rows of sec, c0..cN, n, "maxId"; sec NULL for rows outside
 * memory's seconds) and returns its groups as one row of arrays: a chunk of a
 * day transfers seven arrays, not 86,400 objects.
 */
async function readPacked(tx: DbTx, grouped: Sql): Promise<Packed> {
  const cols = DECISION_COLUMNS.map((_, i) => raw(`array_agg(c${i} ORDER BY sec) AS c${i}`));
  const [row] = await tx.query<PackedRow[]>`
    SELECT array_agg(sec ORDER BY sec) AS secs, ${join(cols, ', ')}, array_agg(n ORDER BY sec) AS ns, max("maxId") AS "maxId"
      FROM (${grouped}) g`;
  const out: Packed = { perSecond: noSeconds(), totals: zeros(), n: 0, maxId: row?.maxId == null ? null : BigInt(row.maxId) };
  (row?.secs ?? []).forEach((sec, j) => {
    out.n += Number(row?.ns?.[j] ?? 0);
    const keep = sec !== null;
    if (keep) out.perSecond.seconds.push(Number(sec));
    DECISION_COLUMNS.forEach((_, c) => {
      const v = Number(row?.[`c${c}`]?.[j] ?? 0);
      out.totals[c]! += v;
      if (keep) out.perSecond.columns[c]!.push(v);
    });
  });
  return out;
}

/** Rows of ShieldEvent in [from, to) per second (index range on "timestamp"), optionally only ids <= maxId. */
async function readSeconds(tx: DbTx, labels: EnumLabels, from: number, to: number, maxId?: bigint): Promise<PerSecond> {
  const ids = maxId === undefined ? empty : sql`AND "id" <= ${maxId}::bigint`;
  const packed = await readPacked(
    tx,
    sql`
      SELECT floor(extract(epoch FROM "timestamp"))::float8 AS sec, ${countColumns(labels, 'ShieldEvent.decision', KNOWN.decision)},
             count(*)::int AS n, NULL::bigint AS "maxId"
        FROM "ShieldEvent"
       WHERE "timestamp" >= ${at(from)} AND "timestamp" < ${at(to)} ${ids}
       GROUP BY 1`,
  );
  return packed.perSecond;
}

/** One step of the window (see shield-window.ts), and the plan's recount chunk, in the transaction's snapshot. */
async function readStep(tx: DbTx, labels: EnumLabels, plan: StepPlan): Promise<StepRead> {
  const read = emptyStepRead(plan);
  if (plan.init) {
    const [{ maxId }] = (await tx.query<Array<{ maxId: bigint | null }>>`SELECT max("id") AS "maxId" FROM "ShieldEvent"`) as [
      { maxId: bigint | null },
    ];
    read.maxId = maxId === null ? 0n : BigInt(maxId);
    const [estimate] = await tx.query<Array<{ rows: number | null }>>`
      SELECT reltuples::float8 AS rows FROM pg_class WHERE oid = to_regclass('public."ShieldEvent"')`;
    if (estimate?.rows != null) read.rowEstimate = Number(estimate.rows);
    // Recent ids below the maximum that are not visible yet may still commit.
    const gaps = await tx.query<Array<{ from: bigint; to: bigint }>>`
      SELECT (id + 1) AS "from", (next_id - 1) AS "to"
        FROM (SELECT "id" AS id, lead("id") OVER (ORDER BY "id") AS next_id
                FROM "ShieldEvent" WHERE "id" > ${read.maxId - BigInt(START_GAP_LOOKBACK)}::bigint) t
       WHERE next_id > id + 1`;
    read.initGaps = gaps.map((g) => ({ from: BigInt(g.from), to: BigInt(g.to) }));
    return read;
  }
  const counts = countColumns(labels, 'ShieldEvent.decision', KNOWN.decision);
  // Only seconds memory keeps take a bucket; the guard also keeps ±infinity
  // and out-of-range years away from extract().
  const second = sql`CASE WHEN "timestamp" >= ${at(plan.start)} AND "timestamp" < ${at(plan.addBefore)}
                                 THEN floor(extract(epoch FROM "timestamp"))::float8 END`;
  const watermark = plan.watermark;
  // Primary key range: only rows inserted since the last step.
  const batch = await readPacked(
    tx,
    sql`
      SELECT ${second} AS sec, ${counts}, count(*)::int AS n, max("id") AS "maxId"
        FROM (SELECT "id", "timestamp", "decision" FROM "ShieldEvent"
               WHERE "id" > ${watermark}::bigint ORDER BY "id" LIMIT ${BATCH_ROWS}) b
       GROUP BY 1`,
  );
  const n = batch.n;
  if (batch.maxId !== null && batch.maxId > read.maxId) read.maxId = batch.maxId;
  read.inserted = batch.totals;
  read.truncated = n >= BATCH_ROWS;
  read.added = [batch.perSecond];
  // Ids skipped between the old and the new watermark: in-flight inserts
  // (or rollbacks). Only looked for when the count says some are missing.
  if (read.maxId > watermark && BigInt(n) < read.maxId - watermark) {
    const gaps = await tx.query<Array<{ from: bigint; to: bigint }>>`
      SELECT (id + 1) AS "from", (next_id - 1) AS "to"
        FROM (SELECT id, lead(id) OVER (ORDER BY id) AS next_id
                FROM (SELECT ${watermark}::bigint AS id
                      UNION ALL
                      SELECT "id" FROM "ShieldEvent" WHERE "id" > ${watermark}::bigint AND "id" <= ${read.maxId}::bigint) ids) t
       WHERE next_id > id + 1`;
    read.newGaps = gaps.map((g) => ({ from: BigInt(g.from), to: BigInt(g.to) }));
  }
  // Late commits inside gaps seen before.
  if (plan.gaps.length > 0) {
    const froms = plan.gaps.map((g) => g.from.toString());
    const tos = plan.gaps.map((g) => g.to.toString());
    const late = await readPacked(
      tx,
      sql`
        SELECT ${second} AS sec, ${counts}, count(*)::int AS n, max("id") AS "maxId"
          FROM (SELECT e."id", e."timestamp", e."decision"
                  FROM unnest(${froms}::bigint[], ${tos}::bigint[]) AS g(f, t)
                  JOIN "ShieldEvent" e ON e."id" BETWEEN g.f AND g.t) l
         GROUP BY 1`,
    );
    if (late.n > 0) {
      late.totals.forEach((v, i) => (read.inserted[i]! += v));
      read.added.push(late.perSecond);
      // The ids found, as ranges (ids in a row form one range).
      const found = await tx.query<Array<{ from: bigint; to: bigint }>>`
        SELECT min(id) AS "from", max(id) AS "to"
          FROM (SELECT e."id" AS id, e."id" - row_number() OVER (ORDER BY e."id") AS grp
                  FROM unnest(${froms}::bigint[], ${tos}::bigint[]) AS g(f, t)
                  JOIN "ShieldEvent" e ON e."id" BETWEEN g.f AND g.t) x
         GROUP BY grp`;
      read.found = found.map((f) => ({ from: BigInt(f.from), to: BigInt(f.to) }));
    }
  }
  // The future edge: rows that came within the horizon (ids beyond this
  // step's batch are left to the next batches).
  if (plan.frontTo > plan.frontFrom) read.front = await readSeconds(tx, labels, plan.frontFrom, plan.frontTo, read.maxId);
  // The window's partial seconds at both ends, in this snapshot (one statement: one plan).
  const edges = await tx.query<Array<ColumnRow & { side: number }>>`
    SELECT 0 AS side, ${counts} FROM "ShieldEvent"
     WHERE "timestamp" >= ${utcInstant(plan.fromMs)}
       AND "timestamp" < ${at(plan.start + 1)} AND "id" <= ${read.maxId}::bigint
    UNION ALL
    SELECT 1 AS side, ${counts} FROM "ShieldEvent"
     WHERE "timestamp" >= ${at(plan.end)}
       AND "timestamp" <= ${utcInstant(plan.toMs)} AND "id" <= ${read.maxId}::bigint`;
  read.edges = {
    left: columns(edges.find((e) => e.side === 0), DECISION_COLUMNS.length),
    right: columns(edges.find((e) => e.side === 1), DECISION_COLUMNS.length),
  };
  // A recount chunk, exact at this snapshot: only when every visible new row was read.
  if (plan.chunk && !read.truncated) {
    const began = performance.now();
    read.chunk = await readSeconds(tx, labels, plan.chunk.from, plan.chunk.to);
    read.chunkMs = performance.now() - began;
  }
  return read;
}

/** ShieldEvent rows whose timestamp is NULL, ±infinity, BC or year 10000 on (capped per kind; index ends of "timestamp"). */
async function readBadTimestamps(tx: DbTx): Promise<number> {
  const [row] = await tx.query<Array<{ n: number }>>`
    SELECT ((SELECT count(*) FROM (SELECT 1 FROM "ShieldEvent" WHERE "timestamp" >= '10000-01-01 00:00:00'::timestamp LIMIT ${BAD_TIMESTAMP_CAP}) a)
          + (SELECT count(*) FROM (SELECT 1 FROM "ShieldEvent" WHERE "timestamp" < '0001-01-01 00:00:00'::timestamp LIMIT ${BAD_TIMESTAMP_CAP}) b)
          + (SELECT count(*) FROM (SELECT 1 FROM "ShieldEvent" WHERE "timestamp" IS NULL LIMIT ${BAD_TIMESTAMP_CAP}) c))::int AS n`;
  return row?.n ?? 0;
}

function countsRecord(counts: DecisionCounts): Record<string, number> {
  return Object.fromEntries(counts);
}

/** Metric samples of the security area. */
export function securitySamples(data: SecurityData): Sample[] {
  const s = new SampleSet();
  if (data.complete) for (const [decision, n] of Object.entries(data.events24h)) s.add('shieldEvents24h', { decision }, n);
  s.add('shieldWindowComplete', {}, data.complete ? 1 : 0);
  s.add('shieldRecountProgress', {}, data.recountProgress);
  if (data.recountSeconds !== null) s.add('shieldRecountDuration', {}, data.recountSeconds);
  for (const [decision, n] of Object.entries(data.eventsTotal)) s.add('shieldEventsTotal', { decision }, n);
  for (const [decision, n] of Object.entries(data.recountDrift)) s.add('shieldRecountDrift', { decision }, n);
  s.zeros('shieldPolicies', 'mode', [...KNOWN.policyMode, UNKNOWN_LABEL]);
  for (const [mode, n] of Object.entries(data.policies)) s.add('shieldPolicies', { mode }, n);
  s.add('guardianInstalled', {}, data.guardianOpen === null ? 0 : 1);
  if (data.guardianOpen !== null) {
    s.zeros('guardianOpenFindings', 'severity', [...KNOWN.severity, UNKNOWN_LABEL]);
    for (const [severity, n] of Object.entries(data.guardianOpen)) s.add('guardianOpenFindings', { severity }, n);
  }
  return s.list();
}

/** The security section of the JSON overview (pure). */
export function securityOverview(data: SecurityData): SecurityOverview {
  const o: SecurityOverview = {
    shieldPolicies: {
      enforceCount: data.policies.ENFORCE ?? 0,
      monitorCount: data.policies.MONITOR ?? 0,
      disabledCount: data.policies.DISABLED ?? 0,
    },
  };
  // Until the first recount completes, any total would be a partial count
  // passed off as whole: left out (ops_shield_window_complete says why).
  if (data.complete) {
    const d = data.events24h;
    const byDecision = { ALLOW: d.ALLOW ?? 0, BLOCK: d.BLOCK ?? 0, CHALLENGE: d.CHALLENGE ?? 0, RATE_LIMITED: d.RATE_LIMITED ?? 0 };
    const total = Object.values(d).reduce((a, b) => a + b, 0);
    o.shieldEventsLast24h = { total, byDecision, otherDecisions: total - Object.values(byDecision).reduce((a, b) => a + b, 0) };
  }
  if (data.guardianOpen) {
    o.guardianFindings = {
      criticalOpen: data.guardianOpen.CRITICAL ?? 0,
      highOpen: data.guardianOpen.HIGH ?? 0,
      mediumOpen: data.guardianOpen.MEDIUM ?? 0,
    };
  }
  return o;
}

/** The security source. Keeps the 24 h window between collections. */
export function securitySource(db: Database, options: SecurityOptions): Source<SecurityData, 'security'> & { window: ShieldWindow } {
  const win = new ShieldWindow({
    windowSeconds: SHIELD_WINDOW_SECONDS,
    horizonSeconds: HORIZON_SECONDS,
    lateCommitMs: options.lateCommitSeconds * 1000,
    maxGaps: 10_000,
    recountIntervalMs: options.recountIntervalSeconds * 1000,
    initialChunkSeconds: 3_600,
    maxChunkSeconds: options.maxChunkSeconds ?? SHIELD_WINDOW_SECONDS + HORIZON_SECONDS,
  });
  const chunksPerCollection = options.chunksPerCollection ?? Number.POSITIVE_INFINITY;
  return {
    name: 'security',
    backend: 'database',
    window: win,
    async collect(ctx: CollectContext): Promise<SecurityData> {
      const now = ctx.now;
      const began = performance.now();
      const invalid: InvalidCounts = {};
      const plan = win.plan(now, false);
      const read = await db.read(ctx.timeoutMs, async (tx) => {
        const labels = await readEnumLabels(tx, ENUM_COLUMNS);
        const step = await readStep(tx, labels, plan);
        const badTimestamps = await readBadTimestamps(tx);
        const policies = await tx.query<ColumnRow[]>`
          SELECT ${countColumns(labels, 'ShieldPolicy.mode', KNOWN.policyMode)} FROM "ShieldPolicy"`;
        const [{ installed, readable }] = (await tx.query<Array<{ installed: boolean; readable: boolean }>>`
          SELECT to_regclass('public."GuardianFinding"') IS NOT NULL AS installed,
                 to_regclass('public."GuardianFinding"') IS NOT NULL
                   AND has_table_privilege('public."GuardianFinding"', 'SELECT') AS readable`) as [{ installed: boolean; readable: boolean }];
        if (installed && !readable) {
          throw new Error('GuardianFinding exists but this role may not read it: grant SELECT (sql/readonly-role.sql)');
        }
        const findings = installed
          ? await tx.query<ColumnRow[]>`
              SELECT ${countColumns(labels, 'GuardianFinding.severity', KNOWN.severity)}
                FROM "GuardianFinding" WHERE ${isOneOf(labels, 'GuardianFinding.status', ['OPEN'])}`
          : null;
        return { step, badTimestamps, policies, findings };
      });
      // State changes only once the whole snapshot was read.
      win.apply(plan, read.step, now, performance.now() - began);
      win.startRecountIfDue(now, performance.now() - began);
      // Recount chunks, each a step plus a chunk in its own transaction,
      // each within what is left of the collection's share for them.
      const deadline = began + ctx.timeoutMs * CHUNK_DEADLINE_SHARE;
      for (let done = 0; done < chunksPerCollection && win.recountRunning && !ctx.signal.aborted; done++) {
        const left = deadline - performance.now();
        if (left < ctx.timeoutMs * CHUNK_MIN_SHARE) break;
        const chunkPlan = win.plan(now, true);
        if (!chunkPlan.chunk) break;
        const budgetMs = Math.min(ctx.timeoutMs * CHUNK_BUDGET_SHARE, left);
        const chunk = db.read(budgetMs, async (tx) => readStep(tx, await readEnumLabels(tx, ENUM_COLUMNS), chunkPlan));
        // PostgreSQL ends an abandoned chunk at its statement_timeout; its result is never applied.
        chunk.catch(() => undefined);
        const late = expiry(left);
        try {
          const step = await Promise.race([chunk, late.promise]);
          if (step === undefined) {
            win.chunkFailed();
            break;
          }
          win.apply(chunkPlan, step, now, performance.now() - began);
          // The chunk's own statement sets the next width: the step's fixed cost does not shrink chunks.
          if (step.chunkMs !== undefined) win.chunkTook(step.chunkMs, budgetMs);
        } catch {
          // Over budget (or the database went away): the source stays up
          // with what the main snapshot read; the next chunk is narrower.
          win.chunkFailed();
          break;
        } finally {
          late.cancel();
        }
      }
      countInvalid(invalid, 'bad_timestamp', read.badTimestamps);
      const windowCols = win.windowColumns();
      if (win.complete) {
        countInvalid(invalid, 'null_value', windowCols[DECISION_COLUMNS.length - 2] ?? 0);
        countInvalid(invalid, 'unknown_value', windowCols[DECISION_COLUMNS.length - 1] ?? 0);
      }
      return {
        complete: win.complete,
        events24h: win.complete ? countsRecord(labelCounts(windowCols)) : {},
        eventsTotal: countsRecord(labelCounts(win.inserted)),
        recountDrift: countsRecord(labelCounts(win.drift)),
        recountProgress: win.recountProgress,
        recountSeconds: win.lastRecountSeconds,
        recountChunks: win.chunks,
        policies: knownCounts(columns(read.policies[0], KNOWN.policyMode.length + 2), KNOWN.policyMode, invalid),
        guardianOpen: read.findings === null ? null : knownCounts(columns(read.findings[0], KNOWN.severity.length + 2), KNOWN.severity, invalid),
        invalid,
      };
    },
    samples: securitySamples,
    section: { name: 'security', overview: securityOverview },
  };
}
