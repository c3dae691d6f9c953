/**
 * Generated datasets, cached between runs: two PostgreSQL databases per scale
 * (the platform, and the same platform with a tenth of the shield history
 * for the history comparison) and the BullMQ queues in the bench Redis's RDB
 * file. A dataset is reused while its generator version and scale match and
 * it is younger than `maxAgeHours` (its timestamps are relative to when it was
 * generated, so an old one has emptied its 24 h window).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { migrate } from '../src/db/migrate.js';
import { GENERATOR_VERSION, loadTables, TABLES, type ScaleSpec } from './dataset.js';
import { generateQueues, queueName } from './queue-dataset.js';
import { pgQuery, type PgCluster, type RedisServer } from './services.js';

/** The exporter's role (sql/readonly-role.sql) and the naive implementation's. */
export const READER_ROLE = 'ops_overview_reader';
export const NAIVE_ROLE = 'ops_bench_naive';

const READONLY_SQL = path.join(import.meta.dirname, '..', 'sql', 'readonly-role.sql');

/** What a generated database says about itself (COMMENT ON DATABASE). */
export interface DatabaseManifest {
  generator: number;
  spec: ScaleSpec;
  anchorMs: number;
  shieldEvents: number;
  shieldWindow: number;
  /** Seconds the whole scale (both databases) took to load. */
  loadSeconds: number;
}

/** One database ready to measure. */
export interface BenchDatabase {
  name: string;
  adminUrl: string;
  readerUrl: string;
  naiveUrl: string;
  manifest: DatabaseManifest;
}

/** The scale's databases and how they came to be. */
export interface Datasets {
  main: BenchDatabase;
  history: BenchDatabase;
  reused: boolean;
  loadSeconds: number;
}

async function readManifest(cluster: PgCluster, db: string): Promise<DatabaseManifest | null> {
  const rows = await pgQuery<{ c: string | null }>(
    cluster.url('postgres'),
    `SELECT shobj_description(oid, 'pg_database') AS c FROM pg_database WHERE datname = $1`,
    [db],
  );
  try {
    return rows[0]?.c ? (JSON.parse(rows[0].c) as DatabaseManifest) : null;
  } catch {
    return null;
  }
}

function fresh(m: DatabaseManifest | null, spec: ScaleSpec, maxAgeHours: number): m is DatabaseManifest {
  return m !== null && m.generator === GENERATOR_VERSION && JSON.stringify(m.spec) === JSON.stringify(spec) && Date.now() - m.anchorMs < maxAgeHours * 3_600_000;
}

async function grantRoles(url: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(await readFile(READONLY_SQL, 'utf8'));
    await c.query(`DO $$ BEGIN CREATE ROLE ${NAIVE_ROLE} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`);
    await c.query(`GRANT CONNECT ON DATABASE "${(await c.query<{ d: string }>('SELECT current_database() AS d')).rows[0]?.d}" TO ${NAIVE_ROLE}`);
    await c.query(`GRANT USAGE ON SCHEMA public TO ${NAIVE_ROLE}`);
    await c.query(`GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${NAIVE_ROLE}`);
  } finally {
    await c.end();
  }
}

/**
 * Re-applies sql/readonly-role.sql as it is now (it may have changed since
 * the dataset was generated) after clearing the role's settings, then the
 * extra `name=value` settings a run tries (e.g. jit=off), so a proposed change
 * to the role script can be measured before it is made.
 */
export async function applyReaderRole(cluster: PgCluster, databases: readonly string[], extra: readonly string[]): Promise<void> {
  await pgQuery(cluster.url('postgres'), `ALTER ROLE ${READER_ROLE} RESET ALL`);
  for (const db of databases) await grantRoles(cluster.url(db));
  for (const setting of extra) {
    const m = /^([a-z_][a-z0-9_.]*)=([\w.-]+)$/i.exec(setting);
    if (!m) throw new Error(`--reader-setting must be name=value, got "${setting}"`);
    await pgQuery(cluster.url('postgres'), `ALTER ROLE ${READER_ROLE} SET ${m[1]} = ${pg.escapeLiteral(m[2] as string)}`);
  }
}

function benchDatabase(cluster: PgCluster, name: string, manifest: DatabaseManifest): BenchDatabase {
  return { name, adminUrl: cluster.url(name), readerUrl: cluster.url(name, READER_ROLE), naiveUrl: cluster.url(name, NAIVE_ROLE), manifest };
}

