/**
 * The obvious implementation of the same overview, kept in the benchmark only
 * as the yardstick: what a generic SQL exporter configured with the natural
 * queries, plus BullMQ's own per-queue API, costs on the same data.
 *
 * SQL: each query on its own, every collection, as sql_exporter or
 * postgres_exporter's custom queries run them: count the last 24 h of shield
 * events by decision, group all jobs by type and status, count stuck jobs,
 * the last day's failures, the newest backup per type and status, findings by
 * severity and status, policies by mode, the core nodes. They run with the
 * same indexes the exporter's migrations create.
 *
 * Redis: per queue, BullMQ's getJobCounts() (every state), getWorkersCount()
 * (a CLIENT LIST each), isPaused() and the oldest waiting job
 * (getJobs(['waiting'], 0, 0, true)), all queues at once.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';

/** One naive query. */
export interface NaiveQuery {
  name: string;
  sql: string;
}

/** The naive overview's SQL; `now()` is the database's clock, as such exporters use it. */
export const NAIVE_QUERIES: readonly NaiveQuery[] = [
  {
    name: 'shield events, last 24 h by decision',
    sql: `SELECT "decision", count(*) AS n FROM "ShieldEvent"
           WHERE "timestamp" >= (now() AT TIME ZONE 'UTC') - interval '24 hours' AND "timestamp" <= (now() AT TIME ZONE 'UTC')
           GROUP BY "decision"`,
  },
  {
    name: 'provisioning jobs by type and status',
    sql: `SELECT "type", "status", count(*) AS n FROM "ProvisioningJob" GROUP BY "type", "status"`,
  },
  {
    name: 'stuck jobs by type and status',
    sql: `SELECT "type", "status", count(*) AS n, min(COALESCE("startedAt", "createdAt")) AS oldest FROM "ProvisioningJob"
           WHERE "status" IN ('PENDING', 'RUNNING') AND COALESCE("startedAt", "createdAt") < (now() AT TIME ZONE 'UTC') - interval '15 minutes'
           GROUP BY "type", "status"`,
  },
  {
    name: 'failed jobs, last 24 h by action and resource type',
    sql: `SELECT "action", "resourceType", count(*) AS n FROM "ProvisioningJob"
           WHERE "status" = 'FAILED' AND "createdAt" >= (now() AT TIME ZONE 'UTC') - interval '24 hours'
           GROUP BY "action", "resourceType"`,
  },
  {
    name: 'last backup by resource type and status',
    sql: `SELECT "resourceType", "status", max(COALESCE("completedAt", "startedAt")) AS last FROM "Backup"
           WHERE "status" IN ('COMPLETED', 'FAILED') GROUP BY "resourceType", "status"`,
  },
  {
    name: 'findings by severity and status',
    sql: `SELECT "severity", "status", count(*) AS n FROM "GuardianFinding" GROUP BY "severity", "status"`,
  },
  {
    name: 'policies by mode',
    sql: `SELECT "mode", count(*) AS n FROM "ShieldPolicy" GROUP BY "mode"`,
  },
  {
    name: 'core nodes',
    sql: `SELECT "hostname", "role", "status", "metrics", "lastMetricsAt" FROM "CoreNode" ORDER BY "hostname"`,
  },
];

/** Runs the naive SQL overview once; returns the wall time per query, ms. */
export async function naiveSqlCollection(client: pg.ClientBase): Promise<Map<string, number>> {
  const wall = new Map<string, number>();
  for (const q of NAIVE_QUERIES) {
    const t0 = process.hrtime.bigint();
    await client.query(q.sql);
    wall.set(q.name, Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return wall;
}

/** EXPLAIN (ANALYZE, BUFFERS) of every naive query. */
export async function naivePlans(client: pg.ClientBase): Promise<Array<{ name: string; sql: string; plan: string }>> {
  const out = [];
  for (const q of NAIVE_QUERIES) {
    const { rows } = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, BUFFERS) ${q.sql}`);
    out.push({ name: q.name, sql: q.sql, plan: rows.map((r) => r['QUERY PLAN']).join('\n') });
  }
  return out;
}

/** BullMQ's own per-queue reads, for every queue. */
export class NaiveQueues {
  /** Commands this client sent itself (not those its scripts ran), by commandstats name. */
  readonly sent = new Map<string, number>();
  private readonly queues: Queue[];

  private constructor(
    private readonly connection: Redis,
    names: readonly string[],
    prefix: string,
  ) {
    this.queues = names.map((name) => new Queue(name, { connection, prefix, skipMetasUpdate: true }));
  }

  static async open(redisUrl: string, prefix: string, names: readonly string[]): Promise<NaiveQueues> {
    const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
    const naive = new NaiveQueues(connection, names, prefix);
    await Promise.all(naive.queues.map((q) => q.waitUntilReady()));
    // Count what is sent from here on (commandstats names: "client|list", "evalsha", ...).
    const send = connection.sendCommand.bind(connection);
    connection.sendCommand = ((command: { name: string; args: unknown[] }, stream?: unknown) => {
      const sub = command.name === 'client' || command.name === 'config' ? `|${String(command.args[0]).toLowerCase()}` : '';
      const key = `${command.name.toLowerCase()}${sub}`;
      naive.sent.set(key, (naive.sent.get(key) ?? 0) + 1);
      return send(command as never, stream as never);
    }) as typeof connection.sendCommand;
    return naive;
  }

  /** One collection of every queue. */
  async collect(): Promise<void> {
    await Promise.all(
      this.queues.map(async (q) => {
        await q.getJobCounts();
        await q.getWorkersCount();
        await q.isPaused();
        await q.getJobs(['waiting'], 0, 0, true);
      }),
    );
  }

  async close(): Promise<void> {
    for (const q of this.queues) await q.close();
    this.connection.disconnect();
  }
}
