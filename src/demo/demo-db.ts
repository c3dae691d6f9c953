/**
 * The simulator's write path: the one small interface it needs from a
 * database (parameterised SQL), with an adapter for a `pg` pool (tests,
 * compose) and one for the embedded PGlite (see embedded-db.ts), and the
 * safety check that keeps fake rows out of a real platform's database.
 */
import type pg from 'pg';

/** Rows of one statement. */
export interface DemoQueryResult<R> {
  rows: R[];
  /** Rows inserted, updated or deleted, when the driver reports it. */
  rowCount: number;
}

/** What the simulator needs from a database: one parameterised statement at a time. */
export interface DemoDb {
  /** Which engine answers (for logs and for the few statements that differ). */
  readonly kind: 'postgres' | 'pglite';
  /**
   * Runs one statement with `$1..$n` parameters. Timestamps are passed as ISO
   * strings (UTC) so the result does not depend on the session's time zone.
   */
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<DemoQueryResult<R>>;
}

/**
 * A {@link DemoDb} on a `pg` pool (the pool stays the caller's to close).
 * Throws {@link NotADemoDatabaseError} unless the pool's database is
 * demo-marked (see {@link assertDemoDatabase}).
 */
export function pgDemoDb(pool: pg.Pool): DemoDb {
  // pg lets the connection string win over a separate `database` option.
  const { connectionString, database } = pool.options;
  assertDemoDatabase(connectionString ?? `postgresql://pool/${encodeURIComponent(database ?? '')}`);
  return {
    kind: 'postgres',
    async query<R>(sql: string, params: readonly unknown[] = []) {
      const res = await pool.query(sql, params as unknown[]);
      return { rows: res.rows as R[], rowCount: res.rowCount ?? 0 };
    },
  };
}

/** Error thrown by {@link assertDemoDatabase}. */
export class NotADemoDatabaseError extends Error {
  override readonly name = 'NotADemoDatabaseError';
}

/**
 * Whether `name` is marked as a demo database: one of its words (split on
 * `_`, `-` and `.`) is `demo`, in any case. `ops_demo`, `demo`, `mpanel-demo`,
 * `ops_t_demo_sim_1a2b` pass; `mpanel`, `demodata`, `prod_demonstration` do not.
 */
export function isDemoDatabaseName(name: string): boolean {
  return name.split(/[_.-]/).some((word) => word.toLowerCase() === 'demo');
}

/**
 * Refuses to let the simulator write to a database that is not explicitly a
 * demo one, so nobody loads fake nodes, jobs and WAF events into a real
 * platform by pointing DATABASE_URL at the wrong place.
 *
 * The rule: the URL's database name contains the word `demo` (see
 * {@link isDemoDatabaseName}). Any other URL, an unparseable one, or one without
 * a database name throws {@link NotADemoDatabaseError}. The embedded PGlite
 * database is always a demo database and needs no URL.
 */
export function assertDemoDatabase(url: string): void {
  let name: string;
  try {
    const u = new URL(url);
    if (u.protocol !== 'postgresql:' && u.protocol !== 'postgres:') throw new Error('not a postgresql: URL');
    name = decodeURIComponent(u.pathname.replace(/^\//, ''));
  } catch {
    throw new NotADemoDatabaseError(
      'the simulator needs a postgresql://… DATABASE_URL naming a demo database (e.g. postgresql://user@host:5432/ops_demo); this one cannot be parsed',
    );
  }
  if (!name) {
    throw new NotADemoDatabaseError(
      'the simulator writes fake platform data, so DATABASE_URL must name a demo database explicitly (e.g. …/ops_demo); this URL names no database',
    );
  }
  if (!isDemoDatabaseName(name)) {
    throw new NotADemoDatabaseError(
      `refusing to write simulated platform data into database "${name}": the simulator only writes to databases whose name contains the word "demo" (e.g. ops_demo, mpanel-demo), so a real platform is never filled with fake rows by mistake`,
    );
  }
}
