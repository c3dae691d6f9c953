/**
 * The exporter built for a test the way production runs it: against the
 * test's own database through the read-only role, its own Redis prefix, and
 * an API token; logs captured so tests can grep them.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { build, type BuildOptions } from '../../src/app.js';
import type { SourceName } from '../../src/catalog.js';
import { loadConfig, type Config } from '../../src/config.js';
import { createSources } from '../../src/sources/index.js';
import type { Source, SourceData } from '../../src/sources/types.js';
import { createTestDatabase, type TestDatabase } from './db.js';
import { createTestRedis, type TestRedis } from './redis.js';

/** Logs written by an app, one JSON object a line. */
export interface LogCapture {
  stream: Writable;
  /** Everything written so far, as written. */
  text(): string;
  /** Parsed lines. */
  lines(): Array<Record<string, unknown> & { msg?: string; level?: number }>;
  /** Forgets what was written so far. */
  clear(): void;
}

export function captureLogs(): LogCapture {
  let chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  return {
    stream,
    text: () => chunks.join(''),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    clear: () => {
      chunks = [];
    },
  };
}

/** A static API token and its configuration entry. */
export interface TestToken {
  token: string;
  name: string;
  scopes: string[];
  entry: { name: string; sha256: string; scopes: string[] };
}

/** A random static token with `scopes`. */
export function makeToken(name: string, scopes: string[]): TestToken {
  const token = `ops_${randomBytes(24).toString('base64url')}`;
  return { token, name, scopes, entry: { name, sha256: createHash('sha256').update(token).digest('hex'), scopes } };
}

/** The exporter under test. */
export interface TestApp {
  app: FastifyInstance;
  config: Config;
  db: TestDatabase;
  redis: TestRedis;
  logs: LogCapture;
  /** Authorization header value that may read the overview. */
  authorization: string;
  /** Closes the app, then drops the database and Redis prefix it created. */
  close(): Promise<void>;
}

/** Options of createTestApp. */
export interface TestAppOptions {
  /** Extra environment (wins over the defaults). */
  env?: Record<string, string | undefined>;
  startCollection?: boolean;
  sources?: BuildOptions['sources'];
  /** Replaces some of the real sources (keeping their configured schedules). */
  replaceSources?: Partial<Record<SourceName, Source<SourceData>>>;
  now?: BuildOptions['now'];
  /** Adds routes before the app is ready (a test's own, e.g. one that throws). */
  extraRoutes?: (app: FastifyInstance) => void;
  /** Reuse a database / Redis prefix of the test's (not dropped by close()). */
  db?: TestDatabase;
  redis?: TestRedis;
}

/**
 * Builds the app on a fresh database (read-only role) and Redis prefix.
 * Refuses to run the exporter as anything but the read-only role.
 */
export async function createTestApp(label: string, options: TestAppOptions = {}): Promise<TestApp> {
  const db = options.db ?? (await createTestDatabase(label));
  // drop() ends this pool and then drops the database WITH (FORCE), which can
  // reach a connection still closing: an 'error' on a pool without a listener
  // would be an uncaught exception (helpers/db.ts should add this itself).
  db.admin.on('error', () => undefined);
  const redis = options.redis ?? (await createTestRedis(label));
  const reader = makeToken('test-reader', ['ops:overview:read']);
  const env: Record<string, string | undefined> = {
    DATABASE_URL: db.readerUrl,
    REDIS_URL: redis.url,
    OPS_QUEUE_PREFIXES: redis.prefix,
    OPS_API_TOKENS: JSON.stringify([reader.entry]),
    LOG_LEVEL: 'info',
    ...options.env,
  };
  const config = loadConfig(env);
  if (new URL(config.databaseUrl).username !== 'ops_overview_reader') {
    throw new Error('tests run the exporter as the read-only role ops_overview_reader only');
  }
  const logs = captureLogs();
  const replace = options.replaceSources;
  const sources: BuildOptions['sources'] =
    options.sources ??
    (replace
      ? ({ db: database, redis: client }) =>
          createSources(config, database, client).map((s) => {
            const replacement = replace[s.source.name];
            return replacement ? { source: replacement, schedule: s.schedule } : s;
          })
      : undefined);
  const app = await build({
    config,
    logStream: logs.stream,
    startCollection: options.startCollection ?? false,
    ...(sources ? { sources } : {}),
    ...(options.now ? { now: options.now } : {}),
  });
  options.extraRoutes?.(app);
  await app.ready();
  return {
    app,
    config,
    db,
    redis,
    logs,
    authorization: `Bearer ${reader.token}`,
    async close() {
      await app.close();
      if (!options.db) await db.drop();
      if (!options.redis) await redis.cleanup();
    },
  };
}

/** Resolves once `predicate` holds, polling every `everyMs`; throws after `timeoutMs`. */
export async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs: number, what: string, everyMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** GET /metrics of a test app: the text, once it answered 200. */
export async function metricsText(app: TestApp | FastifyInstance): Promise<string> {
  const res = await ('app' in app ? app.app : app).inject('/metrics');
  if (res.statusCode !== 200) throw new Error(`/metrics answered ${res.statusCode}`);
  return res.body;
}

/** Scrapes /metrics every 100 ms until stopped; `statuses` grows as they answer. */
export function scrapeLoop(app: TestApp): { statuses: number[]; stop(): Promise<number[]> } {
  const statuses: number[] = [];
  let running = true;
  const done = (async () => {
    while (running) {
      statuses.push((await app.app.inject('/metrics')).statusCode);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    statuses,
    async stop() {
      running = false;
      await done;
      return statuses;
    },
  };
}
