/**
 * Backups (Backup, backup tracking): the last COMPLETED and the last FAILED
 * backup per resource type. The critical systems (DB-CORE, MPANEL-CORE,
 * CloudPods) are always reported, with "never" said explicitly. Backup
 * tracking is optional: no table means "not configured", not "no backups".
 *
 * Hostile rows are bounded in SQL: a time that cannot be real never is the
 * newest (valid-time.ts), at most MAX_BACKUP_TYPES resource types are read
 * per status besides the critical ones, and long type names are cut there.
 */
import { KNOWN } from '../catalog.js';
import type { Database } from '../db/client.js';
import { isOneOf, presentLabels, readEnumLabels, type EnumLabels } from '../db/enum-labels.js';
import { raw, sql, type Sql } from '../db/sql.js';
import { countInvalid, LabelLimiter, SampleSet, toSeconds, type InvalidCounts, type Sample } from '../metrics/sample.js';
import type { BackupOverview } from '../contract.js';
import type { CollectContext, Source, SourceData } from './types.js';
import { EARLIEST_VALID_TIME, isValidTime, latestValidTime } from './valid-time.js';

/** Options of the backups source. */
export interface BackupsOptions {
  /** Distinct resource types kept as labels before OTHER. */
  labelValueLimit: number;
}

/** Last backups of one resource type. */
export interface BackupTypeView {
  resourceType: string;
  label: string;
  /** completedAt (else startedAt) of the newest COMPLETED backup; undefined = never. */
  lastSuccess?: Date;
  /** completedAt (else startedAt) of the newest FAILED backup; undefined = never. */
  lastFailure?: Date;
}

/** What a backups collection returns. */
export interface BackupsData extends SourceData {
  /** False when the Backup table does not exist (tracking not configured). */
  installed: boolean;
  types: BackupTypeView[];
}

/** One row of the last-backup query: the newest valid time of one resource type and status. */
export interface LastBackupRow {
  resourceType: string;
  status: 'COMPLETED' | 'FAILED';
  /** completedAt (else startedAt) of the newest backup with a valid time; null when none has one. */
  at: Date | null;
  /**
   * Backups of the type and status whose time is invalid (valid-time.ts):
   * up to INVALID_PROBE_LIMIT in the future and as many before 1970.
   */
  invalid?: number;
  /** The type's name was longer than MAX_TYPE_LENGTH and is cut (kept distinct by a hash). */
  cut?: boolean;
  /** More types of this status exist than MAX_BACKUP_TYPES: those were not read. */
  moreTypes?: boolean;
}

/**
 * Resource types read at most per status, besides the critical ones (always
 * read): a platform has a handful; a bug that writes a type per row must not
 * make the collection read a million. Types past the label limit share OTHER.
 */
export const MAX_BACKUP_TYPES = 1000;
/**
 * Longest resource type used as a label, characters; a longer one is cut in
 * SQL the way the runner cuts any label value (190 characters, "…", 8 hex
 * digits of its SHA-256), so its full text is never read.
 */
const MAX_TYPE_LENGTH = 200;
const TYPE_KEPT = 190;

/** Maps last-backup rows to per-type views; the critical types are always present (pure). */
export function mapBackups(installed: boolean, rows: readonly LastBackupRow[], options: BackupsOptions): BackupsData {
  const invalid: InvalidCounts = {};
  if (!installed) return { installed, types: [], invalid };
  const limiter = new LabelLimiter(options.labelValueLimit, invalid);
  const byType = new Map<string, BackupTypeView>();
  const view = (resourceType: string): BackupTypeView => {
    let v = byType.get(resourceType);
    if (!v) {
      v = { resourceType, label: limiter.label(resourceType) };
      byType.set(resourceType, v);
    }
    return v;
  };
  for (const t of KNOWN.criticalBackupTypes) view(t);
  const cut = new Set<string>();
  const cutOff = new Set<string>();
  for (const r of rows) {
    const v = view(r.resourceType);
    // A cut name is counted once, and only where it is a label of its own.
    if (r.cut && v.label === r.resourceType && !cut.has(r.resourceType)) {
      cut.add(r.resourceType);
      countInvalid(invalid, 'label_overflow');
    }
    if (r.moreTypes && !cutOff.has(r.status)) {
      cutOff.add(r.status);
      countInvalid(invalid, 'label_overflow');
    }
    if (r.invalid) countInvalid(invalid, 'bad_timestamp', r.invalid);
    if (r.at === null) continue;
    if (r.status === 'COMPLETED') v.lastSuccess = r.at;
    else v.lastFailure = r.at;
  }
  return { installed, types: [...byType.values()], invalid };
}

