/**
 * The zero-setup demo's database: PGlite (PostgreSQL compiled to WebAssembly,
 * in-process), persisted under `.demo-data/`, migrated with the project's own
 * migrations, written by the simulator in-process and served to the exporter
 * over the PostgreSQL wire protocol (pglite-server.ts).
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { applyMigrations, MIGRATIONS_DIR, readMigrations, type MigrateResult } from '../db/migrate.js';
import type { DemoDb } from './demo-db.js';
import { startPgliteServer, type PgliteServer, type PgliteServerOptions } from './pglite-server.js';
import { SessionLock } from './session-lock.js';

/** Default data folder of the embedded database (git-ignored). */
export const DEFAULT_DEMO_DATA_DIR = path.join(import.meta.dirname, '..', '..', '.demo-data', 'pglite');

/** Options of {@link openEmbeddedDatabase}. */
export interface EmbeddedDatabaseOptions {
  /** Folder the database persists in; `null` keeps it in memory. Default {@link DEFAULT_DEMO_DATA_DIR}. */
  dataDir?: string | null;
  /** Migrations folder. Default the project's `prisma/migrations`. */
  migrationsDir?: string;
}

/** An open embedded database. */
export interface EmbeddedDatabase {
  /** The PGlite instance; use it only through {@link EmbeddedDatabase.db} or {@link EmbeddedDatabase.lock}. */
  pglite: PGlite;
  /** Guards PGlite's single backend session between in-process use and socket clients. */
  lock: SessionLock;
  /** The simulator's write path on this database. */
  db: DemoDb;
  /** What opening it migrated. */
  migrations: MigrateResult;
  /** Time to open (and initialise, on first use) the data folder, in milliseconds. */
  openMs: number;
  /** Serves the database on a local TCP port for `pg` clients (the exporter). */
  serve(options?: PgliteServerOptions): Promise<PgliteServer>;
  /** Stops every server started by {@link EmbeddedDatabase.serve} and closes PGlite. */
  close(): Promise<void>;
}

/**
 * Applies pending migrations to a PGlite database with the same
 * `_prisma_migrations` bookkeeping and checksums as `migrate()` on PostgreSQL.
 */
export async function migratePglite(pglite: PGlite, dir: string = MIGRATIONS_DIR): Promise<MigrateResult> {
  return applyMigrations(
    {
      query: async <R>(sql: string, params?: unknown[]) => ({ rows: (await pglite.query<R>(sql, params)).rows }),
      runScript: (sql) => pglite.transaction(async (tx) => {
        await tx.exec(sql);
      }),
    },
    await readMigrations(dir),
  );
}

/** A {@link DemoDb} on PGlite that takes the session lock for each statement. */
export function pgliteDemoDb(pglite: PGlite, lock: SessionLock): DemoDb {
  return {
    kind: 'pglite',
    async query<R>(sql: string, params: readonly unknown[] = []) {
      const res = await lock.run(() => pglite.query<R>(sql, params as unknown[]));
      return { rows: res.rows, rowCount: res.affectedRows ?? 0 };
    },
  };
}

/**
 * Opens (creating on first use) the embedded demo database and applies the
 * project's migrations. The first open of an empty folder runs initdb and
 * takes a few seconds; later opens are faster.
 */
export async function openEmbeddedDatabase(options: EmbeddedDatabaseOptions = {}): Promise<EmbeddedDatabase> {
  const dataDir = options.dataDir === undefined ? DEFAULT_DEMO_DATA_DIR : options.dataDir;
  if (dataDir) await mkdir(dataDir, { recursive: true });
  const started = performance.now();
  const pglite = await PGlite.create(dataDir ? { dataDir } : {});
  const openMs = performance.now() - started;
  const lock = new SessionLock();
  let migrations: MigrateResult;
  try {
    migrations = await lock.run(() => migratePglite(pglite, options.migrationsDir));
  } catch (err) {
    await pglite.close().catch(() => undefined);
    throw err;
  }
  const servers: PgliteServer[] = [];
  return {
    pglite,
    lock,
    db: pgliteDemoDb(pglite, lock),
    migrations,
    openMs,
    async serve(serverOptions) {
      const server = await startPgliteServer(pglite, lock, serverOptions);
      servers.push(server);
      return server;
    },
    async close() {
      await Promise.all(servers.splice(0).map((s) => s.close()));
      await lock.run(() => pglite.close());
    },
  };
}
