/**
 * A slow database (a table locked by another session; pg_sleep behind a
 * view, in one statement or spread over several): the source times out at
 * its configured timeout, PostgreSQL stops the work at that moment too
 * (nothing of the exporter keeps running on the server, checked in
 * pg_stat_activity), the other sources and /metrics are unaffected, and the
 * pool stays within its bound under repeated collections and probes.
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, metricsText, waitFor, type TestApp } from './helpers/app.js';
import { sessions, type SessionRow } from './helpers/pg-cluster.js';
import { value } from './helpers/prom-text.js';

const POOL_MAX = 3;
const TIMEOUT_S = 1;

let t: TestApp;
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);

const exporterSessions = () => sessions(t.db.adminUrl, t.db.name);

/** Samples pg_stat_activity every 50 ms while `during` runs. */
async function watchSessions<T>(during: () => Promise<T>): Promise<{ result: T; seen: SessionRow[][] }> {
  const seen: SessionRow[][] = [];
  let running = true;
  const poll = (async () => {
    while (running) {
      seen.push(await exporterSessions());
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  try {
    return { result: await during(), seen };
  } finally {
    running = false;
    await poll;
  }
}

/**
 * Slack over the timeout. What is told apart is "about the timeout" from the
 * 30 s of pg_sleep that would run without it, never how fast the machine is:
 * on the server's side (how long a statement of the exporter runs, from
 * pg_stat_activity) PostgreSQL's own timers bound it, but the backend that
 * must act on them waits for a CPU like everything else; on the exporter's
 * side (when a collection returns) the test files share 2 cores with a load
 * test and, under `npm run test:stress`, two CPU burners.
 */
const SERVER_SLACK_S = 3;
const CLIENT_SLACK_S = 8;
/** Waits here are for events; this bound only stops a hang. */
const HANG_GUARD_MS = 60_000;

/** The longest any exporter statement had been running in `seen`, seconds. */
const longestActive = (seen: SessionRow[][]) => Math.max(0, ...seen.flat().filter((r) => r.state === 'active').map((r) => r.seconds));

const metrics = () => metricsText(t);

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  t = await createTestApp('faults_slow', {
    // Only the sources these tests slow down have the short timeout: the
    // others must stay up however loaded the machine is.
    env: {
      OPS_COLLECT_TIMEOUT_SECONDS: '30',
      OPS_CORE_NODES_TIMEOUT_SECONDS: String(TIMEOUT_S),
      OPS_COLLECT_INTERVAL_SECONDS: '1',
      OPS_DB_POOL_MAX: String(POOL_MAX),
    },
  });
  await t.db.admin.query(`
    INSERT INTO "CoreNode" (id, hostname, role, status, "updatedAt") VALUES ('n1', 'SRV1-WEB', 'WEB', 'ONLINE', now());
    INSERT INTO "ShieldPolicy" (id, name, mode, "updatedAt") VALUES ('p1', 'default', 'ENFORCE', now());
    INSERT INTO "GuardianFinding" (id, severity, status, title) VALUES ('f1', 'HIGH', 'OPEN', 'x');`);
  await t.app.collection.collectAll();
});

afterEach(() => {
  expect(unhandled).toEqual([]);
});

afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  await t?.close();
});

describe('a table locked by another session', () => {
  it('times the source out at its timeout, cancels its wait on the server, and leaves the rest alone', async () => {
    const locker = new pg.Client({ connectionString: t.db.adminUrl });
    await locker.connect();
    let started = false;
    try {
      await locker.query('BEGIN; LOCK TABLE "CoreNode" IN ACCESS EXCLUSIVE MODE');
      t.app.collection.start();
      started = true;
      const { seen } = await watchSessions(async () => {
        await waitFor(() => (t.app.collection.state('core_nodes')?.errors ?? 0) >= 3, HANG_GUARD_MS, 'three timed-out collections');
        // Probes in a burst share one database ping.
        const probes = await Promise.all(Array.from({ length: 50 }, () => t.app.inject('/readyz')));
        expect(new Set(probes.map((p) => p.statusCode)).size).toBe(1);
      });
      const state = t.app.collection.state('core_nodes')!;
      expect(state.up).toBe(false);
      expect(state.lastError).toMatch(/timed out after 1s|lock timeout|canceling statement/);
      expect(state.durationSeconds).toBeGreaterThanOrEqual(TIMEOUT_S * 0.9);
      expect(state.durationSeconds).toBeLessThan(TIMEOUT_S + CLIENT_SLACK_S);

      const text = await metrics();
      expect(value(text, 'ops_source_up', { source: 'core_nodes' })).toBe(0);
      for (const s of ['queues', 'provisioning', 'security', 'backups']) expect(value(text, 'ops_source_up', { source: s }), s).toBe(1);

      // Never more connections than the pool allows, never a statement past its timeout.
      expect(Math.max(...seen.map((rows) => rows.length))).toBeLessThanOrEqual(POOL_MAX);
      expect(longestActive(seen)).toBeLessThan(TIMEOUT_S + SERVER_SLACK_S);
      // A transaction the lock timeout aborted is rolled back at once: it may be
      // seen for a moment, never left behind.
      await waitFor(
        async () => (await exporterSessions()).every((r) => r.state !== 'idle in transaction (aborted)'),
        CLIENT_SLACK_S * 1000,
        'no aborted transaction left behind',
      );
    } finally {
      await locker.query('ROLLBACK');
      await locker.end();
      if (!started) await t.app.collection.stop();
    }
    try {
      await waitFor(() => t.app.collection.state('core_nodes')?.up === true, HANG_GUARD_MS, 'core_nodes to recover');
    } finally {
      await t.app.collection.stop();
    }
  });
});

