/**
 * The simulated platform's starting state: the core nodes, the WAF policies
 * and a few days of history (finished provisioning jobs, nightly backups,
 * Guardian findings, the last 24 hours of WAF events), written in a handful of
 * bulk statements. History of a table is only written while that table is
 * empty, so seeding an already seeded database is harmless.
 */
import type { DemoDb } from './demo-db.js';
import { newJobId, resourceIdFor } from './jobs.js';
import {
  BACKUP_SYSTEMS,
  CORE_NODES,
  GUARDIAN_CHECKS,
  QUEUES,
  SHIELD_PATHS,
  SHIELD_POLICIES,
  TENANT_COUNT,
  coreNodeId,
  fillTemplate,
  tenantId,
} from './platform.js';
import { Rng } from './random.js';

/** Options of {@link seed}. */
export interface SeedOptions {
  /** Seed of the random stream; same seed, same platform. Default 1. */
  randomSeed?: number;
  /** Days of provisioning, backup history. Default 3. */
  historyDays?: number;
  /** Share of the live job rate written as history (0..1). Default 0.1 (about 1,800 jobs a day). */
  jobHistoryScale?: number;
  /** WAF events a minute written for the last 24 hours. Default 60. */
  shieldEventsPerMinute?: number;
  /** Days of Guardian findings. Default 30. */
  findingDays?: number;
}

/** What {@link seed} wrote (0 for a table whose history already existed). */
export interface SeedResult {
  coreNodes: number;
  shieldPolicies: number;
  provisioningJobs: number;
  shieldEvents: number;
  guardianFindings: number;
  backups: number;
}

const iso = (d: Date | number) => new Date(d).toISOString();
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Share of traffic by WAF decision in ordinary times. */
export const NORMAL_DECISIONS = { ALLOW: 93.5, CHALLENGE: 3, RATE_LIMITED: 1.5, BLOCK: 2 } as const;

/** Platform load by hour of day (UTC), 0..1, for history and live rates. */
export function diurnal(at: Date): number {
  const h = at.getUTCHours() + at.getUTCMinutes() / 60;
  // Quiet at night, peaking mid-afternoon (UTC).
  return h > 6 && h < 22 ? 0.6 + 0.4 * Math.sin(((h - 6) / 16) * Math.PI) : 0.6;
}

async function isEmpty(db: DemoDb, table: string): Promise<boolean> {
  const { rows } = await db.query<{ any: boolean }>(`SELECT EXISTS (SELECT 1 FROM "${table}") AS "any"`);
  return !rows[0]?.any;
}

/** Inserts column arrays with one `unnest` statement per `batch` rows. */
export async function insertColumns(
  db: DemoDb,
  table: string,
  columns: ReadonlyArray<readonly [name: string, pgType: string]>,
  data: unknown[][],
  batch = 5_000,
): Promise<number> {
  const n = data[0]?.length ?? 0;
  const names = columns.map(([c]) => `"${c}"`).join(', ');
  const unnest = columns.map(([, t], i) => `$${i + 1}::${t}[]`).join(', ');
  const select = columns.map(([, t], i) => `c${i}::${t}`).join(', ');
  const aliases = columns.map((_, i) => `c${i}`).join(', ');
  for (let from = 0; from < n; from += batch) {
    await db.query(
      `INSERT INTO "${table}" (${names}) SELECT ${select} FROM unnest(${unnest}) AS u(${aliases})`,
      data.map((col) => col.slice(from, from + batch)),
    );
  }
  return n;
}

/** Upserts the eight core nodes (ONLINE, a fresh metrics sample at `now`). */
export async function seedCoreNodes(db: DemoDb, now: Date): Promise<number> {
  const created = iso(now.getTime() - 400 * DAY);
  for (const n of CORE_NODES) {
    await db.query(
      `INSERT INTO "CoreNode" ("id", "hostname", "role", "status", "metrics", "lastMetricsAt", "createdAt", "updatedAt")
       VALUES ($1, $2, $3, 'ONLINE', $4::jsonb, $5::timestamp, $6::timestamp, $5::timestamp)
       ON CONFLICT ("hostname") DO UPDATE SET "role" = EXCLUDED."role", "status" = 'ONLINE', "metrics" = EXCLUDED."metrics",
         "lastMetricsAt" = EXCLUDED."lastMetricsAt", "updatedAt" = EXCLUDED."updatedAt"`,
      [coreNodeId(n.hostname), n.hostname, n.role, JSON.stringify({ cpuPercent: n.cpu, ramPercent: n.ram, diskPercent: n.disk }), iso(now), created],
    );
  }
  return CORE_NODES.length;
}

