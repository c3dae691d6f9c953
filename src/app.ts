/**
 * The exporter as a Fastify application: `build(options)` assembles it, and
 * main.ts only listens and handles signals. Tests build it and use inject().
 */
import { readFileSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { ConfigError, type Config } from './config.js';
import { errorBody, OpsError, type ErrorCode } from './errors.js';
import { authPlugin } from './plugins/auth.js';
import { collectionPlugin, type CollectionPluginOptions } from './plugins/collection.js';
import { healthRoutes } from './routes/health.js';
import { metricsRoutes } from './routes/metrics.js';
import { overviewRoutes } from './routes/overview.js';
import { redactQuery, redactText } from './redact.js';

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

/**
 * Request headers never logged. Fastify's request serializer logs no headers
 * at all; these paths guard any log call that passes a request's headers.
 */
const LOG_REDACT = [
  'req.headers.authorization',
  'req.headers["proxy-authorization"]',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'headers.authorization',
  'headers.cookie',
];

/** Log serializers: a request's URL without query values, errors passed through redaction. */
const LOG_SERIALIZERS = {
  req(request: FastifyRequest) {
    return { method: request.method, url: redactQuery(request.url), remoteAddress: request.ip };
  },
  err(err: Error & { code?: unknown; statusCode?: unknown }) {
    return {
      type: err?.name,
      message: redactText(String(err?.message ?? err), 2_000),
      ...(typeof err?.code === 'string' ? { code: err.code } : {}),
      ...(typeof err?.statusCode === 'number' ? { statusCode: err.statusCode } : {}),
      ...(err?.stack ? { stack: redactText(err.stack, 4_000) } : {}),
    };
  },
};

/** Largest request body accepted, bytes (no route takes one). */
const BODY_LIMIT_BYTES = 1024;

/** Milliseconds a client has to send a whole request, and its headers (slow-client protection). */
const REQUEST_TIMEOUT_MS = 30_000;
const HEADERS_TIMEOUT_MS = 10_000;

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

/**
 * Answers a request Node's HTTP parser refused (oversized headers, malformed
 * request line, timeout) in the error table's format, then closes the socket.
 */
function clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const code: ErrorCode =
    err.code === 'HPE_HEADER_OVERFLOW' ? 'OPS_HEADERS_TOO_LARGE' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'OPS_REQUEST_TIMEOUT' : 'OPS_BAD_REQUEST';
  const body = JSON.stringify(errorBody(code));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${errorBody(code).statusCode} ${STATUS_CODES[errorBody(code).statusCode] ?? 'Error'}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

function readTlsFile(variable: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError(variable, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

/** Builds the application (not listening). Throws ConfigError when a configured file is unusable. */
export async function build(options: BuildOptions): Promise<FastifyInstance> {
  const { config } = options;
  const loggerOptions = options.logger ?? {
    level: config.logLevel,
    redact: { paths: LOG_REDACT, censor: '***' },
    serializers: LOG_SERIALIZERS,
    ...(options.logStream ? { stream: options.logStream } : {}),
  };
  const https = config.tls
    ? { cert: readTlsFile('OPS_TLS_CERT_FILE', config.tls.certFile), key: readTlsFile('OPS_TLS_KEY_FILE', config.tls.keyFile) }
    : undefined;
  let app: FastifyInstance;
  try {
    app = Fastify({
      logger: loggerOptions,
      // No route takes a body; anything large is refused early.
      bodyLimit: BODY_LIMIT_BYTES,
      routerOptions: { maxParamLength: 100 },
      return503OnClosing: true,
      forceCloseConnections: 'idle',
      requestTimeout: REQUEST_TIMEOUT_MS,
      clientErrorHandler,
      ...(https ? { https } : {}),
    } as FastifyServerOptions) as unknown as FastifyInstance;
  } catch (err) {
    if (https) throw new ConfigError('OPS_TLS_CERT_FILE', `certificate or key unusable (${(err as NodeJS.ErrnoException).code ?? 'invalid PEM'})`);
    throw err;
  }
  app.server.headersTimeout = HEADERS_TIMEOUT_MS;

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

  // Nothing here is meant for a browser: forbid everything a page could do.
  await app.register(helmet, {
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    xFrameOptions: { action: 'deny' },
    // HSTS only means something over TLS.
    strictTransportSecurity: config.tls ? { maxAge: 31_536_000, includeSubDomains: true } : false,
  });
  await app.register(rateLimit, { global: false });

  // GET routes ignore a body, but Node would still read it to the end: refuse
  // a large one up front (and close, so it is not read at all). Added after
  // helmet's hook, so this answer carries the security headers too.
  app.addHook('onRequest', async (request, reply) => {
    const length = Number(request.headers['content-length'] ?? 0);
    if (length > BODY_LIMIT_BYTES) {
      reply.header('Connection', 'close');
      throw new OpsError('OPS_PAYLOAD_TOO_LARGE');
    }
  });

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
