/**
 * The benchmark's own PostgreSQL cluster and Redis server, kept under
 * bench/.cache/ so a generated dataset is reused between runs.
 *
 * Why not the shared services: pg_stat_statements (and auto_explain, which
 * logs the plan each exporter query really used) must be in
 * shared_preload_libraries, which the shared server lacks and cannot get
 * without a restart that would disturb other tests; and Redis's INFO
 * commandstats and CPU counters are per server, so the exporter's cost is only
 * its own on a server nobody else uses.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync, chownSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { freePort } from '../test/helpers/ports.js';

/** Where generated datasets and clusters live (git-ignored); OPS_BENCH_CACHE_DIR moves it. */
export const CACHE_DIR = process.env.OPS_BENCH_CACHE_DIR ?? path.join(import.meta.dirname, '.cache');

/** The newest PostgreSQL server binaries on this machine (Debian layout, else PATH via pg_config). */
export function findPgBin(): string {
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => existsSync(path.join(root, v, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return path.join(root, versions[0], 'bin');
  }
  const r = spawnSync('pg_config', ['--bindir'], { encoding: 'utf8' });
  if (r.status === 0 && existsSync(path.join(r.stdout.trim(), 'initdb'))) return r.stdout.trim();
  throw new Error('PostgreSQL server binaries (initdb, pg_ctl) not found: install the postgresql package');
}

/** PostgreSQL refuses to run as root: as root, run its tools as the postgres OS user. */
function asPgUser(cmd: string, args: string[]): [string, string[]] {
  if (process.getuid?.() === 0) return ['runuser', ['-u', 'postgres', '--', cmd, ...args]];
  return [cmd, args];
}

function pgOwner(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

/**
 * Server settings of the bench cluster. Durability is off (fsync, full page
 * writes, WAL level): the cluster is a cache that is regenerated if lost, and
 * none of it changes how a SELECT executes. Memory is what a platform's
 * primary on a small machine would have; the rest stays at the defaults.
 */
const PG_SETTINGS = `
# ops-overview benchmark cluster (bench/services.ts)
shared_preload_libraries = 'pg_stat_statements,auto_explain'
pg_stat_statements.max = 5000
pg_stat_statements.track = top
pg_stat_statements.track_utility = on
pg_stat_statements.track_planning = on
auto_explain.log_min_duration = -1
auto_explain.log_analyze = on
auto_explain.log_buffers = on
auto_explain.log_timing = on
auto_explain.log_format = text
listen_addresses = '127.0.0.1'
max_connections = 60
shared_buffers = 1GB
effective_cache_size = 8GB
maintenance_work_mem = 1GB
max_parallel_maintenance_workers = 2
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = minimal
max_wal_senders = 0
max_wal_size = 16GB
checkpoint_timeout = 30min
logging_collector = off
log_line_prefix = '%m [%p] %u@%d '
log_min_messages = warning
lc_messages = 'C'
timezone = 'UTC'
# Runs last minutes and nothing in them is due for autovacuum: a long nap keeps
# the launcher's per-database workers out of the server CPU counts.
autovacuum_naptime = 10min
`;

/** A running bench PostgreSQL cluster. */
export interface PgCluster {
  port: number;
  dataDir: string;
  logFile: string;
  /** Superuser URL of `database`. */
  url(database: string, user?: string): string;
  stop(): void;
}

/** Initialises (once) and starts the bench cluster on a free port. */
export async function startPg(log: (s: string) => void): Promise<PgCluster> {
  const bin = findPgBin();
  const version = path.basename(path.dirname(bin));
  const dirName = `pg${/^\d+$/.test(version) ? version : ''}`;
  let base = path.join(CACHE_DIR, dirName);
  mkdirSync(base, { recursive: true });
  // As root the cluster runs as the postgres OS user, which must reach the
  // cache (a checkout under a private home directory it cannot): else /tmp.
  if (process.getuid?.() === 0 && spawnSync('runuser', ['-u', 'postgres', '--', 'test', '-x', base]).status !== 0) {
    base = path.join(tmpdir(), `ops-overview-bench-${dirName}`);
    log(`the postgres user cannot reach ${CACHE_DIR}; the cluster lives in ${base}`);
  }
  const dataDir = path.join(base, 'data');
  const sockDir = path.join(base, 'sock');
  const logFile = path.join(base, 'server.log');
  const owner = pgOwner();
  mkdirSync(sockDir, { recursive: true });
  if (owner) {
    chownSync(base, owner.uid, owner.gid);
    chownSync(sockDir, owner.uid, owner.gid);
  }
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    log(`initdb ${dataDir}`);
    const [cmd, args] = asPgUser(path.join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync']);
    execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  }
  // The settings live in bench.conf, rewritten at every start so they follow this file.
  const conf = path.join(dataDir, 'postgresql.conf');
  const text = readFileSync(conf, 'utf8');
  if (!text.includes("include 'bench.conf'")) writeFileSync(conf, `${text.replace(/\n# ops-overview benchmark cluster[\s\S]*$/, '')}\ninclude 'bench.conf'\n`);
  writeFileSync(path.join(dataDir, 'bench.conf'), PG_SETTINGS);
  if (owner) chownSync(path.join(dataDir, 'bench.conf'), owner.uid, owner.gid);
  // A cluster left running by an interrupted run: stop it first.
  if (existsSync(path.join(dataDir, 'postmaster.pid'))) {
    const [cmd, args] = asPgUser(path.join(bin, 'pg_ctl'), ['-D', dataDir, '-m', 'fast', 'stop']);
    spawnSync(cmd, args, { stdio: 'ignore' });
  }
  const port = await freePort();
  if (owner && existsSync(logFile) && statSync(logFile).uid !== owner.uid) chownSync(logFile, owner.uid, owner.gid);
  const [cmd, args] = asPgUser(path.join(bin, 'pg_ctl'), ['-D', dataDir, '-l', logFile, '-w', '-t', '120', '-o', `-p ${port} -k ${sockDir}`, 'start']);
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  log(`postgres ${version} on 127.0.0.1:${port} (${dataDir})`);
  let stopped = false;
  return {
    port,
    dataDir,
    logFile,
    url: (database, user = 'postgres') => `postgresql://${user}@127.0.0.1:${port}/${database}`,
    stop() {
      if (stopped) return;
      stopped = true;
      const [c, a] = asPgUser(path.join(bin, 'pg_ctl'), ['-D', dataDir, '-m', 'fast', '-w', 'stop']);
      spawnSync(c, a, { stdio: 'ignore' });
    },
  };
}

/** Runs one statement on a fresh connection. */
export async function pgQuery<T extends pg.QueryResultRow = pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(sql, params)).rows;
  } finally {
    await c.end();
  }
}

