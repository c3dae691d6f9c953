/**
 * The JSON contract of `GET /api/ops/overview` (`OpsOverviewSummary`,
 * ../shared/overview-api.md), defined once: the TypeScript types are derived
 * from these TypeBox schemas, and the route serialises its responses through
 * them. A test compares them field by field with overview-api.md.
 *
 * Additions to the contract are optional fields only. Two deliberate
 * departures, each because the contract's type cannot say "unknown" without
 * inventing a value:
 * - a core node's CPU, RAM and disk percentages are `null` when unknown;
 * - a section whose source has never collected successfully is left out (it
 *   cannot be known), and `sources[]` says why. Once a source has succeeded its
 *   section is always there, marked stale in `sources[]` while it is down;
 * - `security.shieldEventsLast24h` is left out until the 24 h window is
 *   complete (the first recount after a start), rather than a partial count.
 */
import { Type, type Static } from 'typebox';

const closed = { additionalProperties: false } as const;
const str = () => Type.String();
const int = () => Type.Integer({ minimum: 0 });
const optional = Type.Optional;

/** One core node. */
export const CoreNodeOverviewSchema = Type.Object(
  {
    id: str(),
    /** The hostname: "SRV1-WEB", "MAIL-CORE", ... */
    label: str(),
    role: str(),
    status: str(),
    /** 0..100; null when unknown (missing, invalid or out of range in the database). */
    cpuPercent: Type.Union([Type.Number(), Type.Null()]),
    ramPercent: Type.Union([Type.Number(), Type.Null()]),
    diskPercent: Type.Union([Type.Number(), Type.Null()]),
    /** ISO 8601. */
    lastMetricsAt: optional(str()),
    /** Addition: whether the node is one of the configured expected core nodes. */
    expected: optional(Type.Boolean()),
  },
  closed,
);

/** One BullMQ queue. */
export const QueueOverviewSchema = Type.Object(
  {
    name: str(),
    /** Jobs waiting to be processed: waiting, prioritized and paused. */
    waiting: int(),
    active: int(),
    failed: int(),
    delayed: int(),
    /** Age of the oldest waiting job, seconds; absent when none waits. */
    oldestWaitingSeconds: optional(Type.Number({ minimum: 0 })),
    /** Addition: the BullMQ key prefix. */
    prefix: optional(str()),
    /** Addition: workers connected; absent when Redis does not tell. */
    workers: optional(int()),
    /** Addition: whether the queue is paused. */
    paused: optional(Type.Boolean()),
    /** Addition: jobs completed in the last hour (the minutes of the collections that read them); absent when the events stream is unreadable. */
    completedLastHour: optional(int()),
    /** Addition: jobs failed for good in the last hour, like completedLastHour. */
    failedLastHour: optional(int()),
    /** Addition: the last hour's 95th percentile of the jobs' wait, seconds, from bucket counts; absent below 20 observations. */
    p95WaitSeconds: optional(Type.Number({ minimum: 0 })),
  },
  closed,
);

/** One of the most recent FAILED provisioning jobs. */
export const RecentFailureSchema = Type.Object(
  {
    id: str(),
    action: str(),
    resourceType: str(),
    resourceId: optional(str()),
    tenantId: optional(str()),
    /** ISO 8601. */
    createdAt: str(),
    /** Redacted and truncated. */
    errorMessage: optional(str()),
  },
  closed,
);

/** Provisioning. */
export const ProvisioningOverviewSchema = Type.Object(
  {
    /** FAILED jobs created in the last 24 h. */
    failedLast24h: int(),
    /**
     * Jobs stuck now: PENDING (since createdAt) or RUNNING (since startedAt,
     * else createdAt) for longer than the stuck threshold, whenever they
     * started. Not a 24 h figure: the contract fixed the name.
     */
    stuckLast24h: int(),
    /** The 10 most recent FAILED jobs, newest first. */
    recentFailures: Type.Array(RecentFailureSchema),
  },
  closed,
);

/** Security posture. */
export const SecurityOverviewSchema = Type.Object(
  {
    /** Absent until the exporter's 24 h window is complete (its first recount after a start): never a partial count. */
    shieldEventsLast24h: optional(Type.Object(
      {
        total: int(),
        byDecision: Type.Object({ ALLOW: int(), BLOCK: int(), CHALLENGE: int(), RATE_LIMITED: int() }, closed),
        /** Addition: events whose decision is NULL or not one of the four known (included in total). */
        otherDecisions: optional(int()),
      },
      closed,
    )),
    shieldPolicies: Type.Object({ enforceCount: int(), monitorCount: int(), disabledCount: int() }, closed),
    /** Absent when Guardian is not installed; zeros when installed and nothing is open. */
    guardianFindings: optional(Type.Object({ criticalOpen: int(), highOpen: int(), mediumOpen: int() }, closed)),
  },
  closed,
);

/** Last successful backups of the critical systems. */
export const BackupOverviewSchema = Type.Object(
  {
    /** ISO 8601 of the last COMPLETED backup of DB-CORE; absent when never. */
    dbCoreLastSuccess: optional(str()),
    mpanelCoreLastSuccess: optional(str()),
    cloudPodsLastSuccess: optional(str()),
    notes: optional(str()),
  },
  closed,
);

/** Addition: one source's health, so a reader knows which sections are stale or missing. */
export const SourceOverviewSchema = Type.Object(
  {
    name: str(),
    up: Type.Boolean(),
    /** True when the section shown for this source is from before its last failed collection. */
    stale: Type.Boolean(),
    /** ISO 8601 of the last successful collection; absent when never. */
    lastSuccessAt: optional(str()),
    /** While down: the class of the last failure (timeout, database, redis, permission, internal). */
    errorClass: optional(str()),
    /** While down: ISO 8601 of the first failed collection of this outage. */
    downSince: optional(str()),
  },
  closed,
);

/** The whole overview. */
export const OpsOverviewSummarySchema = Type.Object(
  {
    /** ISO 8601: when the data was collected (the oldest collection it includes), not when it was served. */
    generatedAt: str(),
    coreNodes: optional(Type.Array(CoreNodeOverviewSchema)),
    /** One entry per BullMQ queue. */
    queues: optional(Type.Array(QueueOverviewSchema)),
    provisioning: optional(ProvisioningOverviewSchema),
    security: optional(SecurityOverviewSchema),
    backups: optional(BackupOverviewSchema),
    sources: optional(Type.Array(SourceOverviewSchema)),
  },
  closed,
);

export type CoreNodeOverview = Static<typeof CoreNodeOverviewSchema>;
export type QueueOverview = Static<typeof QueueOverviewSchema>;
export type RecentFailureOverview = Static<typeof RecentFailureSchema>;
export type ProvisioningOverview = Static<typeof ProvisioningOverviewSchema>;
export type SecurityOverview = Static<typeof SecurityOverviewSchema>;
export type BackupOverview = Static<typeof BackupOverviewSchema>;
export type SourceOverview = Static<typeof SourceOverviewSchema>;
export type OpsOverviewSummary = Static<typeof OpsOverviewSummarySchema>;

/** The sections a source can own, with their types. */
export interface OverviewSections {
  coreNodes: CoreNodeOverview[];
  queues: QueueOverview[];
  provisioning: ProvisioningOverview;
  security: SecurityOverview;
  backups: BackupOverview;
}

export type SectionName = keyof OverviewSections;