describe('pg_sleep behind a view', () => {
  async function replaceWithSlowView(table: string, seconds: number): Promise<void> {
    await t.db.admin.query(`
      ALTER TABLE "${table}" RENAME TO "${table}_data";
      CREATE VIEW "${table}" AS SELECT d.* FROM "${table}_data" d, LATERAL (SELECT pg_sleep(${seconds})) s;`);
    await t.db.grantReader();
  }

  async function restore(table: string): Promise<void> {
    await t.db.admin.query(`DROP VIEW IF EXISTS "${table}"; ALTER TABLE "${table}_data" RENAME TO "${table}";`);
    // The script granted the view and took back what the renamed table had.
    await t.db.grantReader();
  }

  /** Runs `fn` with an exporter of its own on the test's database whose security source times out after `timeoutS`; closes it whatever happens. */
  async function withSecurityTimeout(timeoutS: number, fn: (app: TestApp) => Promise<void>): Promise<void> {
    const own = await createTestApp('faults_slow', {
      db: t.db,
      redis: t.redis,
      env: { OPS_COLLECT_TIMEOUT_SECONDS: '30', OPS_SECURITY_TIMEOUT_SECONDS: String(timeoutS), OPS_DB_POOL_MAX: String(POOL_MAX) },
    });
    try {
      await fn(own);
    } finally {
      await own.app.close();
    }
  }

  /**
   * One security collection of `own`, its sessions watched until the server
   * is idle again (the cancel request is a new connection, and crosses the
   * machine's load): a statement left running after collect() returned is
   * seen. Returns what was seen and when collect() returned.
   */
  async function collectWatched(own: TestApp): Promise<{ seen: SessionRow[][]; returnedAfterMs: number }> {
    let returnedAfterMs = 0;
    const { seen } = await watchSessions(async () => {
      const started = performance.now();
      await own.app.collection.collect('security');
      returnedAfterMs = performance.now() - started;
      await waitFor(async () => (await exporterSessions()).every((r) => r.state === 'idle'), HANG_GUARD_MS, 'the exporter\'s sessions to go idle');
    });
    return { seen, returnedAfterMs };
  }

  it('one slow statement: cancelled by statement_timeout at the timeout', async () => {
    await replaceWithSlowView('ShieldPolicy', 30);
    try {
      await withSecurityTimeout(TIMEOUT_S, async (own) => {
        // Without the cancel, the 30 s sleep would run on to its own statement_timeout, and be seen.
        const { seen, returnedAfterMs } = await collectWatched(own);
        // collect() returns once the I/O has settled: the server stopped at the timeout.
        expect(returnedAfterMs).toBeLessThan((TIMEOUT_S + CLIENT_SLACK_S) * 1000);
        expect(own.app.collection.state('security')?.up).toBe(false);
        expect(longestActive(seen)).toBeLessThan(TIMEOUT_S + SERVER_SLACK_S);
      });
      expect(value(await metrics(), 'ops_source_up', { source: 'core_nodes' })).toBe(1);
    } finally {
      await restore('ShieldPolicy');
    }
  });

  it('several statements each under the timeout: the one running at the deadline is cancelled, no further one starts', async () => {
    // A 6 s timeout: the first statement sleeps 5.5 s; the second, at the
    // deadline, would sleep on to its own statement_timeout (6 s more)
    // without the cancel, and runs about 0.5 s with it.
    await replaceWithSlowView('ShieldPolicy', 5.5);
    await replaceWithSlowView('GuardianFinding', 30);
    try {
      await withSecurityTimeout(6, async (own) => {
        const { seen, returnedAfterMs } = await collectWatched(own);
        // collect() returns once the I/O has settled, not at 5.5 + 6 s.
        expect(returnedAfterMs).toBeLessThan((6 + CLIENT_SLACK_S - 2) * 1000);
        const state = own.app.collection.state('security')!;
        expect(state.up).toBe(false);
        expect(state.lastError).toMatch(/timed out after 6s/);
        // The second statement ran from 5.5 s to the deadline, not on for 6 s more.
        const second = seen.flat().filter((r) => r.state === 'active' && r.query.includes('GuardianFinding'));
        expect(longestActive([second])).toBeLessThan(0.5 + SERVER_SLACK_S);
      });
    } finally {
      await restore('ShieldPolicy');
      await restore('GuardianFinding');
    }
    await withSecurityTimeout(6, async (own) => {
      await own.app.collection.collect('security');
      expect(own.app.collection.state('security')?.up).toBe(true);
    });
  }, 90_000);

  it('ten timed-out collections in a row never grow the pool', async () => {
    await replaceWithSlowView('CoreNode', 30);
    try {
      const { seen } = await watchSessions(async () => {
        for (let i = 0; i < 10; i++) {
          // Scrapes in between never touch the database.
          await Promise.all([t.app.collection.collect('core_nodes'), t.app.collection.collect('backups'), metrics()]);
        }
      });
      expect(t.app.collection.state('core_nodes')?.errors).toBeGreaterThanOrEqual(10);
      expect(Math.max(...seen.map((rows) => rows.length))).toBeLessThanOrEqual(POOL_MAX);
      expect(t.app.db.connections).toBeLessThanOrEqual(POOL_MAX);
      expect(longestActive(seen)).toBeLessThan(TIMEOUT_S + SERVER_SLACK_S);
    } finally {
      await restore('CoreNode');
    }
  }, 60_000);
});
