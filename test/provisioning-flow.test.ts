/**
 * Provisioning flow (issue 13) on the real PostgreSQL, text and enum +
 * timestamptz schemas: ops_provisioning_jobs_finished_total and the duration
 * and queue histograms against a brute-force count through late and
 * out-of-order commits and a restart (counters restart from 0); types beyond
 * the bound; impossible times never counted; the new partial index used; rows
 * read per collection follow the jobs finishing, not the table's size.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WORK_DURATION_BUCKETS } from '../src/catalog.js';
import { Database } from '../src/db/client.js';
import { readEnumLabels } from '../src/db/enum-labels.js';
import { flowQueries, ProvisioningFlow, readFlow } from '../src/sources/provisioning-flow.js';
import { provisioningSamples, provisioningSource, type ProvisioningData } from '../src/sources/provisioning.js';
import type { TestDatabase } from './helpers/db.js';
import { createVariantDatabase, SCHEMA_VARIANTS } from './helpers/schema-variants.js';

const T0 = Date.parse('2026-06-01T12:00:00.000Z');
/** SQL timestamp literal (UTC wall time) `s` seconds from T0. */
const at = (s: number) => `'${new Date(T0 + s * 1000).toISOString().replace('T', ' ').replace('Z', '')}'`;

interface Job {
  id: string;
  type: string;
  status: string;
  /** Seconds from T0 (or a SQL literal). */
  created: number | string;
  started?: number | string | null;
  finished: number | string | null;
}

const lit = (v: number | string | null | undefined) => (v === null || v === undefined ? 'NULL' : typeof v === 'number' ? at(v) : v);
const insertSql = (jobs: readonly Job[]) =>
  `INSERT INTO "ProvisioningJob" (id, type, action, "resourceType", status, "createdAt", "startedAt", "finishedAt", "updatedAt") VALUES ` +
  jobs
    .map((j) => `('${j.id}', '${j.type}', 'hosting.create', 'WEBSITE', '${j.status}', ${lit(j.created)}, ${lit(j.started)}, ${lit(j.finished)}, now())`)
    .join(', ');

/** A source and a clock over one database. */
function harness(target: TestDatabase, labelValueLimit = 200) {
  const database = new Database({ url: target.readerUrl, poolMax: 1 });
  const source = provisioningSource(database, { stuckThresholdSeconds: 900, labelValueLimit, errorMessageMaxLength: 500, lateCommitSeconds: 60 });
  return {
    async collect(seconds: number): Promise<ProvisioningData> {
      return source.collect({ now: new Date(T0 + seconds * 1000), signal: new AbortController().signal, timeoutMs: 5_000 });
    },
    close: () => database.close(),
  };
}

/** Counter values by "type status" (zeros left out). */
function counts(data: ProvisioningData): Record<string, number> {
  const out: Record<string, number> = {};
  for (const f of data.flow?.finished ?? []) if (f.jobs > 0) out[`${f.type} ${f.status}`] = f.jobs;
  return out;
}

/**
 * Brute force: valid terminal jobs (createdAt <= finishedAt, finishedAt
 * before the watermark) not present at start, by "type status".
 */
async function bruteForce(target: TestDatabase, baseline: readonly string[], watermark: number): Promise<Record<string, number>> {
  const { rows } = await target.admin.query<{ k: string; n: number }>(
    `SELECT type || ' ' || status::text AS k, count(*)::int AS n FROM "ProvisioningJob"
      WHERE status::text IN ('COMPLETED', 'FAILED', 'CANCELLED') AND "finishedAt" < ${at(watermark)}
        AND "createdAt" >= '0001-01-01' AND "createdAt" <= "finishedAt" AND NOT (id = ANY($1)) GROUP BY 1`,
    [baseline],
  );
  return Object.fromEntries(rows.map((r) => [r.k, r.n]));
}

