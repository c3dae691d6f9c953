/**
 * The exporter's Redis connection: fails fast while Redis is away (commands
 * are not queued), reconnects with capped backoff, and never floods the log.
 */
import { Redis } from 'ioredis';
import type { FastifyBaseLogger } from 'fastify';
import { redactText } from './redact.js';

/** Opens the connection (lazily: the first command connects). */
export function createRedis(url: string, logger: FastifyBaseLogger): Redis {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectionName: 'ops-overview-exporter',
    // A collection fails at once while Redis is down instead of waiting.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 5_000,
    commandTimeout: 10_000,
    retryStrategy: (attempt) => Math.min(attempt * 500, 5_000),
  });
  // Log transitions only: one line when the connection is lost, one when it is back.
  let state: 'connecting' | 'up' | 'down' = 'connecting';
  redis.on('ready', () => {
    if (state !== 'up') logger.info('redis connected');
    state = 'up';
  });
  redis.on('error', (err: Error) => {
    if (state !== 'down') logger.warn({ err: redactText(err.message, 200) }, 'redis unreachable; the queues source is down until it answers (retrying)');
    state = 'down';
  });
  redis.connect().catch(() => undefined);
  return redis;
}
