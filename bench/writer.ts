/**
 * The platform at work during a measurement: Migra Shield inserting events at
 * ~115 a second (some late, a rare one dated in the future, from two
 * connections whose transactions overlap so ids commit out of order), the
 * Provisioning module creating a few jobs a second and moving them through
 * RUNNING to COMPLETED or FAILED, and the same jobs added to BullMQ.
 *
 * Everything it writes is told apart from the generated dataset (ShieldEvent
 * ids above the generated ones, job ids starting `bw-`) and removed by
 * removeWrites(), so the cached dataset stays as generated.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';

/** Options of the writer. */
export interface WriterOptions {
  adminUrl: string;
  redisUrl: string;
  queuePrefix: string;
  queueNames: readonly string[];
  /** Shield events a second (platform-schema.md: about 115). */
  eventsPerSecond: number;
  /** Provisioning jobs (and BullMQ jobs) a second. */
  jobsPerSecond: number;
}

/** What the writer did. */
export interface WriterStats {
  events: number;
  jobs: number;
  bullJobs: number;
  seconds: number;
}

const TICK_MS = 100;

/** SQL inserting $1 events dated now (5% up to 30 s late, 1 in 20,000 two minutes ahead). */
const INSERT_EVENTS = `
  INSERT INTO "ShieldEvent" ("timestamp", "decision", "policyId", "tenantId", "ip", "path")
  SELECT (clock_timestamp() AT TIME ZONE 'UTC')
           - CASE WHEN r < 0.05 THEN r * 600 ELSE r * 0.5 END * interval '1 second'
           + CASE WHEN r > 0.99995 THEN interval '2 minutes' ELSE interval '0' END,
         CASE WHEN d < 0.80 THEN 'ALLOW' WHEN d < 0.92 THEN 'BLOCK' WHEN d < 0.97 THEN 'CHALLENGE'
              WHEN d < 0.995 THEN 'RATE_LIMITED' WHEN d < 0.998 THEN NULL ELSE 'QUARANTINE' END,
         'pol-000001', 'ten-1', '203.0.113.7', '/login'
    FROM (SELECT random() AS r, random() AS d FROM generate_series(1, $1::int)) x`;

/** Runs the platform's writes until stop(). */
export class SteadyWriter {
  private events = 0;
  private jobs = 0;
  private bullJobs = 0;
  private started = 0;
  private stoppedAt = 0;
  private stopped = false;
  private eventsPaused = false;
  private bullPaused = false;
  private readonly loops: Array<Promise<void>> = [];
  private readonly clients: pg.Client[] = [];
  private redis?: Redis;
  private queues: Queue[] = [];
  /** Writer jobs by state, to move them on by primary key. */
  private pending: Array<{ id: string; at: number }> = [];
  private running: Array<{ id: string; at: number }> = [];
  private readonly runId = Date.now().toString(36);

  constructor(private readonly options: WriterOptions) {}

  async start(): Promise<void> {
    for (let i = 0; i < 3; i++) {
      const c = new pg.Client({ connectionString: this.options.adminUrl, application_name: 'ops-bench-writer' });
      await c.connect();
      this.clients.push(c);
    }
    this.redis = new Redis(this.options.redisUrl, { maxRetriesPerRequest: null });
    this.queues = this.options.queueNames.map((name) => new Queue(name, { connection: this.redis as Redis, prefix: this.options.queuePrefix, skipMetasUpdate: true }));
    this.started = Date.now();
    this.loops.push(this.eventLoop(0, 0), this.eventLoop(1, 250), this.jobLoop(2));
  }

  /** Stops inserting shield events (exactness check: the window then only moves). */
  pauseEvents(paused: boolean): void {
    this.eventsPaused = paused;
  }

  /** Stops adding BullMQ jobs (while Redis's counters are read, so they hold only the exporter's commands). */
  pauseBull(paused: boolean): void {
    this.bullPaused = paused;
  }

  stats(): WriterStats {
    return { events: this.events, jobs: this.jobs, bullJobs: this.bullJobs, seconds: ((this.stoppedAt || Date.now()) - this.started) / 1000 };
  }

  async stop(): Promise<WriterStats> {
    if (this.stopped) return this.stats();
    this.stopped = true;
    this.stoppedAt = Date.now();
    await Promise.all(this.loops);
    for (const q of this.queues) await q.close();
    this.redis?.disconnect();
    for (const c of this.clients) await c.end();
    return this.stats();
  }

