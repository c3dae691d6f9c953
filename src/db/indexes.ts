/**
 * The indexes the exporter's queries need, in one list: the source of the
 * `*_exporter_indexes` migration's text (migrationSql), of the statements
 * `npm run db:indexes` runs on a live platform database, and of the
 * `indexes` source's check.
 *
 * A partial index's predicate names enum-like values (`"status" = 'FAILED'`).
 * On a platform whose column is a PostgreSQL enum, a value the enum lacks is
 * an error, so each predicate is written with only the values the column can
 * hold, the same text the sources' queries use (src/db/enum-labels.ts), so
 * the planner matches them.
 */
import type pg from 'pg';
import { KNOWN } from '../catalog.js';
import { presentLabels, type EnumColumn, type EnumLabels } from './enum-labels.js';

/** A predicate on one enum-like column: `"col" IN (…)` or `"col" NOT IN (…)`. */
export interface IndexPredicate {
  column: string;
  op: 'IN' | 'NOT IN';
  /** The values, in the order the sources' queries name them. */
  values: readonly string[];
}

/** One index the exporter's queries need. */
export interface ExporterIndex {
  name: string;
  table: string;
  /** Key columns and expressions, as written after `ON "table"`. */
  keys: string;
  where?: IndexPredicate;
  /** Which query needs it and why, for the migration's comments. */
  why: string;
}

/** Every index the exporter's queries need, in the order they are built. */
export const EXPORTER_INDEXES: readonly ExporterIndex[] = [
  {
    name: 'ProvisioningJob_live_idx',
    table: 'ProvisioningJob',
    keys: '("status", "type", "createdAt", "startedAt")',
    where: { column: 'status', op: 'NOT IN', values: KNOWN.terminalJobStatus },
    why: `provisioning.ts, live-jobs query: non-terminal jobs per type and status, and
stuck jobs by age. Only the few hundred live rows are in this index, out of
millions of finished ones; the columns make it an index-only scan.`,
  },
  {
    name: 'ProvisioningJob_failed_createdAt_idx',
    table: 'ProvisioningJob',
    keys: '("createdAt", "action", "resourceType")',
    where: { column: 'status', op: 'IN', values: ['FAILED'] },
    why: `provisioning.ts, failures query: FAILED jobs created in the last 24 h per
action and resource type, and the 10 most recent failures (ORDER BY
"createdAt" DESC LIMIT 10). Only failed rows are indexed.`,
  },
  {
    name: 'ProvisioningJob_finished_idx',
    table: 'ProvisioningJob',
    keys: '("finishedAt", "id")',
    where: { column: 'status', op: 'IN', values: KNOWN.terminalJobStatus },
    why: `provisioning-flow.ts, finished-jobs step: per second of the late-commit
lookback and the new seconds, the count and id checksum of terminal jobs (an
index-only "finishedAt" range), the rows of the seconds that changed, and
the terminal rows dated in the future, before 0001 or NULL (ranges at the
ends). Its cost follows the jobs finishing, not history.`,
  },
  {
    name: 'ShieldEvent_timestamp_decision_idx',
    table: 'ShieldEvent',
    keys: '("timestamp", "decision")',
    why: `security.ts, window queries: events leaving the 24 h window since the last
collection (a "timestamp" range), future-dated events, and the full recount.
"decision" is included so every one of them is an index-only scan. Also
declared in schema.prisma (@@index).`,
  },
  {
    name: 'GuardianFinding_open_severity_idx',
    table: 'GuardianFinding',
    keys: '("severity")',
    where: { column: 'status', op: 'IN', values: ['OPEN'] },
    why: 'security.ts, findings query: open findings per severity.',
  },
  {
    name: 'Backup_completed_idx',
    table: 'Backup',
    keys: '("resourceType", (COALESCE("completedAt", "startedAt")))',
    where: { column: 'status', op: 'IN', values: ['COMPLETED'] },
    why: `backups.ts, last-success query: a loose index scan over the distinct resource
types, then the newest COMPLETED backup of each, one index probe per type.`,
  },
  {
    name: 'Backup_failed_idx',
    table: 'Backup',
    keys: '("resourceType", (COALESCE("completedAt", "startedAt")))',
    where: { column: 'status', op: 'IN', values: ['FAILED'] },
    why: 'backups.ts, last-failure query: the same for FAILED backups.',
  },
];

/** The enum-like columns the predicates compare, for readEnumLabels. */
export const INDEX_ENUM_COLUMNS: readonly EnumColumn[] = [
  ...new Set(EXPORTER_INDEXES.flatMap((ix) => (ix.where ? [`${ix.table}.${ix.where.column}` as EnumColumn] : []))),
];

function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/**
 * The predicate with only the values the column can hold (isOneOf/isNoneOf's
 * text): `FALSE` for an IN with none, `"col" IS NOT NULL` for a NOT IN with none.
 */
export function predicateSql(labels: EnumLabels, table: string, where: IndexPredicate): string {
  const present = presentLabels(labels, `${table}.${where.column}`, where.values);
  if (present.length === 0) return where.op === 'IN' ? 'FALSE' : `${ident(where.column)} IS NOT NULL`;
  return `${ident(where.column)} ${where.op} (${present.map(literal).join(', ')})`;
}

