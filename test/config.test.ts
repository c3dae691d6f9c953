/**
 * Configuration: defaults, and one clear start-up error naming the variable
 * for each invalid value; `--check-config` validates and exits.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_EXPECTED_NODES, loadConfig } from '../src/config.js';

const BASE = { DATABASE_URL: 'postgresql://reader:pw@db.internal:5432/platform' };
const SHA = createHash('sha256').update('token').digest('hex');

describe('configuration', () => {
  it('has documented defaults', () => {
    const c = loadConfig(BASE);
    expect(c.port).toBe(9471);
    expect(c.host).toBe('0.0.0.0');
    expect(c.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(c.expectedNodes).toEqual([...DEFAULT_EXPECTED_NODES]);
    expect(c.queuePrefixes).toEqual(['bull']);
    expect(c.stuckThresholdSeconds).toBe(900);
    expect(c.sources.core_nodes).toEqual({ intervalSeconds: 15, timeoutSeconds: 5 });
    expect(c.sources.security).toEqual({ intervalSeconds: 15, timeoutSeconds: 10 });
    expect(c.sources.backups).toEqual({ intervalSeconds: 15, timeoutSeconds: 5 });
    expect(c.shieldRecountIntervalSeconds).toBe(3600);
    expect(c.auth).toMatchObject({ tokens: [], disabled: false });
    expect(c.metricsAuth).toEqual({ bearerSha256: undefined, basicUser: undefined, basicPasswordSha256: undefined });
  });

  it('reads lists, per-source schedules over the global one, and tokens', () => {
    const c = loadConfig({
      ...BASE,
      OPS_EXPECTED_NODES: ' A , B,,A ',
      OPS_QUEUE_PREFIXES: 'bull,platform',
      OPS_COLLECT_INTERVAL_SECONDS: '30',
      OPS_QUEUES_INTERVAL_SECONDS: '5',
      OPS_API_TOKENS: JSON.stringify([{ name: 'grafana', sha256: SHA.toUpperCase(), scopes: ['ops:overview:read'] }]),
    });
    expect(c.expectedNodes).toEqual(['A', 'B']);
    expect(c.queuePrefixes).toEqual(['bull', 'platform']);
    expect(c.sources.queues.intervalSeconds).toBe(5);
    expect(c.sources.backups.intervalSeconds).toBe(30);
    expect(c.auth.tokens).toEqual([{ name: 'grafana', sha256: SHA, scopes: ['ops:overview:read'] }]);
  });

  const invalid: Array<[string, Record<string, string | undefined>, RegExp]> = [
    ['DATABASE_URL', { DATABASE_URL: undefined }, /is required/],
    ['DATABASE_URL', { DATABASE_URL: 'mysql://x@y/z' }, /must start with postgresql:/],
    ['DATABASE_URL', { DATABASE_URL: 'not a url' }, /not a valid URL/],
    ['REDIS_URL', { REDIS_URL: 'http://redis' }, /must start with redis:/],
    ['PORT', { PORT: '70000' }, /between 0 and 65535/],
    ['PORT', { PORT: 'eighty' }, /must be an integer/],
    ['LOG_LEVEL', { LOG_LEVEL: 'loud' }, /must be one of/],
    ['OPS_STUCK_THRESHOLD_SECONDS', { OPS_STUCK_THRESHOLD_SECONDS: '0' }, /between 1 and/],
    ['OPS_QUEUES_TIMEOUT_SECONDS', { OPS_QUEUES_TIMEOUT_SECONDS: 'abc' }, /must be a number/],
    ['OPS_COLLECT_INTERVAL_SECONDS', { OPS_COLLECT_INTERVAL_SECONDS: '-1' }, /between 1 and/],
    ['OPS_API_AUTH_DISABLED', { OPS_API_AUTH_DISABLED: 'maybe' }, /true or false/],
    ['OPS_API_TOKENS', { OPS_API_TOKENS: '{oops' }, /JSON array/],
    ['OPS_API_TOKENS', { OPS_API_TOKENS: JSON.stringify([{ name: 'x', sha256: 'abc', scopes: [] }]) }, /64-hex-digit/],
    ['OPS_API_TOKENS', { OPS_API_TOKENS: JSON.stringify([{ name: 'x', sha256: SHA }]) }, /needs "scopes"/],
    ['OPS_API_TOKENS_FILE', { OPS_API_TOKENS_FILE: '/nonexistent/tokens.json' }, /cannot read/],
    ['OPS_JWT_SECRET', { OPS_JWT_SECRET: 'short' }, /at least 32 characters/],
    ['OPS_JWT_PUBLIC_KEY', { OPS_JWT_PUBLIC_KEY: 'not a pem' }, /PEM public key/],
    ['OPS_TLS_KEY_FILE', { OPS_TLS_CERT_FILE: '/tmp/cert.pem' }, /needs both/],
    ['OPS_METRICS_BEARER_SHA256', { OPS_METRICS_BEARER_SHA256: 'xyz' }, /64-hex-digit/],
    ['OPS_METRICS_BASIC_USER', { OPS_METRICS_BASIC_USER: 'prom' }, /needs both/],
    ['OPS_QUEUE_PREFIXES', { OPS_QUEUE_PREFIXES: 'bull,bu*' }, /glob characters/],
    ['OPS_LABEL_VALUE_LIMIT', { OPS_LABEL_VALUE_LIMIT: '1.5' }, /must be an integer/],
  ];

  it.each(invalid)('rejects a bad %s with an error that names it', (variable, override, problem) => {
    let error: unknown;
    try {
      loadConfig({ ...BASE, ...override });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe(variable);
    expect((error as ConfigError).message).toMatch(new RegExp(`^${variable}: `));
    expect((error as ConfigError).message).toMatch(problem);
    // The message never echoes a secret it was given.
    expect((error as ConfigError).message).not.toContain('pw@');
  });

  it('--check-config validates, prints the redacted target and exits 0, or names the bad variable and exits 2', () => {
    const run = (env: Record<string, string>) =>
      spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', '--check-config'], {
        env: { PATH: process.env.PATH ?? '', ...env },
        encoding: 'utf8',
        timeout: 30_000,
      });
    const ok = run(BASE);
    expect(ok.status).toBe(0);
    expect(ok.stdout).toContain('configuration is valid');
    expect(ok.stdout).toContain('postgresql://reader:***@db.internal:5432/platform');
    expect(ok.stdout + ok.stderr).not.toContain(':pw@');
    const bad = run({ ...BASE, PORT: 'eighty' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('PORT: must be an integer');
  });
});
