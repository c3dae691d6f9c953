/**
 * A contract table the exporter's role may not read (a grant forgotten, or
 * taken back by a DBA): the sources reading it report down, with the reason
 * in the log and in `ops_source_up`; every other source stays up, and comes
 * back by itself once the grant is restored.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SOURCE_NAMES, type SourceName } from '../src/catalog.js';
import { createTestApp, type TestApp } from './helpers/app.js';
import { parseMetrics } from './helpers/metrics.js';

/** The one contract table each database source reads first. */
const REVOKED: Array<{ table: string; down: SourceName }> = [
  { table: 'Backup', down: 'backups' },
  { table: 'ProvisioningJob', down: 'provisioning' },
  { table: 'CoreNode', down: 'core_nodes' },
  { table: 'ShieldPolicy', down: 'security' },
];

describe.each(REVOKED)('SELECT on "$table" revoked from the exporter role', ({ table, down }) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp(`perm_${table}`);
    await t.db.admin.query(`REVOKE SELECT ON "${table}" FROM ops_overview_reader`);
  }, 30_000);

  afterAll(async () => {
    await t?.close();
  });

  async function upBySource(): Promise<Record<string, number>> {
    const res = await t.app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    return Object.fromEntries(parseMetrics(res.body).filter((s) => s.name === 'ops_source_up').map((s) => [s.labels.source!, s.value]));
  }

  it(`${down} is down with "permission denied for table ${table}" in the log; the others are up`, async () => {
    await t.app.collection.collectAll();
    expect(await upBySource()).toEqual(Object.fromEntries(SOURCE_NAMES.map((n) => [n, n === down ? 0 : 1])));
    const lines = t.logs.lines().filter((l) => l.source === down && /is down/.test(String(l.msg)));
    expect(lines).toHaveLength(1);
    expect(lines[0]!.err).toEqual({
      message: `permission denied for table ${table} (SQLSTATE 42501); the exporter's role may not read it: run sql/readonly-role.sql on this database as the tables' owner`,
    });
  }, 30_000);

  it(`${down} comes back by itself once the grant is restored (sql/readonly-role.sql run again)`, async () => {
    await t.db.grantReader();
    await t.app.collection.collectAll();
    expect(await upBySource()).toEqual(Object.fromEntries(SOURCE_NAMES.map((n) => [n, 1])));
  }, 30_000);
});
