/**
 * The exporter's index file and `npm run db:indexes` on both supported
 * platform schemas (text, and enum + timestamptz): the file applies, again
 * and again, builds predicates with only the values an enum has, and the
 * live-database applier builds CONCURRENTLY and resumes after an index left
 * invalid by a failed build.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyIndexes, EXPORTER_INDEXES, inspectIndexes, migrationSql, type QueryFn } from '../src/db/indexes.js';
import { migrate, MIGRATIONS_DIR } from '../src/db/migrate.js';
import type { TestDatabase } from './helpers/db.js';
import { createVariantDatabase, SCHEMA_VARIANTS, type SchemaVariant } from './helpers/schema-variants.js';

const execFileAsync = promisify(execFile);
const ROOT = path.join(import.meta.dirname, '..');
const INDEX_FILE = path.join(MIGRATIONS_DIR, '20261125000100_exporter_indexes', 'migration.sql');
const NAMES = EXPORTER_INDEXES.map((ix) => ix.name);

/** pg_get_indexdef of each exporter index, and its oid (to tell a rebuilt index from the same one). */
async function indexDefs(pool: pg.Pool): Promise<Record<string, { def: string; oid: number; valid: boolean }>> {
  const { rows } = await pool.query<{ name: string; def: string; oid: number; valid: boolean }>(
    `SELECT c.relname AS name, pg_get_indexdef(c.oid) AS def, c.oid::int AS oid, i.indisvalid AS valid
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = ANY($1::text[])`,
    [NAMES],
  );
  return Object.fromEntries(rows.map((r) => [r.name, { def: r.def, oid: r.oid, valid: r.valid }]));
}

