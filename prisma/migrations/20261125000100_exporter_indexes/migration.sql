-- Indexes that keep the exporter's queries bounded by what is live or recent,
-- never by the size of history (see src/sources/*.ts for the queries). Partial
-- and expression indexes cannot be written in schema.prisma, so they live here
-- only; the one plain index (ShieldEvent_timestamp_decision_idx) is also
-- declared there (@@index). On a platform's own database, a DBA applies this
-- file once.

-- provisioning.ts, live-jobs query: non-terminal jobs per type and status, and
-- stuck jobs by age. Only the few hundred live rows are in this index, out of
-- millions of finished ones; the columns make it an index-only scan.
CREATE INDEX "ProvisioningJob_live_idx" ON "ProvisioningJob"("status", "type", "createdAt", "startedAt")
    WHERE "status" NOT IN ('COMPLETED', 'FAILED', 'CANCELLED');

-- provisioning.ts, failures query: FAILED jobs created in the last 24 h per
-- action and resource type, and the 10 most recent failures (ORDER BY
-- "createdAt" DESC LIMIT 10). Only failed rows are indexed.
CREATE INDEX "ProvisioningJob_failed_createdAt_idx" ON "ProvisioningJob"("createdAt", "action", "resourceType")
    WHERE "status" = 'FAILED';

-- security.ts, window queries: events leaving the 24 h window since the last
-- collection (a "timestamp" range), future-dated events, and the full recount.
-- "decision" is included so every one of them is an index-only scan.
CREATE INDEX "ShieldEvent_timestamp_decision_idx" ON "ShieldEvent"("timestamp", "decision");

-- security.ts, findings query: open findings per severity.
CREATE INDEX "GuardianFinding_open_severity_idx" ON "GuardianFinding"("severity")
    WHERE "status" = 'OPEN';

-- backups.ts, last-success query: a loose index scan over the distinct resource
-- types, then the newest COMPLETED backup of each, one index probe per type.
CREATE INDEX "Backup_completed_idx" ON "Backup"("resourceType", (COALESCE("completedAt", "startedAt")))
    WHERE "status" = 'COMPLETED';

-- backups.ts, last-failure query: the same for FAILED backups.
CREATE INDEX "Backup_failed_idx" ON "Backup"("resourceType", (COALESCE("completedAt", "startedAt")))
    WHERE "status" = 'FAILED';
