/**
 * The benchmark's BullMQ dataset: `queues` queues holding `queueJobs` jobs in
 * all, added with BullMQ's own addBulk (so the keys are exactly what BullMQ
 * writes), and `workers` worker connections named the way BullMQ names them.
 *
 * Deterministic: queue names, job names, data, delays, priorities and
 * timestamps are functions of the queue and job numbers.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { ScaleSpec } from './dataset.js';

const BASES = ['hosting', 'dns', 'mail', 'ssl', 'backup', 'cloudpod'];
const REGIONS = ['eu', 'us', 'ap', 'sa', 'af'];

/** Name of queue i (0-based). */
export function queueName(i: number): string {
  const base = BASES[i % BASES.length] as string;
  const region = REGIONS[Math.floor(i / BASES.length) % REGIONS.length] as string;
  const round = Math.floor(i / (BASES.length * REGIONS.length));
  return round === 0 ? `${base}-${region}` : `${base}-${region}-${round}`;
}

/** Jobs in queue i: an even split, the remainder to the first queues. */
export function jobsInQueue(spec: ScaleSpec, i: number): number {
  return Math.floor(spec.queueJobs / spec.queues) + (i < spec.queueJobs % spec.queues ? 1 : 0);
}

/** What a queue holds once generated, as BullMQ's getJobCounts() reports it. */
export function expectedQueueCounts(spec: ScaleSpec, i: number): { waiting: number; delayed: number; prioritized: number } {
  const n = jobsInQueue(spec, i);
  let delayed = 0;
  let prioritized = 0;
  for (let j = 0; j < n; j++) {
    const kind = jobKind(j);
    if (kind === 'delayed') delayed++;
    else if (kind === 'prioritized') prioritized++;
  }
  return { waiting: n - delayed - prioritized, delayed, prioritized };
}

function jobKind(j: number): 'waiting' | 'delayed' | 'prioritized' {
  if (j % 20 === 7) return 'delayed';
  if (j % 20 === 13) return 'prioritized';
  return 'waiting';
}

const BATCH = 2_000;

/**
 * Adds the queues' jobs under `prefix`. Jobs are dated before `anchorMs` (one
 * a second per queue, oldest first), so each queue has a backlog age.
 */
export async function generateQueues(redisUrl: string, prefix: string, spec: ScaleSpec, anchorMs: number, log: (s: string) => void = () => undefined): Promise<void> {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  try {
    let done = 0;
    for (let i = 0; i < spec.queues; i++) {
      const name = queueName(i);
      const queue = new Queue(name, { connection, prefix });
      const n = jobsInQueue(spec, i);
      for (let from = 0; from < n; from += BATCH) {
        const jobs = [];
        for (let j = from; j < Math.min(n, from + BATCH); j++) {
          const kind = jobKind(j);
          jobs.push({
            name: `${name.split('-')[0]}.create`,
            data: { tenantId: `ten-${(i * 7919 + j) % 5000}`, resourceId: `res-${i}-${j}` },
            opts: {
              timestamp: anchorMs - (n - j) * 1000,
              ...(kind === 'delayed' ? { delay: 3_600_000 } : {}),
              ...(kind === 'prioritized' ? { priority: 1 + (j % 5) } : {}),
              removeOnComplete: 1000,
              removeOnFail: 5000,
            },
          });
        }
        await queue.addBulk(jobs);
        done += jobs.length;
      }
      if (spec.queueJobs >= 100_000 && (i + 1) % 5 === 0) log(`  queues: ${i + 1}/${spec.queues}, ${done.toLocaleString('en')} jobs`);
      await queue.close();
    }
  } finally {
    connection.disconnect();
  }
}

/**
 * Opens `spec.workers` connections named as BullMQ's workers name theirs
 * (`<prefix>:<base64 queue name>`, some with `:w:<worker name>`), spread over
 * the queues. They send nothing, so they cost Redis nothing but a line in
 * CLIENT LIST, which is what worker counting reads.
 */
export async function openWorkerConnections(redisUrl: string, prefix: string, spec: ScaleSpec): Promise<Redis[]> {
  const clients: Redis[] = [];
  for (let w = 0; w < spec.workers; w++) {
    const q = queueName(w % spec.queues);
    const base = `${prefix}:${Buffer.from(q).toString('base64')}`;
    const client = new Redis(redisUrl, { connectionName: w % 2 === 0 ? base : `${base}:w:worker-${w}`, lazyConnect: true });
    await client.connect();
    clients.push(client);
  }
  return clients;
}

/** Workers per queue as openWorkerConnections() spreads them. */
export function expectedWorkers(spec: ScaleSpec, i: number): number {
  let n = 0;
  for (let w = 0; w < spec.workers; w++) if (w % spec.queues === i) n++;
  return n;
}