/** The statement that builds `ix` on a database whose enum columns have `labels`. */
export function createIndexSql(ix: ExporterIndex, labels: EnumLabels, options: { concurrently?: boolean } = {}): string {
  const how = options.concurrently ? 'CREATE INDEX CONCURRENTLY IF NOT EXISTS' : 'CREATE INDEX IF NOT EXISTS';
  const where = ix.where ? ` WHERE ${predicateSql(labels, ix.table, ix.where)}` : '';
  return `${how} ${ident(ix.name)} ON ${ident(ix.table)}${ix.keys}${where}`;
}

/** A query over some connection: `pg`'s, or a read transaction's `queryUnsafe`. */
export type QueryFn = <R>(sql: string, params: unknown[]) => Promise<R[]>;

/** Reads the labels of the predicates' columns (readEnumLabels' query, over any connection). */
export async function readIndexLabels(query: QueryFn): Promise<EnumLabels> {
  const tables = INDEX_ENUM_COLUMNS.map((c) => c.slice(0, c.indexOf('.')));
  const names = INDEX_ENUM_COLUMNS.map((c) => c.slice(c.indexOf('.') + 1));
  const rows = await query<{ table: string; column: string; labels: string[] | null }>(
    `SELECT k.tbl AS "table", k.col AS "column",
            CASE WHEN t.typtype = 'e'
                 THEN ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder)
            END AS labels
       FROM unnest($1::text[], $2::text[]) AS k(tbl, col)
       JOIN pg_attribute a ON a.attrelid = to_regclass(quote_ident(k.tbl)) AND a.attname = k.col AND NOT a.attisdropped
       JOIN pg_type t ON t.oid = a.atttypid`,
    [tables, names],
  );
  return new Map(rows.map((r) => [`${r.table}.${r.column}` as EnumColumn, r.labels]));
}

/** What the database has of one needed index. */
export interface IndexState {
  name: string;
  table: string;
  /** The table exists (GuardianFinding and Backup belong to optional modules). */
  tableExists: boolean;
  /** An index of that name exists on the table. */
  exists: boolean;
  /** It exists and PostgreSQL uses it (pg_index.indisvalid, indisready). */
  valid: boolean;
  /** The statement that builds it on this database (for the log and the DBA). */
  statement: string;
}

/** Reads, in one snapshot, whether each needed index exists on its table and is valid. */
export async function inspectIndexes(query: QueryFn, options: { concurrently?: boolean } = {}): Promise<IndexState[]> {
  const labels = await readIndexLabels(query);
  const rows = await query<{ name: string; table_exists: boolean; exists: boolean; valid: boolean }>(
    `SELECT k.name, to_regclass(quote_ident(k.tbl)) IS NOT NULL AS table_exists,
            i.indexrelid IS NOT NULL AS exists, COALESCE(i.indisvalid AND i.indisready, false) AS valid
       FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(name, tbl, n)
       LEFT JOIN LATERAL (
         SELECT x.indexrelid, x.indisvalid, x.indisready
           FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
          WHERE x.indrelid = to_regclass(quote_ident(k.tbl)) AND c.relname = k.name
       ) i ON true
      ORDER BY k.n`,
    [EXPORTER_INDEXES.map((ix) => ix.name), EXPORTER_INDEXES.map((ix) => ix.table)],
  );
  return EXPORTER_INDEXES.map((ix, n) => {
    const row = rows[n]!;
    return {
      name: ix.name,
      table: ix.table,
      tableExists: row.table_exists,
      exists: row.exists,
      valid: row.valid,
      statement: `${createIndexSql(ix, labels, options)};`,
    };
  });
}

const PG_TEMP_FUNCTIONS = `-- The values of \`wanted\` that column \`col\` of table \`tbl\` can hold: all of
-- them for a text column, those among the enum's labels for an enum column.
CREATE FUNCTION pg_temp.ops_present(tbl text, col text, wanted text[]) RETURNS text[] LANGUAGE sql STABLE AS $f$
  SELECT COALESCE(array_agg(w.v ORDER BY w.n), '{}')
    FROM unnest(wanted) WITH ORDINALITY AS w(v, n)
   WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                      WHERE a.attrelid = to_regclass(quote_ident(tbl)) AND a.attname = col AND t.typtype = 'e')
      OR w.v IN (SELECT e.enumlabel::text FROM pg_attribute a JOIN pg_enum e ON e.enumtypid = a.atttypid
                  WHERE a.attrelid = to_regclass(quote_ident(tbl)) AND a.attname = col)
$f$;

-- "col" IN (…) / NOT IN (…) over those values; FALSE / "col" IS NOT NULL when none.
CREATE FUNCTION pg_temp.ops_predicate(tbl text, col text, op text, wanted text[]) RETURNS text LANGUAGE sql STABLE AS $f$
  SELECT CASE WHEN cardinality(p) > 0
              THEN format('%s %s (%s)', quote_ident_always, op, (SELECT string_agg(quote_literal(v), ', ' ORDER BY n) FROM unnest(p) WITH ORDINALITY AS u(v, n)))
              WHEN op = 'IN' THEN 'FALSE'
              ELSE quote_ident_always || ' IS NOT NULL'
         END
    FROM pg_temp.ops_present(tbl, col, wanted) AS p,
         LATERAL (SELECT '"' || replace(col, '"', '""') || '"') AS q(quote_ident_always)
$f$;

-- Runs \`statement\` when table \`tbl\` exists (Guardian and backup tracking are
-- optional modules: their indexes are built once their tables exist).
CREATE FUNCTION pg_temp.ops_create_index(tbl text, statement text) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
  IF to_regclass(quote_ident(tbl)) IS NULL THEN
    RAISE NOTICE 'table "%" does not exist: skipped %', tbl, statement;
  ELSE
    EXECUTE statement;
  END IF;
END
$f$;`;

