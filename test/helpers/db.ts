/**
 * A fresh PostgreSQL database per test file: created on the shared server,
 * migrated with the project's migrations, readable by the exporter's read-only
 * role, dropped afterwards.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { migrate } from '../../src/db/migrate.js';

/** Superuser connection to the shared server (trust auth on this machine and CI). */
export const ADMIN_URL = process.env.TEST_PG_ADMIN_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

const READONLY_SQL = path.join(import.meta.dirname, '..', '..', 'sql', 'readonly-role.sql');

/** A test's own database. */
export interface TestDatabase {
  name: string;
  /** Owner (superuser) URL: for seeding rows and changing the schema. */
  adminUrl: string;
  /** URL of the exporter's read-only role, as production runs it. */
  readerUrl: string;
  /** Pool on adminUrl for seeding; closed by drop(). */
  admin: pg.Pool;
  /** Re-runs sql/readonly-role.sql (after a table was created or dropped). */
  grantReader(): Promise<void>;
  drop(): Promise<void>;
}

function withDatabase(url: string, database: string, user?: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  if (user) {
    u.username = user;
    u.password = '';
  }
  return u.toString();
}

/** Creates and migrates a database named after `label` (plus a random suffix). */
export async function createTestDatabase(label: string, opts: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const name = `ops_t_${label.replace(/[^a-z0-9]/gi, '_').toLowerCase().slice(0, 30)}_${randomBytes(4).toString('hex')}`;
  const server = new pg.Client({ connectionString: ADMIN_URL });
  await server.connect();
  try {
    await server.query(`CREATE DATABASE "${name}"`);
  } finally {
    await server.end();
  }
  const adminUrl = withDatabase(ADMIN_URL, name);
  if (opts.migrate !== false) await migrate(adminUrl);
  const admin = new pg.Pool({ connectionString: adminUrl, max: 4 });
  // DROP DATABASE ... WITH (FORCE) terminates idle connections: not an error.
  admin.on('error', () => undefined);
  const sql = await readFile(READONLY_SQL, 'utf8');
  const grantReader = async () => {
    // Role settings are cluster-wide: parallel test files re-running the
    // script can collide ("tuple concurrently updated"); try again.
    for (let attempt = 1; ; attempt++) {
      try {
        await admin.query(sql);
        return;
      } catch (err) {
        if (attempt >= 10 || !/concurrently|duplicate key/i.test(String(err))) throw err;
        await new Promise((r) => setTimeout(r, 50 * attempt));
      }
    }
  };
  await grantReader();
  return {
    name,
    adminUrl,
    readerUrl: withDatabase(ADMIN_URL, name, 'ops_overview_reader'),
    admin,
    grantReader,
    async drop() {
      await admin.end();
      const c = new pg.Client({ connectionString: ADMIN_URL });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
