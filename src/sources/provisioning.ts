/**
 * Provisioning (ProvisioningJob): live jobs per queue type and status, jobs
 * stuck past the threshold, the failure hotspots of the last 24 hours, the
 * most recent failures, and the jobs finished since start with their times
 * (kept incrementally by provisioning-flow.ts, read in the same snapshot). Every query reads only live or recent rows through a
 * partial index (prisma/migrations/*_exporter_indexes), never the history.
 *
 * Hostile rows are bounded in SQL, before anything reaches the process:
 * strings are cut (`MAX_TEXT_LENGTH`), label combinations are cut to the top
 * `labelValueLimit` with the rest summed into OTHER (totals stay exact), and
 * times outside 0001-01-01 .. now + clock skew (infinity, BC, year 10000, the
 * future) never leave the database: they are counted as `bad_timestamp`.
 */
import { raw, sql, utcInstant, type Sql } from '../db/sql.js';
import { KNOWN, OVERFLOW_LABEL, UNKNOWN_LABEL, WORK_DURATION_BUCKETS } from '../catalog.js';
import type { Database } from '../db/client.js';
import { isNoneOf, isOneOf, readEnumLabels, type EnumLabels } from '../db/enum-labels.js';
import { countInvalid, knownLabel, SampleSet, toSeconds, type InvalidCounts, type Sample } from '../metrics/sample.js';
import { redactText } from '../redact.js';
import type { ProvisioningOverview } from '../contract.js';
import { CLOCK_SKEW_MS } from './valid-time.js';
import { ProvisioningFlow, readFlow, type FlowData, type FlowRead } from './provisioning-flow.js';
import type { CollectContext, Source, SourceData } from './types.js';

/** Options of the provisioning source. */
export interface ProvisioningOptions {
  /** Age in seconds after which a PENDING or RUNNING job is stuck. */
  stuckThresholdSeconds: number;
  /**
   * Distinct job types (live jobs) and distinct (action, resource type) pairs
   * (failures) kept as labels; the rest are summed into OTHER.
   */
  labelValueLimit: number;
  /** Characters of errorMessage kept (after redaction). */
  errorMessageMaxLength: number;
  /** Seconds a passed `finishedAt` second is re-checked for late commits (provisioning-flow.ts); 60 when not given. */
  lateCommitSeconds?: number;
}

/**
 * Characters of any other string the source returns (ids, actions, types):
 * longer ones are cut in SQL and end in `…`. The same as the runner's label
 * cap, and in the same form for labels (190 characters, `…`, 8 hex digits of
 * the value's SHA-256), so the runner never has to cut them again.
 */
export const MAX_TEXT_LENGTH = 200;

/** Live jobs of one type and status. */
export interface LiveJobsRow {
  /** The type, cut to MAX_TEXT_LENGTH; null for the types summed into OTHER. */
  type: string | null;
  status: string;
  jobs: number;
  stuck: number;
  /** Since when the oldest PENDING (createdAt) or RUNNING (startedAt, else createdAt) job has waited. */
  oldest: Date | null;
  /** PENDING/RUNNING jobs whose time is out of range or in the future (not stuck, not oldest). */
  badTimestamps: number;
  /** Distinct types summed into this row (0 unless type is null). */
  mergedTypes: number;
  /** Whether the type was longer than MAX_TEXT_LENGTH and cut. */
  typeCut: boolean;
}

/** FAILED jobs of the last 24 h for one action and resource type. */
export interface FailureHotspotRow {
  /** The action, cut to MAX_TEXT_LENGTH; null for the pairs summed into OTHER. */
  action: string | null;
  resourceType: string | null;
  failed: number;
  /** Distinct pairs summed into this row (0 for a pair of its own). */
  mergedPairs: number;
  /** Whether action / resourceType were longer than MAX_TEXT_LENGTH and cut. */
  actionCut: boolean;
  resourceTypeCut: boolean;
}

/** One recent failure, as the API shows it. */
export interface RecentFailure {
  id: string;
  action: string;
  resourceType: string;
  resourceId?: string;
  tenantId?: string;
  createdAt: Date;
  errorMessage?: string;
}