function migrationStatement(ix: ExporterIndex): string {
  const head = `CREATE INDEX IF NOT EXISTS ${ident(ix.name)} ON ${ident(ix.table)}${ix.keys}`;
  const comment = ix.why
    .split('\n')
    .map((line) => `-- ${line}`)
    .join('\n');
  if (!ix.where) return `${comment}\nSELECT pg_temp.ops_create_index(${literal(ix.table)}, ${literal(head)});`;
  const wanted = `ARRAY[${ix.where.values.map(literal).join(', ')}]`;
  return `${comment}
SELECT pg_temp.ops_create_index(${literal(ix.table)}, ${literal(head)} || ' WHERE ' ||
    pg_temp.ops_predicate(${literal(ix.table)}, ${literal(ix.where.column)}, ${literal(ix.where.op)}, ${wanted}));`;
}

/**
 * The text of prisma/migrations/*_exporter_indexes/migration.sql (a test
 * keeps the file equal to it). Idempotent, and valid on text and enum schemas.
 */
export function migrationSql(): string {
  return `-- Indexes that keep the exporter's queries bounded by what is live or recent,
-- never by the size of history (see src/sources/*.ts for the queries). Partial
-- and expression indexes cannot be written in schema.prisma, so they live here
-- only; the one plain index (ShieldEvent_timestamp_decision_idx) is also
-- declared there (@@index).
--
-- Written by migrationSql() in src/db/indexes.ts, the one list of the
-- exporter's indexes; edit that list, not this file.
--
-- Safe on every supported platform schema and safe to run again: each index
-- is created IF NOT EXISTS, only on tables that exist, and each predicate names
-- only the values its column can hold (an enum column may lack CANCELLED).
-- On a live platform database, do not run this file (it locks writes while it
-- builds): run \`npm run db:indexes -- --concurrently\` (README, Production).

${PG_TEMP_FUNCTIONS}

${EXPORTER_INDEXES.map(migrationStatement).join('\n\n')}

DROP FUNCTION pg_temp.ops_create_index(text, text);
DROP FUNCTION pg_temp.ops_predicate(text, text, text, text[]);
DROP FUNCTION pg_temp.ops_present(text, text, text[]);
`;
}

/** What `applyIndexes` did to one index. */
export interface IndexAction {
  name: string;
  action: 'present' | 'created' | 'rebuilt' | 'skipped_no_table';
  /** The statements it ran, in order. */
  statements: string[];
}

/** Options of applyIndexes. */
export interface ApplyIndexesOptions {
  /** CREATE INDEX CONCURRENTLY (and DROP INDEX CONCURRENTLY): no write lock on a live database. */
  concurrently?: boolean;
  /** Told before each statement runs. */
  log?: (message: string) => void;
}

/**
 * Builds the missing indexes on the database of `client`, one statement at a
 * time, outside any transaction: a valid index is left alone, an invalid one
 * (a concurrent build that failed or was cancelled) is dropped and built
 * again, so running it again after a failure resumes where it stopped.
 * Throws on the first statement that fails, after which the index may be
 * invalid: the next run rebuilds it.
 */
export async function applyIndexes(client: pg.ClientBase, options: ApplyIndexesOptions = {}): Promise<IndexAction[]> {
  const query: QueryFn = async <R>(sql: string, params: unknown[]) => (await client.query(sql, params)).rows as R[];
  // A build on a large table takes as long as it takes; the role's own
  // statement_timeout (if any) must not cancel it halfway.
  await client.query("SELECT set_config('statement_timeout', '0', false)");
  const actions: IndexAction[] = [];
  for (const state of await inspectIndexes(query, { concurrently: options.concurrently })) {
    if (!state.tableExists) {
      actions.push({ name: state.name, action: 'skipped_no_table', statements: [] });
      continue;
    }
    if (state.valid) {
      actions.push({ name: state.name, action: 'present', statements: [] });
      continue;
    }
    const statements = state.exists
      ? [`DROP INDEX ${options.concurrently ? 'CONCURRENTLY ' : ''}IF EXISTS ${ident(state.name)};`, state.statement]
      : [state.statement];
    for (const statement of statements) {
      options.log?.(statement);
      await client.query(statement);
    }
    actions.push({ name: state.name, action: state.exists ? 'rebuilt' : 'created', statements });
  }
  return actions;
}
