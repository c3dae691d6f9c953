/**
 * Bad configuration: every variable the exporter reads has its invalid
 * values here (or is listed as free-form), each giving one clear start-up
 * error that names it, including the checks that only happen when the app is
 * built (TLS files, the JWT public key); and the real process prints that one
 * line, never a secret, and exits 2 (or 1, naming HOST and PORT, when it
 * cannot listen).
 */
import { spawnSync } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from '../src/app.js';
import { CONFIG_VARIABLES, ConfigError, loadConfig } from '../src/config.js';

const ROOT = path.join(import.meta.dirname, '..');
const BASE = { DATABASE_URL: 'postgresql://reader:Db-Secret-1@127.0.0.1:1/platform', LOG_LEVEL: 'silent' };
const SHA = createHash('sha256').update('x').digest('hex');
const dir = mkdtempSync(path.join(tmpdir(), 'ops-config-'));
const tokensFile = path.join(dir, 'tokens.json');
writeFileSync(tokensFile, JSON.stringify([{ name: 'a', sha256: SHA, scopes: [] }]));
const pem = (bits: number) => generateKeyPairSync('rsa', { modulusLength: bits }).publicKey.export({ type: 'spki', format: 'pem' }).toString();

/** Variables whose every value is valid (names, free text, lists of names). */
const FREE_FORM = ['HOST', 'OPS_JWT_ISSUER', 'OPS_JWT_AUDIENCE', 'OPS_EXPECTED_NODES'];

type Env = Record<string, string | undefined>;

