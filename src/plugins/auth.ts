/**
 * Authentication of the overview API: `Authorization: Bearer <credential>`,
 * where the credential is either a JWT (HS256 with a shared secret, or
 * RS256/ES256 with a public key; `exp` required; scopes in `scope`, space
 * separated, or `permissions`, an array) or a static API token configured by
 * its SHA-256. `ops:overview:read` or `ops:*` grants access.
 *
 * Also the optional protection of /metrics (bearer token or basic auth).
 */
import { createHash, createPublicKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { ConfigError, OVERVIEW_SCOPES, apiAuthConfigured, type Config } from '../config.js';
import { OpsError } from '../errors.js';

/** Who made a request, once authenticated. */
export interface Principal {
  kind: 'token' | 'jwt' | 'anonymous';
  /** Token name or JWT subject, for logs. */
  name: string;
  scopes: string[];
}

declare module 'fastify' {
  interface FastifyInstance {
    /** preHandler: 401/403/503 unless the caller may read the overview. */
    requireOverviewAccess: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
    /** preHandler: 401 unless /metrics credentials match (a no-op when /metrics is open). */
    requireMetricsAccess: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
  }
  interface FastifyRequest {
    principal?: Principal;
  }
}

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

function sha256(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** Constant-time membership of sha256(value) among `hashes` (hex). */
function matchHash(value: string, hashes: readonly string[]): number {
  const digest = sha256(value);
  let found = -1;
  hashes.forEach((h, i) => {
    if (timingSafeEqual(digest, Buffer.from(h, 'hex'))) found = i;
  });
  return found;
}

function bearer(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return null;
  const m = /^Bearer ([^\s]+)$/i.exec(header.trim());
  return m?.[1] ?? null;
}

/** Scopes of a verified JWT payload: `scope` (space separated) and `permissions` (array). */
export function jwtScopes(payload: JWTPayload): string[] {
  const scopes: string[] = [];
  if (typeof payload.scope === 'string') scopes.push(...payload.scope.split(' ').filter(Boolean));
  if (Array.isArray(payload.permissions)) scopes.push(...payload.permissions.filter((p): p is string => typeof p === 'string'));
  return scopes;
}

/** Whether `scopes` grant reading the overview. */
export function grantsOverview(scopes: readonly string[]): boolean {
  return scopes.some((s) => (OVERVIEW_SCOPES as readonly string[]).includes(s));
}

interface JwtVerifier {
  verify(token: string): Promise<JWTPayload>;
}

function jwtVerifiers(config: Config): JwtVerifier[] {
  const verifiers: JwtVerifier[] = [];
  const claims = {
    requiredClaims: ['exp'],
    ...(config.auth.jwtIssuer ? { issuer: config.auth.jwtIssuer } : {}),
    ...(config.auth.jwtAudience ? { audience: config.auth.jwtAudience } : {}),
    clockTolerance: 5,
  };
  if (config.auth.jwtSecret) {
    const key = new TextEncoder().encode(config.auth.jwtSecret);
    verifiers.push({ verify: async (t) => (await jwtVerify(t, key, { ...claims, algorithms: ['HS256'] })).payload });
  }
  if (config.auth.jwtPublicKey) {
    const { key, algorithm } = publicKey(config.auth.jwtPublicKey);
    verifiers.push({ verify: async (t) => (await jwtVerify(t, key, { ...claims, algorithms: [algorithm] })).payload });
  }
  return verifiers;
}

/**
 * Reads the JWT public key and the one algorithm it verifies: RS256 for an
 * RSA key of 2048 bits or more, ES256 for an EC P-256 key. Anything else is a
 * start-up error, not a 500 at the first request.
 */
function publicKey(pem: string): { key: KeyObject; algorithm: 'RS256' | 'ES256' } {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    throw new ConfigError('OPS_JWT_PUBLIC_KEY', 'is not a readable PEM public key');
  }
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'rsa') {
    if ((details.modulusLength ?? 0) < 2048) throw new ConfigError('OPS_JWT_PUBLIC_KEY', 'an RSA key must have at least 2048 bits (RS256)');
    return { key, algorithm: 'RS256' };
  }
  if (key.asymmetricKeyType === 'ec') {
    if (details.namedCurve !== 'prime256v1') throw new ConfigError('OPS_JWT_PUBLIC_KEY', 'an EC key must be on the P-256 curve (ES256)');
    return { key, algorithm: 'ES256' };
  }
  throw new ConfigError('OPS_JWT_PUBLIC_KEY', `must be an RSA (RS256) or EC P-256 (ES256) key, got ${key.asymmetricKeyType ?? 'unknown'}`);
}