/** Upserts the WAF policies (every mode represented). */
export async function seedShieldPolicies(db: DemoDb, now: Date): Promise<number> {
  const cols = [[], [], [], [], [], []] as unknown[][];
  SHIELD_POLICIES.forEach((p, i) => {
    cols[0]!.push(p.id);
    cols[1]!.push(p.name);
    cols[2]!.push(p.mode);
    cols[3]!.push(p.global ? null : tenantId(((i * 37) % TENANT_COUNT) + 1));
    cols[4]!.push(iso(now.getTime() - (200 - i) * DAY));
    cols[5]!.push(iso(now.getTime() - (i % 20) * DAY));
  });
  await db.query(
    `INSERT INTO "ShieldPolicy" ("id", "name", "mode", "tenantId", "createdAt", "updatedAt")
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamp[], $6::timestamp[])
     ON CONFLICT ("id") DO NOTHING`,
    cols,
  );
  return SHIELD_POLICIES.length;
}

function seedJobs(rng: Rng, now: Date, days: number, scale: number): unknown[][] {
  const cols: unknown[][] = Array.from({ length: 13 }, () => []);
  const start = now.getTime() - days * DAY;
  // An ACME rate-limit incident two days ago: a failure hotspot in history, outside the last 24 h.
  const incidentFrom = now.getTime() - 46 * HOUR;
  const incidentTo = incidentFrom + 40 * 60_000;
  for (const q of QUEUES) {
    const total = Math.round(q.perMinute * 60 * 24 * days * scale);
    for (let i = 0; i < total; i++) {
      let created = start + rng.next() * (now.getTime() - start - 5 * 60_000);
      if (!rng.chance(diurnal(new Date(created)))) created = start + rng.next() * (now.getTime() - start - 5 * 60_000);
      const idx = Number(rng.weighted(Object.fromEntries(q.actions.map((a, k) => [String(k), a.weight]))));
      const action = q.actions[idx]!;
      const tenantNum = rng.int(1, TENANT_COUNT);
      const started = created + rng.between(200, 4000);
      const finished = started + rng.between(q.durationSeconds[0], q.durationSeconds[1]) * 1000;
      const inIncident = q.name === 'ssl' && created >= incidentFrom && created <= incidentTo;
      const roll = rng.next();
      const status = inIncident && roll < 0.8 ? 'FAILED' : roll < q.failureRate ? 'FAILED' : roll > 0.996 ? 'CANCELLED' : 'COMPLETED';
      const resourceId = resourceIdFor(action.resourceType, tenantNum, rng);
      const error =
        status === 'FAILED'
          ? fillTemplate(inIncident ? q.errors[0]! : rng.pick(q.errors), {
              domain: resourceId.includes('.') ? resourceId : `tenant-${tenantNum}.example.com`,
              site: resourceId,
              tenant: tenantId(tenantNum),
              tenantNum: String(tenantNum),
              pod: resourceId,
            })
          : status === 'CANCELLED'
            ? 'cancelled by tenant'
            : null;
      const attempts = status === 'FAILED' ? rng.int(1, 2) : status === 'CANCELLED' ? 0 : rng.chance(0.03) ? 2 : 1;
      cols[0]!.push(newJobId(rng, new Date(created)));
      cols[1]!.push(q.name);
      cols[2]!.push(action.action);
      cols[3]!.push(action.resourceType);
      cols[4]!.push(resourceId);
      cols[5]!.push(tenantId(tenantNum));
      cols[6]!.push(status);
      cols[7]!.push(error);
      cols[8]!.push(attempts);
      cols[9]!.push(iso(created));
      cols[10]!.push(status === 'CANCELLED' ? null : iso(started));
      cols[11]!.push(iso(finished));
      cols[12]!.push(iso(finished));
    }
  }
  return cols;
}

