/**
 * A Redis of a test's own: a `redis-server` on a free port (helpers/
 * redis-server.ts) with a key prefix, stopped afterwards. Never the shared
 * Redis on 6379: the exporter SCANs the whole keyspace to discover queues and
 * reads CLIENT LIST for workers, so a test on a shared server would depend on
 * whatever other programs keep there (issue 15).
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { startRedisServer, type RedisServer } from './redis-server.js';

/** A test's own Redis server, BullMQ prefix and a client on it. */
export interface TestRedis {
  url: string;
  /** Port of the server, for BullMQ `connection` options. */
  port: number;
  prefix: string;
  client: Redis;
  server: RedisServer;
  /** Closes the client and stops the server (nothing is kept on disk). */
  cleanup(): Promise<void>;
}

/** Deletes every key matching `pattern` with SCAN + UNLINK. */
export async function deleteKeys(client: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await client.unlink(...keys);
  } while (cursor !== '0');
}

/** Starts a Redis server of the test's own, with a prefix named after `label`. */
export async function createTestRedis(label: string): Promise<TestRedis> {
  const prefix = `opst-${label}-${randomBytes(4).toString('hex')}`;
  const server = await startRedisServer();
  const client = new Redis(server.url, { maxRetriesPerRequest: 1 });
  client.on('error', () => undefined);
  return {
    url: server.url,
    port: server.port,
    prefix,
    client,
    server,
    async cleanup() {
      client.disconnect();
      await server.destroy();
    },
  };
}
