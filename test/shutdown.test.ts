/**
 * Graceful shutdown of the real process (src/main.ts) on SIGTERM: it stops
 * accepting connections, closes idle keep-alive ones, lets the request under
 * way finish, closes its pools (no session left in pg_stat_activity) and
 * exits 0 within a bound, also when the database hangs; its output never
 * carries the database password.
 */
import { request, Agent } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeToken, waitFor } from './helpers/app.js';
import { clusterDatabase, READER_PASSWORD, sessions, startPgCluster, type PgCluster } from './helpers/pg-cluster.js';
import type { TestDatabase } from './helpers/db.js';
import { startExporterProcess, type ExporterProcess } from './helpers/exporter-process.js';
import { createTestRedis, type TestRedis } from './helpers/redis.js';

/** The bound a shutdown must meet (main.ts forces an exit at 10 s). */
const SHUTDOWN_BOUND_MS = 10_000;

let cluster: PgCluster;
let db: TestDatabase;
let redis: TestRedis;

type Exporter = ExporterProcess;

function startExporter(): Promise<Exporter> {
  const token = makeToken('shutdown', ['ops:overview:read']);
  return startExporterProcess({
    env: {
      DATABASE_URL: db.readerUrl,
      REDIS_URL: redis.url,
      OPS_QUEUE_PREFIXES: redis.prefix,
      OPS_API_TOKENS: JSON.stringify([token.entry]),
      LOG_LEVEL: 'info',
      OPS_COLLECT_INTERVAL_SECONDS: '1',
      OPS_COLLECT_TIMEOUT_SECONDS: '2',
    },
    readyTimeoutMs: 30_000,
  });
}

function get(e: Exporter, url: string, agent?: Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: e.port, path: url, agent: agent ?? false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.setTimeout(15_000, () => req.destroy(new Error('no answer')));
    req.on('error', reject);
    req.end();
  });
}

function logLines(e: Exporter): Array<{ level?: number; msg?: string }> {
  return e
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level?: number; msg?: string });
}

beforeAll(async () => {
  cluster = await startPgCluster({ readerPassword: true });
  db = await clusterDatabase(cluster, 'platform');
  redis = await createTestRedis('shutdown');
});

afterAll(async () => {
  cluster?.resume();
  await db?.drop();
  await cluster?.destroy();
  await redis?.cleanup();
});

describe('SIGTERM', () => {
  it('stops accepting, closes idle connections, finishes the request under way, closes the pools and exits 0', async () => {
    const e = await startExporter();
    try {
      // An idle keep-alive connection.
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      expect((await get(e, '/metrics', agent)).status).toBe(200);
      const idleClosed = new Promise<void>((resolve) => {
        const socket = Object.values(agent.freeSockets).flat()[0];
        if (!socket) resolve();
        else socket.once('close', () => resolve());
      });

      // A request under way: /readyz waiting on a database that is paused.
      cluster.pause();
      await new Promise((r) => setTimeout(r, 1_200)); // past /readyz's one-second ping cache
      const inFlight = get(e, '/readyz');
      await new Promise((r) => setTimeout(r, 300));
      const sentAt = Date.now();
      e.child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 300));

      // No new connection is accepted.
      const refused = await get(e, '/healthz').then(
        () => 'answered',
        (err: NodeJS.ErrnoException) => err.code,
      );
      expect(refused).toBe('ECONNREFUSED');
      await idleClosed;

      // The database answers again: the request under way completes normally.
      cluster.resume();
      const answer = await inFlight;
      expect(answer.status).toBe(200);
      expect(JSON.parse(answer.body)).toMatchObject({ status: 'ready', database: 'reachable' });

      const { code, signal, at } = await e.exited;
      expect({ code, signal }).toEqual({ code: 0, signal: null });
      expect(at - sentAt).toBeLessThan(SHUTDOWN_BOUND_MS);
      const msgs = logLines(e).map((l) => l.msg);
      expect(msgs).toContain('shutting down: no new connections, finishing requests under way');
      expect(msgs.at(-1)).toBe('shut down');
      expect(logLines(e).filter((l) => (l.level ?? 0) >= 50)).toEqual([]);
      expect(e.output()).not.toContain(READER_PASSWORD);
      // The pool is closed: no session of the exporter remains.
      await waitFor(async () => (await sessions(cluster.adminUrl(), 'platform')).length === 0, 30_000, 'the exporter sessions to end');
    } finally {
      cluster.resume();
      if (e.child.exitCode === null) e.child.kill('SIGKILL');
    }
  }, 60_000);

  it('exits 0 within the bound even when the database hangs for good, and ignores a second SIGTERM', async () => {
    const e = await startExporter();
    try {
      cluster.pause();
      await new Promise((r) => setTimeout(r, 1_200));
      const inFlight = get(e, '/readyz');
      await new Promise((r) => setTimeout(r, 200));
      const sentAt = Date.now();
      e.child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 100));
      e.child.kill('SIGTERM');
      // The request under way gets its answer: not ready, the database does not answer.
      const answer = await inFlight;
      expect(answer.status).toBe(503);
      expect(JSON.parse(answer.body)).toMatchObject({ status: 'not_ready', database: 'unreachable' });
      const { code, at } = await e.exited;
      expect(code).toBe(0);
      expect(at - sentAt).toBeLessThan(SHUTDOWN_BOUND_MS);
      expect(logLines(e).filter((l) => l.msg === 'shutting down: no new connections, finishing requests under way')).toHaveLength(1);
      expect(e.output()).not.toContain(READER_PASSWORD);
    } finally {
      cluster.resume();
      if (e.child.exitCode === null) e.child.kill('SIGKILL');
    }
    await waitFor(async () => (await sessions(cluster.adminUrl(), 'platform')).length === 0, 10_000, 'the exporter sessions to end');
  }, 60_000);
});