  /**
   * One inserting connection: each turn inserts its share of what is due in
   * one transaction, held open for `holdMs` (as a busy application does), so
   * the other connection's later ids often commit first.
   */
  private async eventLoop(index: number, holdMs: number): Promise<void> {
    const c = this.clients[index] as pg.Client;
    let inserted = 0;
    while (!this.stopped) {
      const due = Math.floor(((Date.now() - this.started) / 1000) * (this.options.eventsPerSecond / 2)) - inserted;
      if (due > 0 && !this.eventsPaused) {
        await c.query('BEGIN');
        await c.query(INSERT_EVENTS, [due]);
        if (holdMs > 0) await sleep(Math.random() * holdMs);
        await c.query('COMMIT');
        this.events += due;
      }
      if (due > 0) inserted += due;
      await sleep(TICK_MS);
    }
  }

  private async jobLoop(index: number): Promise<void> {
    const c = this.clients[index] as pg.Client;
    let created = 0;
    let tick = 0;
    while (!this.stopped) {
      const now = Date.now();
      const due = Math.floor(((now - this.started) / 1000) * this.options.jobsPerSecond) - created;
      for (let i = 0; i < due; i++) {
        const id = `bw-${this.runId}-${created + i}`;
        const type = ['hosting', 'dns', 'mail', 'ssl', 'backup', 'cloudpod'][(created + i) % 6] as string;
        await c.query(
          `INSERT INTO "ProvisioningJob" ("id", "type", "action", "resourceType", "resourceId", "tenantId", "status", "createdAt", "updatedAt")
           VALUES ($1, $2, $2 || '.create', 'WEBSITE', $1, 'ten-1', 'PENDING', (clock_timestamp() AT TIME ZONE 'UTC'), (clock_timestamp() AT TIME ZONE 'UTC'))`,
          [id, type],
        );
        this.pending.push({ id, at: now });
        if (!this.bullPaused && this.queues.length > 0) {
          await (this.queues[(created + i) % this.queues.length] as Queue).add(`${type}.create`, { resourceId: id });
          this.bullJobs++;
        }
      }
      created += Math.max(0, due);
      this.jobs += Math.max(0, due);
      // PENDING for ~5 s, RUNNING for ~10 s, then COMPLETED (3% FAILED).
      const toRun = this.pending.filter((j) => now - j.at >= 5_000);
      if (toRun.length > 0) {
        await c.query(
          `UPDATE "ProvisioningJob" SET "status" = 'RUNNING', "startedAt" = (clock_timestamp() AT TIME ZONE 'UTC'), "updatedAt" = (clock_timestamp() AT TIME ZONE 'UTC')
            WHERE "id" = ANY($1::text[])`,
          [toRun.map((j) => j.id)],
        );
        this.pending = this.pending.filter((j) => now - j.at < 5_000);
        this.running.push(...toRun.map((j) => ({ id: j.id, at: now })));
      }
      const toFinish = this.running.filter((j) => now - j.at >= 10_000);
      if (toFinish.length > 0) {
        const failed = toFinish.filter((_, i) => (tick + i) % 33 === 0).map((j) => j.id);
        await c.query(
          `UPDATE "ProvisioningJob"
              SET "status" = CASE WHEN "id" = ANY($2::text[]) THEN 'FAILED' ELSE 'COMPLETED' END,
                  "errorMessage" = CASE WHEN "id" = ANY($2::text[]) THEN 'node did not answer within 30000 ms' END,
                  "finishedAt" = (clock_timestamp() AT TIME ZONE 'UTC'), "updatedAt" = (clock_timestamp() AT TIME ZONE 'UTC')
            WHERE "id" = ANY($1::text[])`,
          [toFinish.map((j) => j.id), failed],
        );
        this.running = this.running.filter((j) => now - j.at < 10_000);
      }
      tick++;
      await sleep(250);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Removes what writers added to a generated database (also after an
 * interrupted run): events above the generated ids and `bw-` jobs; then
 * VACUUM ShieldEvent, so its visibility map is as generated.
 */
export async function removeWrites(adminUrl: string, generatedShieldEvents: number): Promise<{ events: number; jobs: number }> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    const e = await c.query(`DELETE FROM "ShieldEvent" WHERE "id" > $1::bigint`, [generatedShieldEvents]);
    // Generated ids are 'job-…': everything from 'bw-' up to 'bw.' (the next character) is the writer's.
    const j = await c.query(`DELETE FROM "ProvisioningJob" WHERE "id" >= 'bw-' AND "id" < 'bw.'`);
    // ProvisioningJob is vacuumed by prepareRecentJobs() at the start of a run.
    if ((e.rowCount ?? 0) > 0) await c.query('VACUUM (ANALYZE) "ShieldEvent"');
    return { events: e.rowCount ?? 0, jobs: j.rowCount ?? 0 };
  } finally {
    await c.end();
  }
}
