/**
 * What stands in front of a platform database in production, started by a
 * test on loopback: a hot-standby replica of a test cluster (pg_basebackup
 * -R), and PgBouncer in transaction pooling mode. Both run as `postgres`
 * when the test runs as root (neither may run as root).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { PG_BIN, type PgCluster } from './pg-cluster.js';
import { freePort } from './ports.js';

const run = promisify(execFile);

function asPostgres(cmd: string, args: string[]) {
  if (userInfo().uid === 0) return run('runuser', ['-u', 'postgres', '--', cmd, ...args]);
  return run(cmd, args);
}

async function postgresOwnedDir(prefix: string): Promise<string> {
  const root = mkdtempSync(path.join(tmpdir(), prefix));
  if (userInfo().uid === 0) chownSync(root, Number((await run('id', ['-u', 'postgres'])).stdout.trim()), 0);
  return root;
}

/** A running hot standby. */
export interface PgReplica {
  port: number;
  /** URL of `user` on `database` of the replica. */
  url(database: string, user?: string): string;
  /** Resolves once the replica has replayed everything the primary has written so far. */
  caughtUp(timeoutMs?: number): Promise<void>;
  destroy(): Promise<void>;
}

/** pg_basebackup -R of `primary` into a new data directory, started on a free port as a hot standby. */
export async function startReplica(primary: PgCluster): Promise<PgReplica> {
  const root = await postgresOwnedDir('ops-replica-');
  const dataDir = path.join(root, 'data');
  await asPostgres(path.join(PG_BIN, 'pg_basebackup'), [
    '-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres', '-D', dataDir, '-R', '-X', 'stream', '--no-sync', '--checkpoint=fast',
  ]);
  const port = await freePort();
  const pgCtl = path.join(PG_BIN, 'pg_ctl');
  const opts = `-p ${port} -k ${root} -c listen_addresses=127.0.0.1 -c fsync=off -c hot_standby=on -c max_connections=40`;
  await asPostgres(pgCtl, ['-D', dataDir, '-o', opts, '-l', path.join(root, 'log'), '-w', '-t', '30', 'start']);
  const url = (database: string, user = 'postgres') => `postgresql://${user}@127.0.0.1:${port}/${database}`;
  return {
    port,
    url,
    async caughtUp(timeoutMs = 20_000) {
      const p = new pg.Client({ connectionString: primary.adminUrl() });
      const r = new pg.Client({ connectionString: url('postgres') });
      await Promise.all([p.connect(), r.connect()]);
      try {
        const { rows } = await p.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
        const target = rows[0]!.lsn;
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const { rows: done } = await r.query<{ ok: boolean }>(
            'SELECT pg_is_in_recovery() AND pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok',
            [target],
          );
          if (done[0]!.ok) return;
          if (Date.now() > deadline) throw new Error(`replica did not replay up to ${target} within ${timeoutMs} ms`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      } finally {
        await Promise.all([p.end(), r.end()]);
      }
    },
    async destroy() {
      await asPostgres(pgCtl, ['-D', dataDir, '-m', 'immediate', '-w', '-t', '20', 'stop']).catch(() => undefined);
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** A running PgBouncer. */
export interface PgBouncer {
  port: number;
  /** URL of `user` on `database` through the pooler. */
  url(database: string, user?: string): string;
  /** The pooler's log so far. */
  log(): Promise<string>;
  destroy(): Promise<void>;
}

/** The pgbouncer binary: PATH, else Debian's /usr/sbin. */
export function pgbouncerBinary(): string {
  return existsSync('/usr/sbin/pgbouncer') ? '/usr/sbin/pgbouncer' : 'pgbouncer';
}

/** Options of startPgBouncer. */
export interface PgBouncerOptions {
  /** Server connections per (database, user) pair: 1 makes every client share one server session. */
  poolSize?: number;
  /** Users the pooler lets in (auth_type trust: the server authenticates). */
  users: string[];
}

/** PgBouncer in `pool_mode = transaction` in front of every database of the server at 127.0.0.1:`serverPort`. */
export async function startPgBouncer(serverPort: number, options: PgBouncerOptions): Promise<PgBouncer> {
  const dir = await postgresOwnedDir('ops-pgbouncer-');
  const port = await freePort();
  const ini = path.join(dir, 'pgbouncer.ini');
  const logFile = path.join(dir, 'pgbouncer.log');
  writeFileSync(path.join(dir, 'users.txt'), options.users.map((u) => `"${u}" ""`).join('\n') + '\n');
  writeFileSync(
    ini,
    `[databases]
* = host=127.0.0.1 port=${serverPort}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = trust
auth_file = ${path.join(dir, 'users.txt')}
pool_mode = transaction
default_pool_size = ${options.poolSize ?? 2}
max_client_conn = 200
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile = ${logFile}
pidfile = ${path.join(dir, 'pgbouncer.pid')}
`,
  );
  if (userInfo().uid === 0) {
    const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
    for (const f of ['pgbouncer.ini', 'users.txt']) chownSync(path.join(dir, f), uid, 0);
  }
  const cmd = userInfo().uid === 0 ? 'runuser' : pgbouncerBinary();
  const args = userInfo().uid === 0 ? ['-u', 'postgres', '--', pgbouncerBinary(), ini] : [ini];
  const child: ChildProcess = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const url = (database: string, user = 'postgres') => `postgresql://${user}@127.0.0.1:${port}/${database}`;
  // Ready once it accepts a login and forwards a query.
  const deadline = Date.now() + 15_000;
  for (;;) {
    const c = new pg.Client({ connectionString: url('postgres') });
    try {
      await c.connect();
      await c.query('SELECT 1');
      await c.end();
      break;
    } catch (err) {
      await c.end().catch(() => undefined);
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`pgbouncer did not start: ${(err as Error).message} ${stderr}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return {
    port,
    url,
    async log() {
      const { readFile } = await import('node:fs/promises');
      return readFile(logFile, 'utf8').catch(() => '');
    },
    async destroy() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
