/**
 * CoreNode and Backup as an enum-typed, timestamptz platform declares them
 * (issue 10): the contract's table and column names, enum-like columns as
 * PostgreSQL enums whose label sets differ from the exporter's known values,
 * timestamps as timestamptz(3), and the exporter's Backup indexes. For the
 * core-nodes and backups tests only (the shared fixture for every table is
 * test/helpers/schema-variants.ts on the infra branch).
 */
import { createTestDatabase, type TestDatabase } from './db.js';

/** Node statuses of the enum schema: no MAINTENANCE, and RETIRED the exporter does not know. */
export const ENUM_NODE_STATUSES = ['ONLINE', 'DEGRADED', 'OFFLINE', 'RETIRED'] as const;
/** Backup statuses of the enum schema: ABORTED the exporter does not know. */
export const ENUM_BACKUP_STATUSES = ['PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'ABORTED'] as const;
/** Backup resource types of the enum schema. */
export const ENUM_BACKUP_TYPES = ['DB_CORE', 'MPANEL_CORE', 'CLOUD_POD', 'MAIL_CORE'] as const;

const list = (values: readonly string[]) => values.map((v) => `'${v}'`).join(', ');

/**
 * A fresh database with only CoreNode and Backup, enum + timestamptz,
 * readable by the read-only role; `backupStatuses` replaces the Backup
 * status labels (a platform without FAILED, say).
 */
export async function createEnumNodesBackupsDatabase(
  label: string,
  options: { backupStatuses?: readonly string[] } = {},
): Promise<TestDatabase> {
  const db = await createTestDatabase(`${label}_enum`, { migrate: false });
  db.admin.on('error', () => undefined);
  const statuses = options.backupStatuses ?? ENUM_BACKUP_STATUSES;
  // The exporter's Backup indexes, for the statuses the enum has.
  const indexes = (['COMPLETED', 'FAILED'] as const)
    .filter((s) => statuses.includes(s))
    .map(
      (s) =>
        `CREATE INDEX "Backup_${s.toLowerCase()}_idx" ON "Backup"("resourceType", (COALESCE("completedAt", "startedAt"))) WHERE "status" = '${s}';`,
    )
    .join('\n');
  try {
    await db.admin.query(`
      CREATE TYPE "NodeRole" AS ENUM ('WEB', 'MAIL', 'DNS', 'CLOUD', 'SECURITY', 'DATABASE', 'PANEL', 'VOIP');
      CREATE TYPE "NodeStatus" AS ENUM (${list(ENUM_NODE_STATUSES)});
      CREATE TYPE "BackupStatus" AS ENUM (${list(statuses)});
      CREATE TYPE "BackupResourceType" AS ENUM (${list(ENUM_BACKUP_TYPES)});
      CREATE TABLE "CoreNode" (
        "id" TEXT NOT NULL PRIMARY KEY,
        "hostname" TEXT NOT NULL,
        "role" "NodeRole",
        "status" "NodeStatus",
        "metrics" JSONB,
        "lastMetricsAt" TIMESTAMPTZ(3),
        "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
        "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP
      );
      CREATE UNIQUE INDEX "CoreNode_hostname_key" ON "CoreNode"("hostname");
      CREATE TABLE "Backup" (
        "id" TEXT NOT NULL PRIMARY KEY,
        "resourceType" "BackupResourceType" NOT NULL,
        "resourceId" TEXT,
        "status" "BackupStatus" NOT NULL,
        "startedAt" TIMESTAMPTZ(3) NOT NULL,
        "completedAt" TIMESTAMPTZ(3),
        "sizeBytes" BIGINT
      );
      ${indexes}`);
    await db.grantReader();
  } catch (err) {
    await db.drop();
    throw err;
  }
  return db;
}
