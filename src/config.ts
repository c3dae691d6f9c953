/**
 * The exporter's configuration: read once from the environment, validated at
 * start-up, passed down as a typed object. Nothing below this file reads
 * process.env.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { SOURCE_NAMES, type SourceName } from './catalog.js';

/** The core nodes the platform is expected to run (platform-schema.md). */
export const DEFAULT_EXPECTED_NODES = [
  'SRV1-WEB',
  'MAIL-CORE',
  'DNS-CORE',
  'CLOUD-CORE',
  'MIGRAGUARD-QUANTUM',
  'DB-CORE',
  'MPANEL-CORE',
  'VOIP-CORE',
] as const;

/** Scopes that grant read access to the overview API. */
export const OVERVIEW_SCOPES = ['ops:overview:read', 'ops:*'] as const;

/** A static API token, stored only as the SHA-256 of its value. */
export interface ApiTokenConfig {
  /** Who holds it, for logs (never the token). */
  name: string;
  /** Lowercase hex SHA-256 of the token. */
  sha256: string;
  scopes: string[];
}

/** How one source is scheduled. */
export interface SourceScheduleConfig {
  /** Seconds between the starts of two collections (the minimum interval). */
  intervalSeconds: number;
  /** Seconds after which a collection is abandoned (also the SQL statement_timeout). */
  timeoutSeconds: number;
}

/** The whole validated configuration. */
export interface Config {
  databaseUrl: string;
  redisUrl: string;
  host: string;
  port: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  auth: {
    tokens: ApiTokenConfig[];
    /** HS256 shared secret for JWTs. */
    jwtSecret?: string;
    /** PEM public key (RS256/ES256) for JWTs. */
    jwtPublicKey?: string;
    jwtIssuer?: string;
    jwtAudience?: string;
    /** Explicit opt-out for local demos: the API answers without credentials. */
    disabled: boolean;
  };
  metricsAuth: {
    /** SHA-256 (hex) of a bearer token required on /metrics; unset = /metrics is open. */
    bearerSha256?: string;
    /** Basic auth user and SHA-256 (hex) of its password for /metrics. */
    basicUser?: string;
    basicPasswordSha256?: string;
  };
  tls?: { certFile: string; keyFile: string };
  expectedNodes: string[];
  queuePrefixes: string[];
  /** Seconds after which a PENDING/RUNNING provisioning job counts as stuck. */
  stuckThresholdSeconds: number;
  sources: Record<SourceName, SourceScheduleConfig>;
  /** Seconds between queue discoveries (SCAN); known queues are re-checked every collection. */
  queueDiscoveryIntervalSeconds: number;
  /** Finished jobs whose hash one collection reads at most, over every queue, for the wait and processing histograms (0: none). */
  queueFlowMaxObserved: number;
  /** Seconds between full recounts of the 24 h shield window, which heal any drift. */
  shieldRecountIntervalSeconds: number;
  /** Seconds a ShieldEvent id gap is watched for a late commit before it is given up. */
  shieldLateCommitSeconds: number;
  /** Seconds a passed provisioning `finishedAt` second is re-checked for late commits. */
  provisioningLateCommitSeconds: number;
  /** Maximum distinct values of a free-text label (queue type, action, resource type) before OTHER. */
  labelValueLimit: number;
  /** Characters of a job's errorMessage the API returns (after redaction). */
  errorMessageMaxLength: number;
  dbPoolMax: number;
  /** API requests one authenticated client (token name or JWT subject) may make per minute. */
  apiRateLimitPerMinute: number;
  /** Failed authentications (401/403) one client address may make per minute before 429. */
  apiAuthFailuresPerMinute: number;
  /**
   * Which proxies' X-Forwarded-For to believe for the client address
   * (Fastify `trustProxy`): false (none), true (any), a hop count, or
   * proxy addresses and CIDR ranges.
   */
  trustProxy: boolean | number | string[];
}

