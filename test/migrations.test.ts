/**
 * prisma/migrations and prisma/schema.prisma describe the same database, and
 * src/db/migrate.ts keeps `_prisma_migrations` the way Prisma Migrate does —
 * checked offline with Prisma's real schema engine compiled to WebAssembly
 * (test/helpers/schema-engine.ts), PostgreSQL 15 (test/helpers/db.ts) and
 * PGlite where the engine itself needs a database.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS_DIR, migrate, type MigrateResult } from '../src/db/migrate.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import {
  diffFromEmpty,
  diffFromMigrations,
  NO_FILTER,
  openSchemaEngine,
  readMigrationsList,
  resetPglite,
  SCHEMA_PATH,
  type EngineHandle,
} from './helpers/schema-engine.js';

const execFileAsync = promisify(execFile);

/**
 * Indexes that the `*_exporter_indexes` migration adds on purpose and that
 * schema.prisma cannot express (partial: `WHERE …`; expression:
 * `COALESCE(…)`), so a database built from schema.prisma lacks them. Listed
 * by name; the first test proves each one is in that migration and really is
 * partial or an expression index. Any other difference fails the comparison.
 */
const INDEXES_SCHEMA_PRISMA_CANNOT_EXPRESS = [
  'ProvisioningJob_live_idx',
  'ProvisioningJob_failed_createdAt_idx',
  'GuardianFinding_open_severity_idx',
  'Backup_completed_idx',
  'Backup_failed_idx',
  'ProvisioningJob_finished_idx',
];

/**
 * `_prisma_migrations` exactly as Prisma's engine creates it on PostgreSQL
 * (prisma-engines, sql-schema-connector, postgres flavour,
 * `create_migrations_table`).
 */
const PRISMA_MIGRATIONS_TABLE_DDL = `
CREATE TABLE _prisma_migrations (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             TIMESTAMPTZ,
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          TIMESTAMPTZ,
    started_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_steps_count     INTEGER NOT NULL DEFAULT 0
);`;

interface MigrationRow {
  id: string;
  checksum: string;
  finished_at: Date | null;
  migration_name: string;
  logs: string | null;
  rolled_back_at: Date | null;
  started_at: Date;
  applied_steps_count: number;
}

const ROWS_SQL = 'SELECT * FROM "_prisma_migrations" ORDER BY started_at, migration_name';

async function migrationFolders(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
}

/** Lowercase hex SHA-256 of the file's bytes, as they are on disk. */
async function sha256OfFile(file: string): Promise<string> {
  return createHash('sha256').update(await readFile(file)).digest('hex');
}

/** What Prisma compares and shows of a row (ids and timestamps differ by nature). */
function shape(row: MigrationRow) {
  return {
    migration_name: row.migration_name,
    checksum: row.checksum,
    finished: row.finished_at !== null,
    rolled_back: row.rolled_back_at !== null,
    applied_steps_count: row.applied_steps_count,
    logs: row.logs === null ? null : 'set',
  };
}

async function pgDump(url: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync('pg_dump', [...args, `--dbname=${url}`], {
      maxBuffer: 64 * 1024 * 1024,
      timeout: 20_000,
    });
    // pg_dump >= 15.14 brackets its output with \restrict / \unrestrict and a
    // random key: psql meta-commands, not SQL.
    return stdout
      .split('\n')
      .filter((line) => !line.startsWith('\\'))
      .join('\n');
  } catch (err) {
    throw new Error(`pg_dump failed (the PostgreSQL 15 client tools are needed): ${(err as Error).message}`);
  }
}

/**
 * `pg_dump --schema-only` as a list of statements, without comments, SET lines,
 * ownership, privileges and `_prisma_migrations`, whitespace collapsed, minus
 * the indexes listed in `withoutIndexes`.
 */
