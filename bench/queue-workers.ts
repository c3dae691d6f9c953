/**
 * Real BullMQ workers for the flow phase: they take jobs from some of the
 * bench's queues at a set rate (BullMQ's own rate limiter, per queue) and
 * complete them, failing 3% for good (UnrecoverableError), so the queues'
 * events streams grow as a platform's do. What they did is counted from their
 * own `completed` and `failed` events, per queue, to check the exporter's
 * counters against.
 */
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import { Redis } from 'ioredis';

/** Options of the flow workers. */
export interface FlowWorkersOptions {
  redisUrl: string;
  prefix: string;
  /** Queues to work on (each gets one worker). */
  queueNames: readonly string[];
  /** Jobs finishing a second over all the queues. */
  jobsPerSecond: number;
}

/** Jobs completed and failed per queue. */
export interface FlowCounts {
  completed: Record<string, number>;
  failed: Record<string, number>;
}

/** One worker per queue, paused until resume(). */
export class FlowWorkers {
  private readonly workers: Worker[] = [];
  private readonly counts: FlowCounts = { completed: {}, failed: {} };
  private readonly connections: Redis[] = [];
  private seq = 0;
  private started = false;

  private constructor(private readonly options: FlowWorkersOptions) {}

  /**
   * Creates the workers (not yet running). Queues that are paused are left
   * out: a worker there would finish nothing.
   */
  static async open(options: FlowWorkersOptions): Promise<FlowWorkers> {
    const probe = new Redis(options.redisUrl, { maxRetriesPerRequest: null });
    const names: string[] = [];
    try {
      for (const name of options.queueNames) {
        const q = new Queue(name, { connection: probe, prefix: options.prefix, skipMetasUpdate: true });
        if (!(await q.isPaused())) names.push(name);
        await q.close();
      }
    } finally {
      probe.disconnect();
    }
    const w = new FlowWorkers({ ...options, queueNames: names });
    const perQueue = Math.max(1, Math.round(options.jobsPerSecond / Math.max(1, names.length)));
    for (const name of names) {
      w.counts.completed[name] = 0;
      w.counts.failed[name] = 0;
      const connection = new Redis(options.redisUrl, { maxRetriesPerRequest: null });
      w.connections.push(connection);
      const worker = new Worker(
        name,
        async () => {
          // 3% fail for good, whatever attempts the job was added with.
          if (w.seq++ % 33 === 0) throw new UnrecoverableError('node did not answer within 30000 ms');
          return 'ok';
        },
        {
          connection,
          prefix: options.prefix,
          autorun: false,
          concurrency: 4,
          limiter: { max: perQueue, duration: 1000 },
          // The generated jobs carry no lock renewal needs: short jobs.
          stalledInterval: 30_000,
        },
      );
      worker.on('completed', () => (w.counts.completed[name] = (w.counts.completed[name] ?? 0) + 1));
      // UnrecoverableError is the only failure here: always for good (the exporter's failed_total).
      worker.on('failed', () => (w.counts.failed[name] = (w.counts.failed[name] ?? 0) + 1));
      worker.on('error', () => undefined);
      w.workers.push(worker);
    }
    return w;
  }

  /** The queues worked on. */
  get queueNames(): readonly string[] {
    return this.options.queueNames;
  }

  /** Starts (or resumes) taking jobs. */
  resume(): void {
    // BullMQ's run() ignores a paused worker and resume() an unstarted one.
    for (const w of this.workers) {
      if (this.started) w.resume();
      else void w.run().catch(() => undefined);
    }
    this.started = true;
  }

  /** Stops taking jobs and waits for the active ones to finish (their events counted). */
  async pause(): Promise<void> {
    await Promise.all(this.workers.map((w) => (w.isRunning() ? w.pause() : undefined)));
  }

  /** A copy of the counts so far. */
  snapshot(): FlowCounts {
    return { completed: { ...this.counts.completed }, failed: { ...this.counts.failed } };
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
    for (const c of this.connections) c.disconnect();
  }
}
