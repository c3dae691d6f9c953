/**
 * The benchmark's platform dataset, generated in SQL with generate_series.
 *
 * Deterministic: every column is a function of the row number g (Weyl-style
 * `g * multiplier mod prime` sequences stand in for randomness) and of the
 * anchor instant the dataset is generated at; two datasets of one scale and
 * anchor are identical. Timestamps are spaced evenly backwards from the anchor,
 * so the counts that matter are exact by construction: ShieldEvent has exactly
 * `shieldWindow` rows in [anchor - 24 h, anchor), and so on (expectedCounts()).
 *
 * Loading drops the tables' indexes and constraints, inserts, and recreates
 * them exactly as the migrations defined them (pg_get_indexdef), which is
 * several times faster than inserting into indexed tables.
 *
 * Every table is vacuumed (all-visible). ProvisioningJob keeps autovacuum
 * off: each run starts with prepareRecentJobs(), which leaves it as a
 * production table is between two autovacuum runs for what the exporter
 * reads (its recent pages not all-visible), the same at every run.
 */
import pg from 'pg';

/** Names of the scales. */
export type ScaleName = 'tiny' | 'small' | 'large' | 'xlarge';

/** How big one generated platform is. */
export interface ScaleSpec {
  name: ScaleName;
  /** ShieldEvent rows in all, of which `shieldWindow` in the last 24 h before the anchor. */
  shieldEvents: number;
  shieldWindow: number;
  /** ShieldEvent rows (and window) of the history-comparison database. */
  historyShieldEvents: number;
  historyShieldWindow: number;
  provisioningJobs: number;
  /** Newest jobs that are live (PENDING, RUNNING, DELAYED); old stuck ones come on top. */
  liveJobs: number;
  /** Old jobs left RUNNING (stuck) and with an unknown status. */
  stuckJobs: number;
  unknownStatusJobs: number;
  /** New provisioning jobs a day (spacing of createdAt). */
  jobsPerDay: number;
  backups: number;
  findings: number;
  policies: number;
  coreNodes: number;
  /** BullMQ queues and the jobs waiting in them in all. */
  queues: number;
  queueJobs: number;
  /** Worker connections (named as BullMQ names them). */
  workers: number;
}

/** platform-schema.md's large platform. */
const LARGE: ScaleSpec = {
  name: 'large',
  shieldEvents: 30_000_000,
  shieldWindow: 10_000_000,
  historyShieldEvents: 3_000_000,
  historyShieldWindow: 1_000_000,
  provisioningJobs: 5_000_000,
  liveJobs: 300,
  stuckJobs: 20,
  unknownStatusJobs: 3,
  jobsPerDay: 50_000,
  backups: 1_000_000,
  findings: 200_000,
  policies: 2_000,
  coreNodes: 500,
  queues: 30,
  queueJobs: 1_000_000,
  workers: 40,
};

/**
 * The scales: large is platform-schema.md's large platform; xlarge is issue
 * 12's "ten times the platform" (100 M shield events, 30 M in 24 h, 20 M
 * jobs at four times large's daily rate); its other tables and its queues
 * stay large's, so what grows is what the exporter's statements scan.
 */
export const SCALES: Record<ScaleName, ScaleSpec> = {
  tiny: {
    name: 'tiny',
    shieldEvents: 3_000,
    shieldWindow: 1_000,
    historyShieldEvents: 300,
    historyShieldWindow: 100,
    provisioningJobs: 2_000,
    liveJobs: 30,
    stuckJobs: 5,
    unknownStatusJobs: 2,
    jobsPerDay: 1_000,
    backups: 200,
    findings: 100,
    policies: 10,
    coreNodes: 12,
    queues: 3,
    queueJobs: 60,
    workers: 4,
  },
  small: {
    name: 'small',
    shieldEvents: 300_000,
    shieldWindow: 100_000,
    historyShieldEvents: 30_000,
    historyShieldWindow: 10_000,
    provisioningJobs: 100_000,
    liveJobs: 300,
    stuckJobs: 20,
    unknownStatusJobs: 3,
    jobsPerDay: 5_000,
    backups: 10_000,
    findings: 2_000,
    policies: 200,
    coreNodes: 50,
    queues: 30,
    queueJobs: 10_000,
    workers: 40,
  },
  large: LARGE,
  xlarge: {
    ...LARGE,
    name: 'xlarge',
    shieldEvents: 100_000_000,
    shieldWindow: 30_000_000,
    historyShieldEvents: 10_000_000,
    historyShieldWindow: 3_000_000,
    provisioningJobs: 20_000_000,
    jobsPerDay: 200_000,
  },
};