async function schemaStatements(url: string, withoutIndexes: string[] = []): Promise<string[]> {
  const dump = await pgDump(url, [
    '--schema-only',
    '--no-owner',
    '--no-privileges',
    '--no-comments',
    '--no-tablespaces',
    '--exclude-table=public._prisma_migrations',
  ]);
  const excluded = new Set(withoutIndexes);
  return dump
    .split('\n')
    .filter((line) => !(line.startsWith('--') || line.startsWith('SET ') || line.startsWith('SELECT pg_catalog.set_config(')))
    .join('\n')
    .split(/;\s*(?:\n|$)/)
    .map((statement) => statement.replace(/\s+/g, ' ').trim())
    .filter((statement) => statement !== '')
    .filter((statement) => {
      const index = /^CREATE (?:UNIQUE )?INDEX "?([^"\s]+)"? ON /.exec(statement);
      return !(index && excluded.has(index[1]!));
    });
}

// One PGlite for the whole file (cold start ~3 s): the engine's shadow
// database for the migrations-folder diff, then the database Prisma's own
// engine migrates in the bookkeeping tests. Each use starts with a reset.
let pglite: PGlite;

// PGlite's cold start is 5-7 s on an idle machine and several times that on
// two busy cores: the bound is only there to end a hung start.
beforeAll(async () => {
  pglite = new PGlite();
  await pglite.waitReady;
}, 180_000);

afterAll(async () => {
  await pglite?.close();
});

