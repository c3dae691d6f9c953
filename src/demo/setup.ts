/**
 * One-shot preparation of a PostgreSQL demo database (compose's `setup`
 * service, or by hand): migrate, create the exporter's read-only role, seed.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { migrate, type MigrateResult } from '../db/migrate.js';
import { assertDemoDatabase, pgDemoDb } from './demo-db.js';
import { seed, type SeedOptions, type SeedResult } from './seed.js';

/** The exporter's read-only role script (sql/readonly-role.sql). */
export const READONLY_ROLE_SQL = path.join(import.meta.dirname, '..', '..', 'sql', 'readonly-role.sql');

/** Options of {@link setupDemoDatabase}. */
export interface SetupOptions {
  /** Password to give the `ops_overview_reader` role; absent leaves it without one (no password login). */
  readerPassword?: string;
  /** Seed the platform (history only into empty tables). Default true. */
  seed?: boolean;
  seedOptions?: SeedOptions;
  /** Time the seed is written as of. Default now. */
  now?: Date;
}

/** What {@link setupDemoDatabase} did. */
export interface SetupResult {
  migrations: MigrateResult;
  seeded: SeedResult | null;
}

/**
 * Prepares the demo database at `databaseUrl` (its owner's URL; it must be
 * demo-marked, see assertDemoDatabase): applies the migrations, runs
 * sql/readonly-role.sql, sets the reader's password and seeds the platform.
 * Safe to run again.
 */
export async function setupDemoDatabase(databaseUrl: string, options: SetupOptions = {}): Promise<SetupResult> {
  assertDemoDatabase(databaseUrl);
  const migrations = await migrate(databaseUrl);
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2, application_name: 'ops-overview-demo-setup' });
  try {
    const roleSql = await readFile(READONLY_ROLE_SQL, 'utf8');
    await pool.query(roleSql);
    if (options.readerPassword) {
      // ALTER ROLE takes no bind parameters: let the server quote the literal.
      const { rows } = await pool.query<{ sql: string }>("SELECT format('ALTER ROLE ops_overview_reader PASSWORD %L', $1::text) AS sql", [options.readerPassword]);
      await pool.query(rows[0]!.sql);
    }
    const seeded = options.seed === false ? null : await seed(pgDemoDb(pool), options.now ?? new Date(), options.seedOptions);
    return { migrations, seeded };
  } finally {
    await pool.end();
  }
}
