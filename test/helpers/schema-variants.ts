/**
 * The contract's tables in the shapes real platforms give them, for tests
 * that must hold on every one of them (issue 10):
 * - `text`: prisma/migrations as they are (enum-like columns are `text`,
 *   timestamps `timestamp(3)`), what createTestDatabase() builds;
 * - `enum`: the same table and column names, but every enum-like column a
 *   PostgreSQL enum (what a platform's `schema.prisma` with `enum JobStatus
 *   { … }` gives) whose label set lacks some of the exporter's known values
 *   (no CANCELLED, no INFO, no UNKNOWN, no LOG), and every timestamp column
 *   `timestamptz(3)` (Prisma's `@db.Timestamptz(3)`).
 *
 * The enum database is baselined the way a DBA adopts Prisma Migrate on an
 * existing schema (`prisma migrate resolve --applied <platform_schema>`), so
 * that migrate() then applies only the exporter's own migrations on it.
 */
import { createHash, randomUUID } from 'node:crypto';
import pg from 'pg';
import { applyMigrations, migrate, readMigrations } from '../../src/db/migrate.js';
import { createTestDatabase, type TestDatabase } from './db.js';

/** The schema shapes the exporter supports. */
export type SchemaVariant = 'text' | 'enum';

/** Every schema variant, for `describe.each`. */
export const SCHEMA_VARIANTS: readonly SchemaVariant[] = ['text', 'enum'];

/** The enum types of the `enum` variant. */
export type EnumTypeName =
  | 'NodeRole'
  | 'NodeStatus'
  | 'JobStatus'
  | 'JobResourceType'
  | 'Decision'
  | 'PolicyMode'
  | 'Severity'
  | 'FindingStatus'
  | 'BackupStatus'
  | 'BackupResourceType';

/**
 * The labels of each enum type, in declaration order. Deliberately missing:
 * JobStatus CANCELLED, Severity INFO, any UNKNOWN, Decision LOG; tests seed
 * only values these sets have (an enum column cannot hold any other).
 */
export const ENUM_LABELS: Readonly<Record<EnumTypeName, readonly string[]>> = {
  NodeRole: ['WEB', 'MAIL', 'DNS', 'CLOUD', 'SECURITY', 'DATABASE', 'PANEL', 'VOIP'],
  NodeStatus: ['ONLINE', 'DEGRADED', 'OFFLINE', 'MAINTENANCE'],
  JobStatus: ['PENDING', 'RUNNING', 'DELAYED', 'COMPLETED', 'FAILED'],
  JobResourceType: ['WEBSITE', 'DNS_ZONE', 'MAILBOX', 'CLOUD_POD', 'CERTIFICATE', 'DATABASE'],
  Decision: ['ALLOW', 'BLOCK', 'CHALLENGE', 'RATE_LIMITED'],
  PolicyMode: ['ENFORCE', 'MONITOR', 'DISABLED'],
  Severity: ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW'],
  FindingStatus: ['OPEN', 'ACKNOWLEDGED', 'RESOLVED'],
  BackupStatus: ['PENDING', 'RUNNING', 'COMPLETED', 'FAILED'],
  BackupResourceType: ['DB_CORE', 'MPANEL_CORE', 'CLOUD_POD', 'MAIL_CORE', 'DNS_CORE', 'WEBSITE'],
};

/** Which enum type each enum-like contract column has in the `enum` variant. */
export const ENUM_COLUMNS: Readonly<Record<string, EnumTypeName>> = {
  'CoreNode.role': 'NodeRole',
  'CoreNode.status': 'NodeStatus',
  'ProvisioningJob.status': 'JobStatus',
  'ProvisioningJob.resourceType': 'JobResourceType',
  'ShieldEvent.decision': 'Decision',
  'ShieldPolicy.mode': 'PolicyMode',
  'GuardianFinding.severity': 'Severity',
  'GuardianFinding.status': 'FindingStatus',
  'Backup.status': 'BackupStatus',
  'Backup.resourceType': 'BackupResourceType',
};

/** Name of the migration that creates the contract's tables. */
export const PLATFORM_SCHEMA_MIGRATION = '20261125000000_platform_schema';

function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/**
 * DDL of the `enum` variant: prisma/migrations/*_platform_schema with enum
 * types and timestamptz(3). `labels` overrides some enum types' label sets.
 */
