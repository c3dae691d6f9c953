-- Indexes that keep the exporter's queries bounded by what is live or recent,
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
-- builds): run `npm run db:indexes -- --concurrently` (README, Production).

-- The values of `wanted` that column `col` of table `tbl` can hold: all of
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

-- Runs `statement` when table `tbl` exists (Guardian and backup tracking are
-- optional modules: their indexes are built once their tables exist).
CREATE FUNCTION pg_temp.ops_create_index(tbl text, statement text) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
  IF to_regclass(quote_ident(tbl)) IS NULL THEN
    RAISE NOTICE 'table "%" does not exist: skipped %', tbl, statement;
  ELSE
    EXECUTE statement;
  END IF;
END
$f$;

-- provisioning.ts, live-jobs query: non-terminal jobs per type and status, and
-- stuck jobs by age. Only the few hundred live rows are in this index, out of
-- millions of finished ones; the columns make it an index-only scan.
SELECT pg_temp.ops_create_index('ProvisioningJob', 'CREATE INDEX IF NOT EXISTS "ProvisioningJob_live_idx" ON "ProvisioningJob"("status", "type", "createdAt", "startedAt")' || ' WHERE ' ||
    pg_temp.ops_predicate('ProvisioningJob', 'status', 'NOT IN', ARRAY['COMPLETED', 'FAILED', 'CANCELLED']));

-- provisioning.ts, failures query: FAILED jobs created in the last 24 h per
-- action and resource type, and the 10 most recent failures (ORDER BY
-- "createdAt" DESC LIMIT 10). Only failed rows are indexed.
SELECT pg_temp.ops_create_index('ProvisioningJob', 'CREATE INDEX IF NOT EXISTS "ProvisioningJob_failed_createdAt_idx" ON "ProvisioningJob"("createdAt", "action", "resourceType")' || ' WHERE ' ||
    pg_temp.ops_predicate('ProvisioningJob', 'status', 'IN', ARRAY['FAILED']));

-- provisioning-flow.ts, finished-jobs step: per second of the late-commit
-- lookback and the new seconds, the count and id checksum of terminal jobs (an
-- index-only "finishedAt" range), the rows of the seconds that changed, and
-- the terminal rows dated in the future, before 0001 or NULL (ranges at the
-- ends). Its cost follows the jobs finishing, not history.
SELECT pg_temp.ops_create_index('ProvisioningJob', 'CREATE INDEX IF NOT EXISTS "ProvisioningJob_finished_idx" ON "ProvisioningJob"("finishedAt", "id")' || ' WHERE ' ||
    pg_temp.ops_predicate('ProvisioningJob', 'status', 'IN', ARRAY['COMPLETED', 'FAILED', 'CANCELLED']));

-- security.ts, window queries: events leaving the 24 h window since the last
-- collection (a "timestamp" range), future-dated events, and the full recount.
-- "decision" is included so every one of them is an index-only scan. Also
-- declared in schema.prisma (@@index).
SELECT pg_temp.ops_create_index('ShieldEvent', 'CREATE INDEX IF NOT EXISTS "ShieldEvent_timestamp_decision_idx" ON "ShieldEvent"("timestamp", "decision")');

-- security.ts, findings query: open findings per severity.
SELECT pg_temp.ops_create_index('GuardianFinding', 'CREATE INDEX IF NOT EXISTS "GuardianFinding_open_severity_idx" ON "GuardianFinding"("severity")' || ' WHERE ' ||
    pg_temp.ops_predicate('GuardianFinding', 'status', 'IN', ARRAY['OPEN']));

-- backups.ts, last-success query: a loose index scan over the distinct resource
-- types, then the newest COMPLETED backup of each, one index probe per type.
SELECT pg_temp.ops_create_index('Backup', 'CREATE INDEX IF NOT EXISTS "Backup_completed_idx" ON "Backup"("resourceType", (COALESCE("completedAt", "startedAt")))' || ' WHERE ' ||
    pg_temp.ops_predicate('Backup', 'status', 'IN', ARRAY['COMPLETED']));

-- backups.ts, last-failure query: the same for FAILED backups.
SELECT pg_temp.ops_create_index('Backup', 'CREATE INDEX IF NOT EXISTS "Backup_failed_idx" ON "Backup"("resourceType", (COALESCE("completedAt", "startedAt")))' || ' WHERE ' ||
    pg_temp.ops_predicate('Backup', 'status', 'IN', ARRAY['FAILED']));

DROP FUNCTION pg_temp.ops_create_index(text, text);
DROP FUNCTION pg_temp.ops_predicate(text, text, text, text[]);
DROP FUNCTION pg_temp.ops_present(text, text, text[]);
