/**
 * Security posture: Migra Shield WAF decisions (the last 24 h, kept
 * incrementally by shield-window.ts, and a since-start counter), Shield
 * policies per mode, and open Guardian findings per severity. Guardian is an
 * optional module: no table means "not installed", which is reported as such,
 * never as zero findings.
 */
import { KNOWN, UNKNOWN_LABEL } from '../catalog.js';
import type { Database, DbTx } from '../db/client.js';
import { countInvalid, knownLabel, SampleSet, type InvalidCounts, type Sample } from '../metrics/sample.js';
import { ShieldWindow, type DecisionCountRow, type DecisionCounts, type WindowDelta, type WindowRecount } from './shield-window.js';
import type { SecurityOverview } from '../contract.js';
import type { CollectContext, Source, SourceData } from './types.js';

/** Options of the security source. */
export interface SecurityOptions {
  /** Seconds between full recounts of the 24 h window. */
  recountIntervalSeconds: number;
  /** Seconds an id gap is watched for a late commit. */
  lateCommitSeconds: number;
}

/** What a security collection returns. */
export interface SecurityData extends SourceData {
  /** Events with a timestamp in the last 24 h, by decision label. */
  events24h: Record<string, number>;
  /** Events inserted since the exporter started, by decision label. */
  eventsTotal: Record<string, number>;
  /** Recount minus incremental at the last recount, by decision label. */
  recountDrift: Record<string, number>;
  policies: Record<string, number>;
  /** Open findings by severity label; null when Guardian is not installed. */
  guardianOpen: Record<string, number> | null;
}

/** Window length: 24 hours. */
export const SHIELD_WINDOW_MS = 86_400_000;
const RECOUNT_GAP_LOOKBACK = 10_000;

function utc(d: Date): string {
  return d.toISOString();
}

type CountRow = { decision: string | null; count: number };

async function readDelta(tx: DbTx, win: ShieldWindow, now: Date): Promise<WindowDelta> {
  const prevStart = utc(win.previousStart as Date);
  const newStart = utc(win.startFor(now));
  const nowIso = utc(now);
  const watermark = win.maxId;
  // Primary key range: only rows inserted since the last collection.
  const inserted = await tx.$queryRaw<Array<CountRow & { entered: number; maxId: bigint | null }>>`
    SELECT "decision",
           count(*)::int AS count,
           (count(*) FILTER (WHERE "timestamp" >= (${prevStart}::timestamptz AT TIME ZONE 'UTC')))::int AS entered,
           max("id") AS "maxId"
      FROM "ShieldEvent"
     WHERE "id" > ${watermark}::bigint
     GROUP BY "decision"`;
  let maxId = watermark;
  for (const r of inserted) if (r.maxId !== null && BigInt(r.maxId) > maxId) maxId = BigInt(r.maxId);
  const insertedCount = inserted.reduce((n, r) => n + r.count, 0);
  // Ids skipped between the old and the new watermark: in-flight inserts
  // (or rollbacks). Only computed when the count says some are missing.
  let newGaps: Array<{ from: bigint; to: bigint }> = [];
  if (maxId > watermark && BigInt(insertedCount) < maxId - watermark) {
    const gaps = await tx.$queryRaw<Array<{ from: bigint; to: bigint }>>`
      SELECT (id + 1) AS "from", (next_id - 1) AS "to"
        FROM (SELECT id, lead(id) OVER (ORDER BY id) AS next_id
                FROM (SELECT ${watermark}::bigint AS id
                      UNION ALL
                      SELECT "id" FROM "ShieldEvent" WHERE "id" > ${watermark}::bigint AND "id" <= ${maxId}::bigint) ids) t
       WHERE next_id > id + 1`;
    newGaps = gaps.map((g) => ({ from: BigInt(g.from), to: BigInt(g.to) }));
  }
  // Late commits inside gaps seen before.
  const watched = win.watchedGaps;
  let gapRows: Array<{ id: bigint; timestamp: Date; decision: string | null }> = [];
  if (watched.length > 0) {
    const froms = watched.map((g) => g.from.toString());
    const tos = watched.map((g) => g.to.toString());
    gapRows = await tx.$queryRaw<typeof gapRows>`
      SELECT e."id", e."timestamp", e."decision"
        FROM unnest(${froms}::bigint[], ${tos}::bigint[]) AS g(f, t)
        JOIN "ShieldEvent" e ON e."id" BETWEEN g.f AND g.t`;
  }
  // Rows that left the window since the last collection (index range on timestamp).
  const left = await tx.$queryRaw<CountRow[]>`
    SELECT "decision", count(*)::int AS count
      FROM "ShieldEvent"
     WHERE "timestamp" >= (${prevStart}::timestamptz AT TIME ZONE 'UTC')
       AND "timestamp" < (${newStart}::timestamptz AT TIME ZONE 'UTC')
     GROUP BY "decision"`;
  const future = await readFuture(tx, nowIso);
  const prevStartMs = (win.previousStart as Date).getTime();
  const enteredRows: DecisionCountRow[] = inserted.map((r) => ({ decision: r.decision, count: r.entered }));
  const insertedRows: DecisionCountRow[] = inserted.map((r) => ({ decision: r.decision, count: r.count }));
  for (const r of gapRows) {
    insertedRows.push({ decision: r.decision, count: 1 });
    if (r.timestamp.getTime() >= prevStartMs) enteredRows.push({ decision: r.decision, count: 1 });
  }
  return {
    enteredRows,
    insertedRows,
    leftRows: left,
    futureRows: future,
    maxId,
    newGaps,
    foundGapIds: gapRows.map((r) => BigInt(r.id)),
  };
}

