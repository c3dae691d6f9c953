/**
 * The exporter as a Fastify application: `build(options)` assembles it, and
 * main.ts only listens and handles signals. Tests build it and use inject().
 */
import { readFileSync } from 'node:fs';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Config } from './config.js';
import { errorBody, OpsError, type ErrorCode } from './errors.js';
import { authPlugin } from './plugins/auth.js';
import { collectionPlugin, type CollectionPluginOptions } from './plugins/collection.js';
import { healthRoutes } from './routes/health.js';
import { metricsRoutes } from './routes/metrics.js';
import { overviewRoutes } from './routes/overview.js';

/** Options of the application. */
export interface BuildOptions {
  config: Config;
  /** Fastify/pino logger options; defaults to JSON logs at config.logLevel. */
  logger?: FastifyServerOptions['logger'];
  /** Pino destination stream (tests capture logs with it). */
  logStream?: NodeJS.WritableStream;
  now?: CollectionPluginOptions['now'];
  sources?: CollectionPluginOptions['sources'];
  /** Start background collection (default true). */
  startCollection?: boolean;
}

/** Request headers and body never logged. */
const LOG_REDACT = ['req.headers.authorization', 'req.headers.cookie', 'req.headers["x-api-key"]'];

/** The URLs the app serves, for the 405 answers. */
const ROUTES = ['/metrics', '/healthz', '/readyz', '/api/ops/overview', '/api/ops/platform-overview'];

function errorCodeFor(err: FastifyError): ErrorCode {
  if (err instanceof OpsError) return err.code;
  switch (err.statusCode) {
    case 413:
      return 'OPS_PAYLOAD_TOO_LARGE';
    case 429:
      return 'OPS_RATE_LIMITED';
    case 431:
      return 'OPS_HEADERS_TOO_LARGE';
    default:
      return err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500 ? 'OPS_BAD_REQUEST' : 'OPS_INTERNAL';
  }
}

/** Builds the application (not listening). */
export async function build(options: BuildOptions): Promise<FastifyInstance> {
  const { config } = options;
  const loggerOptions = options.logger ?? {
    level: config.logLevel,
    redact: { paths: LOG_REDACT, censor: '***' },
    ...(options.logStream ? { stream: options.logStream } : {}),
  };
  const app = Fastify({
    logger: loggerOptions,
    // No route takes a body; anything large is refused early.
    bodyLimit: 1024,
    routerOptions: { maxParamLength: 100 },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    ...(config.tls
      ? { https: { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) } }
      : {}),
  } as FastifyServerOptions);

  app.setErrorHandler((err: FastifyError, request, reply) => {
    const code = errorCodeFor(err);
    if (code === 'OPS_INTERNAL') request.log.error({ err }, 'request failed');
    const headers = (err as FastifyError & { headers?: Record<string, string> }).headers;
    if (err.statusCode === 429 && headers) reply.headers(headers);
    return reply.code(errorBody(code).statusCode).type('application/json; charset=utf-8').send(errorBody(code));
  });
  app.setNotFoundHandler((request, reply) => {
    const known = ROUTES.includes(request.url.split('?')[0] ?? '');
    const code: ErrorCode = known ? 'OPS_METHOD_NOT_ALLOWED' : 'OPS_NOT_FOUND';
    if (known) reply.header('Allow', 'GET, HEAD');
    return reply.code(errorBody(code).statusCode).send(errorBody(code));
  });

  await app.register(helmet, { contentSecurityPolicy: { directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } } });
  await app.register(rateLimit, { global: false });
  await app.register(authPlugin, { config });
  await app.register(collectionPlugin, {
    config,
    now: options.now,
    sources: options.sources,
    start: options.startCollection,
  });
  await app.register(healthRoutes);
  await app.register(metricsRoutes);
  await app.register(overviewRoutes, { rateLimitPerMinute: config.apiRateLimitPerMinute });
  return app;
}