describe.each(SCHEMA_VARIANTS)('provisioning flow on the %s schema', (variant) => {
  let target: TestDatabase;
  const failed = 'FAILED';
  // The enum variant's JobStatus has no CANCELLED.
  const third = variant === 'enum' ? 'COMPLETED' : 'CANCELLED';

  beforeAll(async () => {
    target = await createVariantDatabase('prov_flow', variant);
  });
  afterAll(async () => {
    await target?.drop();
  });

  it('counts each job once through late and out-of-order commits, and restarts from 0', async () => {
    await target.admin.query('TRUNCATE "ProvisioningJob"');
    // History, and jobs finished inside the lookback before the start: the baseline.
    const history: Job[] = Array.from({ length: 200 }, (_, i) => ({ id: `h${i}`, type: 'hosting', status: 'COMPLETED', created: -86_400 - i, finished: -86_000 - i }));
    history.push({ id: 'b1', type: 'dns', status: failed, created: -30, finished: -10 }, { id: 'b2', type: 'dns', status: 'COMPLETED', created: -20, finished: -5 });
    await target.admin.query(insertSql(history));
    const baseline = history.map((j) => j.id);
    const h = harness(target);
    try {
      const first = await h.collect(0);
      // Counters start at the exporter's start: nothing before it is counted.
      expect(counts(first)).toEqual({});
      expect(first.flow?.finished).toEqual([]);

      // Finished before the start but committed after the baseline was read (late commits), and after it.
      await target.admin.query(
        insertSql([
          { id: 'a1', type: 'hosting', status: 'COMPLETED', created: -50, started: -47, finished: -8 },
          { id: 'a2', type: 'hosting', status: failed, created: -10, started: -9, finished: -7 },
          { id: 'a3', type: 'dns', status: third, created: 2, finished: 8 },
        ]),
      );
      let data = await h.collect(15);
      expect(counts(data)).toEqual(await bruteForce(target, baseline, 15));
      expect(counts(data)).toEqual(third === 'COMPLETED' ? { 'hosting COMPLETED': 1, 'hosting FAILED': 1, 'dns COMPLETED': 1 } : { 'hosting COMPLETED': 1, 'hosting FAILED': 1, 'dns CANCELLED': 1 });
      // a1 ran 42 s (bucket le=60), waited 3 s (le=5); a2 ran 3 s, waited 1 s.
      const dur = data.flow!.duration.find((d) => d.type === 'hosting' && d.status === 'COMPLETED')!;
      expect(dur.count).toBe(1);
      expect(dur.histogram.sum).toBe(42);
      expect(dur.histogram.buckets).toEqual(WORK_DURATION_BUCKETS.map((b) => (b >= 60 ? 1 : 0)));
      const queue = data.flow!.queue.find((q) => q.type === 'hosting')!;
      expect(queue.count).toBe(2);
      expect(queue.histogram.sum).toBe(4);
      expect(queue.histogram.buckets).toEqual(WORK_DURATION_BUCKETS.map((b) => (b >= 1 ? (b >= 5 ? 2 : 1) : 0)));
      // a3 never started: no queue time.
      expect(data.flow!.queue.find((q) => q.type === 'dns')).toBeUndefined();

      // Late commit: finishedAt 20 s, committed after the collection at 30 passed that second.
      const late = await target.admin.connect();
      const early = await target.admin.connect();
      const second = await target.admin.connect();
      try {
        await late.query('BEGIN');
        await late.query(insertSql([{ id: 'late', type: 'hosting', status: 'COMPLETED', created: 0, started: 1, finished: 20 }]));
        data = await h.collect(30);
        expect(counts(data)['hosting COMPLETED']).toBe(1);
        await late.query('COMMIT');
        data = await h.collect(45);
        expect(counts(data)['hosting COMPLETED']).toBe(2);
        expect(counts(data)).toEqual(await bruteForce(target, baseline, 45));

        // Out of order: A (finished 50) commits after B (finished 55), across a collection.
        await early.query('BEGIN');
        await early.query(insertSql([{ id: 'ooA', type: 'dns', status: failed, created: 40, finished: 50 }]));
        await second.query('BEGIN');
        await second.query(insertSql([{ id: 'ooB', type: 'dns', status: failed, created: 41, finished: 55 }]));
        await second.query('COMMIT');
        data = await h.collect(60);
        expect(counts(data)['dns FAILED']).toBe(1);
        await early.query('COMMIT');
        data = await h.collect(75);
        expect(counts(data)['dns FAILED']).toBe(2);
        data = await h.collect(90);
        expect(counts(data)).toEqual(await bruteForce(target, baseline, 90));
        // Nothing counted twice: every counted job is one row.
        const total = Object.values(counts(data)).reduce((a, b) => a + b, 0);
        expect(total).toBe(6);
      } finally {
        for (const c of [late, early, second]) c.release();
      }
    } finally {
      await h.close();
    }

    // A restart: a new source starts from 0 and counts only what finishes after it.
    const again = harness(target);
    try {
      const restarted = await again.collect(100);
      expect(restarted.flow?.finished).toEqual([]);
      expect(counts(restarted)).toEqual({});
      const samples = provisioningSamples(restarted).filter((s) => s.metric === 'provisioningJobsFinished');
      expect(samples).toEqual([]);
      await target.admin.query(insertSql([{ id: 'r1', type: 'hosting', status: failed, created: 90, finished: 101 }]));
      const after = await again.collect(115);
      expect(counts(after)).toEqual({ 'hosting FAILED': 1 });
    } finally {
      await again.close();
    }
  });

  it('a job committed later than the lookback after its second is never counted (the documented limit)', async () => {
    await target.admin.query('TRUNCATE "ProvisioningJob"');
    const h = harness(target);
    const tx = await target.admin.connect();
    try {
      await h.collect(0);
      await tx.query('BEGIN');
      await tx.query(insertSql([{ id: 'tooLate', type: 'mail', status: 'COMPLETED', created: 0, finished: 5 }]));
      // The lookback is 60 s: at 75 the watermark is 75, second 5 left memory at 65.
      await h.collect(15);
      await h.collect(75);
      await tx.query('COMMIT');
      const data = await h.collect(90);
      expect(counts(data)).toEqual({});
      // Within the lookback it would have been: the same job 59 s late is counted.
      await target.admin.query(insertSql([{ id: 'inTime', type: 'mail', status: 'COMPLETED', created: 0, finished: 31 }]));
      expect(counts(await h.collect(90))).toEqual({ 'mail COMPLETED': 1 });
    } finally {
      tx.release();
      await h.close();
    }
  });

  it('a second with more jobs than are read row by row is reported as out_of_range, never counted', async () => {
    await target.admin.query('TRUNCATE "ProvisioningJob"');
    const database = new Database({ url: target.readerUrl, poolMax: 1 });
    const flow = new ProvisioningFlow({ lateCommitSeconds: 60, labelValueLimit: 10, maxRowsPerSecond: 3 });
    const step = async (seconds: number) => {
      const invalid: Record<string, number> = {};
      const r = await database.read(5_000, async (tx) =>
        readFlow(tx, await readEnumLabels(tx, ['ProvisioningJob.status']), flow, new Date(T0 + seconds * 1000)),
      );
      flow.apply(r.read, r.init, invalid);
      const data = flow.data(r.statuses);
      return { invalid, data, total: data.finished.reduce((n, f) => n + f.jobs, 0) };
    };
    try {
      await step(0);
      // A bulk update finishing 5 jobs in one second, and 2 ordinary ones.
      await target.admin.query(
        insertSql([
          ...Array.from({ length: 5 }, (_, i) => ({ id: `g${i}`, type: 'hosting', status: failed, created: 0, finished: 5 })),
          { id: 'o1', type: 'hosting', status: 'COMPLETED', created: 0, finished: 7 },
          { id: 'o2', type: 'hosting', status: 'COMPLETED', created: 0, finished: 8 },
        ]),
      );
      const a = await step(15);
      expect(a.total).toBe(2);
      expect(a.invalid).toEqual({ out_of_range: 5 });
      expect(a.data.rowsRead).toBe(2);
      // Three of them retried (live again): the second shrinks below the cap, and is still never counted.
      await target.admin.query(`UPDATE "ProvisioningJob" SET status = 'PENDING', "finishedAt" = NULL WHERE id IN ('g0', 'g1', 'g2')`);
      const b = await step(30);
      expect(b.total).toBe(2);
      expect(b.invalid).toEqual({});
      expect(b.data.rowsRead).toBe(0);
    } finally {
      await database.close();
    }
  });

  it('reads rows in proportion to the jobs finishing, not to history', async () => {
    await target.admin.query('TRUNCATE "ProvisioningJob"');
    const h = harness(target);
    try {
      await h.collect(0);
      await target.admin.query(insertSql(Array.from({ length: 3 }, (_, i) => ({ id: `n${i}`, type: 'ssl', status: 'COMPLETED', created: 0, finished: 5 + i }))));
      const small = await h.collect(15);
      expect(small.flow).toMatchObject({ rowsRead: 3, rowsScanned: 3 });
      // 20,000 more finished jobs in history, then the same rate of finishing.
      await target.admin.query(
        `INSERT INTO "ProvisioningJob" (id, type, action, "resourceType", status, "createdAt", "finishedAt", "updatedAt")
         SELECT 'old' || g, 'ssl', 'ssl.issue', 'WEBSITE', 'COMPLETED', ${at(-90_000)}, ${at(-89_000)}::timestamp - g * interval '1 second', now()
           FROM generate_series(1, 20000) g`,
      );
      await target.admin.query('ANALYZE "ProvisioningJob"');
      await target.admin.query(insertSql(Array.from({ length: 3 }, (_, i) => ({ id: `m${i}`, type: 'ssl', status: 'COMPLETED', created: 15, finished: 20 + i }))));
      const big = await h.collect(30);
      // Only the three new rows are read in full; the summary reads the lookback's six.
      expect(big.flow).toMatchObject({ rowsRead: 3, rowsScanned: 6 });
      expect(counts(big)).toEqual({ 'ssl COMPLETED': 6 });
      // A collection with nothing new reads no row.
      const idle = await h.collect(45);
      expect(idle.flow).toMatchObject({ rowsRead: 0, rowsScanned: 6 });
    } finally {
      await h.close();
    }
  });

  it('bounds types: the first ones keep their label, the rest sum into OTHER exactly', async () => {
    await target.admin.query('TRUNCATE "ProvisioningJob"');
    const h = harness(target, 2);
    try {
      await h.collect(0);
      await target.admin.query(
        insertSql(['t1', 't2', 't3', 't4', 't4'].map((type, i) => ({ id: `x${i}`, type, status: 'COMPLETED', created: 0, finished: 1 + i }))),
      );
      const data = await h.collect(15);
      expect(counts(data)).toEqual({ 't1 COMPLETED': 1, 't2 COMPLETED': 1, 'OTHER COMPLETED': 3 });
      expect(data.invalid.label_overflow).toBe(3);
      expect(data.flow!.types).toEqual(['OTHER', 't1', 't2']);
      const samples = provisioningSamples(data);
      const other = samples.find((s) => s.metric === 'provisioningJobDuration' && s.labels.type === 'OTHER' && s.labels.status === 'COMPLETED');
      expect(other?.value).toBe(3);
    } finally {
      await h.close();
    }
  });

  it('never counts impossible finishing times; NULL finishedAt is unobserved', async () => {
    await target.admin.query('TRUNCATE "ProvisioningJob"');
    const h = harness(target);
    try {
      await h.collect(0);
      await target.admin.query(
        insertSql([
          { id: 'inf', type: 'bad', status: 'COMPLETED', created: 0, finished: "'infinity'" },
          { id: 'minf', type: 'bad', status: 'COMPLETED', created: 0, finished: "'-infinity'" },
          { id: 'bc', type: 'bad', status: failed, created: 0, finished: "'0100-01-01 00:00:00 BC'" },
          { id: 'before', type: 'bad', status: failed, created: 10, finished: 5 },
          { id: 'future', type: 'bad', status: 'COMPLETED', created: 0, finished: 1000 },
          { id: 'null', type: 'bad', status: 'COMPLETED', created: 0, finished: null },
          { id: 'badstart', type: 'ok', status: 'COMPLETED', created: 0, started: 9, finished: 7 },
          { id: 'good', type: 'ok', status: 'COMPLETED', created: 0, started: 2, finished: 8 },
        ]),
      );
      let data = await h.collect(15);
      // good and badstart counted (badstart's queue time not observed); none of the bad ones.
      expect(counts(data)).toEqual({ 'ok COMPLETED': 2 });
      expect(data.flow!.queue.find((q) => q.type === 'ok')?.count).toBe(1);
      // infinity, future (now + 985 s > skew), -infinity, BC, finished before created, bad start.
      expect(data.invalid.bad_timestamp).toBe(6);
      expect(data.invalid.null_value).toBeUndefined();
      expect(data.flow!.nullFinished).toBe(1);
      expect(provisioningSamples(data).find((s) => s.metric === 'provisioningUnobserved')?.value).toBe(1);
      // The future job's time comes: still never counted.
      for (const s of [300, 600, 900, 1000, 1015, 1030]) data = await h.collect(s);
      expect(counts(data)).toEqual({ 'ok COMPLETED': 2 });
      // Only infinity, -infinity and BC are still out of range.
      expect(data.invalid.bad_timestamp).toBe(3);
    } finally {
      await h.close();
    }
  });

  it('reads through ProvisioningJob_finished_idx', async () => {
    const database = new Database({ url: target.readerUrl, poolMax: 1 });
    const client: pg.PoolClient = await target.admin.connect();
    try {
      const labels = await database.read(5_000, (tx) => readEnumLabels(tx, ['ProvisioningJob.status']));
      const now = new Date(T0);
      const q = flowQueries(labels, T0 / 1000 - 60, T0 / 1000, [T0 / 1000 - 3, T0 / 1000 - 2, T0 / 1000 - 1], now);
      await client.query('BEGIN; SET LOCAL enable_seqscan = off');
      for (const sql of [q.summary, q.rows, q.future, q.counts]) {
        const plan = (await client.query(`EXPLAIN ${sql.text}`, sql.values)).rows.map((r: { 'QUERY PLAN': string }) => r['QUERY PLAN']).join('\n');
        expect(plan).toContain('ProvisioningJob_finished_idx');
        expect(plan).not.toContain('Seq Scan');
      }
      expect(q.summary.text).not.toContain('::text IN');
    } finally {
      await client.query('ROLLBACK');
      client.release();
      await database.close();
    }
  });
});