/** Returns the scale's databases, generating them when missing, stale or of another generator version. */
export async function ensureDatabases(cluster: PgCluster, spec: ScaleSpec, opts: { regenerate: boolean; maxAgeHours: number; log: (s: string) => void }): Promise<Datasets> {
  const mainName = `ops_bench_${spec.name}`;
  const histName = `ops_bench_${spec.name}_history`;
  const baseName = `ops_bench_${spec.name}_base`;
  const admin = cluster.url('postgres');
  const [m, h] = [await readManifest(cluster, mainName), await readManifest(cluster, histName)];
  if (!opts.regenerate && fresh(m, spec, opts.maxAgeHours) && fresh(h, spec, opts.maxAgeHours) && m.anchorMs === h.anchorMs) {
    opts.log(`reusing ${mainName} and ${histName} (generated ${((Date.now() - m.anchorMs) / 60_000).toFixed(0)} min ago)`);
    return { main: benchDatabase(cluster, mainName, m), history: benchDatabase(cluster, histName, h), reused: true, loadSeconds: m.loadSeconds };
  }
  const started = Date.now();
  const anchorMs = Math.floor(started / 1000) * 1000;
  for (const db of [mainName, histName, baseName]) await pgQuery(admin, `DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
  // Everything but the shield events once, then two copies that differ only in them.
  opts.log(`generating ${spec.name}: ${baseName}`);
  await pgQuery(admin, `CREATE DATABASE "${baseName}"`);
  await migrate(cluster.url(baseName));
  const base = new pg.Client({ connectionString: cluster.url(baseName) });
  await base.connect();
  try {
    await loadTables(base, { spec, anchorMs, tables: TABLES.filter((t) => t !== 'ShieldEvent'), log: opts.log });
  } finally {
    await base.end();
  }
  const shields = [
    { name: mainName, events: spec.shieldEvents, window: spec.shieldWindow },
    { name: histName, events: spec.historyShieldEvents, window: spec.historyShieldWindow },
  ];
  for (const s of shields) {
    await pgQuery(admin, `CREATE DATABASE "${s.name}" TEMPLATE "${baseName}" STRATEGY FILE_COPY`);
    opts.log(`generating ${s.name}: ${s.events.toLocaleString('en')} shield events`);
    const c = new pg.Client({ connectionString: cluster.url(s.name) });
    await c.connect();
    try {
      await loadTables(c, { spec, anchorMs, tables: ['ShieldEvent'], shield: s, log: opts.log });
    } finally {
      await c.end();
    }
    await grantRoles(cluster.url(s.name));
  }
  await pgQuery(admin, `DROP DATABASE "${baseName}"`);
  const loadSeconds = (Date.now() - started) / 1000;
  const manifests: DatabaseManifest[] = shields.map((s) => ({ generator: GENERATOR_VERSION, spec, anchorMs, shieldEvents: s.events, shieldWindow: s.window, loadSeconds }));
  for (const [i, s] of shields.entries()) {
    await pgQuery(admin, `COMMENT ON DATABASE "${s.name}" IS ${pg.escapeLiteral(JSON.stringify(manifests[i]))}`);
  }
  opts.log(`generated ${spec.name} databases in ${loadSeconds.toFixed(0)} s`);
  return {
    main: benchDatabase(cluster, mainName, manifests[0] as DatabaseManifest),
    history: benchDatabase(cluster, histName, manifests[1] as DatabaseManifest),
    reused: false,
    loadSeconds,
  };
}

/** The queue dataset as found or generated. */
export interface QueueDataset {
  prefix: string;
  names: string[];
  reused: boolean;
  loadSeconds: number;
  keys: number;
}

interface QueueManifest {
  generator: number;
  spec: ScaleSpec;
  anchorMs: number;
  loadSeconds: number;
}

/** Returns the scale's queues, loaded from the RDB file or generated (then saved to it). */
export async function ensureQueues(server: RedisServer, spec: ScaleSpec, opts: { regenerate: boolean; log: (s: string) => void }): Promise<QueueDataset> {
  const prefix = `opsbench-${spec.name}`;
  const names = Array.from({ length: spec.queues }, (_, i) => queueName(i));
  const client = new Redis(server.url, { maxRetriesPerRequest: null });
  try {
    const manifestKey = `opsbench:manifest:${spec.name}`;
    const raw = await client.get(manifestKey);
    const m = raw ? (JSON.parse(raw) as QueueManifest) : null;
    if (!opts.regenerate && m && m.generator === GENERATOR_VERSION && JSON.stringify(m.spec) === JSON.stringify(spec)) {
      opts.log(`reusing the ${spec.name} queues (${names.length} under ${prefix})`);
      return { prefix, names, reused: true, loadSeconds: m.loadSeconds, keys: await client.dbsize() };
    }
    const started = Date.now();
    // The bench's own server: nothing else lives in it.
    await client.flushall();
    opts.log(`generating ${spec.name} queues: ${spec.queueJobs.toLocaleString('en')} jobs in ${spec.queues} queues`);
    await generateQueues(server.url, prefix, spec, Math.floor(started / 1000) * 1000, opts.log);
    const loadSeconds = (Date.now() - started) / 1000;
    await client.set(manifestKey, JSON.stringify({ generator: GENERATOR_VERSION, spec, anchorMs: started, loadSeconds } satisfies QueueManifest));
    await server.save();
    opts.log(`generated the queues in ${loadSeconds.toFixed(0)} s`);
    return { prefix, names, reused: false, loadSeconds, keys: await client.dbsize() };
  } finally {
    client.disconnect();
  }
}
