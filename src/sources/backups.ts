/**
 * Backups (Backup, backup tracking): the last COMPLETED and the last FAILED
 * backup per resource type. The critical systems (DB-CORE, MPANEL-CORE,
 * CloudPods) are always reported, with "never" said explicitly. Backup
 * tracking is optional: no table means "not configured", not "no backups".
 */
import { KNOWN } from '../catalog.js';
import type { Database } from '../db/client.js';
import { LabelLimiter, SampleSet, toSeconds, type InvalidCounts, type Sample } from '../metrics/sample.js';
import type { BackupOverview } from '../contract.js';
import type { CollectContext, Source, SourceData } from './types.js';

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

/** One row of the last-backup query. */
export interface LastBackupRow {
  resourceType: string;
  status: 'COMPLETED' | 'FAILED';
  at: Date;
}

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
  for (const r of rows) {
    const v = view(r.resourceType);
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

/** The backups source. */
export function backupsSource(db: Database, options: BackupsOptions): Source<BackupsData, 'backups'> {
  return {
    name: 'backups',
    backend: 'database',
    async collect(ctx: CollectContext): Promise<BackupsData> {
      const read = await db.read(ctx.timeoutMs, async (tx) => {
        const [{ installed }] = (await tx.$queryRaw<Array<{ installed: boolean }>>`
          SELECT to_regclass('public."Backup"') IS NOT NULL AS installed`) as [{ installed: boolean }];
        if (!installed) return { installed, rows: [] as LastBackupRow[] };
        // A loose index scan walks the distinct resource types of each status
        // ("Backup_completed_idx", "Backup_failed_idx"), then one index probe
        // per type finds its newest backup: cost follows the number of types,
        // not the million rows of history.
        const rows = await tx.$queryRaw<LastBackupRow[]>`
          WITH RECURSIVE
            completed_types AS (
              SELECT min("resourceType") AS rt FROM "Backup" WHERE "status" = 'COMPLETED'
              UNION ALL
              SELECT (SELECT min("resourceType") FROM "Backup" WHERE "status" = 'COMPLETED' AND "resourceType" > c.rt)
                FROM completed_types c WHERE c.rt IS NOT NULL
            ),
            failed_types AS (
              SELECT min("resourceType") AS rt FROM "Backup" WHERE "status" = 'FAILED'
              UNION ALL
              SELECT (SELECT min("resourceType") FROM "Backup" WHERE "status" = 'FAILED' AND "resourceType" > f.rt)
                FROM failed_types f WHERE f.rt IS NOT NULL
            )
          SELECT c.rt AS "resourceType", 'COMPLETED' AS status,
                 (SELECT max(COALESCE(b."completedAt", b."startedAt")) FROM "Backup" b
                   WHERE b."status" = 'COMPLETED' AND b."resourceType" = c.rt) AS at
            FROM completed_types c WHERE c.rt IS NOT NULL
          UNION ALL
          SELECT f.rt, 'FAILED',
                 (SELECT max(COALESCE(b."completedAt", b."startedAt")) FROM "Backup" b
                   WHERE b."status" = 'FAILED' AND b."resourceType" = f.rt)
            FROM failed_types f WHERE f.rt IS NOT NULL`;
        return { installed, rows };
      });
      return mapBackups(read.installed, read.rows, options);
    },
    samples: backupSamples,
    section: { name: 'backups', overview: backupsOverview },
  };
}