function seedShieldEvents(rng: Rng, now: Date, perMinute: number): unknown[][] {
  const cols: unknown[][] = Array.from({ length: 6 }, () => []);
  const start = now.getTime() - DAY;
  const total = Math.round(perMinute * 60 * 24);
  const step = DAY / total;
  const enforcing = SHIELD_POLICIES.filter((p) => p.mode !== 'DISABLED');
  for (let i = 0; i < total; i++) {
    const ts = start + i * step + rng.next() * step;
    const decision = rng.weighted(NORMAL_DECISIONS);
    const tenantNum = rng.int(1, TENANT_COUNT);
    cols[0]!.push(iso(ts));
    cols[1]!.push(decision);
    cols[2]!.push(decision === 'ALLOW' ? null : rng.pick(enforcing).id);
    cols[3]!.push(tenantId(tenantNum));
    cols[4]!.push(randomIp(rng));
    cols[5]!.push(rng.weighted(SHIELD_PATHS));
  }
  return cols;
}

/** A plausible client IPv4 (documentation and CGNAT-free public-looking ranges). */
export function randomIp(rng: Rng): string {
  return `${rng.pick([31, 45, 62, 78, 81, 89, 94, 104, 141, 176, 185, 188, 193, 212, 217])}.${rng.int(0, 255)}.${rng.int(0, 255)}.${rng.int(1, 254)}`;
}

function seedFindings(rng: Rng, now: Date, days: number): unknown[][] {
  const cols: unknown[][] = Array.from({ length: 8 }, () => []);
  const total = days * 5;
  for (let i = 0; i < total; i++) {
    const created = now.getTime() - rng.next() * days * DAY;
    const check = rng.pick(GUARDIAN_CHECKS);
    // Two critical findings in history, both long resolved.
    const severity = i < 2 ? 'CRITICAL' : check.severity;
    const age = now.getTime() - created;
    const roll = rng.next();
    const status = severity === 'CRITICAL' ? 'RESOLVED' : age < 5 * DAY && roll < 0.35 ? 'OPEN' : age < 10 * DAY && roll < 0.5 ? 'ACKNOWLEDGED' : 'RESOLVED';
    const resolvedAt = status === 'RESOLVED' ? Math.min(now.getTime() - 60_000, created + rng.between(0.5, 96) * HOUR) : null;
    const tenantNum = rng.int(1, TENANT_COUNT);
    const node = rng.pick(CORE_NODES).hostname;
    const perNode = check.title.includes('{node}');
    cols[0]!.push(`gf_${Math.floor(created).toString(36)}${rng.id(5)}`);
    cols[1]!.push(severity);
    cols[2]!.push(status);
    cols[3]!.push(
      severity === 'CRITICAL'
        ? fillTemplate('Webshell detected: /var/www/{site}/wp-content/uploads/cache.php', { site: `site_${tenantNum}_1` })
        : fillTemplate(check.title, { site: `site_${tenantNum}_1`, domain: `shop-${tenantNum}.example.com`, node, version: '6.2.1' }),
    );
    cols[4]!.push(perNode || severity === 'CRITICAL' ? coreNodeId(severity === 'CRITICAL' ? 'SRV1-WEB' : node) : coreNodeId('SRV1-WEB'));
    cols[5]!.push(perNode ? null : tenantId(tenantNum));
    cols[6]!.push(iso(created));
    cols[7]!.push(resolvedAt === null ? null : iso(resolvedAt));
  }
  return cols;
}

/** When the nightly backup of `resourceIndex` in `system` is scheduled on the UTC day of `day`. */
export function backupSlot(system: (typeof BACKUP_SYSTEMS)[number], resourceIndex: number, day: Date): Date {
  const d = new Date(Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate(), system.hourUtc, resourceIndex * 7));
  return d;
}

