/**
 * A short, bounded load run (autocannon on loopback, 3 s per run at 10 and 100
 * connections) against /metrics and the API of the real exporter process
 * while its sources collect every second: zero socket errors and zero non-2xx
 * answers, and a clean exit afterwards. Latency and RSS are printed, never
 * asserted (the long run is `npm run load`, scripts/load-test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRun, seed, startExporter, table, type LoadExporter, type LoadRun } from '../scripts/load-test.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { createTestRedis, type TestRedis } from './helpers/redis.js';


let db: TestDatabase;
let redis: TestRedis;
let exporter: LoadExporter | undefined;
const runs: LoadRun[] = [];

beforeAll(async () => {
  db = await createTestDatabase('load');
  db.admin.on('error', () => undefined);
  redis = await createTestRedis('load');
  await seed(db, redis, { nodes: 100, queues: 5, jobsPerQueue: 50, provisioningJobs: 5_000, shieldEvents: 20_000 });
  exporter = await startExporter(db, redis, { OPS_COLLECT_INTERVAL_SECONDS: '1', OPS_QUEUE_DISCOVERY_INTERVAL_SECONDS: '1' });
});

afterAll(async () => {
  if (runs.length > 0) console.log(`\n${table(runs)}\n`);
  await exporter?.stop();
  await db?.drop();
  await redis?.cleanup();
});

describe('load (short)', () => {
  it.each([
    ['/metrics', 10],
    ['/metrics', 100],
    ['/api/ops/overview', 10],
    ['/api/ops/overview', 100],
  ] as const)('%s with %i connections: no error', async (url, connections) => {
    const run = await loadRun(exporter!, url, url, connections, 3);
    runs.push(run);
    expect(run.requests).toBeGreaterThan(0);
    expect(run.errors, JSON.stringify(run)).toBe(0);
  });

  it('the exporter collected during the load and exits 0 on SIGTERM', async () => {
    const res = await fetch(`http://127.0.0.1:${exporter!.port}/metrics`);
    const text = await res.text();
    const collections = Object.fromEntries(
      [...text.matchAll(/^ops_source_collections_total\{source="(\w+)"\} (\d+)$/gm)].map((m) => [m[1]!, Number(m[2])]),
    );
    expect(Object.keys(collections).sort()).toEqual(['backups', 'core_nodes', 'indexes', 'provisioning', 'queues', 'security']);
    // The index check runs hourly: once, at start-up; every other source kept collecting.
    expect(collections.indexes).toBe(1);
    for (const [name, n] of Object.entries(collections)) if (name !== 'indexes') expect(n, name).toBeGreaterThanOrEqual(5);
    expect(text).not.toMatch(/^ops_source_up\{source="\w+"\} 0$/m);
    const code = await exporter!.stop();
    exporter = undefined;
    expect(code).toBe(0);
  });
});
