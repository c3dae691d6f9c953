/**
 * The exporter's Redis connection: fails fast while Redis is away (commands
 * are not queued), reconnects with capped backoff, and never floods the log.
 */
import { Redis } from 'ioredis';
import type { FastifyBaseLogger } from 'fastify';
import { redactText, redactUrl } from './redact.js';

/** Options of the Redis connection. */
export interface RedisOptions {
  /** A command without an answer after this many milliseconds fails (the queues source's timeout). */
  commandTimeoutMs: number;
}

/** Longest wait between two reconnection attempts, ms. */
export const REDIS_MAX_RECONNECT_DELAY_MS = 2_000;

/** Opens the connection (lazily: the first command connects). */
export function createRedis(url: string, logger: FastifyBaseLogger, options: RedisOptions = { commandTimeoutMs: 10_000 }): Redis {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectionName: 'ops-overview-exporter',
    // A collection fails at once while Redis is down instead of waiting.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 5_000,
    // A command Redis never answers (a hung server) fails with the source's
    // timeout, so a timed-out collection's I/O settles instead of lingering.
    commandTimeout: Math.max(100, Math.round(options.commandTimeoutMs)),
    // Quick, capped, and one attempt at a time: a reconnection storm costs
    // one connect every 2 s at most.
    retryStrategy: (attempt) => Math.min(attempt * 200, REDIS_MAX_RECONNECT_DELAY_MS),
  });
  // Log transitions only: one line when the connection is lost, one when it is back.
  let state: 'connecting' | 'up' | 'down' = 'connecting';
  redis.on('ready', () => {
    if (state !== 'up') logger.info({ redis: redactUrl(url) }, 'redis connected');
    state = 'up';
  });
  redis.on('error', (err: Error) => {
    if (state !== 'down') {
      logger.warn({ err: redactText(err.message, 200) }, 'redis unreachable; the queues source is down until it answers (retrying)');
    }
    state = 'down';
  });
  redis.connect().catch(() => undefined);
  return redis;
}
