/**
 * Builds the exporter app against a test's own database and Redis prefix, as
 * production runs it (read-only role), with collections driven by the test.
 */
import type { FastifyInstance } from 'fastify';
import { build, type BuildOptions } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import type { TestDatabase } from './db.js';
import type { TestRedis } from './redis.js';
import { parseMetrics, type ParsedSample } from './metrics.js';

/** A static API token the test exporters accept (its SHA-256 is configured). */
export const TEST_TOKEN = 'test-token-with-enough-entropy-0123456789';

export interface TestExporterOptions {
  db: TestDatabase;
  /** The test's own Redis; required unless `env` gives REDIS_URL. */
  redis?: TestRedis;
  /** Extra environment (overrides). */
  env?: Record<string, string>;
  now?: () => Date;
  startCollection?: boolean;
  logStream?: BuildOptions['logStream'];
}

/** Builds (not listening) an exporter app for a test. */
export async function buildTestExporter(opts: TestExporterOptions): Promise<FastifyInstance> {
  const { createHash } = await import('node:crypto');
  // The shared Redis holds other programs' keys, which queue discovery would SCAN.
  if (!opts.redis && !opts.env?.REDIS_URL) throw new Error('give the test exporter a Redis of its own (helpers/redis.ts)');
  const env: Record<string, string> = {
    DATABASE_URL: opts.db.readerUrl,
    REDIS_URL: opts.redis?.url ?? '',
    OPS_QUEUE_PREFIXES: opts.redis?.prefix ?? 'opst-none',
    LOG_LEVEL: 'silent',
    OPS_API_TOKENS: JSON.stringify([
      { name: 'test', sha256: createHash('sha256').update(TEST_TOKEN).digest('hex'), scopes: ['ops:overview:read'] },
    ]),
    ...opts.env,
  };
  return build({
    config: loadConfig(env),
    now: opts.now,
    startCollection: opts.startCollection ?? false,
    logStream: opts.logStream,
  });
}

/** GET /metrics, parsed. */
export async function scrape(app: FastifyInstance): Promise<{ text: string; samples: ParsedSample[] }> {
  const res = await app.inject({ method: 'GET', url: '/metrics' });
  if (res.statusCode !== 200) throw new Error(`/metrics answered ${res.statusCode}`);
  return { text: res.body, samples: parseMetrics(res.body) };
}

/** GET /api/ops/overview with the test token. */
export async function overview(app: FastifyInstance): Promise<{ statusCode: number; body: any }> {
  const res = await app.inject({ method: 'GET', url: '/api/ops/overview', headers: { authorization: `Bearer ${TEST_TOKEN}` } });
  return { statusCode: res.statusCode, body: res.json() };
}