/** Bumped whenever the generated data changes: a cached dataset of another version is regenerated. */
export const GENERATOR_VERSION = 4;

const DAY_MS = 86_400_000;
const YEAR_MS = 365 * DAY_MS;

/** Fraction of failed jobs (per mille) among finished ones; of backups. */
const JOB_FAILED_PER_MILLE = 30;
const JOB_CANCELLED_PER_MILLE = 10;
const BACKUP_FAILED_PER_MILLE = 40;
const BACKUP_RUNNING_NEWEST = 3;

/** The platform tables, in load order. */
export const TABLES = ['CoreNode', 'ShieldPolicy', 'GuardianFinding', 'Backup', 'ProvisioningJob', 'ShieldEvent'] as const;
export type TableName = (typeof TABLES)[number];

/** What a generated dataset holds; the smoke test checks the database against it. */
export interface ExpectedCounts {
  rows: Record<TableName, number>;
  /** ShieldEvent rows with anchor - 24 h <= timestamp < anchor. */
  shieldWindow: number;
  /** Non-terminal ProvisioningJob rows (live + stuck + unknown status). */
  liveJobs: number;
  /** FAILED jobs created in [anchor - 24 h, anchor). */
  failedJobs24h: number;
  openFindings: number;
}

/**
 * `mix(g, m)`: a value in 0..999 for row g, evenly spread; different
 * multipliers give independent-looking columns. Same arithmetic in SQL (mixSql).
 */
export function mix(g: number, m: number): number {
  return Number(((BigInt(g) * BigInt(m)) % 1_000_003n) % 1000n);
}
function mixSql(g: string, m: number): string {
  return `((${g}::bigint * ${m}) % 1000003 % 1000)`;
}
const M1 = 7919;
const M2 = 104_729;
const M3 = 1_299_709;
const M4 = 15_485_863;

/** Expected counts of a generated dataset with `shieldEvents`/`shieldWindow` (pure; loops over jobs). */
export function expectedCounts(spec: ScaleSpec, shield: { events: number; window: number }): ExpectedCounts {
  const finished = spec.provisioningJobs - spec.liveJobs;
  const step = stuckStep(spec);
  let failedJobs24h = 0;
  const perDay = Math.min(spec.jobsPerDay, spec.provisioningJobs);
  for (let g = spec.provisioningJobs - perDay + 1; g <= finished; g++) {
    if (g >= 1 && jobStatus(spec, g) === 'FAILED') failedJobs24h++;
  }
  let openFindings = 0;
  for (let g = 1; g <= spec.findings; g++) if (mix(g, M2) < 50) openFindings++;
  return {
    rows: {
      CoreNode: spec.coreNodes,
      ShieldPolicy: spec.policies,
      GuardianFinding: spec.findings,
      Backup: spec.backups,
      ProvisioningJob: spec.provisioningJobs,
      ShieldEvent: shield.events,
    },
    shieldWindow: shield.window,
    liveJobs: spec.liveJobs + Math.floor(finished / step) + spec.unknownStatusJobs,
    failedJobs24h,
    openFindings,
  };
}

function stuckStep(spec: ScaleSpec): number {
  return Math.max(2, Math.floor((spec.provisioningJobs - spec.liveJobs) / spec.stuckJobs));
}

/** Status of job g, the same rule as the SQL (for expectedCounts). */
function jobStatus(spec: ScaleSpec, g: number): string {
  const finished = spec.provisioningJobs - spec.liveJobs;
  const step = stuckStep(spec);
  if (g > finished) return 'LIVE';
  if (g % step === 0) return 'RUNNING';
  if (g % step === 1 && g < spec.unknownStatusJobs * step) return 'RETRYING';
  const u = mix(g, M3);
  if (u < JOB_FAILED_PER_MILLE) return 'FAILED';
  if (u < JOB_FAILED_PER_MILLE + JOB_CANCELLED_PER_MILLE) return 'CANCELLED';
  return 'COMPLETED';
}

