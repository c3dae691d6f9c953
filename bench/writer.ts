/**
 * The platform at work during a measurement: Migra Shield inserting events at
 * ~115 a second (some late, a rare one dated in the future, from two
 * connections whose transactions overlap so ids commit out of order), the
 * Provisioning module creating jobs (3 a second, or more: setJobsPerSecond)
 * and moving them through RUNNING to COMPLETED or FAILED, 1 in 50 finished in
 * a transaction held open for a few seconds (a late commit), and the same
 * jobs added to BullMQ.
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
  /** Provisioning jobs (and BullMQ jobs) a second; setJobsPerSecond() changes it. */
  jobsPerSecond: number;
  /** Seconds a late-committing finish holds its transaction open (default 8). */
  lateCommitHoldSeconds?: number;
}

/** What the writer did. */
export interface WriterStats {
  events: number;
  jobs: number;
  bullJobs: number;
  seconds: number;
}

const TICK_MS = 100;
/** One finished job in this many commits late (its transaction held open). */
const LATE_EVERY = 50;

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
  private finishPaused = false;
  private jobRate: number;
  /** Jobs created before the rate last changed, and when it changed: due = createdBase + rate × seconds since. */
  private jobBase = { created: 0, at: 0 };
  /** Finished jobs waiting for the late-commit connection, with their finishing status. */
  private late: Array<{ id: string; failed: boolean }> = [];
  /** A late-commit transaction is open (finishing is not paused until it commits). */
  private lateOpen: Promise<void> = Promise.resolve();
  /** The late-commit connection is taking a batch, the job loop is finishing jobs. */
  private lateBusy = false;
  private finishBusy = false;
  /** Jobs finished so far (every LATE_EVERY-th commits late), and the late ones committed. */
  private finished = 0;
  private lateCommitted = 0;
  private readonly loops: Array<Promise<void>> = [];
  private readonly clients: pg.Client[] = [];
  private redis?: Redis;
  private queues: Queue[] = [];
  /** Writer jobs by state, to move them on by primary key. */
  private pending: Array<{ id: string; at: number }> = [];
  private running: Array<{ id: string; at: number }> = [];
  private readonly runId = Date.now().toString(36);

  constructor(private readonly options: WriterOptions) {
    this.jobRate = options.jobsPerSecond;
  }

  async start(): Promise<void> {
    for (let i = 0; i < 4; i++) {
      const c = new pg.Client({ connectionString: this.options.adminUrl, application_name: 'ops-bench-writer' });
      await c.connect();
      this.clients.push(c);
    }
    this.redis = new Redis(this.options.redisUrl, { maxRetriesPerRequest: null });
    this.queues = this.options.queueNames.map((name) => new Queue(name, { connection: this.redis as Redis, prefix: this.options.queuePrefix, skipMetasUpdate: true }));
    this.started = Date.now();
    this.jobBase = { created: 0, at: this.started };
    this.loops.push(this.eventLoop(0, 0), this.eventLoop(1, 250), this.jobLoop(2), this.lateLoop(3));
  }

  /** Jobs finished in a transaction held open (late commits), committed so far. */
  get lateCommits(): number {
    return this.lateCommitted;
  }

  /** Provisioning (and BullMQ) jobs created a second from now on. */
  setJobsPerSecond(rate: number): void {
    this.jobBase = { created: this.jobs, at: Date.now() };
    this.jobRate = rate;
  }

  /**
   * Stops (or resumes) finishing jobs: they stay RUNNING meanwhile. Resolves
   * once no finishing statement is under way and the held late commits have
   * committed, so every job finished before is visible.
   */
  async pauseFinishing(paused: boolean): Promise<void> {
    this.finishPaused = paused;
    if (!paused) return;
    // The job loop's finishing under way, then the late transaction it may have fed.
    while (this.finishBusy || this.late.length > 0 || this.lateBusy) await sleep(50);
    await this.lateOpen;
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
      const due = Math.floor(this.jobBase.created + ((now - this.jobBase.at) / 1000) * this.jobRate) - created;
      if (due > 0) {
        const ids: string[] = [];
        const types: string[] = [];
        for (let i = 0; i < due; i++) {
          ids.push(`bw-${this.runId}-${created + i}`);
          types.push(['hosting', 'dns', 'mail', 'ssl', 'backup', 'cloudpod'][(created + i) % 6] as string);
        }
        await c.query(
          `INSERT INTO "ProvisioningJob" ("id", "type", "action", "resourceType", "resourceId", "tenantId", "status", "createdAt", "updatedAt")
           SELECT id, type, type || '.create', 'WEBSITE', id, 'ten-1', 'PENDING', (clock_timestamp() AT TIME ZONE 'UTC'), (clock_timestamp() AT TIME ZONE 'UTC')
             FROM unnest($1::text[], $2::text[]) AS j(id, type)`,
          [ids, types],
        );
        for (const id of ids) this.pending.push({ id, at: now });
        if (!this.bullPaused && this.queues.length > 0) {
          await Promise.all(ids.map((id, i) => (this.queues[(created + i) % this.queues.length] as Queue).add(`${types[i]}.create`, { resourceId: id })));
          this.bullJobs += ids.length;
        }
        created += due;
        this.jobs += due;
      }
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
      const toFinish = this.finishPaused ? [] : this.running.filter((j) => now - j.at >= 10_000);
      if (toFinish.length > 0) {
        this.finishBusy = true;
        const done = toFinish.map((j, i) => ({ id: j.id, failed: (tick + i) % 33 === 0, late: (this.finished + i) % LATE_EVERY === LATE_EVERY - 1 }));
        this.finished += done.length;
        this.late.push(...done.filter((j) => j.late));
        const onTime = done.filter((j) => !j.late);
        if (onTime.length > 0) await c.query(FINISH_JOBS, [onTime.map((j) => j.id), onTime.filter((j) => j.failed).map((j) => j.id)]);
        const gone = new Set(toFinish.map((j) => j.id));
        this.running = this.running.filter((j) => !gone.has(j.id));
        this.finishBusy = false;
      }
      tick++;
      await sleep(250);
    }
  }

  /**
   * Late commits: the jobs handed over are finished (finishedAt = the
   * statement's clock) in a transaction held open `lateCommitHoldSeconds`,
   * so they become visible well after their finishedAt second has passed.
   */
  private async lateLoop(index: number): Promise<void> {
    const c = this.clients[index] as pg.Client;
    const holdMs = (this.options.lateCommitHoldSeconds ?? 8) * 1000;
    while (!this.stopped) {
      if (this.late.length === 0) {
        await sleep(100);
        continue;
      }
      this.lateBusy = true;
      const batch = this.late.splice(0);
      let release!: () => void;
      this.lateOpen = new Promise((r) => (release = r));
      try {
        await c.query('BEGIN');
        await c.query(FINISH_JOBS, [batch.map((j) => j.id), batch.filter((j) => j.failed).map((j) => j.id)]);
        this.lateBusy = false;
        // Held open; finishing paused (or stopping) commits at once.
        const until = Date.now() + holdMs;
        while (Date.now() < until && !this.stopped && !this.finishPaused) await sleep(100);
        await c.query('COMMIT');
        this.lateCommitted += batch.length;
      } finally {
        this.lateBusy = false;
        release();
      }
    }
  }
}

/** Finishes jobs $1 (those in $2 FAILED) at the statement's clock. */
const FINISH_JOBS = `
  UPDATE "ProvisioningJob"
     SET "status" = CASE WHEN "id" = ANY($2::text[]) THEN 'FAILED' ELSE 'COMPLETED' END,
         "errorMessage" = CASE WHEN "id" = ANY($2::text[]) THEN 'node did not answer within 30000 ms' END,
         "finishedAt" = (clock_timestamp() AT TIME ZONE 'UTC'), "updatedAt" = (clock_timestamp() AT TIME ZONE 'UTC')
   WHERE "id" = ANY($1::text[])`;

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