export function enumSchemaSql(labels: Partial<Record<EnumTypeName, readonly string[]>> = {}): string {
  const types = (Object.keys(ENUM_LABELS) as EnumTypeName[])
    .map((t) => `CREATE TYPE "${t}" AS ENUM (${(labels[t] ?? ENUM_LABELS[t]).map(literal).join(', ')});`)
    .join('\n');
  return `${types}

CREATE TABLE "CoreNode" (
    "id" TEXT NOT NULL,
    "hostname" TEXT NOT NULL,
    "role" "NodeRole",
    "status" "NodeStatus",
    "metrics" JSONB,
    "lastMetricsAt" TIMESTAMPTZ(3),
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,
    CONSTRAINT "CoreNode_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "ProvisioningJob" (
    "id" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "action" TEXT NOT NULL,
    "resourceType" "JobResourceType" NOT NULL,
    "resourceId" TEXT,
    "tenantId" TEXT,
    "status" "JobStatus" NOT NULL,
    "errorMessage" TEXT,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "startedAt" TIMESTAMPTZ(3),
    "finishedAt" TIMESTAMPTZ(3),
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,
    CONSTRAINT "ProvisioningJob_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "ShieldEvent" (
    "id" BIGSERIAL NOT NULL,
    "timestamp" TIMESTAMPTZ(3) NOT NULL,
    "decision" "Decision",
    "policyId" TEXT,
    "tenantId" TEXT,
    "ip" TEXT,
    "path" TEXT,
    CONSTRAINT "ShieldEvent_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "ShieldPolicy" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "mode" "PolicyMode",
    "tenantId" TEXT,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,
    CONSTRAINT "ShieldPolicy_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "GuardianFinding" (
    "id" TEXT NOT NULL,
    "severity" "Severity",
    "status" "FindingStatus" NOT NULL,
    "title" TEXT NOT NULL,
    "nodeId" TEXT,
    "tenantId" TEXT,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "resolvedAt" TIMESTAMPTZ(3),
    CONSTRAINT "GuardianFinding_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "Backup" (
    "id" TEXT NOT NULL,
    "resourceType" "BackupResourceType" NOT NULL,
    "resourceId" TEXT,
    "status" "BackupStatus" NOT NULL,
    "startedAt" TIMESTAMPTZ(3) NOT NULL,
    "completedAt" TIMESTAMPTZ(3),
    "sizeBytes" BIGINT,
    CONSTRAINT "Backup_pkey" PRIMARY KEY ("id")
);

CREATE UNIQUE INDEX "CoreNode_hostname_key" ON "CoreNode"("hostname");
`;
}

/** Options of createEnumSchema / createVariantDatabase. */
export interface SchemaVariantOptions {
  /**
   * Also apply the exporter's own migrations (its index file) after the
   * tables, as the README tells a DBA to; default true. The index file must
   * then be the enum-safe one (branch `infra`).
   */
  indexes?: boolean;
  /** Overrides some enum types' label sets (`enum` variant only). */
  labels?: Partial<Record<EnumTypeName, readonly string[]>>;
}

/**
 * Builds the `enum` variant in an empty database at `adminUrl`: the tables,
 * the baseline record of the platform-schema migration, then (unless
 * `indexes: false`) the exporter's migrations through migrate().
 */
export async function createEnumSchema(adminUrl: string, options: SchemaVariantOptions = {}): Promise<void> {
  const baseline = (await readMigrations()).find((m) => m.name === PLATFORM_SCHEMA_MIGRATION);
  if (!baseline) throw new Error(`migration ${PLATFORM_SCHEMA_MIGRATION} not found in prisma/migrations`);
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    await c.query(`BEGIN; ${enumSchemaSql(options.labels)} COMMIT;`);
    // What `prisma migrate resolve --applied` records: the platform's own
    // schema stands in for the migration, with the migration's checksum.
    await c.query(`
      CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
        "id" VARCHAR(36) PRIMARY KEY NOT NULL, "checksum" VARCHAR(64) NOT NULL, "finished_at" TIMESTAMPTZ,
        "migration_name" VARCHAR(255) NOT NULL, "logs" TEXT, "rolled_back_at" TIMESTAMPTZ,
        "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(), "applied_steps_count" INTEGER NOT NULL DEFAULT 0)`);
    await c.query(
      `INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, finished_at, applied_steps_count)
       VALUES ($1, $2, $3, now(), now(), 0)`,
      [randomUUID(), createHash('sha256').update(baseline.sql).digest('hex'), PLATFORM_SCHEMA_MIGRATION],
    );
  } finally {
    await c.end();
  }
  if (options.indexes !== false) await migrate(adminUrl);
}

/**
 * A test database of `variant`, migrated (text) or built (enum), readable by
 * the exporter's read-only role; drop() removes it as createTestDatabase's.
 */
export async function createVariantDatabase(
  label: string,
  variant: SchemaVariant,
  options: SchemaVariantOptions = {},
): Promise<TestDatabase> {
  if (variant === 'text') {
    const db = await createTestDatabase(label, { migrate: options.indexes !== false });
    if (options.indexes === false) {
      // The text variant without the exporter's indexes: platform schema only.
      const only = (await readMigrations()).filter((m) => m.name === PLATFORM_SCHEMA_MIGRATION);
      const c = new pg.Client({ connectionString: db.adminUrl });
      await c.connect();
      try {
        await applyMigrations(
          {
            query: async <R>(sql: string, params?: unknown[]) => ({ rows: (await c.query(sql, params)).rows as R[] }),
            runScript: async (sql) => {
              await c.query(sql);
            },
          },
          only,
        );
      } finally {
        await c.end();
      }
      await db.grantReader();
    }
    return db;
  }
  const db = await createTestDatabase(`${label}_enum`, { migrate: false });
  try {
    await createEnumSchema(db.adminUrl, options);
    // The read-only role's grants name tables that exist only now.
    await db.grantReader();
  } catch (err) {
    await db.drop();
    throw err;
  }
  return db;
}

/** Whether `column` (`Table.column`) of the database at `pool` is an enum, and its type's name. */
export async function columnType(pool: pg.Pool, column: string): Promise<{ type: string; isEnum: boolean }> {
  const [table, name] = column.split('.');
  const { rows } = await pool.query<{ type: string; is_enum: boolean }>(
    `SELECT format_type(a.atttypid, a.atttypmod) AS type, t.typtype = 'e' AS is_enum
       FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
      WHERE a.attrelid = to_regclass(quote_ident($1)) AND a.attname = $2 AND NOT a.attisdropped`,
    [table, name],
  );
  if (!rows[0]) throw new Error(`no column ${column}`);
  return { type: rows[0].type, isEnum: rows[0].is_enum };
}