/** An instant as a SQL timestamp(3) expression in UTC (Prisma's storage convention). */
function tsSql(msExpr: string): string {
  return `(to_timestamp((${msExpr})::double precision / 1000) AT TIME ZONE 'UTC')::timestamp(3)`;
}

/** Statements that fill one table; `range` limits the rows (for batching big tables). */
function fillSql(table: TableName, spec: ScaleSpec, anchorMs: number, shield: { events: number; window: number }, from: number, to: number): string {
  const g = 'g';
  const series = `generate_series(${from}, ${to}) AS ${g}`;
  switch (table) {
    case 'CoreNode': {
      const named = ['SRV1-WEB', 'MAIL-CORE', 'DNS-CORE', 'CLOUD-CORE', 'MIGRAGUARD-QUANTUM', 'DB-CORE', 'MPANEL-CORE', 'VOIP-CORE'];
      const roles = ['WEB', 'MAIL', 'DNS', 'CLOUD', 'SECURITY', 'DATABASE', 'PANEL', 'VOIP'];
      return `
        INSERT INTO "CoreNode" ("id", "hostname", "role", "status", "metrics", "lastMetricsAt", "createdAt", "updatedAt")
        SELECT 'node-' || lpad(g::text, 5, '0'),
               CASE WHEN g <= ${named.length} THEN (ARRAY[${named.map((n) => `'${n}'`).join(',')}])[g] ELSE 'NODE-' || lpad(g::text, 5, '0') END,
               CASE WHEN ${mixSql(g, M4)} < 5 THEN NULL ELSE (ARRAY[${roles.map((r) => `'${r}'`).join(',')}])[1 + (g - 1) % ${roles.length}] END,
               CASE WHEN ${mixSql(g, M1)} < 900 THEN 'ONLINE' WHEN ${mixSql(g, M1)} < 950 THEN 'DEGRADED'
                    WHEN ${mixSql(g, M1)} < 980 THEN 'MAINTENANCE' WHEN ${mixSql(g, M1)} < 995 THEN 'OFFLINE' ELSE NULL END,
               jsonb_build_object('cpuPercent', ${mixSql(g, M2)} / 10.0, 'ramPercent', ${mixSql(g, M3)} / 10.0, 'diskPercent', ${mixSql(g, M4)} / 10.0),
               ${tsSql(`${anchorMs} - ${mixSql(g, M2)} * 60`)},
               ${tsSql(`${anchorMs} - ${YEAR_MS}`)},
               ${tsSql(`${anchorMs} - ${mixSql(g, M2)} * 60`)}
          FROM ${series}`;
    }
    case 'ShieldPolicy':
      return `
        INSERT INTO "ShieldPolicy" ("id", "name", "mode", "tenantId", "createdAt", "updatedAt")
        SELECT 'pol-' || lpad(g::text, 6, '0'), 'policy ' || g,
               CASE WHEN ${mixSql(g, M1)} < 700 THEN 'ENFORCE' WHEN ${mixSql(g, M1)} < 900 THEN 'MONITOR'
                    WHEN ${mixSql(g, M1)} < 990 THEN 'DISABLED' ELSE NULL END,
               CASE WHEN g % 10 = 0 THEN NULL ELSE 'ten-' || (g % 5000) END,
               ${tsSql(`${anchorMs} - ${YEAR_MS} + g * 1000`)}, ${tsSql(`${anchorMs} - ${DAY_MS} + g * 1000`)}
          FROM ${series}`;
    case 'GuardianFinding':
      return `
        INSERT INTO "GuardianFinding" ("id", "severity", "status", "title", "nodeId", "tenantId", "createdAt", "resolvedAt")
        SELECT 'fnd-' || lpad(g::text, 8, '0'),
               CASE WHEN ${mixSql(g, M1)} < 30 THEN 'CRITICAL' WHEN ${mixSql(g, M1)} < 150 THEN 'HIGH' WHEN ${mixSql(g, M1)} < 450 THEN 'MEDIUM'
                    WHEN ${mixSql(g, M1)} < 800 THEN 'LOW' WHEN ${mixSql(g, M1)} < 990 THEN 'INFO' ELSE NULL END,
               CASE WHEN ${mixSql(g, M2)} < 50 THEN 'OPEN' WHEN ${mixSql(g, M2)} < 100 THEN 'ACKNOWLEDGED' ELSE 'RESOLVED' END,
               'finding ' || g, 'node-' || lpad((1 + g % ${spec.coreNodes})::text, 5, '0'), 'ten-' || (g % 5000),
               ${tsSql(`${anchorMs} - (${spec.findings} - g + 0.5) * ${YEAR_MS / spec.findings}`)},
               CASE WHEN ${mixSql(g, M2)} >= 100 THEN ${tsSql(`${anchorMs} - (${spec.findings} - g + 0.5) * ${YEAR_MS / spec.findings} + 86400000`)} END
          FROM ${series}`;
    case 'Backup': {
      const spacing = YEAR_MS / spec.backups;
      return `
        INSERT INTO "Backup" ("id", "resourceType", "resourceId", "status", "startedAt", "completedAt", "sizeBytes")
        SELECT 'bkp-' || lpad(g::text, 8, '0'), rt, 'res-' || (g % 997),
               st, ${tsSql(`${anchorMs} - (${spec.backups} - g + 0.5) * ${spacing}`)},
               CASE WHEN st IN ('COMPLETED', 'FAILED') THEN ${tsSql(`${anchorMs} - (${spec.backups} - g + 0.5) * ${spacing} + 60000 + ${mixSql(g, M3)} * 3000`)} END,
               CASE WHEN st = 'COMPLETED' THEN (${mixSql(g, M4)} + 1)::bigint * 1048576 END
          FROM ${series}
          CROSS JOIN LATERAL (SELECT
            CASE WHEN ${mixSql(g, M1)} < 100 THEN 'DB_CORE' WHEN ${mixSql(g, M1)} < 200 THEN 'MPANEL_CORE' WHEN ${mixSql(g, M1)} < 800 THEN 'CLOUD_POD'
                 WHEN ${mixSql(g, M1)} < 900 THEN 'MAIL_STORE' WHEN ${mixSql(g, M1)} < 950 THEN 'DNS_ZONE' ELSE 'WEB_FILES' END AS rt,
            CASE WHEN g > ${spec.backups - BACKUP_RUNNING_NEWEST} THEN 'RUNNING' WHEN ${mixSql(g, M2)} < ${BACKUP_FAILED_PER_MILLE} THEN 'FAILED' ELSE 'COMPLETED' END AS st) x`;
    }
    case 'ProvisioningJob': {
      const finished = spec.provisioningJobs - spec.liveJobs;
      const step = stuckStep(spec);
      const spacing = DAY_MS / spec.jobsPerDay;
      const types = ['hosting', 'dns', 'mail', 'ssl', 'backup', 'cloudpod'];
      const resourceTypes = ['WEBSITE', 'DNS_ZONE', 'MAILBOX', 'CERTIFICATE', 'BACKUP', 'CLOUD_POD'];
      const actions = ['create', 'update', 'delete', 'sync'];
      return `
        INSERT INTO "ProvisioningJob" ("id", "type", "action", "resourceType", "resourceId", "tenantId", "status", "errorMessage",
                                       "attempts", "createdAt", "startedAt", "finishedAt", "updatedAt")
        SELECT 'job-' || lpad(g::text, 9, '0'), (ARRAY[${types.map((t) => `'${t}'`).join(',')}])[1 + t],
               (ARRAY[${types.map((t) => `'${t}'`).join(',')}])[1 + t] || '.' || (ARRAY[${actions.map((a) => `'${a}'`).join(',')}])[1 + ${mixSql(g, M2)} % ${actions.length}],
               (ARRAY[${resourceTypes.map((t) => `'${t}'`).join(',')}])[1 + t],
               'res-' || g, 'ten-' || (g % 5000), st,
               CASE WHEN st = 'FAILED' THEN 'node ' || (g % 500) || ' did not answer within 30000 ms (attempt ' || (1 + g % 3) || ')' END,
               CASE WHEN st = 'FAILED' THEN 3 WHEN st = 'PENDING' THEN 0 ELSE 1 END,
               ${tsSql('created')},
               CASE WHEN st NOT IN ('PENDING', 'DELAYED') THEN ${tsSql(`created + 500 + ${mixSql(g, M4)} * 10`)} END,
               CASE WHEN st IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN ${tsSql(`created + 5000 + ${mixSql(g, M4)} * 60`)} END,
               ${tsSql(`created + CASE WHEN st IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN 5000 + ${mixSql(g, M4)} * 60 ELSE 0 END`)}
          FROM ${series}
          CROSS JOIN LATERAL (SELECT
            ${mixSql(g, M1)} % ${types.length} AS t,
            ${anchorMs} - (${spec.provisioningJobs} - g + 0.5) * ${spacing} AS created,
            CASE WHEN g > ${finished} THEN (CASE WHEN ${mixSql(g, M3)} < 400 THEN 'PENDING' WHEN ${mixSql(g, M3)} < 900 THEN 'RUNNING' ELSE 'DELAYED' END)
                 WHEN g % ${step} = 0 THEN 'RUNNING'
                 WHEN g % ${step} = 1 AND g < ${spec.unknownStatusJobs * step} THEN 'RETRYING'
                 WHEN ${mixSql(g, M3)} < ${JOB_FAILED_PER_MILLE} THEN 'FAILED'
                 WHEN ${mixSql(g, M3)} < ${JOB_FAILED_PER_MILLE + JOB_CANCELLED_PER_MILLE} THEN 'CANCELLED'
                 ELSE 'COMPLETED' END AS st) x`;
    }
    case 'ShieldEvent': {
      // Evenly spaced: `window` rows in the last 24 h, the same density before.
      const spacing = DAY_MS / shield.window;
      const paths = ['/', '/login', '/wp-login.php', '/api/v1/sites', '/xmlrpc.php', '/admin', '/cart', '/.env'];
      return `
        INSERT INTO "ShieldEvent" ("id", "timestamp", "decision", "policyId", "tenantId", "ip", "path")
        SELECT g, ${tsSql(`${anchorMs} - (${shield.events} - g + 0.5) * ${spacing}`)},
               CASE WHEN d < 800 THEN 'ALLOW' WHEN d < 920 THEN 'BLOCK' WHEN d < 970 THEN 'CHALLENGE'
                    WHEN d < 995 THEN 'RATE_LIMITED' WHEN d < 998 THEN NULL ELSE 'QUARANTINE' END,
               'pol-' || lpad((1 + g % ${spec.policies})::text, 6, '0'), 'ten-' || (g % 5000),
               (${mixSql(g, M2)} % 223 + 1) || '.' || (g % 256) || '.' || (${mixSql(g, M3)} % 256) || '.' || (${mixSql(g, M4)} % 254 + 1),
               (ARRAY[${paths.map((p) => `'${p}'`).join(',')}])[1 + ${mixSql(g, M3)} % ${paths.length}]
          FROM ${series}
          CROSS JOIN LATERAL (SELECT ${mixSql(g, M1)} AS d) x`;
    }
  }
}

