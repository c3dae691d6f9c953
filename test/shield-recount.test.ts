/**
 * The Shield window under the conditions a real platform gives it, on both
 * schema variants (text + timestamp(3), enum + timestamptz), against a
 * brute-force count at every collection:
 * - a recount forced to cost 25 collections (one chunk of one hour each):
 *   the security source is up in every one of them, policies and findings
 *   are served, the 24 h gauge is absent (never a partial count) until the
 *   recount completes, then exact;
 * - retention deleting every row the moment it is 24 h old, late rows,
 *   out-of-order commits (one of them committing after a recount passed its
 *   second), future-dated rows, ±infinity / BC / year-10000 timestamps, a
 *   periodic recount (which then finds no drift), and a restart.
 * Collections are driven by the test with an injected clock; nothing depends
 * on wall time.
 */
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CollectionRunner } from '../src/collector/runner.js';
import { Database, type DbTx } from '../src/db/client.js';
import type { MetricKey } from '../src/catalog.js';
import type { Sample } from '../src/metrics/sample.js';
import { securitySource, type SecurityData, type SecurityOptions } from '../src/sources/security.js';
import type { TestDatabase } from './helpers/db.js';
import { createVariantDatabase, SCHEMA_VARIANTS } from './helpers/schema-variants.js';

const S = 1_000;
const M = 60 * S;
const H = 60 * M;
const DECISIONS = ['ALLOW', 'BLOCK', 'CHALLENGE', 'RATE_LIMITED', 'UNKNOWN'];

/** The source's timeout in these tests, ms. */
const TIMEOUT_MS = 5_000;

/** A database whose next `failures` recount-chunk transactions fail as a chunk over budget does. */
class FlakyDatabase extends Database {
  failures: number;
  constructor(url: string, failures: number) {
    super({ url, poolMax: 2 });
    this.failures = failures;
  }
  override read<T>(timeoutMs: number, fn: (tx: DbTx) => Promise<T>): Promise<T> {
    // Chunk transactions are the ones with less than the source's whole timeout.
    if (timeoutMs < TIMEOUT_MS && this.failures > 0) {
      this.failures -= 1;
      return Promise.reject(new Error('canceling statement due to statement timeout'));
    }
    return super.read(timeoutMs, fn);
  }
}

/** A security source of its own, collected through the real runner with the test's clock. */
function exporter(db: TestDatabase, clock: { now: Date }, options: Partial<SecurityOptions>, chunkFailures = 0) {
  const database = new FlakyDatabase(db.readerUrl, chunkFailures);
  const source = securitySource(database, { recountIntervalSeconds: 3600, lateCommitSeconds: 600, ...options });
  const runner = new CollectionRunner([{ source, schedule: { intervalSeconds: 15, timeoutSeconds: TIMEOUT_MS / 1000 } }], {
    logger: pino({ level: 'silent' }),
    now: () => clock.now,
  });
  return {
    database,
    async collect() {
      await runner.collect('security');
      return runner.state('security')!;
    },
    async close() {
      await runner.stop();
      await database.close();
    },
  };
}