/** What a provisioning collection returns. */
export interface ProvisioningData extends SourceData {
  live: Array<LiveJobsRow & { typeLabel: string; statusLabel: string }>;
  hotspots: Array<FailureHotspotRow & { actionLabel: string; resourceTypeLabel: string }>;
  recentFailures: RecentFailure[];
  failedLast24h: number;
  stuck: number;
  stuckThresholdSeconds: number;
  /** Type labels kept at 0 when their jobs are gone: this collection's, then earlier ones, at most labelValueLimit + 1. */
  knownTypes: string[];
  /** Jobs finished since the exporter started, and their times (provisioning-flow.ts); absent in a mapping without a database. */
  flow?: FlowData;
}

/** Raw rows of one collection. */
export interface ProvisioningRows {
  live: LiveJobsRow[];
  hotspots: FailureHotspotRow[];
  recent: Array<Omit<RecentFailure, 'resourceId' | 'tenantId' | 'errorMessage'> & {
    resourceId: string | null;
    tenantId: string | null;
    errorMessage: string | null;
  }>;
  /** FAILED jobs whose createdAt is out of range or in the future (in no count, in no list). */
  badFailedTimestamps: number;
}

const DAY_MS = 86_400_000;

/**
 * Maps the rows of one collection (pure). `knownTypes` is rewritten with the
 * type labels to keep at 0 next time.
 */
export function mapProvisioning(rows: ProvisioningRows, options: ProvisioningOptions, knownTypes: Set<string>): ProvisioningData {
  const invalid: InvalidCounts = {};
  // Cut labels count once per distinct value, as the runner counts the ones it cuts.
  const cut = new Set<string>();
  const label = (value: string | null, wasCut: boolean, name: string): string => {
    if (value === null) return OVERFLOW_LABEL;
    if (wasCut) cut.add(`${name}\u0000${value}`);
    // An empty label is no label to Prometheus.
    if (value === '') {
      countInvalid(invalid, 'unknown_value');
      return UNKNOWN_LABEL;
    }
    return value;
  };
  const live = rows.live.map((r) => {
    if (r.badTimestamps > 0) countInvalid(invalid, 'bad_timestamp', r.badTimestamps);
    if (r.mergedTypes > 0) countInvalid(invalid, 'label_overflow', r.mergedTypes);
    return { ...r, typeLabel: label(r.type, r.typeCut, 'type'), statusLabel: knownLabel(r.status, KNOWN.liveJobStatus, invalid) };
  });
  if (rows.badFailedTimestamps > 0) countInvalid(invalid, 'bad_timestamp', rows.badFailedTimestamps);
  // This collection's types first (the SQL bound them), then earlier ones while there is room.
  const keep = new Set(live.map((r) => r.typeLabel));
  for (const t of knownTypes) if (keep.size <= options.labelValueLimit) keep.add(t);
  knownTypes.clear();
  for (const t of keep) knownTypes.add(t);
  const hotspots = rows.hotspots.map((r) => {
    if (r.mergedPairs > 0) countInvalid(invalid, 'label_overflow', r.mergedPairs);
    return { ...r, actionLabel: label(r.action, r.actionCut, 'action'), resourceTypeLabel: label(r.resourceType, r.resourceTypeCut, 'resource_type') };
  });
  if (cut.size > 0) countInvalid(invalid, 'label_overflow', cut.size);
  const recentFailures = rows.recent.map((r): RecentFailure => {
    const f: RecentFailure = { id: r.id, action: r.action, resourceType: r.resourceType, createdAt: r.createdAt };
    if (r.resourceId !== null) f.resourceId = r.resourceId;
    if (r.tenantId !== null) f.tenantId = r.tenantId;
    if (r.errorMessage !== null) f.errorMessage = redactText(r.errorMessage, options.errorMessageMaxLength);
    return f;
  });
  return {
    live,
    hotspots,
    recentFailures,
    failedLast24h: rows.hotspots.reduce((sum, r) => sum + r.failed, 0),
    stuck: rows.live.reduce((sum, r) => sum + r.stuck, 0),
    stuckThresholdSeconds: options.stuckThresholdSeconds,
    knownTypes: [...knownTypes].sort(),
    invalid,
  };
}