describe('prisma/migrations and prisma/schema.prisma agree', () => {
  let migrated: TestDatabase;
  let fromSchema: TestDatabase;
  let engineSql: string;

  beforeAll(async () => {
    [migrated, fromSchema, engineSql] = await Promise.all([
      createTestDatabase('mig_from_migrations', { migrate: false }),
      createTestDatabase('mig_from_schema', { migrate: false }),
      diffFromEmpty(SCHEMA_PATH),
    ]);
    await migrate(migrated.adminUrl);
    await fromSchema.admin.query(engineSql);
  }, 30_000);

  afterAll(async () => {
    await Promise.all([migrated?.drop(), fromSchema?.drop()]);
  });

  it('leaves out only partial/expression indexes that the exporter_indexes migration adds', async () => {
    const folder = (await migrationFolders(MIGRATIONS_DIR)).filter((name) => name.endsWith('_exporter_indexes'));
    expect(folder).toHaveLength(1);
    const sql = await readFile(path.join(MIGRATIONS_DIR, folder[0]!, 'migration.sql'), 'utf8');
    const created = [...sql.matchAll(/CREATE (?:UNIQUE )?INDEX (?:IF NOT EXISTS )?"([^"]+)"/g)].map((m) => m[1]);
    expect(created).toEqual(expect.arrayContaining(INDEXES_SCHEMA_PRISMA_CANNOT_EXPRESS));

    const { rows } = await migrated.admin.query<{ name: string; partial: boolean; expression: boolean }>(
      `SELECT c.relname AS name, i.indpred IS NOT NULL AS partial, i.indexprs IS NOT NULL AS expression
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE c.relname = ANY($1::text[])`,
      [INDEXES_SCHEMA_PRISMA_CANNOT_EXPRESS],
    );
    expect(rows.map((r) => r.name).sort()).toEqual([...INDEXES_SCHEMA_PRISMA_CANNOT_EXPRESS].sort());
    for (const r of rows) expect(r.partial || r.expression, `${r.name} is a plain index`).toBe(true);
  }, 20_000);

  it("pg_dump --schema-only of the migrated database equals that of the engine's SQL for schema.prisma", async () => {
    const [fromMigrations, fromSchemaPrisma] = await Promise.all([
      schemaStatements(migrated.adminUrl, INDEXES_SCHEMA_PRISMA_CANNOT_EXPRESS),
      schemaStatements(fromSchema.adminUrl),
    ]);

    // Not two empty dumps: every model of schema.prisma is a table in both.
    const models = [...(await readFile(SCHEMA_PATH, 'utf8')).matchAll(/^model (\w+) \{/gm)].map((m) => m[1]);
    expect(models.length).toBeGreaterThan(0);
    for (const model of models) {
      expect(fromMigrations.some((s) => s.startsWith(`CREATE TABLE public."${model}" (`)), model).toBe(true);
      expect(fromSchemaPrisma.some((s) => s.startsWith(`CREATE TABLE public."${model}" (`)), model).toBe(true);
    }

    const onlyInMigrations = fromMigrations.filter((s) => !fromSchemaPrisma.includes(s));
    const onlyInSchemaPrisma = fromSchemaPrisma.filter((s) => !fromMigrations.includes(s));
    expect(
      { onlyInMigrations, onlyInSchemaPrisma },
      'the migrations and schema.prisma differ (statements as pg_dump prints them)',
    ).toEqual({ onlyInMigrations: [], onlyInSchemaPrisma: [] });
    expect(fromMigrations).toEqual(fromSchemaPrisma);
  }, 20_000);

  it('the engine would generate no new migration from the migrations folder to schema.prisma', async () => {
    await resetPglite(pglite);
    const { exitCode, script, summary } = await diffFromMigrations(MIGRATIONS_DIR, pglite, SCHEMA_PATH);
    expect(exitCode, `prisma migrate dev would generate:\n${summary}\n${script}`).toBe(0);
  }, 20_000);
});

describe("migrate() keeps _prisma_migrations as Prisma's engine does", () => {
  let db: TestDatabase;
  let folders: string[];
  let firstRun: MigrateResult;
  let engine: EngineHandle;

  beforeAll(async () => {
    folders = await migrationFolders(MIGRATIONS_DIR);
    db = await createTestDatabase('mig_bookkeeping', { migrate: false });
    firstRun = await migrate(db.adminUrl);
    await resetPglite(pglite);
    engine = await openSchemaEngine({ db: pglite });
  }, 30_000);

  afterAll(async () => {
    engine?.free();
    await db?.drop();
  });

  it('records one finished row per folder, with the sha256 of the file as checksum', async () => {
    expect(firstRun).toEqual({ applied: folders, alreadyApplied: [] });
    const { rows } = await db.admin.query<MigrationRow>(ROWS_SQL);
    expect(rows.map((r) => r.migration_name)).toEqual(folders);
    for (const row of rows) {
      const file = path.join(MIGRATIONS_DIR, row.migration_name, 'migration.sql');
      expect(row.checksum).toMatch(/^[0-9a-f]{64}$/);
      expect(row.checksum).toBe(await sha256OfFile(file));
      expect(row.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(row.finished_at).toBeInstanceOf(Date);
      expect(row.finished_at!.getTime()).toBeGreaterThanOrEqual(row.started_at.getTime());
      expect(row.rolled_back_at).toBeNull();
      expect(row.logs).toBeNull();
      // Prisma applies a migration.sql as one step: record_successful_step
      // increments the count once.
      expect(row.applied_steps_count).toBe(1);
    }
  }, 20_000);

  it("creates _prisma_migrations with Prisma's exact column definitions", async () => {
    await db.admin.query(
      `BEGIN; CREATE SCHEMA prisma_reference; SET LOCAL search_path TO prisma_reference; ${PRISMA_MIGRATIONS_TABLE_DDL} COMMIT;`,
    );
    try {
      const columns = (schema: string) =>
        db.admin
          .query(
            `SELECT c.column_name, c.data_type, c.character_maximum_length, c.is_nullable, c.column_default,
                    EXISTS (SELECT 1 FROM information_schema.key_column_usage k
                             JOIN information_schema.table_constraints t USING (constraint_schema, constraint_name)
                            WHERE t.constraint_type = 'PRIMARY KEY' AND k.table_schema = c.table_schema
                              AND k.table_name = c.table_name AND k.column_name = c.column_name) AS primary_key
               FROM information_schema.columns c
              WHERE c.table_schema = $1 AND c.table_name = '_prisma_migrations'
              ORDER BY c.ordinal_position`,
            [schema],
          )
          .then((r) => r.rows);
      const [ours, prismas] = await Promise.all([columns('public'), columns('prisma_reference')]);
      expect(prismas).toHaveLength(8);
      expect(ours).toEqual(prismas);
    } finally {
      await db.admin.query('DROP SCHEMA prisma_reference CASCADE');
    }
  }, 20_000);

  it('a second run applies nothing and changes no row', async () => {
    const before = (await db.admin.query<MigrationRow>(ROWS_SQL)).rows;
    expect(await migrate(db.adminUrl)).toEqual({ applied: [], alreadyApplied: folders });
    expect((await db.admin.query<MigrationRow>(ROWS_SQL)).rows).toEqual(before);
  }, 20_000);

  it("Prisma's engine finds the migrated database up to date (migrate deploy would apply nothing)", async () => {
    // An exact copy of the database migrate() produced, bookkeeping rows included.
    const dump = await pgDump(db.adminUrl, ['--no-owner', '--no-privileges', '--inserts']);
    await resetPglite(pglite);
    await pglite.exec(dump);
    await pglite.exec('RESET search_path');
    const before = (await pglite.query<MigrationRow>(ROWS_SQL)).rows;
    expect(before.map(shape)).toEqual((await db.admin.query<MigrationRow>(ROWS_SQL)).rows.map(shape));

    const migrationsList = await readMigrationsList(MIGRATIONS_DIR);
    const applied = await engine.engine.applyMigrations({ migrationsList, filters: NO_FILTER }).catch(engine.explain);
    expect(applied).toEqual({ appliedMigrationNames: [] });
    const history = await engine.engine
      .diagnoseMigrationHistory({ migrationsList, optInToShadowDatabase: false, filters: NO_FILTER })
      .catch(engine.explain);
    expect(history).toEqual({ editedMigrationNames: [], failedMigrationNames: [], hasMigrationsTable: true, history: null });
    expect((await pglite.query<MigrationRow>(ROWS_SQL)).rows).toEqual(before);
  }, 20_000);

  it("on an empty database, Prisma's engine writes the same rows as migrate()", async () => {
    await resetPglite(pglite);
    const migrationsList = await readMigrationsList(MIGRATIONS_DIR);
    const applied = await engine.engine.applyMigrations({ migrationsList, filters: NO_FILTER }).catch(engine.explain);
    expect(applied).toEqual({ appliedMigrationNames: folders });
    const prismas = (await pglite.query<MigrationRow>(ROWS_SQL)).rows;
    const ours = (await db.admin.query<MigrationRow>(ROWS_SQL)).rows;
    expect(ours.map(shape)).toEqual(prismas.map(shape));
  }, 20_000);

  it('records a failed migration with its error, refuses to go on, and resumes once it is rolled back', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ops-migrations-'));
    const failing = await createTestDatabase('mig_failure', { migrate: false });
    try {
      const files: Record<string, string> = {
        // Non-ASCII on purpose: the checksum is over the file's UTF-8 bytes.
        '20990101000000_ok': '-- café, naïve, ✓\nCREATE TABLE "t1" ("id" INTEGER);\n',
        '20990101000100_broken': 'CREATE TABLE "t2" ("id" INTEGER);\nSELEC 1;\n',
        '20990101000200_later': 'CREATE TABLE "t3" ("id" INTEGER);\n',
      };
      await writeFile(path.join(dir, 'migration_lock.toml'), 'provider = "postgresql"\n');
      for (const [name, sql] of Object.entries(files)) {
        await mkdir(path.join(dir, name));
        await writeFile(path.join(dir, name, 'migration.sql'), sql);
      }
      const broken = path.join(dir, '20990101000100_broken', 'migration.sql');
      const brokenChecksum = await sha256OfFile(broken);
      const tables = async () =>
        (
          await failing.admin.query<{ t: string }>(
            `SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 't_' ORDER BY 1`,
          )
        ).rows.map((r) => r.t);
      const pgliteTables = async () =>
        (
          await pglite.query<{ t: string }>(
            `SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 't_' ORDER BY 1`,
          )
        ).rows.map((r) => r.t);

      // First run: 001 applied, 002 fails and is rolled back, 003 not tried.
      await expect(migrate(failing.adminUrl, dir)).rejects.toThrow(
        /migration 20990101000100_broken failed: syntax error at or near "SELEC"/,
      );
      await resetPglite(pglite);
      const prismaError = await engine.engine
        .applyMigrations({ migrationsList: await readMigrationsList(dir), filters: NO_FILTER })
        .then(() => null, (e: Error) => e);
      expect(prismaError?.message).toContain('syntax error at or near "SELEC"');

      const ours = (await failing.admin.query<MigrationRow>(ROWS_SQL)).rows;
      const prismas = (await pglite.query<MigrationRow>(ROWS_SQL)).rows;
      expect(ours.map(shape)).toEqual([
        { migration_name: '20990101000000_ok', checksum: await sha256OfFile(path.join(dir, '20990101000000_ok', 'migration.sql')), finished: true, rolled_back: false, applied_steps_count: 1, logs: null },
        { migration_name: '20990101000100_broken', checksum: brokenChecksum, finished: false, rolled_back: false, applied_steps_count: 0, logs: 'set' },
      ]);
      expect(prismas.map(shape)).toEqual(ours.map(shape));
      expect(ours[1]!.logs).toContain('syntax error at or near "SELEC"');
      expect(prismas[1]!.logs).toContain('syntax error at or near "SELEC"');
      expect(await tables()).toEqual(['t1']);
      expect(await pgliteTables()).toEqual(['t1']);

      // Next run: both refuse, even with the file fixed, until it is resolved.
      await writeFile(broken, 'CREATE TABLE "t2" ("id" INTEGER);\n');
      await expect(migrate(failing.adminUrl, dir)).rejects.toThrow(
        /migration 20990101000100_broken failed earlier; resolve it before applying more/,
      );
      await expect(
        engine.engine.applyMigrations({ migrationsList: await readMigrationsList(dir), filters: NO_FILTER }),
      ).rejects.toMatchObject({ code: 'P3009' });
      expect((await failing.admin.query<MigrationRow>(ROWS_SQL)).rows).toEqual(ours);
      expect((await pglite.query<MigrationRow>(ROWS_SQL)).rows).toEqual(prismas);
      expect(await tables()).toEqual(['t1']);

      // `prisma migrate resolve --rolled-back`: the failed row stays as history,
      // marked rolled back, and no longer counts; the next run applies the rest.
      await failing.admin.query(
        `UPDATE "_prisma_migrations" SET rolled_back_at = now()
          WHERE migration_name = '20990101000100_broken' AND finished_at IS NULL AND rolled_back_at IS NULL`,
      );
      await engine.engine.markMigrationRolledBack({ migrationName: '20990101000100_broken' }).catch(engine.explain);
      expect(await migrate(failing.adminUrl, dir)).toEqual({
        applied: ['20990101000100_broken', '20990101000200_later'],
        alreadyApplied: ['20990101000000_ok'],
      });
      expect(
        await engine.engine
          .applyMigrations({ migrationsList: await readMigrationsList(dir), filters: NO_FILTER })
          .catch(engine.explain),
      ).toEqual({ appliedMigrationNames: ['20990101000100_broken', '20990101000200_later'] });
      const resumed = (await failing.admin.query<MigrationRow>(ROWS_SQL)).rows.map(shape);
      expect(resumed).toEqual((await pglite.query<MigrationRow>(ROWS_SQL)).rows.map(shape));
      expect(resumed.filter((r) => r.migration_name === '20990101000100_broken')).toEqual([
        { migration_name: '20990101000100_broken', checksum: brokenChecksum, finished: false, rolled_back: true, applied_steps_count: 0, logs: 'set' },
        { migration_name: '20990101000100_broken', checksum: await sha256OfFile(broken), finished: true, rolled_back: false, applied_steps_count: 1, logs: null },
      ]);
      expect(await tables()).toEqual(['t1', 't2', 't3']);
    } finally {
      await Promise.all([failing.drop(), rm(dir, { recursive: true, force: true })]);
    }
  }, 30_000);
});
