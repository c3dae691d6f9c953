/**
 * The one place to see what the exporter reads: every source, built from the
 * configuration with the connections it needs.
 */
import type { Redis } from 'ioredis';
import type { Config } from '../config.js';
import type { Database } from '../db/client.js';
import { backupsSource } from './backups.js';
import { indexesSource, type IndexesLogger } from './indexes.js';
import { coreNodesSource } from './core-nodes.js';
import { provisioningSource } from './provisioning.js';
import { queuesSource } from './queues.js';
import { securitySource } from './security.js';
import type { AnySource, ScheduledSource } from './types.js';

/** Nodes reported one by one at most (the rest are counted in ops_core_nodes; see core-nodes.ts). */
const MAX_CORE_NODES = 500;
/** Priority levels inspected per queue for its oldest prioritized job. */
const MAX_PRIORITY_LEVELS = 64;
/**
 * SCAN calls one collection may spend on queue discovery (also bounded by half
 * its timeout): a pass over two million keys, normally one collection.
 */
const SCAN_CALLS_PER_COLLECTION = 2000;

/** The five sources and the index check, in display order, with their schedules. */
export function createSources(config: Config, db: Database, redis: Redis, logger?: IndexesLogger): ScheduledSource[] {
  const sources: AnySource[] = [
    coreNodesSource(db, { expectedNodes: config.expectedNodes, maxNodes: MAX_CORE_NODES }),
    queuesSource(redis, {
      prefixes: config.queuePrefixes,
      discoveryIntervalSeconds: config.queueDiscoveryIntervalSeconds,
      maxPriorityLevels: MAX_PRIORITY_LEVELS,
      scanCallsPerCollection: SCAN_CALLS_PER_COLLECTION,
      maxObservedPerCollection: config.queueFlowMaxObserved,
    }),
    provisioningSource(db, {
      stuckThresholdSeconds: config.stuckThresholdSeconds,
      labelValueLimit: config.labelValueLimit,
      errorMessageMaxLength: config.errorMessageMaxLength,
      lateCommitSeconds: config.provisioningLateCommitSeconds,
    }),
    securitySource(db, {
      recountIntervalSeconds: config.shieldRecountIntervalSeconds,
      lateCommitSeconds: config.shieldLateCommitSeconds,
    }),
    backupsSource(db, { labelValueLimit: config.labelValueLimit }),
    indexesSource(db, logger ? { logger } : {}),
  ];
  return sources.map((source) => ({ source, schedule: config.sources[source.name] }));
}