/** Metric samples of provisioning. */
export function provisioningSamples(data: ProvisioningData): Sample[] {
  const s = new SampleSet();
  s.add('provisioningStuckThreshold', {}, data.stuckThresholdSeconds);
  for (const type of data.knownTypes) {
    s.zeros('provisioningJobs', 'status', KNOWN.liveJobStatus, { type });
    s.zeros('provisioningStuck', 'status', KNOWN.stuckJobStatus, { type });
  }
  for (const r of data.live) {
    s.add('provisioningJobs', { type: r.typeLabel, status: r.statusLabel }, r.jobs);
    if ((KNOWN.stuckJobStatus as readonly string[]).includes(r.statusLabel)) {
      s.add('provisioningStuck', { type: r.typeLabel, status: r.statusLabel }, r.stuck);
    }
  }
  // The oldest per label pair; merged labels (OTHER) keep the oldest of their rows.
  const oldest = new Map<string, { type: string; status: string; at: Date }>();
  for (const r of data.live) {
    if (r.oldest === null || r.statusLabel === UNKNOWN_LABEL || r.statusLabel === 'DELAYED') continue;
    const key = `${r.typeLabel}\u0000${r.statusLabel}`;
    const cur = oldest.get(key);
    if (!cur || r.oldest < cur.at) oldest.set(key, { type: r.typeLabel, status: r.statusLabel, at: r.oldest });
  }
  for (const o of oldest.values()) s.add('provisioningOldestLive', { type: o.type, status: o.status }, toSeconds(o.at));
  for (const h of data.hotspots) {
    s.add('provisioningFailed24h', { action: h.actionLabel, resource_type: h.resourceTypeLabel }, h.failed);
  }
  if (data.flow) flowSamples(data.flow, s);
  return s.list();
}

const EMPTY_HISTOGRAM = { buckets: WORK_DURATION_BUCKETS.map(() => 0), sum: 0 };

/** Counters and histograms of finished jobs: every type met since start has a series (0 when none) per terminal status. */
function flowSamples(flow: FlowData, s: SampleSet): void {
  s.add('provisioningUnobserved', {}, flow.nullFinished);
  for (const type of flow.types) {
    for (const status of flow.statuses) {
      s.add('provisioningJobsFinished', { type, status }, 0);
      s.addHistogram('provisioningJobDuration', { type, status }, 0, EMPTY_HISTOGRAM);
    }
    s.addHistogram('provisioningJobQueue', { type }, 0, EMPTY_HISTOGRAM);
  }
  for (const f of flow.finished) s.add('provisioningJobsFinished', { type: f.type, status: f.status }, f.jobs);
  for (const d of flow.duration) s.addHistogram('provisioningJobDuration', { type: d.type, status: d.status }, d.count, d.histogram);
  for (const q of flow.queue) s.addHistogram('provisioningJobQueue', { type: q.type }, q.count, q.histogram);
}

/** The provisioning section of the JSON overview (pure). */
export function provisioningOverview(data: ProvisioningData): ProvisioningOverview {
  return {
    failedLast24h: data.failedLast24h,
    // Every job stuck now, whenever it started: the contract fixed the name.
    stuckLast24h: data.stuck,
    recentFailures: data.recentFailures.map((f) => ({ ...f, createdAt: f.createdAt.toISOString() })),
  };
}


/**
 * A column as text, outside WHERE clauses only: any of the free-text columns
 * may be an enum on a platform (resourceType often is), and string functions
 * and sort order must be the text's on every schema.
 */
function text(column: string): string {
  return `${column}::text`;
}

/** A string for the API: at most MAX_TEXT_LENGTH characters, a cut one ending in `…`. */
function apiText(column: string): Sql {
  const c = text(column);
  return raw(`CASE WHEN length(${c}) > ${MAX_TEXT_LENGTH} THEN left(${c}, ${MAX_TEXT_LENGTH - 1}) || '…' ELSE ${c} END`);
}