describe('ProvisioningFlow (pure)', () => {
  it('a job whose finishedAt moves to another second is not counted again', () => {
    const flow = new ProvisioningFlow({ lateCommitSeconds: 60, labelValueLimit: 10 });
    const row = (second: number) => ({ second, id: 'a', type: 't', typeCut: false, status: 'COMPLETED', duration: 1, queue: null, badStart: false });
    const base = { futureIds: [], beforeRange: 0, nullFinished: 0 };
    flow.apply({ ...base, from: 40, to: 100, summaries: [], rows: [] }, true, {});
    flow.apply({ ...base, from: 40, to: 110, summaries: [{ second: 105, n: 1, hash: '7' }], rows: [row(105)] }, false, {});
    // Moved from 105 to 107: both seconds changed in one step.
    const summaries = [{ second: 107, n: 1, hash: '7' }];
    expect(flow.changedSeconds(50, 120, summaries)).toEqual([105, 107]);
    flow.apply({ ...base, from: 50, to: 120, summaries, rows: [row(107)] }, false, {});
    expect(flow.data(['COMPLETED']).finished).toEqual([{ type: 't', status: 'COMPLETED', jobs: 1 }]);
  });

  it('refuses a step read before another was applied (a timed-out collection settling late)', () => {
    const flow = new ProvisioningFlow({ lateCommitSeconds: 60, labelValueLimit: 10 });
    const base = { futureIds: [], beforeRange: 0, nullFinished: 0, summaries: [], rows: [] };
    const first = flow.range(new Date(100_000));
    flow.apply({ ...base, ...first }, true, {});
    const slow = flow.range(new Date(115_000));
    const fast = flow.range(new Date(130_000));
    flow.apply({ ...base, ...fast }, false, {});
    expect(() => flow.apply({ ...base, ...slow }, false, {})).toThrow(/newer step/);
    expect(flow.data([]).watermark).toBe(130);
  });
});
