/**
 * The database time the provisioning flow (provisioning-flow.ts) adds to one
 * collection, with 50 jobs/s finishing on a table of 1 M terminal jobs.
 *
 *   npx tsx bench/provisioning-flow.ts [--history 1000000] [--rate 50] [--collections 40] [--lookback 60]
 *
 * Builds its own database on the test server (TEST_PG_ADMIN_URL, else
 * postgres@127.0.0.1), migrated with the exporter's indexes; seeds the history
 * (finished over the last 30 days); then, per collection of 15 simulated
 * seconds, inserts `rate × 15` jobs finishing in those seconds (1 in 50 of
 * them committed one collection late, finishing 20 s in the past) and times
 * the flow's step alone: its wall time in the exporter's read transaction, and the server
 * execution time of its statements (run again under EXPLAIN ANALYZE in the
 * same snapshot). At the end, the counters are
 * checked against a brute-force count. Drops the database.
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Database } from '../src/db/client.js';
import { readEnumLabels } from '../src/db/enum-labels.js';
import { flowQueries, ProvisioningFlow, readFlow } from '../src/sources/provisioning-flow.js';
import { createTestDatabase } from '../test/helpers/db.js';

const { values } = parseArgs({
  options: { history: { type: 'string', default: '1000000' }, rate: { type: 'string', default: '50' }, collections: { type: 'string', default: '40' }, lookback: { type: 'string', default: '60' } },
});
const HISTORY = Number(values.history);
const RATE = Number(values.rate);
const COLLECTIONS = Number(values.collections);
const INTERVAL = 15;
const LOOKBACK = Number(values.lookback);
const TYPES = ['hosting', 'dns', 'mail', 'ssl', 'backup', 'cloudpod'];

const db = await createTestDatabase('bench_pflow');
const database = new Database({ url: db.readerUrl, poolMax: 1 });
try {
  const t0 = Math.floor(Date.now() / 1000);
  const ts = (s: string) => `(to_timestamp(${s}) AT TIME ZONE 'UTC')`;
  console.log(`seeding ${HISTORY} finished jobs…`);
  await db.admin.query(`
    INSERT INTO "ProvisioningJob" (id, type, action, "resourceType", status, "createdAt", "startedAt", "finishedAt", "updatedAt")
    SELECT 'h' || g, (ARRAY${JSON.stringify(TYPES).replace(/"/g, "'")})[1 + g % 6], 'hosting.create', 'WEBSITE',
           (ARRAY['COMPLETED','COMPLETED','COMPLETED','FAILED','CANCELLED'])[1 + g % 5],
           ${ts(`${t0} - 3600 - g * 2.5`)}, ${ts(`${t0} - 3590 - g * 2.5`)}, ${ts(`${t0} - 3500 - g * 2.5`)}, now()
      FROM generate_series(1, ${HISTORY}) g`);
  await db.admin.query('VACUUM ANALYZE "ProvisioningJob"');

  const flow = new ProvisioningFlow({ lateCommitSeconds: LOOKBACK, labelValueLimit: 200 });
  let seq = 0;
  let held: string[] = [];
  const times: number[] = [];
  const execs: number[] = [];
  const scanned: number[] = [];
  const read: number[] = [];
  for (let c = 0; c <= COLLECTIONS; c++) {
    const now = t0 + c * INTERVAL;
    if (c > 0) {
      const rows: string[] = [];
      for (let i = 0; i < RATE * INTERVAL; i++) {
        const id = `n${seq++}`;
        const fin = now - INTERVAL + (i / RATE);
        const row = `('${id}', '${TYPES[seq % 6]}', 'hosting.create', 'WEBSITE', '${seq % 10 === 0 ? 'FAILED' : 'COMPLETED'}', ${ts(String(fin - 60 - (seq % 600)))}, ${ts(String(fin - 50))}, ${ts(String(fin))}, now())`;
        // 1 in 50 commits late: dated 20 s back, inserted after the next collection.
        if (i % 50 === 0) held.push(row.replace(ts(String(fin)), ts(String(fin - 20))));
        else rows.push(row);
      }
      const sql = (r: string[]) =>
        `INSERT INTO "ProvisioningJob" (id, type, action, "resourceType", status, "createdAt", "startedAt", "finishedAt", "updatedAt") VALUES ${r.join(', ')}`;
      await db.admin.query(sql(rows));
      if (c % 2 === 0 && held.length) {
        await db.admin.query(sql(held));
        held = [];
      }
    }
    const at = new Date(now * 1000);
    const step = await database.read(5_000, async (tx) => {
      const labels = await readEnumLabels(tx, ['ProvisioningJob.status']);
      const s = performance.now();
      const r = await readFlow(tx, labels, flow, at);
      const ms = performance.now() - s;
      // The same statements again in the same snapshot, under EXPLAIN ANALYZE: their server execution time.
      const changed = flow.secondsToRead(r.read.from, r.read.to, r.read.summaries);
      const q = flowQueries(labels, r.read.from, r.read.to, changed, at);
      let execMs = 0;
      for (const sql of changed.length ? [q.summary, q.rows, q.future, q.counts] : [q.summary, q.future, q.counts]) {
        const plan = await tx.queryUnsafe<Array<{ 'QUERY PLAN': string }>>(`EXPLAIN (ANALYZE) ${sql.text}`, ...sql.values);
        execMs += Number(/Execution Time: ([\d.]+) ms/.exec(plan.map((p) => p['QUERY PLAN']).join('\n'))?.[1] ?? NaN);
      }
      return { ...r, ms, execMs };
    });
    flow.apply(step.read, step.init, {});
    if (c > 2) {
      times.push(step.ms);
      execs.push(step.execMs);
      const d = flow.data(step.statuses);
      scanned.push(d.rowsScanned);
      read.push(d.rowsRead);
    }
  }
  // Server-side execution time of each statement of one more step (EXPLAIN ANALYZE), as the exporter's role runs it.
  const end = t0 + COLLECTIONS * INTERVAL;
  const plans: Record<string, number> = {};
  await database.read(10_000, async (tx) => {
    const labels = await readEnumLabels(tx, ['ProvisioningJob.status']);
    const changed = Array.from({ length: INTERVAL }, (_, i) => end - INTERVAL + i);
    const q = flowQueries(labels, end - LOOKBACK - INTERVAL, end, changed, new Date(end * 1000));
    for (const [name, sql] of Object.entries(q)) {
      const rows = await tx.queryUnsafe<Array<{ 'QUERY PLAN': string }>>(`EXPLAIN (ANALYZE, BUFFERS) ${sql.text.replace(/\$(\d+)/g, (_, n) => `$${n}`)}`, ...sql.values);
      const text = rows.map((r) => r['QUERY PLAN']).join('\n');
      if (process.env.PLANS) console.log(text);
      plans[name] = Number(/Execution Time: ([\d.]+) ms/.exec(text)?.[1] ?? NaN);
    }
  });
  const sorted = [...times].sort((a, b) => a - b);
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!.toFixed(2);
  const ex = [...execs].sort((a, b) => a - b);
  const qe = (p: number) => ex[Math.min(ex.length - 1, Math.floor(p * ex.length))]!.toFixed(2);
  const total = flow.data([]).finished.reduce((n, f) => n + f.jobs, 0);
  const brute = (
    await db.admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM "ProvisioningJob" WHERE id LIKE 'n%' AND "finishedAt" < ${ts(String(t0 + COLLECTIONS * INTERVAL))}`)
  ).rows[0]!.n;
  console.log(
    JSON.stringify(
      {
        history: HISTORY,
        lookbackSeconds: LOOKBACK,
        ratePerSecond: RATE,
        collections: times.length,
        dbExecutionMsPerCollection: { median: qe(0.5), p95: qe(0.95), max: ex[ex.length - 1]!.toFixed(2) },
        lastStepExecutionMs: plans,
        wallMsPerStep: { median: q(0.5), p95: q(0.95), max: sorted[sorted.length - 1]!.toFixed(2) },
        indexEntriesSummarisedPerCollection: Math.round(scanned.reduce((a, b) => a + b, 0) / scanned.length),
        rowsReadPerCollection: Math.round(read.reduce((a, b) => a + b, 0) / read.length),
        counted: total,
        bruteForce: brute,
      },
      null,
      2,
    ),
  );
  if (total !== brute) process.exitCode = 1;
} finally {
  await database.close();
  await db.drop();
}