/** A string for a label: cut as the runner cuts labels (prefix, `…`, 8 hex digits of its SHA-256), so distinct values stay distinct. */
function labelText(column: string): Sql {
  const c = text(column);
  return raw(
    `CASE WHEN length(${c}) > ${MAX_TEXT_LENGTH} ` +
      `THEN left(${c}, ${MAX_TEXT_LENGTH - 10}) || '…' || left(encode(sha256(convert_to(${c}, 'UTF8')), 'hex'), 8) ` +
      `ELSE ${c} END`,
  );
}

/** Whether the column's text is longer than MAX_TEXT_LENGTH (and so cut). */
function isCut(column: string): Sql {
  return raw(`length(${text(column)}) > ${MAX_TEXT_LENGTH}`);
}

/**
 * The smallest time the source accepts. Below it are BC dates and -infinity;
 * above the collection's now + clock skew are the future, year 10000 and
 * infinity. The literal takes the column's type (timestamp or timestamptz).
 */
const MIN_TIME = raw(`'0001-01-01 00:00:00'`);

/** The SQL of one collection, given the enum labels read in its snapshot. */
export function provisioningQueries(labels: EnumLabels, now: Date, options: ProvisioningOptions) {
  const col = 'ProvisioningJob.status' as const;
  const live = isNoneOf(labels, col, KNOWN.terminalJobStatus);
  const failed = isOneOf(labels, col, ['FAILED']);
  const waiting = isOneOf(labels, col, KNOWN.stuckJobStatus);
  const running = isOneOf(labels, col, ['RUNNING']);
  const latest = utcInstant(now.getTime() + CLOCK_SKEW_MS);
  const stuckBefore = utcInstant(now.getTime() - options.stuckThresholdSeconds * 1000);
  const since = utcInstant(now.getTime() - DAY_MS);
  // A validated integer (config), written as a literal so GROUP BY and SELECT share one expression.
  const limit = raw(String(Math.trunc(options.labelValueLimit)));
  const waitingSince = sql`(CASE WHEN ${running} THEN COALESCE("startedAt", "createdAt") ELSE "createdAt" END)`;
  const validSince = sql`(${waitingSince} >= ${MIN_TIME} AND ${waitingSince} <= ${latest})`;
  return {
    // Index "ProvisioningJob_live_idx": only non-terminal rows are read. Types
    // are ranked with stuck ones first, so a stuck type keeps its own label.
    live: sql`
      WITH g AS (
        SELECT "type"::text AS "type", "status"::text AS "status",
               count(*) AS jobs,
               count(*) FILTER (WHERE ${waiting} AND ${validSince} AND ${waitingSince} < ${stuckBefore}) AS stuck,
               count(*) FILTER (WHERE ${waiting} AND NOT COALESCE(${validSince}, FALSE)) AS bad,
               min(CASE WHEN ${waiting} AND ${validSince} THEN ${waitingSince} END) AS oldest
          FROM "ProvisioningJob"
         WHERE ${live}
         GROUP BY 1, 2),
      t AS (
        SELECT "type", row_number() OVER (ORDER BY sum(stuck) DESC, sum(jobs) DESC, "type") AS rank
          FROM g GROUP BY "type")
      SELECT CASE WHEN t.rank <= ${limit} THEN ${labelText('g."type"')} END AS "type",
             g."status",
             sum(g.jobs)::int AS jobs,
             sum(g.stuck)::int AS stuck,
             min(g.oldest) AS oldest,
             sum(g.bad)::int AS "badTimestamps",
             (count(*) FILTER (WHERE t.rank > ${limit}))::int AS "mergedTypes",
             bool_or(t.rank <= ${limit} AND ${isCut('g."type"')}) AS "typeCut"
        FROM g JOIN t ON t."type" IS NOT DISTINCT FROM g."type"
       GROUP BY t.rank <= ${limit}, 1, 2
       ORDER BY min(t.rank), 2`,
    // Index "ProvisioningJob_failed_createdAt_idx": only the last day's
    // failures. The top pairs by count keep their labels; the rest is one
    // OTHER/OTHER row, so the sum stays the true total.
    hotspots: sql`
      WITH p AS (
        SELECT "action"::text AS "action", "resourceType"::text AS "resourceType", count(*) AS failed
          FROM "ProvisioningJob"
         WHERE ${failed}
           AND "createdAt" >= ${since}
           AND "createdAt" <= ${latest}
         GROUP BY 1, 2),
      r AS (SELECT p.*, row_number() OVER (ORDER BY failed DESC, "action", "resourceType") AS rank FROM p)
      SELECT action, "resourceType", failed, "mergedPairs", "actionCut", "resourceTypeCut" FROM (
        SELECT rank, ${labelText('"action"')} AS action, ${labelText('"resourceType"')} AS "resourceType", failed::int AS failed, 0 AS "mergedPairs",
               ${isCut('"action"')} AS "actionCut", ${isCut('"resourceType"')} AS "resourceTypeCut"
          FROM r WHERE rank <= ${limit}
        UNION ALL
        SELECT ${limit} + 1, NULL, NULL, sum(failed)::int, count(*)::int, FALSE, FALSE
          FROM r WHERE rank > ${limit} HAVING count(*) > 0) x
       ORDER BY rank`,
    // Same index: the out-of-range and future failures, counted only.
    badFailed: sql`
      SELECT count(*)::int AS n
        FROM "ProvisioningJob"
       WHERE ${failed}
         AND ("createdAt" > ${latest} OR "createdAt" < ${MIN_TIME})`,
    // Same index, read backwards from now: ten rows.
    recent: sql`
      SELECT ${apiText('"id"')} AS "id", ${apiText('"action"')} AS "action", ${apiText('"resourceType"')} AS "resourceType",
             ${apiText('"resourceId"')} AS "resourceId", ${apiText('"tenantId"')} AS "tenantId", "createdAt",
             left("errorMessage", ${options.errorMessageMaxLength * 4 + 1}::int) AS "errorMessage"
        FROM "ProvisioningJob"
       WHERE ${failed}
         AND "createdAt" >= ${MIN_TIME}
         AND "createdAt" <= ${latest}
       ORDER BY "createdAt" DESC, "id" DESC
       LIMIT 10`,
  };
}