/** Authenticates `credential`; null when nothing accepts it. */
async function authenticate(
  credential: string,
  config: Config,
  verifiers: JwtVerifier[],
  onUnexpected: (err: unknown) => void,
): Promise<Principal | null> {
  if (JWT_SHAPE.test(credential) && verifiers.length > 0) {
    for (const v of verifiers) {
      try {
        const payload = await v.verify(credential);
        return { kind: 'jwt', name: typeof payload.sub === 'string' ? payload.sub.slice(0, 100) : 'jwt', scopes: jwtScopes(payload) };
      } catch (err) {
        // Wrong key or algorithm for this verifier: try the next. Anything else
        // (expired, bad claims, bad signature) is a plain 401 in the end.
        if (!(err instanceof joseErrors.JOSEError)) onUnexpected(err);
      }
    }
  }
  const tokens = config.auth.tokens;
  const i = matchHash(credential, tokens.map((t) => t.sha256));
  if (i >= 0) {
    const t = tokens[i]!;
    return { kind: 'token', name: t.name, scopes: t.scopes };
  }
  return null;
}

/** Registers the two preHandlers. */
export const authPlugin = fp(
  async (app, opts: { config: Config }) => {
    const { config } = opts;
    const verifiers = jwtVerifiers(config);
    const configured = apiAuthConfigured(config);
    if (config.auth.disabled) {
      app.log.warn('OPS_API_AUTH_DISABLED=true: /api/ops/overview answers WITHOUT authentication. Never do this outside a local demo.');
    } else if (!configured) {
      app.log.warn('No API credentials configured (OPS_API_TOKENS, OPS_JWT_SECRET, OPS_JWT_PUBLIC_KEY): /api/ops/overview refuses every request.');
    }

    // Failed authentications, per client address, apart from the budget of
    // authenticated use (keyed by credential after authentication, app.ts):
    // an anonymous flood cannot spend a real client's budget, and once over
    // the limit the flood gets 429. A valid credential is always checked and
    // served, so a shared address (NAT, a proxy not trusted) never locks a
    // real client out; guessing a 192-bit token is not a rate problem.
    const failures = app.createRateLimit({ max: config.apiAuthFailuresPerMinute, timeWindow: 60_000, keyGenerator: (request) => request.ip });
    const refuse = async (request: FastifyRequest, reply: FastifyReply, code: 'OPS_UNAUTHORIZED' | 'OPS_FORBIDDEN', challenge: string): Promise<never> => {
      const limit = await failures(request);
      if (!limit.isAllowed && limit.isExceeded) {
        reply.header('Retry-After', String(limit.ttlInSeconds));
        throw new OpsError('OPS_RATE_LIMITED');
      }
      if (code === 'OPS_UNAUTHORIZED') reply.header('WWW-Authenticate', challenge);
      throw new OpsError(code);
    };

    app.decorate('requireOverviewAccess', async (request: FastifyRequest, reply: FastifyReply) => {
      if (config.auth.disabled) {
        request.principal = { kind: 'anonymous', name: 'anonymous', scopes: ['ops:*'] };
        return;
      }
      if (!configured) throw new OpsError('OPS_AUTH_NOT_CONFIGURED');
      const credential = bearer(request);
      const principal = credential
        ? await authenticate(credential, config, verifiers, (err) =>
            request.log.error({ err }, 'JWT verification failed unexpectedly; the request is refused'),
          )
        : null;
      if (!principal) return refuse(request, reply, 'OPS_UNAUTHORIZED', 'Bearer realm="ops-overview"');
      request.principal = principal;
      if (!grantsOverview(principal.scopes)) return refuse(request, reply, 'OPS_FORBIDDEN', '');
    });

    const m = config.metricsAuth;
    app.decorate('requireMetricsAccess', async (request: FastifyRequest, reply: FastifyReply) => {
      if (!m.bearerSha256 && !m.basicUser) return;
      const header = request.headers.authorization ?? '';
      const token = bearer(request);
      if (m.bearerSha256 && token && matchHash(token, [m.bearerSha256]) === 0) return;
      if (m.basicUser && m.basicPasswordSha256) {
        const basic = /^Basic ([A-Za-z0-9+/=]+)$/i.exec(header.trim());
        if (basic?.[1]) {
          const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
          const sep = decoded.indexOf(':');
          const user = decoded.slice(0, sep);
          const password = decoded.slice(sep + 1);
          const userOk = sep >= 0 && matchHash(user, [sha256(m.basicUser).toString('hex')]) === 0;
          const passOk = sep >= 0 && matchHash(password, [m.basicPasswordSha256]) === 0;
          if (userOk && passOk) return;
        }
      }
      return refuse(request, reply, 'OPS_UNAUTHORIZED', m.basicUser ? 'Basic realm="ops-overview"' : 'Bearer realm="ops-overview"');
    });
  },
  { name: 'ops-auth', fastify: '5.x', dependencies: ['@fastify/rate-limit'] },
);
