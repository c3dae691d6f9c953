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
import { redactText } from './redact.js';

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

/** A path segment logged as it is: a short word, not shaped like a token. */
const PLAIN_SEGMENT = /^[A-Za-z0-9._~-]{1,40}$/;
/** A query key logged as it is. */
const PLAIN_KEY = /^[A-Za-z0-9_.[\]-]{1,32}$/;

/** Whether a word that passed the plain patterns still looks like a credential (a JWT, a random token). */
function tokenShaped(word: string): boolean {
  return /^eyJ/.test(word) || (word.length >= 12 && /[0-9]/.test(word) && /[A-Za-z]/.test(word));
}

/**
 * A request URL as the logs may show it: a token can travel in the path
 * (`/api/ops/overview/<jwt>`) or the query (`?access_token=…`, or bare
 * `?<token>`). Query values are always `***`; a path segment or query key
 * that is not a short plain word, or is shaped like a token, becomes `***`.
 * Percent-encoding is not decoded, so an encoded token is not a plain word.
 */
export function logUrl(url: string): string {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const segments = path.split('/');
  let out = segments
    .slice(0, 12)
    .map((segment) => (segment === '' || (PLAIN_SEGMENT.test(segment) && !tokenShaped(segment)) ? segment : '***'))
    .join('/');
  if (segments.length > 12) out += '/…';
  if (q < 0) return out;
  const pairs = url.slice(q + 1).split('&');
  const query = pairs
    .slice(0, 20)
    .map((pair) => {
      const eq = pair.indexOf('=');
      // A bare word may be the value itself (`?<token>`).
      if (eq < 0) return pair === '' ? '' : '***';
      const key = pair.slice(0, eq);
      return `${PLAIN_KEY.test(key) && !tokenShaped(key) ? key : '***'}=***`;
    })
    .join('&');
  return `${out}?${query}${pairs.length > 20 ? '&…' : ''}`;
}

/**
 * A client address for the logs. Behind a trusted proxy it comes from
 * X-Forwarded-For, which the client may have filled with anything.
 */
function logAddress(ip: string | undefined): string {
  if (typeof ip !== 'string') return '';
  return /^[0-9A-Fa-f.:]{1,45}$/.test(ip) ? ip : '***';
}

/** Log serializers: a request's URL without secrets in it, errors passed through redaction. */
const LOG_SERIALIZERS = {
  req(request: FastifyRequest) {
    return { method: request.method, url: logUrl(request.url), remoteAddress: logAddress(request.ip) };
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

/**
 * Requests one connection may have under way: parsed but not yet written out
 * to the socket. HTTP/1.1 pipelining lets a client send thousands of requests
 * on one socket and never read the answers; each would hold a response in
 * memory until the client reads. No scraper or browser pipelines this deep,
 * so the connection is closed instead.
 */
const MAX_REQUESTS_IN_FLIGHT_PER_CONNECTION = 16;

/**
 * Milliseconds a connection may make no progress at all (nothing read,
 * nothing written) before it is closed: a client that stops reading its
 * answers cannot pin them in memory for ever. Set above Fastify's
 * keepAliveTimeout (72 s), which closes idle keep-alive connections itself.
 */
const STALLED_CONNECTION_TIMEOUT_MS = 75_000;

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
      connectionTimeout: STALLED_CONNECTION_TIMEOUT_MS,
      // The client address (rate limits, logs) from X-Forwarded-For, only
      // when it comes through a proxy the operator named.
      trustProxy: config.trustProxy,
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

  // Bound what one connection can queue (first hook: before any work is done
  // for the request). A response counts until its last byte is handed to
  // the socket ('close' of the response), so a client that never reads keeps
  // its count up and is cut off at the bound.
  const inFlight = new WeakMap<Socket, number>();
  const cutOff = new WeakSet<Socket>();
  app.addHook('onRequest', async (request, reply) => {
    const socket = request.raw.socket as Socket | null;
    if (!socket) return;
    const count = (inFlight.get(socket) ?? 0) + 1;
    inFlight.set(socket, count);
    reply.raw.once('close', () => inFlight.set(socket, (inFlight.get(socket) ?? 1) - 1));
    if (count <= MAX_REQUESTS_IN_FLIGHT_PER_CONNECTION) return;
    if (!cutOff.has(socket)) {
      cutOff.add(socket);
      request.log.warn(
        { remoteAddress: logAddress(request.ip), inFlight: count },
        `closing a connection with more than ${MAX_REQUESTS_IN_FLIGHT_PER_CONNECTION} requests under way (pipelined requests whose answers are not read)`,
      );
    }
    socket.destroy();
    reply.hijack();
  });

  // Nothing here is meant for a browser: forbid everything a page could do.
  await app.register(helmet, {
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    xFrameOptions: { action: 'deny' },
    // HSTS only means something over TLS.
    strictTransportSecurity: config.tls ? { maxAge: 31_536_000, includeSubDomains: true } : false,
  });
  // The API's per-client budget is counted after authentication, per
  // credential (token name or JWT subject): anonymous requests and other
  // clients behind the same address or proxy never spend it. Failed
  // authentications are limited per address apart (plugins/auth.ts).
  await app.register(rateLimit, {
    global: false,
    hook: 'preHandler',
    keyGenerator: (request: FastifyRequest) =>
      request.principal && request.principal.kind !== 'anonymous' ? `${request.principal.kind}:${request.principal.name}` : `address:${request.ip}`,
  });

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
