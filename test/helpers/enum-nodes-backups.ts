/**
 * CoreNode and Backup label sets of an enum-typed, timestamptz platform that
 * differ from the exporter's known values (issue 10), for the core-nodes and
 * backups tests.
 */
import type { TestDatabase } from './db.js';
import { createVariantDatabase } from './schema-variants.js';

/** Node statuses of the enum schema: no MAINTENANCE, and RETIRED the exporter does not know. */
export const ENUM_NODE_STATUSES = ['ONLINE', 'DEGRADED', 'OFFLINE', 'RETIRED'] as const;
/** Backup statuses of the enum schema: ABORTED the exporter does not know. */
export const ENUM_BACKUP_STATUSES = ['PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'ABORTED'] as const;
/** Backup resource types of the enum schema. */
export const ENUM_BACKUP_TYPES = ['DB_CORE', 'MPANEL_CORE', 'CLOUD_POD', 'MAIL_CORE'] as const;

/**
 * A database of the `enum` schema variant (test/helpers/schema-variants.ts,
 * with the exporter's index file applied) whose CoreNode and Backup label
 * sets are the ones above; `backupStatuses` replaces the Backup status
 * labels (a platform without FAILED, say).
 */
export async function createEnumNodesBackupsDatabase(
  label: string,
  options: { backupStatuses?: readonly string[] } = {},
): Promise<TestDatabase> {
  const db = await createVariantDatabase(label, 'enum', {
    labels: { NodeStatus: ENUM_NODE_STATUSES, BackupStatus: options.backupStatuses ?? ENUM_BACKUP_STATUSES, BackupResourceType: ENUM_BACKUP_TYPES },
  });
  db.admin.on('error', () => undefined);
  return db;
}
