/**
 * The simulated provisioning module: jobs on real BullMQ queues processed by
 * real BullMQ workers, each job mirrored into `ProvisioningJob` as the
 * platform does (PENDING → RUNNING → COMPLETED / FAILED, DELAYED between
 * attempts). Without Redis the same lifecycle runs on in-process timers and
 * only the table moves.
 */
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import type { DemoDb } from './demo-db.js';
import { CLOUD_PODS, QUEUES, TENANT_COUNT, fillTemplate, queueDef, tenantId, type ProvisioningQueue, type QueueDef } from './platform.js';
import type { Rng } from './random.js';
import { OutageLog, TimerSet } from './timers.js';

/** One provisioning job as the simulator creates it. */
export interface JobSpec {
  id: string;
  queue: ProvisioningQueue;
  action: string;
  resourceType: string;
  resourceId: string;
  tenantId: string;
  /** Forces the outcome (scenarios); otherwise decided by the queue's failure rate. */
  outcome?: 'fail' | 'stick';
  /** Backdated creation (stuck jobs), else now. */
  createdAt?: Date;
  /** Backdated start (stuck jobs). */
  startedAt?: Date;
}

/** How the runner reaches the outside world. */
export interface JobRunnerOptions {
  db: DemoDb;
  rng: Rng;
  clock: () => Date;
  log: (line: string) => void;
  /** Redis URL for BullMQ; null or undefined runs the database side only. */
  redisUrl?: string | null;
  /** BullMQ key prefix. Default `bull`. */
  prefix?: string;
  /** Multiplies every job's run time and retry delay (tests use 0.01). Default 1. */
  durationScale?: number;
  /** Jobs each worker runs at once. Default 4. */
  concurrency?: number;
}

/** Where BullMQ stands. */
export type RedisState = 'disabled' | 'unavailable' | 'connected';

interface JobData {
  action: string;
  resourceType: string;
  resourceId: string;
  tenantId: string;
  outcome?: 'fail' | 'stick';
}