function readFuture(tx: DbTx, nowIso: string): Promise<CountRow[]> {
  return tx.$queryRaw<CountRow[]>`
    SELECT "decision", count(*)::int AS count
      FROM "ShieldEvent"
     WHERE "timestamp" > (${nowIso}::timestamptz AT TIME ZONE 'UTC')
     GROUP BY "decision"`;
}

async function readRecount(tx: DbTx, win: ShieldWindow, now: Date): Promise<WindowRecount> {
  const start = utc(win.startFor(now));
  // The one query whose cost follows the window's size: at start-up and once per recount interval.
  const sinceStart = await tx.$queryRaw<CountRow[]>`
    SELECT "decision", count(*)::int AS count
      FROM "ShieldEvent"
     WHERE "timestamp" >= (${start}::timestamptz AT TIME ZONE 'UTC')
     GROUP BY "decision"`;
  const futureRows = await readFuture(tx, utc(now));
  const [{ maxId }] = (await tx.$queryRaw<Array<{ maxId: bigint | null }>>`SELECT max("id") AS "maxId" FROM "ShieldEvent"`) as [
    { maxId: bigint | null },
  ];
  const max = maxId === null ? 0n : BigInt(maxId);
  // Recent ids below the maximum that are not visible yet may still commit.
  const gaps = await tx.$queryRaw<Array<{ from: bigint; to: bigint }>>`
    SELECT (id + 1) AS "from", (next_id - 1) AS "to"
      FROM (SELECT "id" AS id, lead("id") OVER (ORDER BY "id") AS next_id
              FROM "ShieldEvent" WHERE "id" > ${max - BigInt(RECOUNT_GAP_LOOKBACK)}::bigint) t
     WHERE next_id > id + 1`;
  return { sinceStart, futureRows, maxId: max, gaps: gaps.map((g) => ({ from: BigInt(g.from), to: BigInt(g.to) })) };
}

function countsRecord(counts: DecisionCounts): Record<string, number> {
  return Object.fromEntries(counts);
}

/** Metric samples of the security area. */
export function securitySamples(data: SecurityData): Sample[] {
  const s = new SampleSet();
  for (const [decision, n] of Object.entries(data.events24h)) s.add('shieldEvents24h', { decision }, n);
  for (const [decision, n] of Object.entries(data.eventsTotal)) s.add('shieldEventsTotal', { decision }, n);
  for (const [decision, n] of Object.entries(data.recountDrift)) s.add('shieldRecountDrift', { decision }, n);
  s.zeros('shieldPolicies', 'mode', [...KNOWN.policyMode, UNKNOWN_LABEL]);
  for (const [mode, n] of Object.entries(data.policies)) s.add('shieldPolicies', { mode }, n);
  s.add('guardianInstalled', {}, data.guardianOpen === null ? 0 : 1);
  if (data.guardianOpen !== null) {
    s.zeros('guardianOpenFindings', 'severity', [...KNOWN.severity, UNKNOWN_LABEL]);
    for (const [severity, n] of Object.entries(data.guardianOpen)) s.add('guardianOpenFindings', { severity }, n);
  }
  return s.list();
}