function value(samples: readonly Sample[], metric: MetricKey, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.metric === metric && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

function byDecision(samples: readonly Sample[], metric: MetricKey): Record<string, number | undefined> {
  return Object.fromEntries(DECISIONS.map((d) => [d, value(samples, metric, { decision: d })]));
}

describe.each(SCHEMA_VARIANTS)('shield window, recount and retention (%s schema)', (variant) => {
  let db: TestDatabase;
  /** Owner connections in UTC, so timestamp(3) and timestamptz columns read the same instants. */
  let admin: pg.Pool;
  const clock = { now: new Date('2026-03-01T00:00:00.000Z') };
  let app: ReturnType<typeof exporter>;
  const decisionType = variant === 'enum' ? '"Decision"' : 'text';
  /** Rows with ±infinity, BC and year-10000 timestamps in the table. */
  let badTimestamps = 0;
  const insertBadTimestamps = async () => {
    for (const t of ['infinity', '-infinity', '0044-03-15 00:00:00 BC', '10000-01-01 00:00:00']) {
      await admin.query(`INSERT INTO "ShieldEvent" ("timestamp", decision) VALUES ($1, 'ALLOW')`, [t]);
    }
    badTimestamps += 4;
  };

  const insert = async (offsetMs: number, decision: string | null, n = 1, client: pg.Pool | pg.PoolClient = admin) => {
    await client.query(`INSERT INTO "ShieldEvent" ("timestamp", decision) SELECT $1::timestamptz, $2::${decisionType} FROM generate_series(1, $3)`, [
      new Date(clock.now.getTime() + offsetMs).toISOString(),
      decision,
      n,
    ]);
  };

  /**
   * Retention as a platform runs it: every row is deleted the moment it is
   * 24 h old (but the BC and -infinity rows, so that every collection meets them).
   */
  const retention = () =>
    admin.query(`DELETE FROM "ShieldEvent" WHERE "timestamp" < $1 AND "timestamp" >= '0001-01-01'`, [
      new Date(clock.now.getTime() - 24 * H).toISOString(),
    ]);

  /** The obvious count over the window's definition, [now − 24 h, now]. */
  const bruteForce = async (): Promise<Record<string, number>> => {
    const { rows } = await admin.query<{ label: string; n: number }>(
      `SELECT CASE WHEN decision::text IN ('ALLOW','BLOCK','CHALLENGE','RATE_LIMITED') THEN decision::text ELSE 'UNKNOWN' END AS label, count(*)::int AS n
         FROM "ShieldEvent" WHERE "timestamp" >= $1 AND "timestamp" <= $2 GROUP BY 1`,
      [new Date(clock.now.getTime() - 24 * H).toISOString(), clock.now.toISOString()],
    );
    const out = Object.fromEntries(DECISIONS.map((d) => [d, 0]));
    for (const r of rows) out[r.label] = r.n;
    return out;
  };

  const advance = (ms: number) => {
    clock.now = new Date(clock.now.getTime() + ms);
  };

  /** One collection: up, policies and findings served, and the window either absent or exact. */
  const collect = async (target = app) => {
    const state = await target.collect();
    expect(state.up, state.lastError).toBe(true);
    const samples = state.samples;
    expect(value(samples, 'shieldPolicies', { mode: 'ENFORCE' })).toBe(2);
    expect(value(samples, 'guardianOpenFindings', { severity: 'CRITICAL' })).toBe(1);
    expect(value(samples, 'guardianOpenFindings', { severity: 'HIGH' })).toBe(0);
    // ±infinity, BC and year 10000: counted, never in the window.
    expect(state.invalid.bad_timestamp).toBe(badTimestamps);
    const complete = value(samples, 'shieldWindowComplete');
    const window = byDecision(samples, 'shieldEvents24h');
    if (complete === 1) expect(window).toEqual(await bruteForce());
    else expect(window).toEqual(Object.fromEntries(DECISIONS.map((d) => [d, undefined])));
    return { complete, samples, window };
  };

  beforeAll(async () => {
    db = await createVariantDatabase('shield_recount', variant, { indexes: variant === 'text' });
    admin = new pg.Pool({ connectionString: db.adminUrl, max: 3, options: '-c TimeZone=UTC' });
    admin.on('error', () => undefined);
    // 26 h of history, one row every 37 s, every decision and NULL.
    await admin.query(
      `INSERT INTO "ShieldEvent" ("timestamp", decision)
       SELECT $1::timestamptz - i * interval '37 seconds', (ARRAY['ALLOW','BLOCK','CHALLENGE','RATE_LIMITED',NULL])[1 + i % 5]::${decisionType}
         FROM generate_series(1, 2530) i`,
      [clock.now.toISOString()],
    );
    await insert(5 * M, 'BLOCK', 2); // within the horizon
    await insert(20 * M, 'CHALLENGE', 3); // beyond it: read when it comes close
    await insertBadTimestamps();
    await admin.query(`INSERT INTO "ShieldPolicy" (id, name, mode, "updatedAt") VALUES ('p1', 'a', 'ENFORCE', now()), ('p2', 'b', 'ENFORCE', now()), ('p3', 'c', 'MONITOR', now())`);
    await admin.query(
      `INSERT INTO "GuardianFinding" (id, severity, status, title) VALUES ('f1', 'CRITICAL', 'OPEN', 't'), ('f2', 'HIGH', 'RESOLVED', 't'), ('f3', 'LOW', 'ACKNOWLEDGED', 't')`,
    );
    await retention();
    app = exporter(db, clock, { maxChunkSeconds: 3600, chunksPerCollection: 1, recountIntervalSeconds: 600, lateCommitSeconds: 3600 });
  });
  afterAll(async () => {
    await app?.close();
    await admin?.end();
    await db?.drop();
  });

  it('spreads the first recount over 25 collections, up in every one, the window absent until it is whole', async () => {
    let collections = 0;
    let lastProgress = -1;
    for (;;) {
      advance(15 * S);
      await retention();
      await insert(-2 * S, 'ALLOW', 3);
      await insert(-3 * H, 'BLOCK', 1); // late, inside the window
      await insert(-24 * H - 5 * S, 'RATE_LIMITED', 1); // so late it is outside already
      if (collections === 3) await insertBadTimestamps(); // read as new rows, while the recount runs
      const { complete, samples } = await collect();
      collections += 1;
      const progress = value(samples, 'shieldRecountProgress')!;
      if (complete === 1) {
        expect(progress).toBe(1);
        // The collection clock between its first and last collection, plus
        // or minus how far into those two collections (each within its
        // timeout) it started and ended.
        expect(Math.abs(value(samples, 'shieldRecountDuration')! - (collections - 1) * 15)).toBeLessThan(TIMEOUT_MS / 1000);
        break;
      }
      expect(complete).toBe(0);
      expect(value(samples, 'shieldRecountDuration')).toBeUndefined();
      expect(progress).toBeGreaterThan(lastProgress);
      expect(progress).toBeLessThan(1);
      lastProgress = progress;
      expect(collections).toBeLessThan(40);
    }
    // 86,400 s of window + 600 s of horizon in one-hour chunks, one a collection
    // (the window moving meanwhile shortens it by the seconds that left).
    expect(collections).toBe(25);
    const state = await app.collect();
    expect((state.data as SecurityData).recountChunks).toBe(25);
    expect(byDecision(state.samples, 'shieldRecountDrift')).toEqual(Object.fromEntries(DECISIONS.map((d) => [d, 0])));
  });

  it('stays exact while retention deletes rows as they turn 24 h old, with late and out-of-order commits', async () => {
    const slow = await admin.connect();
    try {
      await slow.query('BEGIN');
      await insert(-22 * H, 'CHALLENGE', 2, slow); // takes ids now, commits after a recount passed its second
      for (let step = 0; step < 8; step++) {
        advance(15 * S);
        await retention();
        await insert(-1 * S, 'ALLOW', 2);
        await insert(-23.99 * H, 'BLOCK', 1); // leaves the window within minutes
        await collect();
      }
      // The next recount starts and covers the open transaction's second before it commits.
      advance(2 * M);
      await retention();
      for (let step = 0; step < 3; step++) {
        await collect();
        advance(15 * S);
        await retention();
      }
      await slow.query('COMMIT');
    } finally {
      slow.release();
    }
    // Off the whole second: the window's ends cut seconds in two.
    for (let step = 0; step < 60; step++) {
      advance(15 * S + 250);
      await retention();
      await insert(-1_700, step % 2 ? 'RATE_LIMITED' : null, 1);
      await insert(-24 * H + 400, 'ALLOW', 1); // 24 h old in 0.4 s: inside the window's first, partial second
      await insert(300, 'BLOCK', 1); // 0.3 s ahead: not yet
      const { complete } = await collect();
      expect(complete).toBe(1);
    }
    // The future rows have come (one through the horizon's edge), the late commit was found in its gap.
    const state = await app.collect();
    expect((state.data as SecurityData).recountChunks).toBeGreaterThan(50);
    // Retention at 24 h is not drift: the periodic recount found the window as it was.
    expect(byDecision(state.samples, 'shieldRecountDrift')).toEqual(Object.fromEntries(DECISIONS.map((d) => [d, 0])));
  });

  it('stays up when recount chunks fail, and finishes the recount with narrower ones', async () => {
    const flaky = exporter(db, clock, { maxChunkSeconds: 6 * 3600, chunksPerCollection: 1 }, 3);
    try {
      let collections = 0;
      for (;;) {
        advance(15 * S);
        await retention();
        await insert(-1 * S, 'CHALLENGE', 1);
        const { complete } = await collect(flaky);
        collections += 1;
        if (complete === 1) break;
        expect(collections).toBeLessThan(60);
      }
      expect(flaky.database.failures).toBe(0);
      // Three collections without progress (6 h, 1.5 h, 22 min chunks failing), then narrower chunks growing back.
      expect(collections).toBeGreaterThan(3 + 5);
    } finally {
      await flaky.close();
    }
  });

  it('after a restart, is incomplete until its own recount is done, then exact, its counter from zero', async () => {
    const restarted = exporter(db, clock, {});
    try {
      // Unforced chunks: a window this small is recounted within a collection or two.
      let collections = 0;
      for (let complete: number | undefined; complete !== 1; collections++) {
        expect(collections).toBeLessThan(10);
        advance(15 * S);
        await retention();
        await insert(-1 * S, 'ALLOW', 1);
        ({ complete } = await collect(restarted));
      }
      const before = (await collect(restarted)).samples;
      advance(15 * S);
      await retention();
      await insert(-1 * S, 'BLOCK', 2);
      const after = (await collect(restarted)).samples;
      expect(value(after, 'shieldEventsTotal', { decision: 'BLOCK' })! - value(before, 'shieldEventsTotal', { decision: 'BLOCK' })!).toBe(2);
      expect(value(after, 'shieldEventsTotal', { decision: 'ALLOW' })).toBe(collections - 1);
    } finally {
      await restarted.close();
    }
  });
});