/** A start-up configuration error; the message names the variable. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`${variable}: ${problem}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

/** Reads `NAME`, or the content of the file named by `NAME_FILE` (for secrets). */
function secret(env: Env, name: string): string | undefined {
  const file = env[`${name}_FILE`];
  if (file !== undefined && file !== '') {
    if (env[name]) throw new ConfigError(name, `set either ${name} or ${name}_FILE, not both`);
    try {
      return readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new ConfigError(`${name}_FILE`, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
  const v = env[name];
  return v === undefined || v === '' ? undefined : v;
}

function str(env: Env, name: string): string | undefined {
  const v = env[name]?.trim();
  return v === undefined || v === '' ? undefined : v;
}

function num(env: Env, name: string, fallback: number, min: number, max: number, integer = false): number {
  const raw = str(env, name);
  if (raw === undefined) return fallback;
  // Plain decimal only: Number() would also read 0x50, 1e3 and 0b1010.
  const n = /^[+-]?(\d+\.?\d*|\.\d+)$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new ConfigError(name, `must be ${integer ? 'an integer' : 'a number'}, got "${raw.slice(0, 40)}"`);
  }
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

function bool(env: Env, name: string): boolean {
  const raw = str(env, name)?.toLowerCase();
  if (raw === undefined || raw === 'false' || raw === '0' || raw === 'no') return false;
  if (raw === 'true' || raw === '1' || raw === 'yes') return true;
  throw new ConfigError(name, `must be true or false, got "${raw.slice(0, 40)}"`);
}

function list(env: Env, name: string, fallback: readonly string[]): string[] {
  const raw = env[name];
  if (raw === undefined) return [...fallback];
  const items = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  return [...new Set(items)];
}

function url(env: Env, name: string, protocols: string[], fallback?: string): string {
  const raw = str(env, name) ?? fallback;
  if (raw === undefined) throw new ConfigError(name, `is required (e.g. ${protocols[0]}//user:password@host/db)`);
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ConfigError(name, 'is not a valid URL');
  }
  if (!protocols.includes(u.protocol)) {
    throw new ConfigError(name, `must start with ${protocols.join(' or ')}, got ${u.protocol}`);
  }
  return raw;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** OPS_TRUST_PROXY: true/false, a hop count, or comma-separated addresses and CIDR ranges. */
function trustProxy(env: Env): boolean | number | string[] {
  const raw = str(env, 'OPS_TRUST_PROXY');
  if (raw === undefined) return false;
  const lower = raw.toLowerCase();
  if (lower === 'false' || lower === '0' || lower === 'no') return false;
  if (lower === 'true' || lower === 'yes') return true;
  if (/^\d{1,2}$/.test(raw)) return Number(raw);
  const entries = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const entry of entries) {
    const [address = '', prefix, ...rest] = entry.split('/');
    const family = isIP(address);
    const prefixOk = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 6 ? 128 : 32));
    if (family === 0 || !prefixOk || rest.length > 0) {
      throw new ConfigError('OPS_TRUST_PROXY', `must be true, false, a hop count, or proxy addresses/CIDR ranges, got "${entry.slice(0, 40)}"`);
    }
  }
  return entries;
}

function parseTokens(env: Env): ApiTokenConfig[] {
  const raw = secret(env, 'OPS_API_TOKENS');
  if (raw === undefined) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ConfigError('OPS_API_TOKENS', 'must be a JSON array of {"name", "sha256", "scopes"}');
  }
  if (!Array.isArray(parsed)) throw new ConfigError('OPS_API_TOKENS', 'must be a JSON array');
  return parsed.map((t: unknown, i): ApiTokenConfig => {
    const e = t as Partial<ApiTokenConfig> | null;
    const where = `entry ${i}`;
    if (!e || typeof e !== 'object') throw new ConfigError('OPS_API_TOKENS', `${where} must be an object`);
    if (typeof e.name !== 'string' || e.name === '') throw new ConfigError('OPS_API_TOKENS', `${where} needs a "name"`);
    if (typeof e.sha256 !== 'string' || !SHA256_HEX.test(e.sha256.toLowerCase())) {
      throw new ConfigError('OPS_API_TOKENS', `${where} ("${e.name}") needs "sha256", the 64-hex-digit SHA-256 of the token`);
    }
    if (!Array.isArray(e.scopes) || !e.scopes.every((s) => typeof s === 'string')) {
      throw new ConfigError('OPS_API_TOKENS', `${where} ("${e.name}") needs "scopes", an array of strings`);
    }
    return { name: e.name, sha256: e.sha256.toLowerCase(), scopes: e.scopes };
  });
}

function sha256Option(env: Env, name: string): string | undefined {
  const v = secret(env, name)?.toLowerCase();
  if (v !== undefined && !SHA256_HEX.test(v)) throw new ConfigError(name, 'must be a 64-hex-digit SHA-256');
  return v;
}

