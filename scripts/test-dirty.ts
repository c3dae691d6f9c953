/**
 * `npm run test:dirty [-- vitest args]`: runs `npm test` while the shared
 * Redis and PostgreSQL hold what other programs leave there on a real machine
 * (issue 15), then removes exactly what it added.
 *
 * - Redis (TEST_DIRTY_REDIS_URL, default 127.0.0.1:6379): 1,000,000 keys
 *   under a marker unique to the run: BullMQ-looking queues under `bull`
 *   (`bull:<marker>-qN:meta` hashes, wait lists, job hashes), cache strings
 *   and session hashes under other prefixes; and connections named like
 *   BullMQ workers in CLIENT LIST.
 * - PostgreSQL (TEST_DIRTY_PG_URL, default postgres@127.0.0.1:5432): a
 *   database named after the marker with a million rows (platform-like table
 *   names), and idle sessions in it under the exporter's application_name.
 *
 * Exits with the test run's status, or 1 when the clean-up did not remove
 * everything it added.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';

const REDIS_URL = process.env.TEST_DIRTY_REDIS_URL ?? 'redis://127.0.0.1:6379';
const PG_URL = process.env.TEST_DIRTY_PG_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const MARKER = `opsdirty${randomBytes(4).toString('hex')}`;

/** Foreign BullMQ-looking queues under `bull`, and their jobs. */
const FOREIGN_QUEUES = 200;
const JOBS_PER_QUEUE = 1_000;
/** Plain foreign keys under other prefixes (strings and hashes). */
const CACHE_KEYS = 500_000;
const SESSION_KEYS = 300_000 - FOREIGN_QUEUES * 3;
const TOTAL_KEYS = FOREIGN_QUEUES * (JOBS_PER_QUEUE + 3) + CACHE_KEYS + SESSION_KEYS;
/** Keys written or deleted by one script call. */
const BATCH = 10_000;
const PG_ROWS = 1_000_000;
const PG_SESSIONS = 5;
const WORKER_CONNECTIONS = 3;

const log = (msg: string) => console.log(`test:dirty: ${msg}`);

/**
 * One family of keys: its names are `${pattern}` with {i} replaced by 0..n-1,
 * written and deleted by the same generator, so clean-up removes exactly them.
 */
interface Family {
  name: string;
  count: number;
  /** The Lua expression of key i (`m` is the marker, `i` the index). */
  key: string;
  /** The Lua statement writing key `k` (index `i`). */
  write: string;
}

const q = `(m .. '-q' .. math.floor(i / ${JOBS_PER_QUEUE}))`;
const FAMILIES: Family[] = [
  {
    name: 'foreign BullMQ job hashes under bull',
    count: FOREIGN_QUEUES * JOBS_PER_QUEUE,
    key: `'bull:' .. ${q} .. ':' .. (i % ${JOBS_PER_QUEUE} + 1)`,
    write: `redis.call('HSET', k, 'name', 'foreign.job', 'data', '{"n":' .. i .. '}', 'timestamp', 1700000000000 + i, 'priority', 0)`,
  },
  {
    name: 'foreign BullMQ meta hashes (bull:<queue>:meta)',
    count: FOREIGN_QUEUES,
    key: `'bull:' .. m .. '-q' .. i .. ':meta'`,
    write: `redis.call('HSET', k, 'opts.maxLenEvents', 10000, 'version', 'bullmq:5.0.0')`,
  },
  {
    name: 'foreign BullMQ wait lists',
    count: FOREIGN_QUEUES,
    key: `'bull:' .. m .. '-q' .. i .. ':wait'`,
    write: `for j = 1, 20 do redis.call('RPUSH', k, j) end`,
  },
  {
    name: 'foreign BullMQ id counters',
    count: FOREIGN_QUEUES,
    key: `'bull:' .. m .. '-q' .. i .. ':id'`,
    write: `redis.call('SET', k, ${JOBS_PER_QUEUE})`,
  },
  { name: 'cache strings', count: CACHE_KEYS, key: `m .. ':cache:' .. i`, write: `redis.call('SET', k, string.rep('x', 32))` },
  { name: 'session hashes', count: SESSION_KEYS, key: `'sess:' .. m .. ':' .. i`, write: `redis.call('HSET', k, 'user', i, 'seen', 1700000000)` },
];

function script(f: Family, op: 'write' | 'delete'): string {
  const body = op === 'write' ? f.write : `n = n + redis.call('UNLINK', k)`;
  return `local m = ARGV[1]
local n = 0
for i = tonumber(ARGV[2]), tonumber(ARGV[3]) - 1 do
  local k = ${f.key}
  ${body}
end
return n`;
}

async function eachBatch(redis: Redis, op: 'write' | 'delete'): Promise<number> {
  let n = 0;
  for (const f of FAMILIES) {
    const lua = script(f, op);
    const sha = (await redis.script('LOAD', lua)) as string;
    for (let start = 0; start < f.count; start += BATCH) {
      n += Number(await redis.evalsha(sha, 0, MARKER, start, Math.min(start + BATCH, f.count)));
    }
  }
  return n;
}

/** Keys left that carry the marker (a full SCAN: slow on a big Redis, run once at the end). */
async function leftovers(redis: Redis): Promise<number> {
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `*${MARKER}*`, 'COUNT', 10_000);
    cursor = next;
    n += keys.length;
  } while (cursor !== '0');
  return n;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