/** Metric samples of backups. Types merged into OTHER keep their newest times. */
export function backupSamples(data: BackupsData): Sample[] {
  const s = new SampleSet();
  s.add('backupTrackingInstalled', {}, data.installed ? 1 : 0);
  const merged = new Map<string, { success?: number; failure?: number }>();
  for (const t of data.types) {
    const m = merged.get(t.label) ?? {};
    if (t.lastSuccess) m.success = Math.max(m.success ?? -Infinity, toSeconds(t.lastSuccess));
    if (t.lastFailure) m.failure = Math.max(m.failure ?? -Infinity, toSeconds(t.lastFailure));
    merged.set(t.label, m);
  }
  for (const [resource_type, m] of merged) {
    s.add('backupEverSucceeded', { resource_type }, m.success === undefined ? 0 : 1);
    if (m.success !== undefined) s.add('backupLastSuccess', { resource_type }, m.success);
    if (m.failure !== undefined) s.add('backupLastFailure', { resource_type }, m.failure);
  }
  return s.list();
}

/** The backups section of the JSON overview (pure). */
export function backupsOverview(data: BackupsData): BackupOverview {
  if (!data.installed) return { notes: 'Backup tracking not yet configured (no Backup table)' };
  const last = (type: (typeof KNOWN.criticalBackupTypes)[number]) =>
    data.types.find((t) => t.resourceType === type)?.lastSuccess?.toISOString();
  const o: BackupOverview = {};
  const db = last('DB_CORE');
  const panel = last('MPANEL_CORE');
  const pods = last('CLOUD_POD');
  if (db) o.dbCoreLastSuccess = db;
  if (panel) o.mpanelCoreLastSuccess = panel;
  if (pods) o.cloudPodsLastSuccess = pods;
  const never = [!db && 'DB-CORE', !panel && 'MPANEL-CORE', !pods && 'CloudPods'].filter(Boolean);
  if (never.length > 0) o.notes = `No successful backup recorded for ${never.join(', ')}`;
  return o;
}

/**
 * Invalid backups counted at most, per resource type, status and side (in
 * the future, before 1970): enough to say how bad it is, while a history
 * full of them costs one bounded index range per type.
 */
export const INVALID_PROBE_LIMIT = 100;

/**
 * The last-backups query at `now` on a schema whose Backup columns accept
 * `labels` (exported so tests can EXPLAIN it).
 *
 * A loose index scan walks the distinct resource types of each status
 * ("Backup_completed_idx", "Backup_failed_idx"; at most `maxTypes`, plus the
 * critical types always), then index probes per type: the newest backup with
 * a valid time (a range read backwards from now + skew, so a row dated 9999
 * or infinity is stepped over, never taken), and how many lie beyond either
 * end of the valid range (bounded ranges at the ends of the index). Cost
 * follows the number of types, not the million rows of history.
 */