/** The security section of the JSON overview (pure). */
export function securityOverview(data: SecurityData): SecurityOverview {
  const d = data.events24h;
  const byDecision = { ALLOW: d.ALLOW ?? 0, BLOCK: d.BLOCK ?? 0, CHALLENGE: d.CHALLENGE ?? 0, RATE_LIMITED: d.RATE_LIMITED ?? 0 };
  const total = Object.values(d).reduce((a, b) => a + b, 0);
  const o: SecurityOverview = {
    shieldEventsLast24h: { total, byDecision, otherDecisions: total - Object.values(byDecision).reduce((a, b) => a + b, 0) },
    shieldPolicies: {
      enforceCount: data.policies.ENFORCE ?? 0,
      monitorCount: data.policies.MONITOR ?? 0,
      disabledCount: data.policies.DISABLED ?? 0,
    },
  };
  if (data.guardianOpen) {
    o.guardianFindings = {
      criticalOpen: data.guardianOpen.CRITICAL ?? 0,
      highOpen: data.guardianOpen.HIGH ?? 0,
      mediumOpen: data.guardianOpen.MEDIUM ?? 0,
    };
  }
  return o;
}

/** Groups rows of (raw value, count) under known labels, UNKNOWN for the rest. */
export function groupKnown(rows: ReadonlyArray<{ value: string | null; count: number }>, known: readonly string[], invalid: InvalidCounts): Record<string, number> {
  const out: Record<string, number> = Object.fromEntries([...known, UNKNOWN_LABEL].map((k) => [k, 0]));
  for (const r of rows) {
    const label = knownLabel(r.value, known, {});
    out[label] = (out[label] ?? 0) + r.count;
    if (r.value === null) countInvalid(invalid, 'null_value', r.count);
    else if (label === UNKNOWN_LABEL) countInvalid(invalid, 'unknown_value', r.count);
  }
  return out;
}

/** The security source. Keeps the 24 h window between collections. */
export function securitySource(db: Database, options: SecurityOptions): Source<SecurityData, 'security'> & { window: ShieldWindow } {
  const win = new ShieldWindow({
    windowMs: SHIELD_WINDOW_MS,
    lateCommitMs: options.lateCommitSeconds * 1000,
    maxGaps: 10_000,
  });
  return {
    name: 'security',
    backend: 'database',
    window: win,
    async collect(ctx: CollectContext): Promise<SecurityData> {
      const now = ctx.now;
      const invalid: InvalidCounts = {};
      const recountDue =
        !win.initialized || win.lastRecountAt === null || now.getTime() - win.lastRecountAt.getTime() >= options.recountIntervalSeconds * 1000;
      const read = await db.read(ctx.timeoutMs, async (tx) => {
        const delta = win.initialized ? await readDelta(tx, win, now) : null;
        const recount = recountDue ? await readRecount(tx, win, now) : null;
        const policies = await tx.$queryRaw<Array<{ value: string | null; count: number }>>`
          SELECT "mode" AS value, count(*)::int AS count FROM "ShieldPolicy" GROUP BY "mode"`;
        const [{ installed, readable }] = (await tx.$queryRaw<Array<{ installed: boolean; readable: boolean }>>`
          SELECT to_regclass('public."GuardianFinding"') IS NOT NULL AS installed,
                 to_regclass('public."GuardianFinding"') IS NOT NULL
                   AND has_table_privilege('public."GuardianFinding"', 'SELECT') AS readable`) as [{ installed: boolean; readable: boolean }];
        if (installed && !readable) {
          throw new Error('GuardianFinding exists but this role may not read it: grant SELECT (sql/readonly-role.sql)');
        }
        const findings = installed
          ? await tx.$queryRaw<Array<{ value: string | null; count: number }>>`
              SELECT "severity" AS value, count(*)::int AS count FROM "GuardianFinding" WHERE "status" = 'OPEN' GROUP BY "severity"`
          : null;
        return { delta, recount, policies, findings };
      });
      // State changes only once the whole snapshot was read.
      if (read.delta) win.applyDelta(read.delta, now, invalid);
      if (read.recount) win.applyRecount(read.recount, now, invalid);
      return {
        events24h: countsRecord(win.windowCounts()),
        eventsTotal: countsRecord(win.totals),
        recountDrift: countsRecord(win.drift),
        policies: groupKnown(read.policies, KNOWN.policyMode, invalid),
        guardianOpen: read.findings === null ? null : groupKnown(read.findings, KNOWN.severity, invalid),
        invalid,
      };
    },
    samples: securitySamples,
    section: { name: 'security', overview: securityOverview },
  };
}