interface Dirt {
  workers: Redis[];
  sessions: pg.Client[];
  redisFilled: boolean;
  pgCreated: boolean;
}

async function fill(redis: Redis, dirt: Dirt): Promise<void> {
  const started = performance.now();
  dirt.redisFilled = true;
  await eachBatch(redis, 'write');
  // Connections that look like BullMQ workers of the foreign queues in CLIENT LIST.
  for (let i = 0; i < WORKER_CONNECTIONS; i++) {
    const w = new Redis(REDIS_URL, { connectionName: `bull:${Buffer.from(`${MARKER}-q${i}`).toString('base64')}` });
    w.on('error', () => undefined);
    dirt.workers.push(w);
    await w.ping();
  }
  log(`Redis ${REDIS_URL}: ${TOTAL_KEYS} keys under marker ${MARKER} (${FOREIGN_QUEUES} BullMQ-looking queues under bull), ${WORKER_CONNECTIONS} worker-named connections, ${Math.round(performance.now() - started)} ms`);

  const t = performance.now();
  const server = new pg.Client({ connectionString: PG_URL });
  await server.connect();
  try {
    dirt.pgCreated = true;
    await server.query(`CREATE DATABASE "${MARKER}"`);
  } finally {
    await server.end();
  }
  const db = new pg.Client({ connectionString: withDatabase(PG_URL, MARKER) });
  await db.connect();
  try {
    // Tables named like the platform's, full of rows, in a database no test owns.
    await db.query(`CREATE TABLE "ProvisioningJob" (id bigint PRIMARY KEY, status text NOT NULL, "createdAt" timestamptz NOT NULL, payload text)`);
    await db.query(
      `INSERT INTO "ProvisioningJob" SELECT g, (ARRAY['PENDING','RUNNING','FAILED','COMPLETED'])[1 + g % 4], now() - g * interval '1 second', repeat('p', 64)
         FROM generate_series(1, $1) g`,
      [PG_ROWS],
    );
    await db.query(`CREATE TABLE "CoreNode" AS SELECT g AS id, 'node-' || g AS name FROM generate_series(1, 1000) g`);
    await db.query('ANALYZE');
  } finally {
    await db.end();
  }
  // Idle sessions under the exporter's application_name in a database that is not the test's.
  for (let i = 0; i < PG_SESSIONS; i++) {
    const c = new pg.Client({ connectionString: withDatabase(PG_URL, MARKER), application_name: 'ops-overview' });
    c.on('error', () => undefined);
    await c.connect();
    dirt.sessions.push(c);
  }
  log(`PostgreSQL: database ${MARKER} with ${PG_ROWS} rows and ${PG_SESSIONS} idle 'ops-overview' sessions, ${Math.round(performance.now() - t)} ms`);
}

/** Removes what fill() added; true when nothing of it is left. */
async function clean(redis: Redis, dirt: Dirt): Promise<boolean> {
  let ok = true;
  for (const w of dirt.workers) w.disconnect();
  await Promise.all(dirt.sessions.map((c) => c.end().catch(() => undefined)));
  if (dirt.redisFilled) {
    const removed = await eachBatch(redis, 'delete');
    const left = await leftovers(redis);
    log(`Redis: removed ${removed} keys, ${left} left under ${MARKER}`);
    if (left !== 0) ok = false;
  }
  if (dirt.pgCreated) {
    const server = new pg.Client({ connectionString: PG_URL });
    await server.connect();
    try {
      await server.query(`DROP DATABASE IF EXISTS "${MARKER}" WITH (FORCE)`);
      const left = (await server.query('SELECT count(*)::int AS n FROM pg_database WHERE datname = $1', [MARKER])).rows[0].n as number;
      log(`PostgreSQL: dropped database ${MARKER}${left ? ' (still there!)' : ''}`);
      if (left !== 0) ok = false;
    } finally {
      await server.end();
    }
  }
  return ok;
}

function runTests(args: string[]): { done: Promise<number>; stop: (signal: NodeJS.Signals) => void } {
  const child = spawn('npm', ['test', '--', ...args], { stdio: 'inherit' });
  return {
    done: new Promise((resolve) => {
      child.once('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
      child.once('error', () => resolve(1));
    }),
    stop: (signal) => child.kill(signal),
  };
}

async function main(): Promise<number> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 3 });
  const dirt: Dirt = { workers: [], sessions: [], redisFilled: false, pgCreated: false };
  let status = 1;
  let stopTests: ((signal: NodeJS.Signals) => void) | undefined;
  let stopped = false;
  const onSignal = (signal: NodeJS.Signals) => {
    log(`${signal}: stopping the tests, then cleaning up`);
    stopped = true;
    stopTests?.(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await fill(redis, dirt);
    if (stopped) return 1;
    const run = runTests(process.argv.slice(2));
    stopTests = run.stop;
    status = await run.done;
  } catch (err) {
    console.error('test:dirty:', err);
    status = 1;
  } finally {
    try {
      if (!(await clean(redis, dirt))) status = status || 1;
    } catch (err) {
      console.error('test:dirty: clean-up failed:', err);
      status = status || 1;
    }
    redis.disconnect();
  }
  return status;
}

process.exitCode = await main();
