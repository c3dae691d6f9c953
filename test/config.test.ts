/**
 * Configuration: defaults, lists, per-source schedules and tokens, and
 * `--check-config` (each invalid value's error: bad-input-config.test.ts).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DEFAULT_EXPECTED_NODES, loadConfig } from '../src/config.js';

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
    expect(c.sources.indexes).toEqual({ intervalSeconds: 3600, timeoutSeconds: 10 });
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
    // The hourly index check keeps its own schedule.
    expect(c.sources.indexes.intervalSeconds).toBe(3600);
    expect(c.auth.tokens).toEqual([{ name: 'grafana', sha256: SHA, scopes: ['ops:overview:read'] }]);
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
