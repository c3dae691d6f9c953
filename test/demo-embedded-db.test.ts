/**
 * The zero-setup demo's database: PGlite persisted in a folder, migrated with
 * Prisma-compatible bookkeeping, seeded and written in-process by the
 * simulator, and read over the wire by `pg` pools and Prisma's adapter-pg, as
 * the exporter reads it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readMigrations } from '../src/db/migrate.js';
import { openEmbeddedDatabase, type EmbeddedDatabase } from '../src/demo/embedded-db.js';
import type { PgliteServer } from '../src/demo/pglite-server.js';
import { createSimulator } from '../src/demo/simulator.js';
import { PrismaClient } from '../src/generated/prisma/client.js';
import { captureLogger, FAST_INTERVALS } from './helpers/demo-wait.js';

let dir: string;
let emb: EmbeddedDatabase;
let server: PgliteServer;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ops-demo-pglite-'));
  emb = await openEmbeddedDatabase({ dataDir: dir });
  server = await emb.serve();
});

afterAll(async () => {
  await emb?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the embedded demo database', () => {
  it('applies the project\'s migrations with Prisma\'s bookkeeping and checksums', async () => {
    const migrations = await readMigrations();
    expect(emb.migrations).toEqual({ applied: migrations.map((m) => m.name), alreadyApplied: [] });
    const { rows } = await emb.db.query<{ migration_name: string; checksum: string; finished: boolean; rolled_back_at: null; applied_steps_count: number }>(
      `SELECT migration_name, checksum, finished_at IS NOT NULL AS finished, rolled_back_at, applied_steps_count FROM "_prisma_migrations" ORDER BY migration_name`,
    );
    expect(rows).toEqual(migrations.map((m) => ({ migration_name: m.name, checksum: m.checksum, finished: true, rolled_back_at: null, applied_steps_count: 1 })));
    const { rows: idx } = await emb.db.query<{ indexname: string }>(`SELECT indexname FROM pg_indexes WHERE indexname = 'ProvisioningJob_live_idx'`);
    expect(idx).toHaveLength(1);
  });

  it('takes the seed in-process and serves it to a pg pool over TCP', async () => {
    const seeded = await createSimulator({ db: emb.db, logger: captureLogger() }).seed(new Date(), { shieldEventsPerMinute: 5, jobHistoryScale: 0.02 });
    expect(seeded.coreNodes).toBe(8);
    expect(seeded.shieldEvents).toBe(7200);
    expect(server.host).toBe('127.0.0.1');
    const pool = new pg.Pool({ connectionString: server.url('ops_demo', 'ops_overview_reader'), max: 4 });
    try {
      const r = await pool.query(`SELECT count(*)::int AS n, count(*) FILTER (WHERE "status" = 'ONLINE')::int AS online FROM "CoreNode"`);
      expect(r.rows[0]).toEqual({ n: 8, online: 8 });
      const e = await pool.query(`SELECT count(*)::int AS n FROM "ShieldEvent" WHERE "decision" = ANY($1::text[])`, [['ALLOW', 'BLOCK', 'CHALLENGE', 'RATE_LIMITED']]);
      expect(e.rows[0].n).toBe(7200);
    } finally {
      await pool.end();
    }
  });

  it('keeps concurrent pool connections apart (results, errors and transactions) while the simulator writes', async () => {
    const sim = createSimulator({ db: emb.db, logger: captureLogger(), intervals: FAST_INTERVALS, jobRateScale: 20, jobDurationScale: 0.01 });
    await sim.start();
    const pool = new pg.Pool({ connectionString: server.url(), max: 4 });
    try {
      await pool.query('CREATE TABLE IF NOT EXISTS demo_probe (id int PRIMARY KEY, v text)');
      let wrong = 0;
      const results = await Promise.allSettled(
        Array.from({ length: 240 }, async (_, i) => {
          if (i % 5 === 0) {
            // An error must land on the query that caused it, and only there.
            const err = await pool.query('SELECT 1 / ($1::int - $1::int)', [i]).then(() => null, (e: Error) => e);
            if (!/division by zero/.test(String(err))) wrong++;
            return;
          }
          if (i % 7 === 0) {
            const c = await pool.connect();
            try {
              await c.query('BEGIN');
              await c.query('INSERT INTO demo_probe VALUES ($1, $2)', [i, `v${i}`]);
              const r = await c.query('SELECT v FROM demo_probe WHERE id = $1', [i]);
              if (r.rows[0]?.v !== `v${i}`) wrong++;
              await c.query('COMMIT');
            } finally {
              c.release();
            }
            return;
          }
          const r = await pool.query(i % 2 ? 'SELECT $1::int AS n, count(*) AS c FROM "CoreNode"' : 'SELECT $1::int AS n', [i]);
          if (r.rows[0].n !== i) wrong++;
        }),
      );
      expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
      expect(wrong).toBe(0);
      const probe = await pool.query('SELECT count(*)::int AS n FROM demo_probe');
      expect(probe.rows[0].n).toBe(Array.from({ length: 240 }, (_, i) => i).filter((i) => i % 5 !== 0 && i % 7 === 0).length);
      await sim.stop();
      const events = await pool.query(`SELECT count(*)::int AS n FROM "ShieldEvent"`);
      expect(sim.status().written.shieldEvents).toBeGreaterThan(0);
      expect(events.rows[0].n).toBe(7200 + sim.status().written.shieldEvents);
    } finally {
      await pool.end();
      await sim.stop();
    }
  });

  it('answers Prisma through @prisma/adapter-pg, as the exporter reads it', async () => {
    const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: server.url('ops_demo') }) });
    try {
      const nodes = await prisma.coreNode.findMany({ orderBy: { hostname: 'asc' }, select: { hostname: true, role: true } });
      expect(nodes.map((n) => n.hostname)).toEqual(['CLOUD-CORE', 'DB-CORE', 'DNS-CORE', 'MAIL-CORE', 'MIGRAGUARD-QUANTUM', 'MPANEL-CORE', 'SRV1-WEB', 'VOIP-CORE']);
      const byMode = await prisma.shieldPolicy.groupBy({ by: ['mode'], _count: { _all: true }, orderBy: { mode: 'asc' } });
      expect(byMode.map((m) => m.mode)).toEqual(['DISABLED', 'ENFORCE', 'MONITOR']);
      const [raw] = await prisma.$queryRaw<Array<{ n: number }>>`SELECT count(*)::int AS n FROM "Backup" WHERE "status" = 'COMPLETED'`;
      expect(raw!.n).toBeGreaterThan(0);
    } finally {
      await prisma.$disconnect();
    }
  });

  it('drops a client that holds the backend in an idle transaction, and rolls it back', async () => {
    const strict = await emb.serve({ idleHoldTimeoutMs: 300 });
    const holder = new pg.Client({ connectionString: strict.url() });
    holder.on('error', () => undefined);
    const dropped = new Promise<void>((resolve) => holder.once('end', () => resolve()));
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query(`INSERT INTO demo_probe VALUES (100000, 'never committed')`);
    const other = new pg.Client({ connectionString: strict.url() });
    const t0 = performance.now();
    // Even the new client's start-up waits for the backend, until the holder is dropped.
    await other.connect();
    try {
      const r = await other.query(`SELECT count(*)::int AS n FROM demo_probe WHERE id = 100000`);
      expect(r.rows[0].n).toBe(0);
      // The holder was dropped, not left waiting: its connection ended.
      await dropped;
      // A lower bound only: a busy machine can make the wait longer, never shorter than the hold timeout.
      expect(performance.now() - t0).toBeGreaterThanOrEqual(250);
    } finally {
      await other.end();
      await holder.end().catch(() => undefined);
    }
  });

  it('reopens the data folder with its data and nothing left to migrate', async () => {
    await emb.close();
    emb = await openEmbeddedDatabase({ dataDir: dir });
    server = await emb.serve();
    expect(emb.migrations.applied).toEqual([]);
    expect(emb.migrations.alreadyApplied).toHaveLength((await readMigrations()).length);
    const { rows } = await emb.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM "CoreNode"`);
    expect(rows[0]!.n).toBe(8);
  });
});
