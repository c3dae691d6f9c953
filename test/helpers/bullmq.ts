/**
 * Real BullMQ on a Redis server of the test file's own: queues, workers and
 * event listeners under one prefix, all closed (newest first) after the
 * file's tests, then the server.
 */
import { Queue, QueueEvents, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { startRedisServer, type RedisServer } from './redis-server.js';

export interface BullmqServer {
  /** The server and a plain client of it (valid inside the tests). */
  readonly server: RedisServer;
  readonly client: Redis;
  queue(name: string, opts?: Record<string, unknown>): Queue;
  /** Listens from the stream's start: an event written before its first read is not missed. */
  events(name: string): Promise<QueueEvents>;
  /** A worker whose errors (a closed connection at the end, say) are the test's business, not an unhandled event. */
  worker(name: string, processor: ((job: Job) => Promise<unknown>) | null, opts?: Record<string, unknown>): Worker;
  /** Runs `close` at the end, before what was opened earlier. */
  closeAtEnd(close: () => Promise<unknown>): void;
}

/** Registers the file's server; `beforeClose` runs first at the end (to release jobs a test holds). */
export function useBullmqServer(prefix: string, beforeClose?: () => void): BullmqServer {
  let server: RedisServer | undefined;
  let client: Redis | undefined;
  let connection: { host: string; port: number; maxRetriesPerRequest: null } | undefined;
  const closers: Array<() => Promise<unknown>> = [];
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('the BullMQ test server is not started yet: use it inside a test or hook');
    return value;
  };

  beforeAll(async () => {
    server = await startRedisServer();
    connection = { host: '127.0.0.1', port: server.port, maxRetriesPerRequest: null };
    client = new Redis(server.url);
  });

  afterAll(async () => {
    beforeClose?.();
    for (const close of closers.reverse()) await close().catch(() => undefined);
    client?.disconnect();
    await server?.destroy();
  });

  return {
    get server() {
      return started(server);
    },
    get client() {
      return started(client);
    },
    queue(name, opts = {}) {
      const q = new Queue(name, { connection: started(connection), prefix, ...opts });
      closers.push(() => q.close());
      return q;
    },
    async events(name) {
      const e = new QueueEvents(name, { connection: started(connection), prefix, lastEventId: '0-0' });
      closers.push(() => e.close());
      await e.waitUntilReady();
      return e;
    },
    worker(name, processor, opts = {}) {
      const w = new Worker(name, processor, { connection: started(connection), prefix, ...opts });
      w.on('error', () => undefined);
      closers.push(() => w.close(true));
      return w;
    },
    closeAtEnd(close) {
      closers.push(close);
    },
  };
}