/** [variable named in the error, environment, what the message says] */
const INVALID: Array<[string, Env, RegExp]> = [
  ['DATABASE_URL', { DATABASE_URL: undefined }, /is required/],
  ['DATABASE_URL', { DATABASE_URL: '   ' }, /is required/],
  ['DATABASE_URL', { DATABASE_URL: 'db.internal:5432' }, /must start with postgresql: or postgres:/],
  ['REDIS_URL', { REDIS_URL: 'localhost:6379' }, /must start with redis: or rediss:/],
  ['REDIS_URL', { REDIS_URL: 'redis://[::1' }, /not a valid URL/],
  ['PORT', { PORT: '-1' }, /between 0 and 65535/],
  ['PORT', { PORT: '80.5' }, /must be an integer/],
  ['LOG_LEVEL', { LOG_LEVEL: 'verbose' }, /must be one of fatal, error, warn, info, debug, trace, silent/],
  ['OPS_API_TOKENS', { OPS_API_TOKENS: '{"name":"a"}' }, /must be a JSON array/],
  ['OPS_API_TOKENS', { OPS_API_TOKENS: '[null]' }, /entry 0 must be an object/],
  ['OPS_API_TOKENS', { OPS_API_TOKENS: JSON.stringify([{ sha256: SHA, scopes: [] }]) }, /needs a "name"/],
  ['OPS_API_TOKENS', { OPS_API_TOKENS: JSON.stringify([{ name: 'a', sha256: SHA, scopes: 'ops:*' }]) }, /needs "scopes", an array of strings/],
  ['OPS_API_TOKENS', { OPS_API_TOKENS: '[]', OPS_API_TOKENS_FILE: tokensFile }, /set either OPS_API_TOKENS or OPS_API_TOKENS_FILE, not both/],
  ['OPS_API_TOKENS_FILE', { OPS_API_TOKENS_FILE: path.join(dir, 'missing.json') }, /cannot read .*ENOENT/],
  ['OPS_JWT_SECRET', { OPS_JWT_SECRET: 'Jwt-Secret-too-short' }, /at least 32 characters/],
  ['OPS_JWT_SECRET_FILE', { OPS_JWT_SECRET_FILE: dir }, /cannot read .*EISDIR/],
  ['OPS_JWT_PUBLIC_KEY', { OPS_JWT_PUBLIC_KEY: '-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----' }, /must be a PEM public key/],
  ['OPS_JWT_PUBLIC_KEY_FILE', { OPS_JWT_PUBLIC_KEY_FILE: path.join(dir, 'missing.pem') }, /cannot read .*ENOENT/],
  ['OPS_API_AUTH_DISABLED', { OPS_API_AUTH_DISABLED: 'on' }, /must be true or false/],
  ['OPS_METRICS_BEARER_SHA256', { OPS_METRICS_BEARER_SHA256: 'Bearer-Secret-2' }, /64-hex-digit SHA-256/],
  ['OPS_METRICS_BASIC_USER', { OPS_METRICS_BASIC_PASSWORD_SHA256: SHA }, /needs both/],
  ['OPS_METRICS_BASIC_PASSWORD_SHA256', { OPS_METRICS_BASIC_USER: 'p', OPS_METRICS_BASIC_PASSWORD_SHA256: 'Basic-Secret-3' }, /64-hex-digit SHA-256/],
  ['OPS_TLS_CERT_FILE', { OPS_TLS_KEY_FILE: '/tmp/key.pem' }, /needs both/],
  ['OPS_TLS_KEY_FILE', { OPS_TLS_CERT_FILE: '/tmp/cert.pem' }, /needs both/],
  ['OPS_QUEUE_PREFIXES', { OPS_QUEUE_PREFIXES: 'bull,with space' }, /glob characters or spaces/],
  ['OPS_QUEUE_PREFIXES', { OPS_QUEUE_PREFIXES: 'b[u]ll' }, /glob characters/],
  ['OPS_STUCK_THRESHOLD_SECONDS', { OPS_STUCK_THRESHOLD_SECONDS: 'fifteen minutes' }, /must be a number/],
  ['OPS_COLLECT_INTERVAL_SECONDS', { OPS_COLLECT_INTERVAL_SECONDS: '0' }, /between 1 and 3600/],
  ['OPS_COLLECT_TIMEOUT_SECONDS', { OPS_COLLECT_TIMEOUT_SECONDS: 'Infinity' }, /must be a number/],
  ['OPS_CORE_NODES_INTERVAL_SECONDS', { OPS_CORE_NODES_INTERVAL_SECONDS: '86400' }, /between 1 and 3600/],
  ['OPS_CORE_NODES_TIMEOUT_SECONDS', { OPS_CORE_NODES_TIMEOUT_SECONDS: '0' }, /between 0.1 and 600/],
  ['OPS_QUEUES_INTERVAL_SECONDS', { OPS_QUEUES_INTERVAL_SECONDS: 'NaN' }, /must be a number/],
  ['OPS_QUEUES_TIMEOUT_SECONDS', { OPS_QUEUES_TIMEOUT_SECONDS: '601' }, /between 0.1 and 600/],
  ['OPS_PROVISIONING_INTERVAL_SECONDS', { OPS_PROVISIONING_INTERVAL_SECONDS: '99999' }, /between 1 and 3600/],
  ['OPS_PROVISIONING_TIMEOUT_SECONDS', { OPS_PROVISIONING_TIMEOUT_SECONDS: '-5' }, /between 0.1 and 600/],
  ['OPS_SECURITY_INTERVAL_SECONDS', { OPS_SECURITY_INTERVAL_SECONDS: '15s' }, /must be a number/],
  ['OPS_SECURITY_TIMEOUT_SECONDS', { OPS_SECURITY_TIMEOUT_SECONDS: '0.01' }, /between 0.1 and 600/],
  ['OPS_BACKUPS_INTERVAL_SECONDS', { OPS_BACKUPS_INTERVAL_SECONDS: 'hourly' }, /must be a number/],
  ['OPS_BACKUPS_TIMEOUT_SECONDS', { OPS_BACKUPS_TIMEOUT_SECONDS: '1,5' }, /must be a number/],
  ['OPS_INDEXES_INTERVAL_SECONDS', { OPS_INDEXES_INTERVAL_SECONDS: '86401' }, /86400/],
  ['OPS_INDEXES_TIMEOUT_SECONDS', { OPS_INDEXES_TIMEOUT_SECONDS: 'ten' }, /must be a number/],
  ['OPS_PROVISIONING_LATE_COMMIT_SECONDS', { OPS_PROVISIONING_LATE_COMMIT_SECONDS: '3601' }, /3600/],
  ['OPS_QUEUE_DISCOVERY_INTERVAL_SECONDS', { OPS_QUEUE_DISCOVERY_INTERVAL_SECONDS: '0' }, /between 1 and 86400/],
  ['OPS_QUEUE_FLOW_MAX_OBSERVED', { OPS_QUEUE_FLOW_MAX_OBSERVED: '2.5' }, /must be an integer/],
  ['OPS_SHIELD_RECOUNT_INTERVAL_SECONDS', { OPS_SHIELD_RECOUNT_INTERVAL_SECONDS: '5' }, /between 10 and/],
  ['OPS_SHIELD_LATE_COMMIT_SECONDS', { OPS_SHIELD_LATE_COMMIT_SECONDS: '-1' }, /between 0 and 86400/],
  ['OPS_LABEL_VALUE_LIMIT', { OPS_LABEL_VALUE_LIMIT: '0' }, /between 1 and 10000/],
  ['OPS_ERROR_MESSAGE_MAX_LENGTH', { OPS_ERROR_MESSAGE_MAX_LENGTH: '8' }, /between 16 and 100000/],
  ['OPS_DB_POOL_MAX', { OPS_DB_POOL_MAX: '1000' }, /between 1 and 100/],
  ['OPS_API_RATE_LIMIT_PER_MINUTE', { OPS_API_RATE_LIMIT_PER_MINUTE: 'unlimited' }, /must be an integer/],
  ['OPS_API_AUTH_FAILURES_PER_MINUTE', { OPS_API_AUTH_FAILURES_PER_MINUTE: '0' }, /between 1 and/],
  ['OPS_TRUST_PROXY', { OPS_TRUST_PROXY: 'loadbalancer.internal' }, /proxy addresses\/CIDR ranges/],
  ['OPS_TRUST_PROXY', { OPS_TRUST_PROXY: '10.0.0.0/33' }, /proxy addresses\/CIDR ranges/],
  ['DATABASE_URL', { DATABASE_URL: 'mysql://x@y/z' }, /must start with postgresql:/],
  ['DATABASE_URL', { DATABASE_URL: 'not a url' }, /not a valid URL/],
  ['REDIS_URL', { REDIS_URL: 'http://redis' }, /must start with redis:/],
  ['PORT', { PORT: '70000' }, /between 0 and 65535/],
  ['PORT', { PORT: 'eighty' }, /must be an integer/],
  ['OPS_STUCK_THRESHOLD_SECONDS', { OPS_STUCK_THRESHOLD_SECONDS: '0' }, /between 1 and/],
  ['OPS_COLLECT_INTERVAL_SECONDS', { OPS_COLLECT_INTERVAL_SECONDS: '-1' }, /between 1 and/],
  ['OPS_API_TOKENS', { OPS_API_TOKENS: '{oops' }, /JSON array/],
  ['OPS_API_TOKENS', { OPS_API_TOKENS: JSON.stringify([{ name: 'x', sha256: 'abc', scopes: [] }]) }, /64-hex-digit/],
  ['OPS_API_TOKENS', { OPS_API_TOKENS: JSON.stringify([{ name: 'x', sha256: SHA }]) }, /needs "scopes"/],
  ['OPS_JWT_PUBLIC_KEY', { OPS_JWT_PUBLIC_KEY: 'not a pem' }, /PEM public key/],
  ['OPS_QUEUE_PREFIXES', { OPS_QUEUE_PREFIXES: 'bull,bu*' }, /glob characters/],
  ['OPS_LABEL_VALUE_LIMIT', { OPS_LABEL_VALUE_LIMIT: '1.5' }, /must be an integer/],
];