function queryOf(pool: pg.Pool): QueryFn {
  return async <R>(sql: string, params: unknown[]) => (await pool.query(sql, params)).rows as R[];
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** The predicates each variant must get: the enum lacks CANCELLED. */
const EXPECTED_LIVE_PREDICATE: Record<SchemaVariant, string> = {
  text: `WHERE (status <> ALL (ARRAY['COMPLETED'::text, 'FAILED'::text, 'CANCELLED'::text]))`,
  enum: `WHERE (status <> ALL (ARRAY['COMPLETED'::"JobStatus", 'FAILED'::"JobStatus"]))`,
};

it('the index file is exactly what src/db/indexes.ts writes from its list', async () => {
  expect(await readFile(INDEX_FILE, 'utf8')).toBe(migrationSql());
});

describe.each(SCHEMA_VARIANTS)('on the %s schema', (variant) => {
  let viaMigration: TestDatabase;
  let viaApplier: TestDatabase;

  beforeAll(async () => {
    [viaMigration, viaApplier] = await Promise.all([
      createVariantDatabase(`ix_mig_${variant}`, variant, { indexes: false }),
      createVariantDatabase(`ix_app_${variant}`, variant, { indexes: false }),
    ]);
  }, 30_000);

  afterAll(async () => {
    await Promise.all([viaMigration?.drop(), viaApplier?.drop()]);
  });

  it('the migration applies, and the file applies twice more with nothing changed', async () => {
    expect(await indexDefs(viaMigration.admin)).toEqual({});
    const result = await migrate(viaMigration.adminUrl);
    expect(result.applied).toEqual(['20261125000100_exporter_indexes']);
    const first = await indexDefs(viaMigration.admin);
    expect(Object.keys(first).sort()).toEqual([...NAMES].sort());
    expect(first.ProvisioningJob_live_idx!.def).toContain(EXPECTED_LIVE_PREDICATE[variant]);
    expect(Object.values(first).every((d) => d.valid)).toBe(true);

    const sql = await readFile(INDEX_FILE, 'utf8');
    await withClient(viaMigration.adminUrl, async (c) => {
      await c.query(sql);
      await c.query(sql);
    });
    expect(await indexDefs(viaMigration.admin)).toEqual(first);
    // Its helper functions live in pg_temp and are dropped: nothing is left behind.
    const { rows } = await viaMigration.admin.query(`SELECT proname FROM pg_proc WHERE proname LIKE 'ops\\_%'`);
    expect(rows).toEqual([]);
  }, 30_000);

  it('db:indexes --concurrently builds the same definitions as the migration, then finds them all present', async () => {
    const migrated = await indexDefs(viaMigration.admin);
    const actions = await withClient(viaApplier.adminUrl, (c) => applyIndexes(c, { concurrently: true }));
    expect(actions.map((a) => [a.name, a.action])).toEqual(NAMES.map((n) => [n, 'created']));
    expect(actions[0]!.statements[0]).toMatch(/^CREATE INDEX CONCURRENTLY IF NOT EXISTS "ProvisioningJob_live_idx"/);
    const built = await indexDefs(viaApplier.admin);
    for (const name of NAMES) expect(built[name]!.def, name).toBe(migrated[name]!.def);

    const again = await withClient(viaApplier.adminUrl, (c) => applyIndexes(c, { concurrently: true }));
    expect(again.map((a) => a.action)).toEqual(NAMES.map(() => 'present'));
    expect(await indexDefs(viaApplier.admin)).toEqual(built);
  }, 30_000);

  it("the sources' own predicate text (enum labels only) uses the partial index", async () => {
    const labels = variant === 'enum' ? "('COMPLETED', 'FAILED')" : "('COMPLETED', 'FAILED', 'CANCELLED')";
    const plan = await withClient(viaMigration.adminUrl, async (c) => {
      await c.query('BEGIN; SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off');
      const { rows } = await c.query<{ 'QUERY PLAN': string }>(
        `EXPLAIN SELECT "status", "type", count(*) FROM "ProvisioningJob" WHERE "status" NOT IN ${labels} GROUP BY 1, 2`,
      );
      await c.query('ROLLBACK');
      return rows.map((r) => r['QUERY PLAN']).join('\n');
    });
    expect(plan).toContain('Index Only Scan using "ProvisioningJob_live_idx"');
  }, 20_000);
});

describe('db:indexes on a live database', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createVariantDatabase('ix_live', 'enum', { indexes: false });
  }, 30_000);

  afterAll(async () => {
    await db?.drop();
  });

  it('resumes after a concurrent build that failed: drops the invalid index and builds it again', async () => {
    // A concurrent build records the index first, then waits for every
    // transaction writing the table; one held open (as a busy platform's
    // are) makes it run into its statement_timeout, which leaves the index
    // behind INVALID, as a build cancelled by a DBA or a deadlock does.
    const holder = new pg.Client({ connectionString: db.adminUrl });
    await holder.connect();
    await holder.query('BEGIN; LOCK TABLE "Backup" IN ROW EXCLUSIVE MODE');
    const failure = await withClient(db.adminUrl, async (c) => {
      await c.query("SET statement_timeout = '300ms'");
      // applyIndexes lifts the role's statement_timeout itself; this build
      // stands in for an earlier run that was cancelled.
      return c
        .query('CREATE INDEX CONCURRENTLY "Backup_failed_idx" ON "Backup"("resourceType") WHERE "status" = \'FAILED\'')
        .then(() => 'built', (err: Error) => err.message);
    });
    await holder.query('ROLLBACK');
    await holder.end();
    expect(failure).toMatch(/statement timeout/);
    expect((await indexDefs(db.admin)).Backup_failed_idx?.valid).toBe(false);

    const before = await inspectIndexes(queryOf(db.admin));
    expect(before.find((s) => s.name === 'Backup_failed_idx')).toMatchObject({ exists: true, valid: false, tableExists: true });

    const { stdout } = await execFileAsync('npx', ['tsx', 'src/db/indexes-cli.ts', '--concurrently'], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: db.adminUrl },
      timeout: 60_000,
    });
    expect(stdout).toContain('DROP INDEX CONCURRENTLY IF EXISTS "Backup_failed_idx";');
    expect(stdout).toContain('Backup_failed_idx: rebuilt');
    expect(stdout).toContain('ProvisioningJob_live_idx: created');
    const after = await indexDefs(db.admin);
    expect(Object.values(after).map((d) => d.valid)).toEqual(NAMES.map(() => true));
    expect(after.Backup_failed_idx!.def).toContain('COALESCE("completedAt", "startedAt")');
  }, 60_000);

  it('resumes after an index marked invalid by hand (pg_index.indisvalid), leaving the valid ones as they are', async () => {
    const before = await indexDefs(db.admin);
    await db.admin.query(
      `UPDATE pg_index SET indisvalid = false WHERE indexrelid = '"ShieldEvent_timestamp_decision_idx"'::regclass`,
    );
    const actions = await withClient(db.adminUrl, (c) => applyIndexes(c, { concurrently: true }));
    expect(actions.filter((a) => a.action !== 'present').map((a) => [a.name, a.action])).toEqual([
      ['ShieldEvent_timestamp_decision_idx', 'rebuilt'],
    ]);
    const after = await indexDefs(db.admin);
    expect(after.ShieldEvent_timestamp_decision_idx!.valid).toBe(true);
    expect(after.ShieldEvent_timestamp_decision_idx!.oid).not.toBe(before.ShieldEvent_timestamp_decision_idx!.oid);
    for (const name of NAMES.filter((n) => n !== 'ShieldEvent_timestamp_decision_idx')) {
      expect(after[name], name).toEqual(before[name]);
    }
  }, 30_000);

  it('--check exits 1 and prints the statement for a missing index; skips the tables of modules not installed', async () => {
    await db.admin.query('DROP INDEX "GuardianFinding_open_severity_idx"; DROP TABLE "Backup"');
    const run = await execFileAsync('npx', ['tsx', 'src/db/indexes-cli.ts', '--check'], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: db.adminUrl },
      timeout: 60_000,
    }).then(
      (r) => ({ code: 0, stdout: r.stdout }),
      (err: { code: number; stdout: string }) => ({ code: err.code, stdout: err.stdout }),
    );
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(
      `GuardianFinding_open_severity_idx: MISSING\n  CREATE INDEX IF NOT EXISTS "GuardianFinding_open_severity_idx" ON "GuardianFinding"("severity") WHERE "status" IN ('OPEN');`,
    );
    expect(run.stdout).toContain('Backup_completed_idx: no table');
    expect(run.stdout).toContain('ProvisioningJob_live_idx: ok');
    // The migration file too applies without the optional table.
    await withClient(db.adminUrl, (c) => c.query(migrationSql()));
    expect((await indexDefs(db.admin)).GuardianFinding_open_severity_idx?.valid).toBe(true);
  }, 60_000);
});