/** A table's indexes and constraints, as the migrations created them. */
interface TableDdl {
  constraints: Array<{ name: string; def: string }>;
  indexes: Array<{ name: string; def: string }>;
}

async function tableDdl(client: pg.ClientBase, table: TableName): Promise<TableDdl> {
  const constraints = (
    await client.query<{ name: string; def: string }>(
      `SELECT conname AS name, pg_get_constraintdef(oid) AS def FROM pg_constraint
        WHERE conrelid = format('public.%I', $1::text)::regclass AND contype IN ('p', 'u') ORDER BY conname`,
      [table],
    )
  ).rows;
  const indexes = (
    await client.query<{ name: string; def: string }>(
      `SELECT i.relname AS name, pg_get_indexdef(i.oid) AS def
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
        WHERE x.indrelid = format('public.%I', $1::text)::regclass
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
        ORDER BY i.relname`,
      [table],
    )
  ).rows;
  return { constraints, indexes };
}

async function dropDdl(client: pg.ClientBase, table: TableName, ddl: TableDdl): Promise<void> {
  for (const i of ddl.indexes) await client.query(`DROP INDEX "${i.name}"`);
  for (const c of ddl.constraints) await client.query(`ALTER TABLE "${table}" DROP CONSTRAINT "${c.name}"`);
}