/** Values secret enough that no error may repeat them. */
const SECRETS = ['Db-Secret-1', 'Jwt-Secret-too-short', 'Bearer-Secret-2', 'Basic-Secret-3'];

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('every invalid variable gives one start-up error naming it', () => {
  it('covers every variable the exporter reads', () => {
    const covered = new Set([...INVALID.map(([v]) => v), ...FREE_FORM]);
    expect(CONFIG_VARIABLES.filter((v) => !covered.has(v))).toEqual([]);
  });

  it.each(INVALID)('%s: %j', (variable, override, problem) => {
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
    for (const secret of SECRETS) expect((error as ConfigError).message).not.toContain(secret);
  });

  // Number() would read "0x50" as port 80 and "1e3" as 1000: only decimal notation is a number here.
  it.each(['0x50', '1e3', '0b1010'])('PORT=%s is refused, not read as another notation', (port) => {
    expect(() => loadConfig({ ...BASE, PORT: port })).toThrow(ConfigError);
  });

  it.each(FREE_FORM)('%s accepts any value', (variable) => {
    expect(() => loadConfig({ ...BASE, [variable]: 'anything, at all ☃' })).not.toThrow();
  });

  it.each([
    ['OPS_JWT_PUBLIC_KEY', { OPS_JWT_PUBLIC_KEY: pem(1024) }, /at least 2048 bits/],
    ['OPS_TLS_CERT_FILE', { OPS_TLS_CERT_FILE: path.join(dir, 'nope.pem'), OPS_TLS_KEY_FILE: path.join(dir, 'nope.key') }, /cannot read/],
  ])('%s: checks made when the app is built name the variable too', async (variable, override, problem) => {
    const error = await build({ config: loadConfig({ ...BASE, ...override }), startCollection: false }).then(
      () => null,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe(variable);
    expect((error as ConfigError).message).toMatch(problem);
  });
});

describe('the process', () => {
  let busy: Server;
  let busyPort: number;

  beforeAll(async () => {
    busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const address = busy.address();
    busyPort = typeof address === 'object' && address ? address.port : 0;
  });

  afterAll(async () => {
    await new Promise((r) => busy.close(r));
  });

  const run = (env: Env) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', ...BASE, ...env } as NodeJS.ProcessEnv,
      encoding: 'utf8',
      timeout: 30_000,
    });

  it.each([
    ['OPS_JWT_SECRET', { OPS_JWT_SECRET: 'Jwt-Secret-too-short' }],
    ['OPS_JWT_PUBLIC_KEY', { OPS_JWT_PUBLIC_KEY: pem(1024) }],
    ['OPS_TLS_CERT_FILE', { OPS_TLS_CERT_FILE: path.join(dir, 'nope.pem'), OPS_TLS_KEY_FILE: path.join(dir, 'nope.key') }],
  ])('a bad %s: one line on stderr naming it, nothing else, exit 2', (variable, env) => {
    const r = run(env);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^ops-overview: invalid configuration: ${variable}: `));
    for (const secret of SECRETS) expect(r.stderr).not.toContain(secret);
  });

  it('a port already in use: exit 1 with a line naming HOST and PORT', () => {
    const r = run({ HOST: '127.0.0.1', PORT: String(busyPort), OPS_COLLECT_INTERVAL_SECONDS: '3600' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`ops-overview: cannot listen on HOST=127.0.0.1 PORT=${busyPort}: EADDRINUSE`);
    expect(r.stdout + r.stderr).not.toContain('Db-Secret-1');
  });
});
