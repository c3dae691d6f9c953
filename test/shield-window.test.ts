/**
 * The incremental 24 h shield window equals a brute-force count at every
 * collection: as time moves, with rows arriving late (old timestamps, and ids
 * committed out of order), rows dated in the future, retention deletes, and
 * a restart. Deletes inside the window are what only the recount heals, and
 * it says how much it healed.
 */
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { buildTestExporter, scrape } from './helpers/exporter.js';
import { value } from './helpers/metrics.js';
import { createTestRedis, type TestRedis } from './helpers/redis.js';

const H = 3_600_000;
const DECISIONS = ['ALLOW', 'BLOCK', 'CHALLENGE', 'RATE_LIMITED', 'UNKNOWN'];
const literal = (d: Date) => d.toISOString().replace('T', ' ').replace('Z', '');

describe('incremental shield window', () => {
  let db: TestDatabase;
  let redis: TestRedis;
  let app: FastifyInstance;
  let now = new Date('2026-03-01T00:00:00.000Z');
  let inserted: Record<string, number>;

  const insert = async (offsetMs: number, decision: string | null, n = 1, client: pg.Pool | pg.PoolClient = db.admin) => {
    await client.query(`INSERT INTO "ShieldEvent" ("timestamp", decision) SELECT $1, $2 FROM generate_series(1, $3)`, [
      literal(new Date(now.getTime() + offsetMs)),
      decision,
      n,
    ]);
  };

  /** The obvious count, at the exporter's clock. */
  const bruteForce = async (): Promise<Record<string, number>> => {
    const { rows } = await db.admin.query<{ label: string; n: number }>(
      `SELECT CASE WHEN decision IN ('ALLOW','BLOCK','CHALLENGE','RATE_LIMITED') THEN decision ELSE 'UNKNOWN' END AS label, count(*)::int AS n
         FROM "ShieldEvent" WHERE "timestamp" >= $1 AND "timestamp" <= $2 GROUP BY 1`,
      [literal(new Date(now.getTime() - 24 * H)), literal(now)],
    );
    const out = Object.fromEntries(DECISIONS.map((d) => [d, 0]));
    for (const r of rows) out[r.label] = r.n;
    return out;
  };

  const exported = async (target: FastifyInstance = app) => {
    await target.collection.collect('security');
    const { samples } = await scrape(target);
    expect(value(samples, 'ops_source_up', { source: 'security' })).toBe(1);
    const window = Object.fromEntries(DECISIONS.map((d) => [d, value(samples, 'ops_shield_events_24h', { decision: d })]));
    const totals = Object.fromEntries(DECISIONS.map((d) => [d, value(samples, 'ops_shield_events_total', { decision: d })]));
    const drift = Object.fromEntries(DECISIONS.map((d) => [d, value(samples, 'ops_shield_events_24h_recount_drift', { decision: d })]));
    return { window, totals, drift };
  };

  const expectExact = async () => {
    const { window } = await exported();
    expect(window).toEqual(await bruteForce());
  };

  const advance = (ms: number) => {
    now = new Date(now.getTime() + ms);
  };

  beforeAll(async () => {
    db = await createTestDatabase('shield');
    redis = await createTestRedis('shield');
    // History on both sides of the window, and the window itself.
    await insert(-30 * H, 'BLOCK', 50);
    await insert(-24 * H, 'ALLOW', 3);
    await insert(-23.9 * H, 'ALLOW', 20);
    await insert(-12 * H, 'BLOCK', 7);
    await insert(-1 * H, null, 2);
    await insert(-1 * H, 'LOG', 1);
    await insert(0.5 * H, 'CHALLENGE', 4); // dated in the future
    app = await buildTestExporter({
      db,
      redis,
      now: () => now,
      env: { OPS_SHIELD_RECOUNT_INTERVAL_SECONDS: String(6 * 3600), OPS_SHIELD_LATE_COMMIT_SECONDS: '600' },
    });
    inserted = Object.fromEntries(DECISIONS.map((d) => [d, 0]));
  });
  afterAll(async () => {
    await app?.close();
    await redis?.cleanup();
    await db?.drop();
  });

  it('starts from a full recount equal to the brute-force count', async () => {
    await expectExact();
    const { totals } = await exported();
    expect(totals).toEqual(inserted);
  });

  it('stays exact as rows arrive and the window moves', async () => {
    for (let step = 0; step < 6; step++) {
      advance(15_000 + step * 20 * 60_000);
      await insert(-1000, 'ALLOW', 5);
      await insert(-2 * H, 'BLOCK', 2); // arrives late, still inside the window
      await insert(-25 * H, 'RATE_LIMITED', 1); // arrives so late it is outside already
      await insert(2 * 60_000, 'BLOCK', 1); // a clock running ahead
      inserted.ALLOW! += 5;
      inserted.BLOCK! += 3;
      inserted.RATE_LIMITED! += 1;
      await expectExact();
    }
    // The counter counts every row inserted since start, whatever its timestamp.
    const { totals } = await exported();
    expect(totals).toEqual(inserted);
  });

  it('counts rows whose ids commit out of order', async () => {
    const slow = await db.admin.connect();
    try {
      await slow.query('BEGIN');
      await insert(-5 * 60_000, 'CHALLENGE', 3, slow); // takes ids first, commits last
      advance(15_000);
      await insert(-60_000, 'ALLOW', 2); // higher ids, committed now
      await expectExact(); // the open transaction's rows are not visible yet: not counted
      await slow.query('COMMIT');
    } finally {
      slow.release();
    }
    advance(15_000);
    inserted.CHALLENGE! += 3;
    inserted.ALLOW! += 2;
    await expectExact(); // found in the gap the last collection remembered
    expect((await exported()).totals).toEqual(inserted);
  });

  it('is unaffected by retention deleting events older than the window', async () => {
    await db.admin.query(`DELETE FROM "ShieldEvent" WHERE "timestamp" < $1`, [literal(new Date(now.getTime() - 26 * H))]);
    advance(15_000);
    await expectExact();
  });

  it('moves the window across a whole day exactly', async () => {
    for (let step = 0; step < 5; step++) {
      advance(5 * H);
      await insert(-60_000, 'BLOCK', 1);
      await expectExact();
    }
  });

  it('heals a delete inside the window at the next recount and exports the drift', async () => {
    const { rows } = await db.admin.query<{ n: number }>(
      `WITH d AS (DELETE FROM "ShieldEvent" WHERE id IN (SELECT id FROM "ShieldEvent" WHERE decision = 'BLOCK' AND "timestamp" > $1 ORDER BY id LIMIT 2) RETURNING 1)
       SELECT count(*)::int AS n FROM d`,
      [literal(new Date(now.getTime() - 20 * H))],
    );
    expect(rows[0]!.n).toBe(2);
    advance(15_000);
    const before = await exported();
    // Between recounts the window cannot see deletes: it is 2 too high.
    expect(before.window.BLOCK).toBe((await bruteForce()).BLOCK! + 2);
    advance(6 * H);
    const after = await exported();
    expect(after.window).toEqual(await bruteForce());
    expect(after.drift).toEqual({ ALLOW: 0, BLOCK: -2, CHALLENGE: 0, RATE_LIMITED: 0, UNKNOWN: 0 });
  });

  it('starts exact again after a restart', async () => {
    advance(15_000);
    await insert(-60_000, 'ALLOW', 3);
    const restarted = await buildTestExporter({ db, redis, now: () => now });
    try {
      const { window, totals } = await exported(restarted);
      expect(window).toEqual(await bruteForce());
      expect(totals).toEqual(Object.fromEntries(DECISIONS.map((d) => [d, 0])));
    } finally {
      await restarted.close();
    }
  });
});