/** Reads the rows of one collection, and the flow's step, in one snapshot. */
async function readProvisioning(
  db: Database,
  ctx: CollectContext,
  options: ProvisioningOptions,
  flow: ProvisioningFlow,
): Promise<{ rows: ProvisioningRows; step: { read: FlowRead; init: boolean; statuses: string[] } }> {
  return db.read(ctx.timeoutMs, async (tx) => {
    const labels = await readEnumLabels(tx, ['ProvisioningJob.status']);
    const q = provisioningQueries(labels, ctx.now, options);
    const live = await tx.query<LiveJobsRow[]>(q.live);
    const hotspots = await tx.query<FailureHotspotRow[]>(q.hotspots);
    const [bad] = await tx.query<Array<{ n: number }>>(q.badFailed);
    const recent = await tx.query<ProvisioningRows['recent']>(q.recent);
    const step = await readFlow(tx, labels, flow, ctx.now);
    return { rows: { live, hotspots, recent, badFailedTimestamps: bad?.n ?? 0 }, step };
  });
}

/** The provisioning source. */
export function provisioningSource(db: Database, options: ProvisioningOptions): Source<ProvisioningData, 'provisioning'> {
  const knownTypes = new Set<string>();
  const flow = new ProvisioningFlow({ lateCommitSeconds: options.lateCommitSeconds ?? 60, labelValueLimit: options.labelValueLimit });
  return {
    name: 'provisioning',
    backend: 'database',
    async collect(ctx: CollectContext): Promise<ProvisioningData> {
      const { rows, step } = await readProvisioning(db, ctx, options, flow);
      const data = mapProvisioning(rows, options, knownTypes);
      // Applied only once the snapshot was read whole: a failed collection leaves the flow as it was.
      flow.apply(step.read, step.init, data.invalid);
      return { ...data, flow: flow.data(step.statuses) };
    },
    samples: provisioningSamples,
    section: { name: 'provisioning', overview: provisioningOverview },
  };
}
