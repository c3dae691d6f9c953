/**
 * A Redis key prefix per test file on the shared Redis, removed afterwards
 * (never FLUSHALL: other test files use the same server).
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A test's own BullMQ prefix and a client to clean it up. */
export interface TestRedis {
  url: string;
  prefix: string;
  client: Redis;
  /** Deletes every key under the prefix and closes the client. */
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

export async function createTestRedis(label: string, url: string = REDIS_URL): Promise<TestRedis> {
  const prefix = `opst-${label}-${randomBytes(4).toString('hex')}`;
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  return {
    url,
    prefix,
    client,
    async cleanup() {
      await deleteKeys(client, `${prefix}:*`);
      client.disconnect();
    },
  };
}