const SOURCE_DEFAULTS: Record<SourceName, SourceScheduleConfig> = {
  core_nodes: { intervalSeconds: 15, timeoutSeconds: 5 },
  queues: { intervalSeconds: 15, timeoutSeconds: 5 },
  provisioning: { intervalSeconds: 15, timeoutSeconds: 5 },
  security: { intervalSeconds: 15, timeoutSeconds: 10 },
  backups: { intervalSeconds: 15, timeoutSeconds: 5 },
  indexes: { intervalSeconds: 3600, timeoutSeconds: 10 },
};

/** Sources on a schedule of their own, which OPS_COLLECT_INTERVAL_SECONDS does not change (an hourly check). */
const OWN_INTERVAL: readonly SourceName[] = ['indexes'];

/** Every variable the exporter reads, for `--check-config` and the docs. */
export const CONFIG_VARIABLES = [
  'DATABASE_URL', 'REDIS_URL', 'HOST', 'PORT', 'LOG_LEVEL',
  'OPS_API_TOKENS', 'OPS_API_TOKENS_FILE', 'OPS_JWT_SECRET', 'OPS_JWT_SECRET_FILE', 'OPS_JWT_PUBLIC_KEY',
  'OPS_JWT_PUBLIC_KEY_FILE', 'OPS_JWT_ISSUER', 'OPS_JWT_AUDIENCE', 'OPS_API_AUTH_DISABLED',
  'OPS_METRICS_BEARER_SHA256', 'OPS_METRICS_BASIC_USER', 'OPS_METRICS_BASIC_PASSWORD_SHA256',
  'OPS_TLS_CERT_FILE', 'OPS_TLS_KEY_FILE',
  'OPS_EXPECTED_NODES', 'OPS_QUEUE_PREFIXES', 'OPS_STUCK_THRESHOLD_SECONDS',
  'OPS_COLLECT_INTERVAL_SECONDS', 'OPS_COLLECT_TIMEOUT_SECONDS',
  ...SOURCE_NAMES.flatMap((s) => [`OPS_${s.toUpperCase()}_INTERVAL_SECONDS`, `OPS_${s.toUpperCase()}_TIMEOUT_SECONDS`]),
  'OPS_QUEUE_DISCOVERY_INTERVAL_SECONDS', 'OPS_QUEUE_FLOW_MAX_OBSERVED', 'OPS_SHIELD_RECOUNT_INTERVAL_SECONDS', 'OPS_SHIELD_LATE_COMMIT_SECONDS',
  'OPS_PROVISIONING_LATE_COMMIT_SECONDS',
  'OPS_LABEL_VALUE_LIMIT', 'OPS_ERROR_MESSAGE_MAX_LENGTH', 'OPS_DB_POOL_MAX', 'OPS_API_RATE_LIMIT_PER_MINUTE',
  'OPS_API_AUTH_FAILURES_PER_MINUTE', 'OPS_TRUST_PROXY',
] as const;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Validates `env` and returns the configuration; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Env): Config {
  const logLevel = (str(env, 'LOG_LEVEL') ?? 'info').toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError('LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}`);
  }
  const host = str(env, 'HOST') ?? '0.0.0.0';

  const baseInterval = num(env, 'OPS_COLLECT_INTERVAL_SECONDS', NaN, 1, 3600);
  const baseTimeout = num(env, 'OPS_COLLECT_TIMEOUT_SECONDS', NaN, 0.1, 600);
  const sources = {} as Record<SourceName, SourceScheduleConfig>;
  for (const s of SOURCE_NAMES) {
    const d = SOURCE_DEFAULTS[s];
    const key = s.toUpperCase();
    const defaultInterval = Number.isNaN(baseInterval) || OWN_INTERVAL.includes(s) ? d.intervalSeconds : baseInterval;
    const intervalSeconds = num(env, `OPS_${key}_INTERVAL_SECONDS`, defaultInterval, 1, OWN_INTERVAL.includes(s) ? 86400 : 3600);
    const timeoutSeconds = num(env, `OPS_${key}_TIMEOUT_SECONDS`, Number.isNaN(baseTimeout) ? d.timeoutSeconds : baseTimeout, 0.1, 600);
    sources[s] = { intervalSeconds, timeoutSeconds };
  }

  const jwtPublicKey = secret(env, 'OPS_JWT_PUBLIC_KEY');
  if (jwtPublicKey !== undefined && !jwtPublicKey.includes('-----BEGIN PUBLIC KEY-----')) {
    throw new ConfigError('OPS_JWT_PUBLIC_KEY', 'must be a PEM public key (-----BEGIN PUBLIC KEY-----)');
  }
  const jwtSecret = secret(env, 'OPS_JWT_SECRET');
  if (jwtSecret !== undefined && jwtSecret.length < 32) {
    throw new ConfigError('OPS_JWT_SECRET', 'must be at least 32 characters (HS256 needs a 256-bit secret)');
  }

  const certFile = str(env, 'OPS_TLS_CERT_FILE');
  const keyFile = str(env, 'OPS_TLS_KEY_FILE');
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ConfigError(certFile === undefined ? 'OPS_TLS_CERT_FILE' : 'OPS_TLS_KEY_FILE', 'TLS needs both OPS_TLS_CERT_FILE and OPS_TLS_KEY_FILE');
  }

  const basicUser = str(env, 'OPS_METRICS_BASIC_USER');
  const basicPasswordSha256 = sha256Option(env, 'OPS_METRICS_BASIC_PASSWORD_SHA256');
  if ((basicUser === undefined) !== (basicPasswordSha256 === undefined)) {
    throw new ConfigError('OPS_METRICS_BASIC_USER', 'basic auth on /metrics needs both OPS_METRICS_BASIC_USER and OPS_METRICS_BASIC_PASSWORD_SHA256');
  }

  const expectedNodes = list(env, 'OPS_EXPECTED_NODES', DEFAULT_EXPECTED_NODES);
  const queuePrefixes = list(env, 'OPS_QUEUE_PREFIXES', ['bull']);
  for (const p of queuePrefixes) {
    if (/[*?[\]\s]/.test(p)) throw new ConfigError('OPS_QUEUE_PREFIXES', `prefix "${p.slice(0, 40)}" may not contain glob characters or spaces`);
  }

  return {
    databaseUrl: url(env, 'DATABASE_URL', ['postgresql:', 'postgres:']),
    redisUrl: url(env, 'REDIS_URL', ['redis:', 'rediss:'], 'redis://127.0.0.1:6379'),
    host,
    port: num(env, 'PORT', 9471, 0, 65535, true),
    logLevel: logLevel as Config['logLevel'],
    auth: {
      tokens: parseTokens(env),
      jwtSecret,
      jwtPublicKey,
      jwtIssuer: str(env, 'OPS_JWT_ISSUER'),
      jwtAudience: str(env, 'OPS_JWT_AUDIENCE'),
      disabled: bool(env, 'OPS_API_AUTH_DISABLED'),
    },
    metricsAuth: {
      bearerSha256: sha256Option(env, 'OPS_METRICS_BEARER_SHA256'),
      basicUser,
      basicPasswordSha256,
    },
    tls: certFile && keyFile ? { certFile, keyFile } : undefined,
    expectedNodes,
    queuePrefixes: queuePrefixes.length > 0 ? queuePrefixes : ['bull'],
    stuckThresholdSeconds: num(env, 'OPS_STUCK_THRESHOLD_SECONDS', 900, 1, 7 * 86400),
    sources,
    queueDiscoveryIntervalSeconds: num(env, 'OPS_QUEUE_DISCOVERY_INTERVAL_SECONDS', 60, 1, 86400),
    queueFlowMaxObserved: num(env, 'OPS_QUEUE_FLOW_MAX_OBSERVED', 5000, 0, 100_000, true),
    shieldRecountIntervalSeconds: num(env, 'OPS_SHIELD_RECOUNT_INTERVAL_SECONDS', 3600, 10, 7 * 86400),
    shieldLateCommitSeconds: num(env, 'OPS_SHIELD_LATE_COMMIT_SECONDS', 300, 0, 86400),
    provisioningLateCommitSeconds: num(env, 'OPS_PROVISIONING_LATE_COMMIT_SECONDS', 60, 0, 3600, true),
    labelValueLimit: num(env, 'OPS_LABEL_VALUE_LIMIT', 200, 1, 10000, true),
    errorMessageMaxLength: num(env, 'OPS_ERROR_MESSAGE_MAX_LENGTH', 500, 16, 100000, true),
    dbPoolMax: num(env, 'OPS_DB_POOL_MAX', 4, 1, 100, true),
    apiRateLimitPerMinute: num(env, 'OPS_API_RATE_LIMIT_PER_MINUTE', 120, 1, 1_000_000, true),
    apiAuthFailuresPerMinute: num(env, 'OPS_API_AUTH_FAILURES_PER_MINUTE', 30, 1, 1_000_000, true),
    trustProxy: trustProxy(env),
  };
}

/** Whether the API has any way to authenticate a caller. */
export function apiAuthConfigured(config: Config): boolean {
  return config.auth.tokens.length > 0 || config.auth.jwtSecret !== undefined || config.auth.jwtPublicKey !== undefined;
}