async function createDdl(client: pg.ClientBase, table: TableName, ddl: TableDdl): Promise<void> {
  for (const c of ddl.constraints) await client.query(`ALTER TABLE "${table}" ADD CONSTRAINT "${c.name}" ${c.def}`);
  for (const i of ddl.indexes) await client.query(i.def);
}

/** Rows inserted per statement: bounds the memory and shows progress. */
const BATCH_ROWS = 5_000_000;

/** Options of a load. */
export interface LoadOptions {
  spec: ScaleSpec;
  /** Epoch ms every generated timestamp is relative to. */
  anchorMs: number;
  tables: readonly TableName[];
  /** ShieldEvent rows and window (the main or the history database). */
  shield?: { events: number; window: number };
  log?: (s: string) => void;
}

/**
 * Loads `tables` into a migrated, empty database: drops their indexes and
 * constraints, inserts, recreates them as they were, and VACUUM ANALYZEs (so
 * index-only scans find an up-to-date visibility map, as autovacuum would
 * leave a production table).
 */
export async function loadTables(client: pg.ClientBase, options: LoadOptions): Promise<void> {
  const { spec, anchorMs } = options;
  const shield = options.shield ?? { events: spec.shieldEvents, window: spec.shieldWindow };
  const log = options.log ?? (() => undefined);
  // VACUUM cannot mark a page all-visible while the commit that inserted its
  // rows is not yet flushed (an asynchronous commit): commit synchronously.
  await client.query('SET synchronous_commit = on');
  for (const table of options.tables) {
    const started = Date.now();
    // Autovacuum's auto-analyze of a table just loaded holds a snapshot that
    // keeps VACUUM from marking pages all-visible: keep it away until done.
    await client.query(`ALTER TABLE "${table}" SET (autovacuum_enabled = false)`);
    const ddl = await tableDdl(client, table);
    await dropDdl(client, table, ddl);
    const rows = expectedCounts(spec, shield).rows[table];
    for (let from = 1; from <= rows; from += BATCH_ROWS) {
      const to = Math.min(rows, from + BATCH_ROWS - 1);
      await client.query(fillSql(table, spec, anchorMs, shield, from, to));
      if (rows > BATCH_ROWS) log(`  ${table}: ${to.toLocaleString('en')} / ${rows.toLocaleString('en')} rows`);
    }
    const inserted = Date.now();
    await createDdl(client, table, ddl);
    if (table === 'ShieldEvent') await client.query(`SELECT setval(pg_get_serial_sequence('"ShieldEvent"', 'id'), GREATEST($1::bigint, 1))`, [rows]);
    const indexed = Date.now();
    await client.query(`VACUUM (ANALYZE) "${table}"`);
    if (table !== 'ProvisioningJob') await client.query(`ALTER TABLE "${table}" RESET (autovacuum_enabled)`);
    const vm = await client.query<{ pages: number; visible: number }>(
      `SELECT relpages AS pages, relallvisible AS visible FROM pg_class WHERE oid = format('public.%I', $1::text)::regclass`,
      [table],
    );
    const { pages, visible } = vm.rows[0] ?? { pages: 0, visible: 0 };
    log(
      `  ${table}: ${rows.toLocaleString('en')} rows; insert ${s(inserted - started)}, indexes ${s(indexed - inserted)}, vacuum ${s(Date.now() - indexed)}` +
        `, ${pages > 0 ? Math.round((100 * visible) / pages) : 100}% of ${pages.toLocaleString('en')} pages all-visible`,
    );
  }
}

/**
 * Sets ProvisioningJob up as production has it between two autovacuum runs
 * (a 5-million-row table is vacuumed every week or so, after each day's jobs
 * were inserted and updated twice): vacuumed, then its visibility map cleared
 * (pg_visibility, in a `bench` schema of its own). Every page then reads as
 * not all-visible, as the recent ones are there: an index-only scan over
 * recent jobs visits the heap once per row. (Production also keeps up to two
 * dead versions of each recent job until that vacuum: up to 3 visits a row.)
 * Idempotent, and rows do not move: every run starts from the same state.
 */
export async function prepareRecentJobs(client: pg.ClientBase): Promise<void> {
  await client.query('VACUUM "ProvisioningJob"');
  await client.query('CREATE SCHEMA IF NOT EXISTS bench');
  await client.query('CREATE EXTENSION IF NOT EXISTS pg_visibility SCHEMA bench');
  await client.query(`SELECT bench.pg_truncate_visibility_map('public."ProvisioningJob"'::regclass)`);
}

function s(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