/** ioredis options from a redis:// or rediss:// URL. */
export function redisOptionsFromUrl(url: string): RedisOptions {
  const u = new URL(url);
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new Error(`REDIS_URL must be redis:// or rediss://, got ${u.protocol}`);
  const db = u.pathname.replace(/^\//, '');
  return {
    host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(db ? { db: Number(db) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

/** Reconnect slowly and quietly: at most one attempt every 5 s. */
const retryStrategy = (times: number) => Math.min(times * 500, 5_000);

/** Checks once, quickly, whether Redis answers at `url`. */
export async function probeRedis(url: string, timeoutMs = 2_000): Promise<{ ok: true } | { ok: false; error: string }> {
  const client = new Redis({
    ...redisOptionsFromUrl(url),
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.ping();
    return { ok: true };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  } finally {
    client.disconnect();
  }
}

/** Runs provisioning jobs through BullMQ (or timers) and mirrors them into the database. */
export class JobRunner {
  private readonly timers = new TimerSet();
  /** Job run times, per queue, so one queue's workers can be stopped without waiting for them. */
  private readonly runTimers = new Map<ProvisioningQueue, TimerSet>();
  private readonly queues = new Map<ProvisioningQueue, Queue<JobData>>();
  private readonly workers = new Map<ProvisioningQueue, Worker<JobData>>();
  private producer: Redis | null = null;
  private state: RedisState = 'disabled';
  private readonly down = new Set<ProvisioningQueue>();
  private readonly parked = new Map<ProvisioningQueue, JobSpec[]>();
  private readonly failureRates = new Map<ProvisioningQueue, number>();
  private readonly stuck = new Map<string, { queue: ProvisioningQueue; release: () => void }>();
  /** Queues whose workers hang (stalled-worker): each job taken waits on the gate until it opens. */
  private readonly hung = new Map<ProvisioningQueue, { open: () => void; opened: Promise<void> }>();
  /** Stuck jobs released before a worker picked them up (their queue's workers were down). */
  private readonly released = new Set<string>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly redisLog: OutageLog;
  private readonly dbLog: OutageLog;
  private stopping = false;
  private readonly scale: number;

  constructor(private readonly o: JobRunnerOptions) {
    this.scale = o.durationScale ?? 1;
    this.redisLog = new OutageLog('simulator: Redis (BullMQ)', o.log);
    this.dbLog = new OutageLog('simulator: ProvisioningJob writes', o.log);
  }

  /** Whether jobs run on BullMQ. */
  get redis(): RedisState {
    return this.state;
  }

  /** The BullMQ queue object of `name` (tests and scenarios), if BullMQ is in use. */
  queue(name: ProvisioningQueue): Queue | undefined {
    return this.queues.get(name);
  }

  /** Connects to Redis (once; without it the database side runs alone) and starts the workers. */
  async start(): Promise<void> {
    this.stopping = false;
    const url = this.o.redisUrl;
    if (!url) {
      this.state = 'disabled';
      this.o.log('simulator: no REDIS_URL, so no BullMQ queues: provisioning jobs are written to ProvisioningJob only');
      return;
    }
    const probe = await probeRedis(url);
    if (!probe.ok) {
      this.state = 'unavailable';
      this.o.log(`simulator: Redis does not answer (${probe.error}); running without BullMQ: provisioning jobs are written to ProvisioningJob only`);
      return;
    }
    const prefix = this.o.prefix ?? 'bull';
    this.producer = new Redis({ ...redisOptionsFromUrl(url), enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy });
    this.producer.on('error', (err) => this.redisLog.failed(err));
    this.producer.on('ready', () => this.redisLog.ok());
    for (const def of QUEUES) {
      const queue = new Queue<JobData>(def.name, { connection: this.producer, prefix });
      queue.on('error', (err) => this.redisLog.failed(err));
      this.queues.set(def.name, queue);
      this.startWorker(def);
    }
    await Promise.all([...this.workers.values()].map((w) => w.waitUntilReady()));
    this.state = 'connected';
  }

  private startWorker(def: QueueDef): void {
    const url = this.o.redisUrl;
    if (!url || this.workers.has(def.name)) return;
    const worker = new Worker<JobData>(def.name, (job, _token, signal) => this.process(def, job, signal), {
      connection: { ...redisOptionsFromUrl(url), maxRetriesPerRequest: null, retryStrategy },
      prefix: this.o.prefix ?? 'bull',
      concurrency: this.o.concurrency ?? 4,
      name: `ops-demo-${def.name}`,
    });
    worker.on('error', (err) => this.redisLog.failed(err));
    this.workers.set(def.name, worker);
  }

  /** Stops every worker and queue and clears every timer; in-flight jobs end without further writes. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const s of this.stuck.values()) s.release();
    for (const queue of [...this.hung.keys()]) this.openGate(queue);
    this.timers.clear();
    for (const t of this.runTimers.values()) t.clear();
    await Promise.all([...this.workers.values()].map((w) => this.closeBounded(w)));
    this.workers.clear();
    await Promise.allSettled([...this.inFlight]);
    await Promise.all([...this.queues.values()].map((q) => this.closeBounded(q)));
    this.queues.clear();
    if (this.producer) {
      this.producer.disconnect();
      this.producer = null;
    }
    // Retries scheduled by jobs that ended while closing.
    this.timers.clear();
    for (const t of this.runTimers.values()) t.clear();
  }

  /**
   * Closes a worker or queue gracefully while Redis answers; when it does not
   * (a graceful close would wait for it forever), or after `ms`, drops the connections.
   */
  private async closeBounded(target: Worker | Queue, ms = 5_000): Promise<void> {
    const redisUp = this.producer?.status === 'ready' && !this.redisLog.isDown;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), redisUp ? ms : 0);
    });
    const closing = (target instanceof Worker ? target.close(!redisUp) : target.close()).then(() => 'closed' as const, () => 'closed' as const);
    const result = await Promise.race([closing, timedOut]);
    clearTimeout(timer);
    if (result === 'timeout') await target.disconnect().catch(() => undefined);
  }

  private runTimer(queue: ProvisioningQueue): TimerSet {
    let t = this.runTimers.get(queue);
    if (!t) {
      t = new TimerSet();
      this.runTimers.set(queue, t);
    }
    return t;
  }

  // ---- database mirror -------------------------------------------------

  private async write(sql: string, params: unknown[]): Promise<number> {
    const p = this.o.db.query(sql, params);
    this.inFlight.add(p);
    try {
      const res = await p;
      this.dbLog.ok();
      return res.rowCount;
    } catch (err) {
      this.dbLog.failed(err);
      return -1;
    } finally {
      this.inFlight.delete(p);
    }
  }

  private insertRow(spec: JobSpec, status: 'PENDING' | 'RUNNING'): Promise<number> {
    const created = (spec.createdAt ?? this.o.clock()).toISOString();
    const started = spec.startedAt ? spec.startedAt.toISOString() : null;
    return this.write(
      `INSERT INTO "ProvisioningJob" ("id", "type", "action", "resourceType", "resourceId", "tenantId", "status", "attempts", "createdAt", "startedAt", "updatedAt")
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::timestamp, $10::timestamp, $11::timestamp)`,
      [spec.id, spec.queue, spec.action, spec.resourceType, spec.resourceId, spec.tenantId, status, status === 'RUNNING' ? 1 : 0, created, started, (spec.startedAt ?? spec.createdAt ?? this.o.clock()).toISOString()],
    );
  }

  /** RUNNING; returns false when the row is gone or already finished (a job left over from an earlier run). */
  private async markRunning(id: string, attempt: number): Promise<boolean> {
    const now = this.o.clock().toISOString();
    const n = await this.write(
      `UPDATE "ProvisioningJob" SET "status" = 'RUNNING', "startedAt" = $2::timestamp, "attempts" = $3, "updatedAt" = $2::timestamp
       WHERE "id" = $1 AND "status" IN ('PENDING', 'DELAYED', 'RUNNING')`,
      [id, now, attempt],
    );
    return n !== 0;
  }

  private markFinished(id: string, status: 'COMPLETED' | 'FAILED' | 'DELAYED', attempt: number, error: string | null): Promise<number> {
    const now = this.o.clock().toISOString();
    return this.write(
      // A retry that succeeds clears the earlier attempt's error.
      `UPDATE "ProvisioningJob" SET "status" = $2, "attempts" = $3, "errorMessage" = CASE WHEN $2 = 'COMPLETED' THEN NULL ELSE COALESCE($4, "errorMessage") END,
         "finishedAt" = CASE WHEN $2 = 'DELAYED' THEN NULL ELSE $5::timestamp END, "updatedAt" = $5::timestamp
       WHERE "id" = $1`,
      [id, status, attempt, error, now],
    );
  }

  // ---- outcomes ---------------------------------------------------------

  private errorFor(def: QueueDef, spec: { resourceId: string; tenantId: string }): { message: string; transient: boolean } {
    const template = this.o.rng.pick(def.errors);
    const transient = /timed out|ECONNREFUSED|locked|capacity|rateLimited/i.test(template);
    const message = fillTemplate(template, {
      domain: spec.resourceId.includes('.') ? spec.resourceId : `${spec.tenantId.replace('_', '-')}.example.com`,
      site: spec.resourceId,
      tenant: spec.tenantId,
      tenantNum: spec.tenantId.replace(/\D/g, ''),
      pod: spec.resourceId,
    });
    return { message, transient };
  }

  /**
   * A run time, ms: log-normal like real provisioning work, its 10th and 90th
   * percentiles the queue's typical range, a long tail up to 4 times the
   * range's top (a slow ACME server, a big snapshot).
   */
  private duration(def: QueueDef): number {
    const [low, high] = def.durationSeconds;
    const mu = (Math.log(low) + Math.log(high)) / 2;
    const sigma = (Math.log(high) - Math.log(low)) / (2 * 1.2816);
    const seconds = Math.min(4 * high, Math.exp(mu + sigma * this.o.rng.gaussian()));
    return seconds * 1000 * this.scale;
  }

  /** Decides how an attempt ends: null for success, or the error. */
  private decide(def: QueueDef, spec: JobSpec | JobData, attempt: number): { message: string; transient: boolean } | null {
    if (spec.outcome === 'fail') return { ...this.errorFor(def, spec), transient: false };
    const rate = this.failureRates.get(def.name) ?? def.failureRate;
    // A retried transient error clears up half of the time.
    if (this.o.rng.chance(attempt > 1 ? rate * 8 : rate)) return this.errorFor(def, spec);
    return null;
  }

  // ---- BullMQ path ------------------------------------------------------

  private async process(def: QueueDef, job: Job<JobData>, signal?: AbortSignal): Promise<string> {
    const id = job.id!;
    // A hung worker holds the job (its lock kept alive: active, not stalled) and writes nothing.
    const gate = this.hung.get(def.name);
    if (gate) {
      await new Promise<void>((resolve) => {
        void gate.opened.then(resolve);
        signal?.addEventListener('abort', () => resolve(), { once: true });
      });
    }
    const attempt = job.attemptsMade + 1;
    if (job.data.outcome === 'stick') {
      await this.holdStuck(id, def.name, signal);
      if (!this.stopping) await this.markFinished(id, 'COMPLETED', attempt, null);
      return 'released';
    }
    if (this.stopping || !(await this.markRunning(id, attempt))) return 'skipped';
    const failure = this.decide(def, job.data, attempt);
    await this.runTimer(def.name).sleep(failure && job.data.outcome === 'fail' ? this.o.rng.between(20, 200) * this.scale : this.duration(def));
    // Woken early by stopWorkers: the job finishes now; by stop(): no more writes.
    if (this.stopping) return 'interrupted';
    if (!failure) {
      await this.markFinished(id, 'COMPLETED', attempt, null);
      return 'done';
    }
    const maxAttempts = job.opts.attempts ?? 1;
    const retry = failure.transient && attempt < maxAttempts;
    await this.markFinished(id, retry ? 'DELAYED' : 'FAILED', attempt, failure.message);
    throw retry ? new Error(failure.message) : new UnrecoverableError(failure.message);
  }

  // ---- timer path (no Redis) -------------------------------------------

  private runLocally(spec: JobSpec, attempt = 1): void {
    const def = queueDef(spec.queue);
    if (this.down.has(spec.queue) || this.hung.has(spec.queue)) {
      const list = this.parked.get(spec.queue) ?? [];
      list.push(spec);
      this.parked.set(spec.queue, list);
      return;
    }
    this.timers.later(() => {
      const run = async () => {
        if (spec.outcome === 'stick') {
          await this.holdStuck(spec.id, spec.queue);
          if (!this.stopping) await this.markFinished(spec.id, 'COMPLETED', attempt, null);
          return;
        }
        if (this.stopping || !(await this.markRunning(spec.id, attempt))) return;
        const failure = this.decide(def, spec, attempt);
        await this.runTimer(spec.queue).sleep(failure && spec.outcome === 'fail' ? this.o.rng.between(20, 200) * this.scale : this.duration(def));
        if (this.stopping) return;
        if (!failure) {
          await this.markFinished(spec.id, 'COMPLETED', attempt, null);
          return;
        }
        const retry = failure.transient && attempt < 2 && spec.outcome !== 'fail';
        await this.markFinished(spec.id, retry ? 'DELAYED' : 'FAILED', attempt, failure.message);
        if (retry) this.timers.later(() => this.runLocally(spec, attempt + 1), 5_000 * this.scale);
      };
      const p = run();
      this.inFlight.add(p);
      void p.finally(() => this.inFlight.delete(p));
    }, spec.outcome === 'stick' ? 0 : this.o.rng.between(100, 1500) * this.scale);
  }

  // ---- producing --------------------------------------------------------

  /** A new job of `queue` with a realistic action, resource and tenant. */
  newJob(queue: ProvisioningQueue): JobSpec {
    const def = queueDef(queue);
    const rng = this.o.rng;
    const index = Number(rng.weighted(Object.fromEntries(def.actions.map((x, i) => [String(i), x.weight]))));
    const chosen = def.actions[index]!;
    const tenantNum = rng.int(1, TENANT_COUNT);
    return {
      id: newJobId(rng, this.o.clock()),
      queue,
      action: chosen.action,
      resourceType: chosen.resourceType,
      resourceId: resourceIdFor(chosen.resourceType, tenantNum, rng),
      tenantId: tenantId(tenantNum),
    };
  }

  /** Writes the job's PENDING row and hands it to BullMQ (or to the timers without Redis). */
  async enqueue(spec: JobSpec): Promise<void> {
    if (this.stopping) return;
    const status = spec.outcome === 'stick' ? 'RUNNING' : 'PENDING';
    if ((await this.insertRow(spec, status)) < 0) return;
    const queue = this.queues.get(spec.queue);
    if (queue) {
      try {
        await queue.add(
          spec.action,
          { action: spec.action, resourceType: spec.resourceType, resourceId: spec.resourceId, tenantId: spec.tenantId, ...(spec.outcome ? { outcome: spec.outcome } : {}) },
          {
            jobId: spec.id,
            attempts: spec.outcome ? 1 : 2,
            backoff: { type: 'fixed', delay: Math.max(10, 5_000 * this.scale) },
            removeOnComplete: { age: 3600, count: 1000 },
            removeOnFail: { age: 24 * 3600, count: 5000 },
            ...(spec.createdAt ? { timestamp: spec.createdAt.getTime() } : {}),
          },
        );
        this.redisLog.ok();
        return;
      } catch (err) {
        // Redis went away after start: keep the platform moving on timers.
        this.redisLog.failed(err);
      }
    }
    this.runLocally(spec);
  }

  // ---- scenario hooks ---------------------------------------------------

  /** Closes the queue's workers (BullMQ then counts none) or parks its jobs (no Redis). */
  async stopWorkers(queue: ProvisioningQueue): Promise<void> {
    this.down.add(queue);
    const worker = this.workers.get(queue);
    if (!worker) return;
    this.workers.delete(queue);
    // In-flight jobs finish at once instead of holding close() for their run time.
    this.releaseStuck(queue);
    this.runTimer(queue).wakeAll();
    await this.closeBounded(worker);
  }

  /** Starts the queue's workers again (and runs the parked jobs without Redis). */
  async startWorkers(queue: ProvisioningQueue): Promise<void> {
    this.down.delete(queue);
    if (this.o.redisUrl && this.state === 'connected') {
      this.startWorker(queueDef(queue));
      await this.workers.get(queue)?.waitUntilReady();
    }
    const parked = this.parked.get(queue) ?? [];
    this.parked.delete(queue);
    for (const spec of parked) this.runLocally(spec);
  }

  /**
   * Makes the queue's workers hang (stalled-worker): they stay connected, and
   * each job they take waits, active, until unhangWorkers; once every slot of
   * their concurrency is taken, new jobs wait. Without Redis its jobs park.
   */
  hangWorkers(queue: ProvisioningQueue): void {
    if (this.hung.has(queue)) return;
    let open: () => void = () => undefined;
    const opened = new Promise<void>((resolve) => (open = resolve));
    this.hung.set(queue, { open, opened });
  }

  /** Lets the hung jobs of the queue run, and runs its parked ones (no Redis) unless its workers are down. */
  unhangWorkers(queue: ProvisioningQueue): void {
    this.openGate(queue);
    if (this.down.has(queue)) return;
    const parked = this.parked.get(queue) ?? [];
    this.parked.delete(queue);
    for (const spec of parked) this.runLocally(spec);
  }

  private openGate(queue: ProvisioningQueue): void {
    this.hung.get(queue)?.open();
    this.hung.delete(queue);
  }

  /** Overrides the queue's failure rate (0..1); null restores its usual rate. */
  setFailureRate(queue: ProvisioningQueue, rate: number | null): void {
    if (rate === null) this.failureRates.delete(queue);
    else this.failureRates.set(queue, rate);
  }

  /** Holds a stuck job until it is released (or the worker is shut down). */
  private async holdStuck(id: string, queue: ProvisioningQueue, signal?: AbortSignal): Promise<void> {
    if (this.released.delete(id)) return;
    await new Promise<void>((resolve) => {
      this.stuck.set(id, { queue, release: resolve });
      signal?.addEventListener('abort', () => resolve(), { once: true });
    });
    this.stuck.delete(id);
  }

  /**
   * Ends stuck jobs (they complete): those of a queue, those with the given
   * ids (also when no worker holds them yet), or all. Returns how many a worker held.
   */
  releaseStuck(filter?: ProvisioningQueue | readonly string[]): number {
    let n = 0;
    if (Array.isArray(filter)) {
      for (const id of filter) {
        const held = this.stuck.get(id);
        if (held) {
          held.release();
          this.stuck.delete(id);
          n++;
        } else {
          this.released.add(id);
        }
      }
      return n;
    }
    for (const [id, s] of [...this.stuck]) {
      if (filter && s.queue !== filter) continue;
      s.release();
      this.stuck.delete(id);
      n++;
    }
    return n;
  }

  /** Ids of the jobs currently held stuck by a worker. */
  stuckJobIds(): string[] {
    return [...this.stuck.keys()];
  }
}

/** A job id: sortable by creation time, unique, BullMQ-safe (no colon, not an integer). */
export function newJobId(rng: Rng, at: Date): string {
  return `pj_${at.getTime().toString(36)}${rng.id(6)}`;
}

/** A realistic resourceId for a resource type. */
export function resourceIdFor(resourceType: string, tenantNum: number, rng: Rng): string {
  const domain = `${['shop', 'blog', 'www', 'app', 'mail', 'portal'][tenantNum % 6]}-${tenantNum}.example.com`;
  switch (resourceType) {
    case 'WEBSITE':
      return `site_${tenantNum}_${rng.int(1, 4)}`;
    case 'DNS_ZONE':
    case 'CERTIFICATE':
    case 'MAIL_DOMAIN':
      return domain;
    case 'DNS_RECORD':
      return `${rng.pick(['www', 'mail', '_acme-challenge', 'api'])}.${domain}`;
    case 'MAILBOX':
      return `${rng.pick(['info', 'sales', 'admin', 'jane', 'support'])}@${domain}`;
    case 'CLOUD_POD':
      return rng.pick(CLOUD_PODS);
    default:
      return `${resourceType.toLowerCase()}_${tenantNum}`;
  }
}
