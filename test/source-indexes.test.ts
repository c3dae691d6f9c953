/**
 * The indexes source, as the exporter's read-only role: 0 per needed index
 * that exists and is valid, 1 per index missing or invalid, with the
 * statement to run in the log, on the text and on the enum schema.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Database } from '../src/db/client.js';
import { EXPORTER_INDEXES } from '../src/db/indexes.js';
import { indexesSource, type IndexesData } from '../src/sources/indexes.js';
import type { TestDatabase } from './helpers/db.js';
import { createVariantDatabase } from './helpers/schema-variants.js';

const NAMES = EXPORTER_INDEXES.map((ix) => ix.name);

interface Logged {
  fields: Record<string, unknown>;
  message: string;
}

function harness(db: TestDatabase) {
  const database = new Database({ url: db.readerUrl, poolMax: 2 });
  const logged: Logged[] = [];
  const source = indexesSource(database, { logger: { warn: (fields, message) => logged.push({ fields, message }) } });
  const collect = async (): Promise<{ data: IndexesData; missing: Record<string, number> }> => {
    logged.length = 0;
    const data = await source.collect({ now: new Date(), signal: new AbortController().signal, timeoutMs: 5_000 });
    const missing = Object.fromEntries(source.samples(data).map((s) => [s.labels.index!, s.value]));
    for (const s of source.samples(data)) expect(s.metric).toBe('exporterIndexMissing');
    return { data, missing };
  };
  return { database, logged, collect };
}

describe('on the text schema with the index file applied', () => {
  let db: TestDatabase;
  let h: ReturnType<typeof harness>;

  beforeAll(async () => {
    db = await createVariantDatabase('src_ix_text', 'text');
    h = harness(db);
  }, 30_000);

  afterAll(async () => {
    await h?.database.close();
    await db?.drop();
  });

  it('reports every needed index present and valid (0), and logs nothing', async () => {
    const { missing } = await h.collect();
    expect(missing).toEqual(Object.fromEntries(NAMES.map((n) => [n, 0])));
    expect(h.logged).toEqual([]);
  }, 20_000);

  it('reports a dropped index and an invalid one (1), logs the statements, and 0 again once they are run', async () => {
    await db.admin.query('DROP INDEX "ProvisioningJob_failed_createdAt_idx"');
    await db.admin.query(`UPDATE pg_index SET indisvalid = false WHERE indexrelid = '"Backup_completed_idx"'::regclass`);
    const { missing } = await h.collect();
    expect(missing).toEqual({
      ...Object.fromEntries(NAMES.map((n) => [n, 0])),
      ProvisioningJob_failed_createdAt_idx: 1,
      Backup_completed_idx: 1,
    });
    expect(h.logged.map((l) => [l.fields.index, l.fields.state])).toEqual([
      ['ProvisioningJob_failed_createdAt_idx', 'missing'],
      ['Backup_completed_idx', 'invalid'],
    ]);
    const statement = `CREATE INDEX CONCURRENTLY IF NOT EXISTS "ProvisioningJob_failed_createdAt_idx" ON "ProvisioningJob"("createdAt", "action", "resourceType") WHERE "status" IN ('FAILED');`;
    expect(h.logged[0]!.fields.statement).toBe(statement);
    expect(h.logged[0]!.message).toContain(statement);
    expect(h.logged[1]!.message).toContain('DROP INDEX CONCURRENTLY "Backup_completed_idx"');

    // What the log says to run, as the DBA would.
    await db.admin.query(statement);
    await db.admin.query('DROP INDEX CONCURRENTLY "Backup_completed_idx"');
    await db.admin.query(String(h.logged[1]!.fields.statement));
    const after = await h.collect();
    expect(after.missing).toEqual(Object.fromEntries(NAMES.map((n) => [n, 0])));
    expect(h.logged).toEqual([]);
  }, 20_000);

  it('has no series for the indexes of a table that does not exist (a module not installed)', async () => {
    await db.admin.query('DROP TABLE "GuardianFinding"');
    const { missing, data } = await h.collect();
    expect(Object.keys(missing)).toEqual(NAMES.filter((n) => n !== 'GuardianFinding_open_severity_idx'));
    expect(data.indexes.find((s) => s.name === 'GuardianFinding_open_severity_idx')).toMatchObject({ tableExists: false, exists: false });
  }, 20_000);
});

describe('on the enum schema without the index file', () => {
  let db: TestDatabase;
  let h: ReturnType<typeof harness>;

  beforeAll(async () => {
    db = await createVariantDatabase('src_ix_enum', 'enum', { indexes: false });
    h = harness(db);
  }, 30_000);

  afterAll(async () => {
    await h?.database.close();
    await db?.drop();
  });

  it('reports every index missing, with statements that name only the labels the enums have, which then build them', async () => {
    const { missing } = await h.collect();
    expect(missing).toEqual(Object.fromEntries(NAMES.map((n) => [n, 1])));
    expect(h.logged.map((l) => l.fields.index)).toEqual(NAMES);
    expect(h.logged[0]!.fields.statement).toBe(
      `CREATE INDEX CONCURRENTLY IF NOT EXISTS "ProvisioningJob_live_idx" ON "ProvisioningJob"("status", "type", "createdAt", "startedAt") WHERE "status" NOT IN ('COMPLETED', 'FAILED');`,
    );
    for (const l of h.logged) await db.admin.query(String(l.fields.statement));
    const after = await h.collect();
    expect(after.missing).toEqual(Object.fromEntries(NAMES.map((n) => [n, 0])));
  }, 30_000);
});
