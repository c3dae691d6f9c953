/**
 * The metric catalog: the one place that names every metric the exporter
 * serves. The exporter registers its families from it, the monitoring bundle
 * (dashboards, recording and alerting rules) checks its queries against it,
 * and the README's metric table is written from it.
 */

/** The five areas the exporter reads, one source each, and the check of its own indexes. */
export type SourceName = 'core_nodes' | 'queues' | 'provisioning' | 'security' | 'backups' | 'indexes';

/** Every source, in the order they are listed in docs and on dashboards. */
export const SOURCE_NAMES: readonly SourceName[] = ['core_nodes', 'queues', 'provisioning', 'security', 'backups', 'indexes'];

/**
 * Label value used for any enum-like database value outside the known set:
 * NULL, a value the exporter does not know yet, or a misspelling. Keeps such
 * rows visible while bounding label cardinality.
 */
export const UNKNOWN_LABEL = 'UNKNOWN';

/**
 * Label value that collects everything beyond a free-text label's cardinality
 * cap (queue types, actions, resource types), so a runaway value set cannot
 * blow up the series count.
 */
export const OVERFLOW_LABEL = 'OTHER';

/** Known values of the platform's enum-like columns (platform-schema.md). */
export const KNOWN = {
  nodeStatus: ['ONLINE', 'DEGRADED', 'OFFLINE', 'MAINTENANCE'],
  nodeRole: ['WEB', 'MAIL', 'DNS', 'CLOUD', 'SECURITY', 'DATABASE', 'PANEL', 'VOIP'],
  jobStatus: ['PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'DELAYED', 'CANCELLED'],
  liveJobStatus: ['PENDING', 'RUNNING', 'DELAYED'],
  stuckJobStatus: ['PENDING', 'RUNNING'],
  terminalJobStatus: ['COMPLETED', 'FAILED', 'CANCELLED'],
  decision: ['ALLOW', 'BLOCK', 'CHALLENGE', 'RATE_LIMITED'],
  policyMode: ['ENFORCE', 'MONITOR', 'DISABLED'],
  severity: ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW', 'INFO'],
  findingStatus: ['OPEN', 'ACKNOWLEDGED', 'RESOLVED'],
  backupStatus: ['PENDING', 'RUNNING', 'COMPLETED', 'FAILED'],
  /** Backup resource types the overview always reports, even when never backed up. */
  criticalBackupTypes: ['DB_CORE', 'MPANEL_CORE', 'CLOUD_POD'],
  /** BullMQ job states, as BullMQ names them. */
  queueState: ['waiting', 'active', 'delayed', 'failed', 'completed', 'paused', 'prioritized', 'waiting-children'],
} as const;

/** Status label of an expected core node that has no row at all. */
export const MISSING_NODE_STATUS = 'MISSING';

export type MetricType = 'gauge' | 'counter' | 'histogram';

/** One metric family: everything a reader, a dashboard or a rule needs to know about it. */
export interface MetricDef {
  name: string;
  help: string;
  type: MetricType;
  labels: readonly string[];
  /** Base unit of the value, for docs and dashboard units. */
  unit: 'seconds' | 'ratio' | 'timestamp_seconds' | 'count' | 'boolean' | 'info' | 'bytes';
  /** Which source fills it; `exporter` for the exporter's own health. */
  source: SourceName | 'exporter';
  /** A histogram's bucket upper bounds, ascending, in the metric's unit (+Inf is implied). */
  buckets?: readonly number[];
}

function def<const N extends string>(
  name: N,
  type: MetricType,
  unit: MetricDef['unit'],
  source: MetricDef['source'],
  labels: readonly string[],
  help: string,
): MetricDef & { name: N } {
  return { name, type, unit, source, labels, help };
}

/**
 * A histogram family: cumulative bucket counts, sum and count per series,
 * so `histogram_quantile()` and `rate()` work and exporters aggregate.
 */
function histogram<const N extends string>(
  name: N,
  unit: MetricDef['unit'],
  source: MetricDef['source'],
  labels: readonly string[],
  buckets: readonly number[],
  help: string,
): MetricDef & { name: N } {
  return { name, type: 'histogram', unit, source, labels, help, buckets };
}

/** Buckets for provisioning work, seconds: one second to one hour. */
export const WORK_DURATION_BUCKETS = [1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600] as const;

/** Every metric family the exporter serves, keyed by name. */
export const METRICS = {
  // Core nodes
  coreNodeInfo: def('ops_core_node_info', 'gauge', 'info', 'core_nodes', ['node', 'role'], 'Core node known to the platform (1 per node); role is UNKNOWN when NULL or unrecognised.'),
  coreNodeStatus: def('ops_core_node_status', 'gauge', 'boolean', 'core_nodes', ['node', 'status'], 'Core node status as a state set (ONLINE, DEGRADED, OFFLINE, MAINTENANCE, MISSING for an expected node without a row, UNKNOWN): 1 for the current state.'),
  coreNodeExpected: def('ops_core_node_expected', 'gauge', 'boolean', 'core_nodes', ['node'], 'Whether the node is one of the configured expected core nodes (1) or only found in the database (0).'),
  coreNodeCpu: def('ops_core_node_cpu_ratio', 'gauge', 'ratio', 'core_nodes', ['node'], 'CPU utilisation of the core node (0..1) from its latest metrics sample; absent when unknown or invalid.'),
  coreNodeMemory: def('ops_core_node_memory_ratio', 'gauge', 'ratio', 'core_nodes', ['node'], 'RAM utilisation of the core node (0..1); absent when unknown or invalid.'),
  coreNodeDisk: def('ops_core_node_disk_ratio', 'gauge', 'ratio', 'core_nodes', ['node'], 'Disk utilisation of the core node (0..1); absent when unknown or invalid.'),
  coreNodeMetricsTimestamp: def('ops_core_node_metrics_timestamp_seconds', 'gauge', 'timestamp_seconds', 'core_nodes', ['node'], 'When the core node\'s metrics were last written (lastMetricsAt), Unix seconds; absent when never.'),
  coreNodes: def('ops_core_nodes', 'gauge', 'count', 'core_nodes', ['status'], 'CoreNode rows by status (UNKNOWN for NULL or unrecognised), every row counted: also nodes beyond the per-node bound and rows without a hostname, which have no per-node series.'),

  // BullMQ queues
  queueJobs: def('ops_queue_jobs', 'gauge', 'count', 'queues', ['prefix', 'queue', 'state'], 'BullMQ jobs in the queue by state.'),
  queueOldestWaiting: def('ops_queue_oldest_waiting_job_timestamp_seconds', 'gauge', 'timestamp_seconds', 'queues', ['prefix', 'queue'], 'Since when the longest-waiting job (waiting, prioritized or paused) has been ready to run (when it became due or re-entered the wait list), Unix seconds; absent when nothing waits.'),
  queueWorkers: def('ops_queue_workers', 'gauge', 'count', 'queues', ['prefix', 'queue'], 'BullMQ workers connected to the queue; absent when Redis does not allow CLIENT LIST.'),
  queuePaused: def('ops_queue_paused', 'gauge', 'boolean', 'queues', ['prefix', 'queue'], 'Whether the queue is paused (1) or not (0).'),
  queueJobsAll: def('ops_queue_jobs_all', 'gauge', 'count', 'queues', ['prefix', 'state'], 'BullMQ jobs by state summed over every queue read under the prefix, including queues left without per-queue series by the bound.'),
  queuesRead: def('ops_queues', 'gauge', 'count', 'queues', ['prefix'], 'BullMQ queues read under the prefix.'),
  queueJobsCompleted: def('ops_queue_jobs_completed_total', 'counter', 'count', 'queues', ['prefix', 'queue'], 'BullMQ jobs completed since the exporter started (or first read the queue), from the queue\'s events stream; use rate() on it.'),
  queueJobsFailed: def('ops_queue_jobs_failed_total', 'counter', 'count', 'queues', ['prefix', 'queue'], 'BullMQ jobs failed for good (no retry left) since the exporter started (or first read the queue), from the queue\'s events stream.'),
  queueJobsStalled: def('ops_queue_jobs_stalled_total', 'counter', 'count', 'queues', ['prefix', 'queue'], 'BullMQ jobs found stalled (lock lost while active, moved back to wait) since the exporter started, from the queue\'s events stream.'),
  queueEventsLost: def('ops_queue_events_lost_total', 'counter', 'count', 'queues', ['prefix', 'queue'], 'Reads of the queue\'s events stream that found events trimmed or deleted after the last one read: the flow counters missed an unknown number of events each time.'),
  queueJobsUnobserved: def('ops_queue_jobs_unobserved_total', 'counter', 'count', 'queues', ['prefix', 'queue'], 'Finished jobs counted but left out of the wait and processing histograms: beyond the per-collection bound, hash already removed, or unusable times.'),
  queueJobWait: histogram('ops_queue_job_wait_seconds', 'seconds', 'queues', ['prefix', 'queue'], WORK_DURATION_BUCKETS, 'How long finished BullMQ jobs started once waited: from when they became due (creation plus delay) to processedOn.'),
  queueJobProcessing: histogram('ops_queue_job_processing_seconds', 'seconds', 'queues', ['prefix', 'queue'], WORK_DURATION_BUCKETS, 'How long finished BullMQ jobs ran: processedOn to finishedOn of their last attempt.'),
  queueJobsCompletedAll: def('ops_queue_jobs_completed_all_total', 'counter', 'count', 'queues', ['prefix'], 'BullMQ jobs completed since the exporter started, over every queue read under the prefix, with or without per-queue series.'),
  queueJobsFailedAll: def('ops_queue_jobs_failed_all_total', 'counter', 'count', 'queues', ['prefix'], 'BullMQ jobs failed for good since the exporter started, over every queue read under the prefix.'),
  queueJobsStalledAll: def('ops_queue_jobs_stalled_all_total', 'counter', 'count', 'queues', ['prefix'], 'BullMQ jobs found stalled since the exporter started, over every queue read under the prefix.'),
  queueEventsLostAll: def('ops_queue_events_lost_all_total', 'counter', 'count', 'queues', ['prefix'], 'Reads that found events trimmed away, over every queue read under the prefix.'),
  queuesWithoutSeries: def('ops_queues_without_series', 'gauge', 'count', 'queues', ['prefix'], 'BullMQ queues read under the prefix but served without per-queue series (beyond the bound on healthy queues; counted as label_overflow too).'),

  // Provisioning
  provisioningJobs: def('ops_provisioning_jobs', 'gauge', 'count', 'provisioning', ['type', 'status'], 'Non-terminal provisioning jobs by queue type and status (PENDING, RUNNING, DELAYED; UNKNOWN for any other non-terminal value).'),
  provisioningStuck: def('ops_provisioning_jobs_stuck', 'gauge', 'count', 'provisioning', ['type', 'status'], 'Provisioning jobs PENDING (since createdAt) or RUNNING (since startedAt, else createdAt) for longer than the stuck threshold.'),
  provisioningStuckThreshold: def('ops_provisioning_stuck_threshold_seconds', 'gauge', 'seconds', 'provisioning', [], 'The configured age after which a PENDING or RUNNING provisioning job counts as stuck.'),
  provisioningOldestLive: def('ops_provisioning_oldest_live_job_timestamp_seconds', 'gauge', 'timestamp_seconds', 'provisioning', ['type', 'status'], 'Since when the oldest PENDING or RUNNING job of the type has been in that status, Unix seconds.'),
  provisioningJobsFinished: def('ops_provisioning_jobs_finished_total', 'counter', 'count', 'provisioning', ['type', 'status'], 'Provisioning jobs that reached a terminal status (COMPLETED, FAILED, CANCELLED) since the exporter started, by type and status, counted by finishedAt as it commits (late commits within OPS_PROVISIONING_LATE_COMMIT_SECONDS); use rate() on it.'),
  provisioningJobDuration: histogram('ops_provisioning_job_duration_seconds', 'seconds', 'provisioning', ['type', 'status'], WORK_DURATION_BUCKETS, 'Time from createdAt to finishedAt of the provisioning jobs counted in ops_provisioning_jobs_finished_total, observed when they finish.'),
  provisioningJobQueue: histogram('ops_provisioning_job_queue_seconds', 'seconds', 'provisioning', ['type'], WORK_DURATION_BUCKETS, 'Time from createdAt to startedAt of the finished provisioning jobs that started, observed when they finish.'),
  provisioningUnobserved: def('ops_provisioning_finished_jobs_unobserved', 'gauge', 'count', 'provisioning', [], 'Terminal provisioning jobs with a NULL finishedAt, which ops_provisioning_jobs_finished_total never counts (counted up to 1000).'),
  provisioningFailed24h: def('ops_provisioning_failed_jobs_24h', 'gauge', 'count', 'provisioning', ['action', 'resource_type'], 'FAILED provisioning jobs created in the last 24 hours, by action and resource type (the failure hotspots).'),

  // Security
  shieldEvents24h: def('ops_shield_events_24h', 'gauge', 'count', 'security', ['decision'], 'Migra Shield WAF decisions with a timestamp in the last 24 hours, by decision (UNKNOWN for NULL or unrecognised decisions).'),
  shieldEventsTotal: def('ops_shield_events_total', 'counter', 'count', 'security', ['decision'], 'Migra Shield WAF events inserted since the exporter started, by decision; use rate() on it.'),
  shieldPolicies: def('ops_shield_policies', 'gauge', 'count', 'security', ['mode'], 'Migra Shield policies by mode (UNKNOWN for NULL or unrecognised modes).'),
  guardianInstalled: def('ops_guardian_installed', 'gauge', 'boolean', 'security', [], 'Whether the Guardian module is installed (its GuardianFinding table exists).'),
  guardianOpenFindings: def('ops_guardian_open_findings', 'gauge', 'count', 'security', ['severity'], 'Open Guardian findings by severity; absent when Guardian is not installed.'),
  shieldWindowComplete: def('ops_shield_window_complete', 'gauge', 'boolean', 'security', [], 'Whether the Shield 24 h window is complete (1): 0 until the first recount after start has finished, while ops_shield_events_24h is absent.'),
  shieldRecountProgress: def('ops_shield_recount_progress_ratio', 'gauge', 'ratio', 'security', [], 'Share of the Shield window recount under way that is done (0..1); 1 when none runs.'),
  shieldRecountDuration: def('ops_shield_recount_duration_seconds', 'gauge', 'seconds', 'security', [], 'How long the last completed Shield window recount took, from its first chunk to its last (it spans collections); absent before the first.'),
  shieldRecountDrift: def('ops_shield_events_24h_recount_drift', 'gauge', 'count', 'security', ['decision'], 'Difference found by the last full recount between the incrementally maintained 24 h counts and the database (recount minus incremental).'),

  // Backups
  backupTrackingInstalled: def('ops_backup_tracking_installed', 'gauge', 'boolean', 'backups', [], 'Whether backup tracking is configured (the Backup table exists).'),
  backupLastSuccess: def('ops_backup_last_success_timestamp_seconds', 'gauge', 'timestamp_seconds', 'backups', ['resource_type'], 'When the last COMPLETED backup of the resource type finished, Unix seconds; absent when never.'),
  backupLastFailure: def('ops_backup_last_failure_timestamp_seconds', 'gauge', 'timestamp_seconds', 'backups', ['resource_type'], 'When the last FAILED backup of the resource type failed (completedAt, else startedAt), Unix seconds; absent when never.'),
  backupEverSucceeded: def('ops_backup_ever_succeeded', 'gauge', 'boolean', 'backups', ['resource_type'], 'Whether the resource type has ever had a COMPLETED backup (0 says "never" explicitly).'),

  // The exporter itself
  sourceUp: def('ops_source_up', 'gauge', 'boolean', 'exporter', ['source'], '1 when the source\'s last collection succeeded, 0 when it failed or never ran.'),
  sourceDuration: def('ops_source_collect_duration_seconds', 'gauge', 'seconds', 'exporter', ['source'], 'Wall time of the source\'s last collection.'),
  sourceLastSuccess: def('ops_source_last_success_timestamp_seconds', 'gauge', 'timestamp_seconds', 'exporter', ['source'], 'When the source last collected successfully, Unix seconds; absent when never.'),
  sourceErrors: def('ops_source_errors_total', 'counter', 'count', 'exporter', ['source'], 'Failed collections of the source.'),
  sourceCollections: def('ops_source_collections_total', 'counter', 'count', 'exporter', ['source'], 'Collections attempted for the source.'),
  sourceInvalidValues: def('ops_source_invalid_values', 'gauge', 'count', 'exporter', ['source', 'reason'], 'Values in the source\'s last collection that could not be used as they are (NULL, unrecognised, out of range, wrong type), by reason; such rows are still counted under UNKNOWN or reported as unknown.'),
  exporterIndexMissing: def('ops_exporter_index_missing', 'gauge', 'boolean', 'indexes', ['index'], '1 when an index the exporter\'s queries need is missing or invalid (pg_index.indisvalid) on the platform database, 0 when it is there and valid; checked at start-up and hourly; absent for the tables of modules not installed.'),
  buildInfo: def('ops_exporter_build_info', 'gauge', 'info', 'exporter', ['version', 'nodejs'], 'Version of the exporter (always 1).'),
} as const;

export type MetricKey = keyof typeof METRICS;

/** All metric definitions as a list. */
export const METRIC_LIST: readonly MetricDef[] = Object.values(METRICS);

/** Why a database or Redis value could not be used as it is (the `reason` label). */
export const INVALID_REASONS = [
  'null_value',
  'unknown_value',
  'wrong_type',
  'out_of_range',
  'bad_timestamp',
  'label_overflow',
  'not_a_queue',
] as const;

export type InvalidReason = (typeof INVALID_REASONS)[number];
