/**
 * Applies prisma/migrations to a database the way Prisma Migrate's engine does
 * (same `_prisma_migrations` bookkeeping, same checksums), so that
 * `prisma migrate deploy` on a machine with the native engine treats them as
 * applied. Prisma's engine cannot be downloaded offline; this can run anywhere.
 */
import { createHash, randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';

/** Where the project's migrations live. */
export const MIGRATIONS_DIR = path.join(import.meta.dirname, '..', '..', 'prisma', 'migrations');

/** One migration folder: its name and SQL text. */
export interface Migration {
  name: string;
  sql: string;
  /** Lowercase hex SHA-256 of the SQL text, as Prisma records it. */
  checksum: string;
}

/** What a run did. */
export interface MigrateResult {
  applied: string[];
  alreadyApplied: string[];
  /** Applied with a text this project replaced since, run again in its new (idempotent) text: see REPLACED_CHECKSUMS. */
  reapplied?: string[];
}

/**
 * Checksums of migration texts this project replaced after they were
 * applied, by migration name. The replacement is idempotent and gives the
 * same schema, so a database migrated with the old text gets the new one run
 * again and its checksum updated, instead of being refused as edited.
 */
export const REPLACED_CHECKSUMS: Readonly<Record<string, readonly string[]>> = {
  // The first exporter_indexes: failed on enum schemas and on a second run.
  // The second: before ProvisioningJob_finished_idx (the provisioning flow counter).
  '20261125000100_exporter_indexes': [
    '3d8e3a5c98396b64842c5efc6f8bf6cb535b19b39aa43ba8d500928a1c43ba14',
    'fad895050ada8d3fb971fbc246ed29b1e51f6c4f16ba492a5de0da5769d6ff40',
  ],
};

function sha256(bytes: Buffer): Buffer {
  return createHash('sha256').update(bytes).digest();
}

/**
 * Whether `sql` is the script recorded with `checksum`, as Prisma's engine
 * decides (schema-connector `script_matches_checksum`): the SHA-256 of the
 * text as it is, with CRLF turned to LF, or with LF turned to CRLF (git may
 * convert line endings on checkout), in lowercase hex; a recorded checksum
 * that is not 64 characters long is compared in the unpadded hex an old
 * engine wrote (each byte without its leading zero).
 */
export function checksumMatches(sql: string, checksum: string): boolean {
  const variants = [sql, sql.replace(/\r\n/g, '\n'), sql.replace(/\n/g, '\r\n')];
  return variants.some((text) => {
    const digest = sha256(Buffer.from(text, 'utf8'));
    const rendered =
      checksum !== '' && checksum.length !== 64
        ? [...digest].map((b) => b.toString(16)).join('')
        : digest.toString('hex');
    return rendered === checksum;
  });
}

/** Reads every `<name>/migration.sql` under `dir`, in name (timestamp) order. */
export async function readMigrations(dir: string = MIGRATIONS_DIR): Promise<Migration[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const names = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
  return Promise.all(
    names.map(async (name) => {
      const sql = await readFile(path.join(dir, name, 'migration.sql'), 'utf8');
      return { name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    }),
  );
}

/** Prisma Migrate's bookkeeping table, as its engine creates it for PostgreSQL. */
export const BOOKKEEPING_DDL = `
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`;

/** What applying migrations needs from a connection (`pg` or PGlite). */
export interface MigrationConnection {
  query<R>(sql: string, params?: unknown[]): Promise<{ rows: R[] }>;
  /** Runs a whole migration file as one script: one implicit transaction, as Prisma sends it. */
  runScript(sql: string): Promise<void>;
}

/**
 * Applies the pending `migrations` over `conn`, with Prisma Migrate's
 * bookkeeping. Refuses a non-empty database without migration history
 * (Prisma's P3005), goes no further while an earlier migration is recorded
 * as failed (P3009), and refuses a migration edited since it was applied (its
 * file no longer matches the recorded checksum: what `prisma migrate status`
 * and `migrate dev` report as edited; `migrate deploy` alone checks names only,
 * and would leave a database whose schema no file describes).
 */
export async function applyMigrations(conn: MigrationConnection, migrations: readonly Migration[]): Promise<MigrateResult> {
  const { rows: state } = await conn.query<{ bookkeeping: boolean; tables: number }>(
    `SELECT to_regclass('public."_prisma_migrations"') IS NOT NULL AS bookkeeping,
            (SELECT count(*)::int FROM pg_tables WHERE schemaname = 'public') AS tables`,
  );
  if (!state[0]!.bookkeeping && state[0]!.tables > 0) {
    throw new Error('the database schema is not empty and has no migration history (Prisma P3005); baseline it first');
  }
  await conn.query(BOOKKEEPING_DDL);
  const { rows } = await conn.query<{
    id: string;
    migration_name: string;
    checksum: string;
    finished_at: Date | null;
    rolled_back_at: Date | null;
  }>('SELECT id, migration_name, checksum, finished_at, rolled_back_at FROM "_prisma_migrations" ORDER BY started_at');
  const failed = rows.filter((r) => r.finished_at === null && r.rolled_back_at === null);
  if (failed.length > 0) {
    throw new Error(
      `migration ${failed.map((r) => r.migration_name).join(', ')} failed earlier; resolve it before applying more`,
    );
  }
  const active = rows.filter((r) => r.rolled_back_at === null);
  const byName = new Map(migrations.map((m) => [m.name, m]));
  const replaced = active.filter((r) => {
    const m = byName.get(r.migration_name);
    return m && !checksumMatches(m.sql, r.checksum) && REPLACED_CHECKSUMS[r.migration_name]?.includes(r.checksum);
  });
  const edited = active.filter((r) => {
    const m = byName.get(r.migration_name);
    return m && !checksumMatches(m.sql, r.checksum) && !replaced.includes(r);
  });
  if (edited.length > 0) {
    throw new Error(
      `migration ${edited.map((r) => r.migration_name).join(', ')} was edited after it was applied ` +
        `(its migration.sql no longer matches the checksum recorded in _prisma_migrations); ` +
        'restore the file as it was applied, or add a new migration for the change',
    );
  }
  const result: MigrateResult = { applied: [], alreadyApplied: [] };
  for (const r of replaced) {
    const m = byName.get(r.migration_name)!;
    try {
      await conn.runScript(m.sql);
    } catch (err) {
      throw new Error(`migration ${m.name} (replaced text) failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    await conn.query('UPDATE "_prisma_migrations" SET checksum = $2 WHERE id = $1', [r.id, m.checksum]);
    (result.reapplied ??= []).push(m.name);
  }
  const done = new Set(active.map((r) => r.migration_name));
  for (const m of migrations) {
    if (done.has(m.name)) {
      result.alreadyApplied.push(m.name);
      continue;
    }
    const id = randomUUID();
    await conn.query(
      'INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, applied_steps_count) VALUES ($1, $2, $3, now(), 0)',
      [id, m.checksum, m.name],
    );
    try {
      await conn.runScript(m.sql);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      await conn.query('UPDATE "_prisma_migrations" SET logs = $2 WHERE id = $1', [id, message]);
      throw new Error(`migration ${m.name} failed: ${message}`);
    }
    await conn.query('UPDATE "_prisma_migrations" SET finished_at = now(), applied_steps_count = 1 WHERE id = $1', [id]);
    result.applied.push(m.name);
  }
  return result;
}

/** Applies the pending migrations in `dir` to the PostgreSQL at `databaseUrl`. */
export async function migrate(databaseUrl: string, dir: string = MIGRATIONS_DIR): Promise<MigrateResult> {
  const migrations = await readMigrations(dir);
  const client = new pg.Client({ connectionString: databaseUrl, application_name: 'ops-overview-migrate' });
  await client.connect();
  try {
    // One migrator at a time per database, like Prisma's advisory lock.
    await client.query('SELECT pg_advisory_lock(72707369)');
    return await applyMigrations(
      {
        query: async <R>(sql: string, params?: unknown[]) => ({ rows: (await client.query(sql, params)).rows as R[] }),
        // A simple-protocol query: a multi-statement file runs as one implicit
        // transaction, a single statement (CREATE INDEX CONCURRENTLY) outside any.
        runScript: async (sql) => {
          await client.query(sql);
        },
      },
      migrations,
    );
  } finally {
    await client.query('SELECT pg_advisory_unlock(72707369)').catch(() => undefined);
    await client.end();
  }
}
