/**
 * Provisioning (ProvisioningJob): live jobs per queue type and status, jobs
 * stuck past the threshold, the failure hotspots of the last 24 hours and the
 * most recent failures. Every query reads only live or recent rows through a
 * partial index (prisma/migrations/*_exporter_indexes), never the history.
 */
import { KNOWN, UNKNOWN_LABEL } from '../catalog.js';
import type { Database } from '../db/client.js';
import { knownLabel, LabelLimiter, SampleSet, toSeconds, type InvalidCounts, type Sample } from '../metrics/sample.js';
import { redactText } from '../redact.js';
import type { ProvisioningOverview } from '../contract.js';
import type { CollectContext, Source, SourceData } from './types.js';

/** Options of the provisioning source. */
export interface ProvisioningOptions {
  /** Age in seconds after which a PENDING or RUNNING job is stuck. */
  stuckThresholdSeconds: number;
  /** Distinct types, actions and resource types kept as labels before OTHER. */
  labelValueLimit: number;
  /** Characters of errorMessage kept (after redaction). */
  errorMessageMaxLength: number;
}

/** Live jobs of one type and status. */
export interface LiveJobsRow {
  type: string;
  status: string;
  jobs: number;
  stuck: number;
  /** Since when the oldest PENDING (createdAt) or RUNNING (startedAt, else createdAt) job has waited. */
  oldest: Date | null;
}

/** FAILED jobs of the last 24 h for one action and resource type. */
export interface FailureHotspotRow {
  action: string;
  resourceType: string;
  failed: number;
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
  /** Every type label seen since start, so their series stay present at 0. */
  knownTypes: string[];
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
}

const DAY_MS = 86_400_000;

/** Maps the rows of one collection (pure). `knownTypes` grows with the types seen. */
export function mapProvisioning(rows: ProvisioningRows, options: ProvisioningOptions, knownTypes: Set<string>): ProvisioningData {
  const invalid: InvalidCounts = {};
  const types = new LabelLimiter(options.labelValueLimit, invalid);
  for (const t of knownTypes) types.label(t);
  const live = rows.live.map((r) => ({
    ...r,
    typeLabel: types.label(r.type),
    statusLabel: knownLabel(r.status, KNOWN.liveJobStatus, invalid),
  }));
  for (const r of live) knownTypes.add(r.typeLabel);
  const actions = new LabelLimiter(options.labelValueLimit, invalid);
  const resourceTypes = new LabelLimiter(options.labelValueLimit, invalid);
  const hotspots = rows.hotspots.map((r) => ({
    ...r,
    actionLabel: actions.label(r.action),
    resourceTypeLabel: resourceTypes.label(r.resourceType),
  }));
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
  return s.list();
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

/** SQL timestamp parameter: an instant as UTC wall time, as Prisma stores timestamp(3) columns. */
function utc(d: Date): string {
  return d.toISOString();
}

/** Reads the rows of one collection in one snapshot. */
async function readProvisioning(db: Database, ctx: CollectContext, options: ProvisioningOptions): Promise<ProvisioningRows> {
  const now = utc(ctx.now);
  const stuckBefore = utc(new Date(ctx.now.getTime() - options.stuckThresholdSeconds * 1000));
  const since = utc(new Date(ctx.now.getTime() - DAY_MS));
  const maxMessage = options.errorMessageMaxLength * 4;
  return db.read(ctx.timeoutMs, async (tx) => {
    // Index "ProvisioningJob_live_idx": only non-terminal rows are read.
    const live = await tx.$queryRaw<Array<{ type: string; status: string; jobs: number; stuck: number; oldest: Date | null }>>`
      SELECT "type", "status",
             count(*)::int AS jobs,
             (count(*) FILTER (WHERE ("status" = 'PENDING' AND "createdAt" < (${stuckBefore}::timestamptz AT TIME ZONE 'UTC'))
                                 OR ("status" = 'RUNNING' AND COALESCE("startedAt", "createdAt") < (${stuckBefore}::timestamptz AT TIME ZONE 'UTC'))))::int AS stuck,
             min(CASE "status" WHEN 'PENDING' THEN "createdAt" WHEN 'RUNNING' THEN COALESCE("startedAt", "createdAt") END) AS oldest
        FROM "ProvisioningJob"
       WHERE "status" NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')
       GROUP BY "type", "status"
       ORDER BY jobs DESC, "type", "status"`;
    // Index "ProvisioningJob_failed_createdAt_idx": only the last day's failures.
    const hotspots = await tx.$queryRaw<FailureHotspotRow[]>`
      SELECT "action", "resourceType", count(*)::int AS failed
        FROM "ProvisioningJob"
       WHERE "status" = 'FAILED'
         AND "createdAt" >= (${since}::timestamptz AT TIME ZONE 'UTC')
         AND "createdAt" <= (${now}::timestamptz AT TIME ZONE 'UTC')
       GROUP BY "action", "resourceType"
       ORDER BY failed DESC, "action", "resourceType"`;
    // Same index, read backwards: ten rows.
    const recent = await tx.$queryRaw<ProvisioningRows['recent']>`
      SELECT "id", "action", "resourceType", "resourceId", "tenantId", "createdAt",
             left("errorMessage", ${maxMessage}::int) AS "errorMessage"
        FROM "ProvisioningJob"
       WHERE "status" = 'FAILED'
       ORDER BY "createdAt" DESC, "id" DESC
       LIMIT 10`;
    return { live, hotspots, recent };
  });
}

/** The provisioning source. */
export function provisioningSource(db: Database, options: ProvisioningOptions): Source<ProvisioningData, 'provisioning'> {
  const knownTypes = new Set<string>();
  return {
    name: 'provisioning',
    backend: 'database',
    async collect(ctx: CollectContext): Promise<ProvisioningData> {
      const rows = await readProvisioning(db, ctx, options);
      return mapProvisioning(rows, options, knownTypes);
    },
    samples: provisioningSamples,
    section: { name: 'provisioning', overview: provisioningOverview },
  };
}
