/**
 * A PostgreSQL cluster of a test's own (initdb in a temp dir, its own port),
 * so a test can stop, kill and restart PostgreSQL without touching the shared
 * server. We run as root: initdb and postgres run as the `postgres` user.
 */
import { execFile } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { migrate } from '../../src/db/migrate.js';
import type { TestDatabase } from './db.js';
import { freePort } from './ports.js';

const run = promisify(execFile);

/** PostgreSQL's binaries: TEST_PG_BIN, else Debian's newest /usr/lib/postgresql/<version>/bin. */
export const PG_BIN =
  process.env.TEST_PG_BIN ??
  (() => {
    try {
      const versions = readdirSync('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(a) - Number(b));
      return path.join('/usr/lib/postgresql', versions.at(-1) ?? '15', 'bin');
    } catch {
      return '/usr/lib/postgresql/15/bin';
    }
  })();

const READONLY_SQL = path.join(import.meta.dirname, '..', '..', 'sql', 'readonly-role.sql');

/** The exporter role's password in clusters started with `readerPassword`. */
export const READER_PASSWORD = 'Reader-Pw-4b1e9c';

/** Options of a test cluster. */
export interface PgClusterOptions {
  /** Make ops_overview_reader log in over TCP with a password (scram), everyone else trusted. */
  readerPassword?: boolean;
}

/** A running cluster of the test's own. */
export interface PgCluster {
  port: number;
  dataDir: string;
  /** Superuser URL of `database`. */
  adminUrl(database?: string): string;
  /** URL of the exporter's read-only role on `database` (with its password when the cluster has one). */
  readerUrl(database: string): string;
  /** Creates, migrates and grants a platform database (sql/readonly-role.sql). */
  createDatabase(name: string): Promise<void>;
  /** pg_ctl stop: `fast` disconnects sessions cleanly, `immediate` is a crash. */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  start(): Promise<void>;
  /** SIGSTOP / SIGCONT to the postmaster and its backends: a server that hangs. */
  pause(): void;
  resume(): void;
  /** Stops and removes everything. */
  destroy(): Promise<void>;
}

function asPostgres(cmd: string, args: string[]) {
  // Root may not run PostgreSQL; everyone else runs it as themselves.
  if (userInfo().uid === 0) return run('runuser', ['-u', 'postgres', '--', cmd, ...args]);
  return run(cmd, args);
}

/** The postmaster of the cluster in `dataDir` (postmaster.pid) and its children, by /proc. */
function clusterPids(dataDir: string): number[] {
  let postmaster: number;
  try {
    postmaster = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return [];
  }
  const children = readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return /^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${d}/status`, 'utf8'))?.[1] === String(postmaster);
      } catch {
        return false;
      }
    })
    .map(Number);
  return [postmaster, ...children];
}

/** Sends `signal` to the cluster's processes; one that exited meanwhile is skipped. */
function signalCluster(dataDir: string, signal: NodeJS.Signals): void {
  for (const pid of clusterPids(dataDir)) {
    try {
      process.kill(pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }
}

/** initdb + pg_ctl start on a free port; bounded by pg_ctl's -t. */
export async function startPgCluster(options: PgClusterOptions = {}): Promise<PgCluster> {
  const root = mkdtempSync(path.join(tmpdir(), 'ops-pg-'));
  const dataDir = path.join(root, 'data');
  if (userInfo().uid === 0) chownSync(root, Number((await run('id', ['-u', 'postgres'])).stdout.trim()), 0);
  await asPostgres(path.join(PG_BIN, 'initdb'), ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--no-instructions']);
  if (options.readerPassword) {
    const hba = path.join(dataDir, 'pg_hba.conf');
    writeFileSync(hba, `host all ops_overview_reader 127.0.0.1/32 scram-sha-256\n${readFileSync(hba, 'utf8')}`);
  }
  const port = await freePort();
  const pgCtl = path.join(PG_BIN, 'pg_ctl');
  const opts = `-p ${port} -k ${root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40`;
  const cluster: PgCluster = {
    port,
    dataDir,
    adminUrl: (database = 'postgres') => `postgresql://postgres@127.0.0.1:${port}/${database}`,
    readerUrl: (database) =>
      options.readerPassword
        ? `postgresql://ops_overview_reader:${READER_PASSWORD}@127.0.0.1:${port}/${database}`
        : `postgresql://ops_overview_reader@127.0.0.1:${port}/${database}`,
    async createDatabase(name) {
      const c = new pg.Client({ connectionString: cluster.adminUrl() });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE "${name}"`);
      } finally {
        await c.end();
      }
      await migrate(cluster.adminUrl(name));
      const admin = new pg.Client({ connectionString: cluster.adminUrl(name) });
      await admin.connect();
      try {
        await admin.query(readFileSync(READONLY_SQL, 'utf8'));
        if (options.readerPassword) await admin.query(`ALTER ROLE ops_overview_reader PASSWORD '${READER_PASSWORD}'`);
      } finally {
        await admin.end();
      }
    },
    async stop(mode = 'fast') {
      await asPostgres(pgCtl, ['-D', dataDir, '-m', mode, '-w', '-t', '20', 'stop']);
    },
    async start() {
      await asPostgres(pgCtl, ['-D', dataDir, '-o', opts, '-l', path.join(root, 'log'), '-w', '-t', '20', 'start']);
    },
    pause() {
      signalCluster(dataDir, 'SIGSTOP');
    },
    resume() {
      signalCluster(dataDir, 'SIGCONT');
    },
    async destroy() {
      cluster.resume();
      await cluster.stop('immediate').catch(() => undefined);
      rmSync(root, { recursive: true, force: true });
    },
  };
  await cluster.start();
  return cluster;
}

/** One session of pg_stat_activity. */
export interface SessionRow {
  state: string | null;
  query: string;
  /** Seconds since its current (or last) statement started. */
  seconds: number;
}

/**
 * Sessions of `applicationName` connected to `database`, seen from `adminUrl`
 * (any database of the same server).
 */
export async function sessions(adminUrl: string, database: string, applicationName = 'ops-overview'): Promise<SessionRow[]> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    const { rows } = await c.query<SessionRow>(
      `SELECT state, left(query, 200) AS query, COALESCE(EXTRACT(EPOCH FROM now() - query_start), 0)::float8 AS seconds
         FROM pg_stat_activity WHERE application_name = $1 AND datname = $2 AND pid <> pg_backend_pid()`,
      [applicationName, database],
    );
    return rows;
  } finally {
    await c.end();
  }
}

/**
 * A platform database on `cluster` in the shape of createTestDatabase()'s
 * (so createTestApp can use it); drop() only closes the admin pool, the
 * cluster's destroy() removes everything.
 */
export async function clusterDatabase(cluster: PgCluster, name: string): Promise<TestDatabase> {
  await cluster.createDatabase(name);
  const admin = new pg.Pool({ connectionString: cluster.adminUrl(name), max: 4 });
  // The cluster is stopped and restarted under this pool: its idle
  // connections die then, which must not crash the test process.
  admin.on('error', () => undefined);
  return {
    name,
    adminUrl: cluster.adminUrl(name),
    readerUrl: cluster.readerUrl(name),
    admin,
    async grantReader() {
      await admin.query(readFileSync(READONLY_SQL, 'utf8'));
    },
    async drop() {
      await admin.end();
    },
  };
}
