-- The exporter's database role: it may read the contract's tables and nothing
-- else, and every session it opens is read-only. Run once per platform
-- database as its owner (psql -d <platform-db> -f sql/readonly-role.sql), then
-- set the role's password:  ALTER ROLE ops_overview_reader PASSWORD '...';
-- Safe to run again: it creates what is missing, takes back any privilege
-- granted to the role since, and grants again; run it again after a module
-- adds one of the optional tables (GuardianFinding, Backup).
--
-- What protects the data is the grants: SELECT on six tables. The read-only
-- default below is a second line only (a session may turn it off); the
-- exporter also opens every transaction READ ONLY itself.
-- On PostgreSQL 14 and older, PUBLIC may create tables in schema public:
-- there, also run REVOKE CREATE ON SCHEMA public FROM PUBLIC (15's default).

DO $$
BEGIN
  CREATE ROLE ops_overview_reader LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT;
EXCEPTION
  -- Another run (or a parallel test) created it first.
  WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

-- Sessions of this role cannot write, even if a grant is added by mistake,
-- and no query of theirs runs for long.
ALTER ROLE ops_overview_reader SET default_transaction_read_only = on;
ALTER ROLE ops_overview_reader SET statement_timeout = '10s';
ALTER ROLE ops_overview_reader SET idle_in_transaction_session_timeout = '30s';

DO $$
DECLARE
  t text;
BEGIN
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO ops_overview_reader', current_database());
  GRANT USAGE ON SCHEMA public TO ops_overview_reader;
  -- Whatever was granted before (by hand, or by an older version of this
  -- script) is taken back: the list below is the whole of it.
  REVOKE ALL ON ALL TABLES IN SCHEMA public FROM ops_overview_reader;
  REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM ops_overview_reader;
  -- GuardianFinding and Backup belong to optional modules: grant what exists.
  FOREACH t IN ARRAY ARRAY['CoreNode', 'ProvisioningJob', 'ShieldEvent', 'ShieldPolicy', 'GuardianFinding', 'Backup'] LOOP
    IF to_regclass(format('public.%I', t)) IS NOT NULL THEN
      EXECUTE format('GRANT SELECT ON public.%I TO ops_overview_reader', t);
    END IF;
  END LOOP;
END
$$;