/** A running bench Redis server. */
export interface RedisServer {
  port: number;
  url: string;
  /** Writes the dataset to disk so the next run loads it instead of regenerating. */
  save(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts a private redis-server whose RDB file is the cached queue dataset of
 * `scale`: it loads at start, is written only by save() right after
 * generation, and the server stops without saving, so jobs the steady-state
 * writer adds never reach the cache.
 */
export async function startRedis(scale: string, log: (s: string) => void): Promise<RedisServer> {
  const dir = path.join(CACHE_DIR, 'redis');
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const which = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (which.status !== 0) throw new Error('redis-server not found: install the redis-server package');
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--dbfilename', `${scale}.rdb`, '--logfile', path.join(dir, `${scale}.log`), '--protected-mode', 'yes'],
    { stdio: 'ignore', detached: false },
  );
  const url = `redis://127.0.0.1:${port}`;
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: null, retryStrategy: (n) => (n > 600 ? null : 100) });
  client.on('error', () => undefined);
  // Loading a large RDB takes seconds; PING answers LOADING until then.
  for (let i = 0; ; i++) {
    try {
      if (client.status === 'wait') await client.connect();
      await client.ping();
      break;
    } catch (err) {
      if (i > 1200) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  log(`redis-server on ${url} (${path.join(dir, `${scale}.rdb`)})`);
  return {
    port,
    url,
    async save() {
      await client.call('SAVE');
    },
    async stop() {
      client.disconnect();
      // SIGTERM shuts Redis down without saving (no save points are configured).
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => {
            child.kill('SIGKILL');
            resolve();
          }, 5000);
          child.once('exit', () => {
            clearTimeout(t);
            resolve();
          });
        });
      }
    },
  };
}