function seedBackups(rng: Rng, now: Date, days: number): unknown[][] {
  const cols: unknown[][] = Array.from({ length: 7 }, () => []);
  const push = (type: string, rid: string, status: string, started: number, completed: number | null, size: number | null) => {
    cols[0]!.push(`bk_${Math.floor(started).toString(36)}${rng.id(5)}`);
    cols[1]!.push(type);
    cols[2]!.push(rid);
    cols[3]!.push(status);
    cols[4]!.push(iso(started));
    cols[5]!.push(completed === null ? null : iso(completed));
    cols[6]!.push(size === null ? null : String(Math.round(size)));
  };
  for (let d = days; d >= 0; d--) {
    const day = new Date(now.getTime() - d * DAY);
    for (const system of BACKUP_SYSTEMS) {
      system.resourceIds.forEach((rid, k) => {
        const slot = backupSlot(system, k, day).getTime() + rng.between(0, 90_000);
        const minutes = rng.between(system.durationMinutes[0], system.durationMinutes[1]);
        const done = slot + minutes * 60_000;
        if (done > now.getTime() || slot < now.getTime() - (days + 1) * DAY) return;
        const size = rng.between(system.sizeGiB[0], system.sizeGiB[1]) * 2 ** 30 * (1 + (days - d) * 0.002);
        if (rng.chance(0.04)) {
          // A failed run, retried an hour later.
          push(system.resourceType, rid, 'FAILED', slot, slot + rng.between(1, 6) * 60_000, null);
          const retry = slot + HOUR;
          if (retry + minutes * 60_000 <= now.getTime()) push(system.resourceType, rid, 'COMPLETED', retry, retry + minutes * 60_000, size);
        } else {
          push(system.resourceType, rid, 'COMPLETED', slot, done, size);
        }
      });
    }
  }
  return cols;
}

/**
 * Seeds a migrated, demo-marked database with the simulated platform as it
 * stands at `now`: the eight core nodes (ONLINE with a fresh sample), every
 * WAF policy, and history where the table is still empty: `historyDays` of
 * finished provisioning jobs and nightly backups (DB_CORE, MPANEL_CORE and one
 * CLOUD_POD row per pod), 30 days of Guardian findings (none CRITICAL left
 * open) and the last 24 hours of WAF events. No job is left PENDING or
 * RUNNING: live jobs come from the running simulator.
 */
export async function seed(db: DemoDb, now: Date = new Date(), options: SeedOptions = {}): Promise<SeedResult> {
  const rng = new Rng(options.randomSeed ?? 1);
  const days = options.historyDays ?? 3;
  const result: SeedResult = { coreNodes: 0, shieldPolicies: 0, provisioningJobs: 0, shieldEvents: 0, guardianFindings: 0, backups: 0 };
  result.coreNodes = await seedCoreNodes(db, now);
  result.shieldPolicies = await seedShieldPolicies(db, now);
  if (await isEmpty(db, 'ProvisioningJob')) {
    result.provisioningJobs = await insertColumns(
      db,
      'ProvisioningJob',
      [
        ['id', 'text'], ['type', 'text'], ['action', 'text'], ['resourceType', 'text'], ['resourceId', 'text'], ['tenantId', 'text'],
        ['status', 'text'], ['errorMessage', 'text'], ['attempts', 'int4'], ['createdAt', 'timestamp'], ['startedAt', 'timestamp'],
        ['finishedAt', 'timestamp'], ['updatedAt', 'timestamp'],
      ],
      seedJobs(rng, now, days, options.jobHistoryScale ?? 0.1),
    );
  }
  if (await isEmpty(db, 'ShieldEvent')) {
    const cols = seedShieldEvents(rng, now, options.shieldEventsPerMinute ?? 60);
    result.shieldEvents = await insertColumns(
      db,
      'ShieldEvent',
      [['timestamp', 'timestamp'], ['decision', 'text'], ['policyId', 'text'], ['tenantId', 'text'], ['ip', 'text'], ['path', 'text']],
      cols,
      20_000,
    );
  }
  if (await isEmpty(db, 'GuardianFinding')) {
    result.guardianFindings = await insertColumns(
      db,
      'GuardianFinding',
      [['id', 'text'], ['severity', 'text'], ['status', 'text'], ['title', 'text'], ['nodeId', 'text'], ['tenantId', 'text'], ['createdAt', 'timestamp'], ['resolvedAt', 'timestamp']],
      seedFindings(rng, now, options.findingDays ?? 30),
    );
  }
  if (await isEmpty(db, 'Backup')) {
    result.backups = await insertColumns(
      db,
      'Backup',
      [['id', 'text'], ['resourceType', 'text'], ['resourceId', 'text'], ['status', 'text'], ['startedAt', 'timestamp'], ['completedAt', 'timestamp'], ['sizeBytes', 'int8']],
      seedBackups(rng, now, days),
    );
  }
  return result;
}