export function lastBackupsSql(labels: EnumLabels, now: Date, maxTypes: number = MAX_BACKUP_TYPES): Sql {
  const at = raw('COALESCE(b."completedAt", b."startedAt")');
  const valid = isValidTime(at, now);
  const latest = latestValidTime(now);
  const earliest = raw(`'${EARLIEST_VALID_TIME}'`);
  // Bare literals in the UNION take the column's type (text or its enum);
  // labels the enum lacks cannot occur, so they are left out.
  const critical = presentLabels(labels, 'Backup.resourceType', KNOWN.criticalBackupTypes);
  const criticalRows = raw(critical.map((c) => ` UNION SELECT '${c.replace(/'/g, "''")}'`).join(''));
  const name = raw('t.rt::text');
  const perStatus = (status: 'COMPLETED' | 'FAILED') => {
    const is = isOneOf(labels, 'Backup.status', [status]);
    const isB = isOneOf(labels, 'Backup.status', [status], 'b');
    return sql`(
      WITH RECURSIVE walk(rt, n) AS (
        SELECT min("resourceType"), 1 FROM "Backup" WHERE ${is}
        UNION ALL
        SELECT (SELECT min("resourceType") FROM "Backup" WHERE ${is} AND "resourceType" > walk.rt), walk.n + 1
          FROM walk WHERE walk.rt IS NOT NULL AND walk.n <= ${maxTypes}::int
      )
      SELECT CASE WHEN length(${name}) <= ${MAX_TYPE_LENGTH}::int THEN ${name}
                  ELSE left(${name}, ${TYPE_KEPT}::int) || '…' || left(encode(sha256(convert_to(${name}, 'UTF8')), 'hex'), 8)
             END AS "resourceType",
             length(${name}) > ${MAX_TYPE_LENGTH}::int AS "cut",
             ${raw(`'${status}'`)} AS status,
             (SELECT max(${at}) FROM "Backup" b WHERE ${isB} AND b."resourceType" = t.rt AND ${valid}) AS at,
             ((SELECT count(*) FROM (SELECT 1 FROM "Backup" b
                                      WHERE ${isB} AND b."resourceType" = t.rt
                                        AND ${at} > ${latest}
                                      ORDER BY ${at} DESC
                                      LIMIT ${INVALID_PROBE_LIMIT}::int) f)
              + (SELECT count(*) FROM (SELECT 1 FROM "Backup" b
                                        WHERE ${isB} AND b."resourceType" = t.rt AND ${at} < ${earliest}
                                        ORDER BY ${at}
                                        LIMIT ${INVALID_PROBE_LIMIT}::int) p))::int AS invalid,
             EXISTS (SELECT 1 FROM walk WHERE walk.rt IS NOT NULL AND walk.n > ${maxTypes}::int) AS "moreTypes"
        FROM (SELECT rt FROM walk WHERE rt IS NOT NULL AND n <= ${maxTypes}::int${criticalRows}) t
       ORDER BY t.rt)`;
  };
  return sql`${perStatus('COMPLETED')} UNION ALL ${perStatus('FAILED')}`;
}

/** Reads the newest valid backup of every type and status, in one snapshot. */
async function readBackups(db: Database, ctx: CollectContext): Promise<{ installed: boolean; rows: LastBackupRow[] }> {
  return db.read(ctx.timeoutMs, async (tx) => {
    const [{ installed }] = (await tx.query<Array<{ installed: boolean }>>`
      SELECT to_regclass('public."Backup"') IS NOT NULL AS installed`) as [{ installed: boolean }];
    if (!installed) return { installed, rows: [] as LastBackupRow[] };
    const labels = await readEnumLabels(tx, ['Backup.status', 'Backup.resourceType']);
    const rows = await tx.query<LastBackupRow[]>(lastBackupsSql(labels, ctx.now));
    return { installed, rows };
  });
}

/** The backups source. */
export function backupsSource(db: Database, options: BackupsOptions): Source<BackupsData, 'backups'> {
  return {
    name: 'backups',
    backend: 'database',
    async collect(ctx: CollectContext): Promise<BackupsData> {
      const read = await readBackups(db, ctx);
      return mapBackups(read.installed, read.rows, options);
    },
    samples: backupSamples,
    section: { name: 'backups', overview: backupsOverview },
  };
}
