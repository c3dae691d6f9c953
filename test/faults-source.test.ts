/**
 * A source that misbehaves (throws synchronously, rejects with anything,
 * never settles, rejects after its timeout, returns garbage samples) is
 * isolated by the collection runner: it reports ops_source_up 0, the other
 * sources and /metrics are unaffected, nothing escapes as an unhandled
 * rejection, and its schedule goes on.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { SourceName } from '../src/catalog.js';
import { MAX_LABEL_VALUE_LENGTH } from '../src/metrics/bound.js';
import type { Sample } from '../src/metrics/sample.js';
import type { Source, SourceData } from '../src/sources/types.js';
import { createTestApp, metricsText, waitFor, type TestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { promtoolCheck, samples, value } from './helpers/prom-text.js';
import { createTestRedis, type TestRedis } from './helpers/redis.js';

let db: TestDatabase;
let redis: TestRedis;
let t: TestApp | undefined;
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);

beforeAll(async () => {
  db = await createTestDatabase('faults_source');
  db.admin.on('error', () => undefined);
  redis = await createTestRedis('faults-source');
  process.on('unhandledRejection', onUnhandled);
});

afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  await db?.drop();
  await redis?.cleanup();
});

beforeEach(() => {
  unhandled.length = 0;
});

afterEach(async () => {
  await t?.app.close();
  t = undefined;
  // Late rejections surface on a later tick: give them one before judging.
  await new Promise((r) => setTimeout(r, 50));
  expect(unhandled).toEqual([]);
});

/** A fake backups source: `collect` and `samples` are the test's. */
function fake(
  collect: Source['collect'],
  sampleFn: (d: SourceData) => Sample[] = (): Sample[] => [
    { metric: 'backupTrackingInstalled', labels: {}, value: 1 },
    { metric: 'backupEverSucceeded', labels: { resource_type: 'DB_CORE' }, value: 1 },
  ],
): Source {
  return { name: 'backups', backend: 'database', collect, samples: sampleFn };
}

async function appWith(source: Source, env: Record<string, string> = {}, startCollection = false): Promise<TestApp> {
  t = await createTestApp('faults-source', {
    db,
    redis,
    replaceSources: { backups: source },
    startCollection,
    env: { OPS_BACKUPS_TIMEOUT_SECONDS: '0.3', OPS_COLLECT_INTERVAL_SECONDS: '1', ...env },
  });
  return t;
}

const metrics = metricsText;

/** The other four sources are up and serve their series. */
function othersFine(text: string, except: SourceName = 'backups') {
  for (const s of ['core_nodes', 'queues', 'provisioning', 'security', 'backups'] as const) {
    if (s !== except) expect(value(text, 'ops_source_up', { source: s }), s).toBe(1);
  }
  expect(samples(text, 'ops_core_node_status').length).toBeGreaterThan(0);
  expect(value(text, 'ops_shield_policies', { mode: 'ENFORCE' })).toBe(0);
}

describe('a source that fails', () => {
  const failures: Array<[string, Source['collect'], RegExp]> = [
    ['throws synchronously', () => {
      throw new Error('sync boom');
    }, /sync boom/],
    ['rejects with an Error', async () => {
      throw new Error('async boom');
    }, /async boom/],
    ['rejects with a string', () => Promise.reject('plain string'), /plain string/],
    ['rejects with undefined', () => Promise.reject(undefined), /undefined/],
    ['rejects with an object whose toString throws', () => Promise.reject({ toString: () => { throw new Error('nope'); } }), /unprintable error/],
    ['returns null', async () => null as unknown as SourceData, /./],
    ['returns a non-promise value', (() => ({ invalid: {} })) as unknown as Source['collect'], /^$/],
  ];

  it.each(failures)('%s: isolated, reported down (or up when the value is usable), /metrics unaffected', async (name, collect, message) => {
    const app = await appWith(fake(collect));
    await app.app.collection.collectAll();
    const text = await metrics(app);
    othersFine(text);
    const state = app.app.collection.state('backups')!;
    if (name === 'returns a non-promise value') {
      // A plain value is a valid (if odd) answer: served like any other.
      expect(state.up).toBe(true);
      expect(value(text, 'ops_backup_ever_succeeded', { resource_type: 'DB_CORE' })).toBe(1);
      return;
    }
    expect(state.up).toBe(false);
    expect(state.lastError).toMatch(message);
    expect(value(text, 'ops_source_up', { source: 'backups' })).toBe(0);
    expect(value(text, 'ops_source_errors_total', { source: 'backups' })).toBe(1);
    // Its data series are absent rather than stale or invented.
    expect(samples(text, 'ops_backup_ever_succeeded')).toEqual([]);
    expect(app.logs.lines().filter((l) => l.msg === 'source backups is down')).toHaveLength(1);
  });

  // prom-client serves a label-less gauge as 0 after reset() unless the
  // registry removes a label-less family that has no samples.
  it('serves no label-less series of a source that is down (not a 0 that reads as "not installed")', async () => {
    const app = await appWith(fake(async () => {
      throw new Error('down');
    }));
    await app.app.collection.collectAll();
    const text = await metrics(app);
    expect(samples(text, 'ops_backup_tracking_installed')).toEqual([]);
  });

  it('samples() that throws is isolated the same way', async () => {
    const app = await appWith(fake(async () => ({ invalid: {} }), () => {
      throw new TypeError('mapping bug');
    }));
    await app.app.collection.collectAll();
    const text = await metrics(app);
    othersFine(text);
    expect(value(text, 'ops_source_up', { source: 'backups' })).toBe(0);
    expect(app.app.collection.state('backups')?.lastError).toBe('mapping bug');
  });

  it('keeps being collected on its schedule and logs the failure once, not on every attempt', async () => {
    let calls = 0;
    const app = await appWith(
      fake(() => {
        calls += 1;
        throw new Error('always broken');
      }),
      {},
      true,
    );
    await waitFor(() => calls >= 3, 30_000, 'three collections of the broken source');
    const text = await metrics(app);
    othersFine(text);
    expect(value(text, 'ops_source_errors_total', { source: 'backups' })).toBeGreaterThanOrEqual(2);
    expect(app.logs.lines().filter((l) => /source backups/.test(String(l.msg)) && (l.level ?? 0) >= 40)).toHaveLength(1);
  });

  it('recovers on its own when it works again', async () => {
    let broken = true;
    const app = await appWith(
      fake(async () => {
        if (broken) throw new Error('temporarily broken');
        return { invalid: {} };
      }),
    );
    await app.app.collection.collectAll();
    expect(value(await metrics(app), 'ops_source_up', { source: 'backups' })).toBe(0);
    broken = false;
    await app.app.collection.collect('backups');
    const text = await metrics(app);
    expect(value(text, 'ops_source_up', { source: 'backups' })).toBe(1);
    expect(value(text, 'ops_backup_tracking_installed')).toBe(1);
    expect(app.logs.lines().some((l) => l.msg === 'source backups is up')).toBe(true);
  });
});

describe('a source that hangs', () => {
  it('times out at its timeout; a collection that never settles is given up one timeout later and collected again', async () => {
    let calls = 0;
    const app = await appWith(
      fake(() => {
        calls += 1;
        return new Promise<never>(() => undefined);
      }),
    );
    const started = Date.now();
    const first = app.app.collection.collect('backups');
    await waitFor(() => app.app.collection.state('backups')?.lastError !== undefined, 30_000, 'the timeout');
    const timedOutAfter = Date.now() - started;
    expect(timedOutAfter).toBeGreaterThanOrEqual(290);
    expect(app.app.collection.state('backups')?.lastError).toBe('backups collection timed out after 0.3s');
    // /metrics answers at once while it hangs.
    const text = await metrics(app);
    expect(value(text, 'ops_source_up', { source: 'backups' })).toBe(0);
    await first;
    // Timeout 0.3 s plus one more before it is given up; generous for a loaded machine.
    expect(Date.now() - started).toBeLessThan(20_000); // bounded, against a promise that never settles
    expect(app.logs.lines().some((l) => /had not settled 0.3s later; given up/.test(String(l.msg)))).toBe(true);
    await app.app.collection.collect('backups');
    expect(calls).toBe(2);
  });

  it('a rejection that arrives after the timeout is handled, not unhandled', async () => {
    const app = await appWith(fake(() => new Promise<never>((_, reject) => setTimeout(() => reject(new Error('too late')), 450))));
    await app.app.collection.collect('backups');
    expect(app.app.collection.state('backups')?.lastError).toMatch(/timed out/);
    await new Promise((r) => setTimeout(r, 300));
  });

  it('stop() is bounded even when a collection never settles', async () => {
    const app = await appWith(fake(() => new Promise<never>(() => undefined)), {}, true);
    await waitFor(() => (app.app.collection.state('backups')?.collections ?? 0) >= 1, 30_000, 'the first collection');
    const started = Date.now();
    await app.app.close();
    t = undefined;
    expect(Date.now() - started).toBeLessThan(20_000); // bounded, against a promise that never settles
  });
});

describe('garbage samples', () => {
  it('are cut or dropped and counted; everything served is valid for promtool', async () => {
    const long = 'x'.repeat(MAX_LABEL_VALUE_LENGTH + 50);
    const garbage = [
      { metric: 'backupLastSuccess', labels: { resource_type: 'OK' }, value: 1700000000 },
      { metric: 'backupLastSuccess', labels: { resource_type: long }, value: 1700000001 },
      { metric: 'backupLastSuccess', labels: { resource_type: `${long}y` }, value: 1700000002 },
      { metric: 'backupLastSuccess', labels: { resource_type: 'we"ird\\type\nwith newline' }, value: 3 },
      { metric: 'backupLastSuccess', labels: { resource_type: 'NaN' }, value: Number.NaN },
      { metric: 'backupLastSuccess', labels: { resource_type: 'INF' }, value: Number.POSITIVE_INFINITY },
      { metric: 'backupLastSuccess', labels: { resource_type: 'str' }, value: '5' },
      { metric: 'backupLastSuccess', labels: {}, value: 1 },
      { metric: 'backupLastSuccess', labels: { resource_type: 'A', extra: 'B' }, value: 1 },
      { metric: 'backupLastSuccess', labels: { resource_type: null }, value: 1 },
      { metric: 'noSuchMetric', labels: {}, value: 1 },
      { metric: 'shieldEventsTotal', labels: { decision: 'ALLOW' }, value: -1 },
      null,
    ] as unknown as Sample[];
    const app = await appWith(fake(async () => ({ invalid: { null_value: 2 } }), () => garbage));
    await app.app.collection.collectAll();
    const text = await metrics(app);
    othersFine(text, 'backups');
    expect(value(text, 'ops_source_up', { source: 'backups' })).toBe(1);
    const served = samples(text, 'ops_backup_last_success_timestamp_seconds');
    expect(served.map((s) => s.value).sort((a, b) => a - b)).toEqual([3, 1700000000, 1700000001, 1700000002]);
    expect(served.every((s) => (s.labels.resource_type ?? '').length <= MAX_LABEL_VALUE_LENGTH)).toBe(true);
    // Two long values that share a prefix stay two series.
    expect(new Set(served.map((s) => s.labels.resource_type)).size).toBe(4);
    expect(value(text, 'ops_backup_last_success_timestamp_seconds', { resource_type: 'we"ird\\type\nwith newline' })).toBe(3);
    expect(samples(text, 'ops_shield_events_total', { decision: 'ALLOW' }).every((s) => s.value >= 0)).toBe(true);
    // The source's own counts plus what the runner cut (2) and dropped (9).
    expect(value(text, 'ops_source_invalid_values', { source: 'backups', reason: 'null_value' })).toBe(2);
    expect(value(text, 'ops_source_invalid_values', { source: 'backups', reason: 'label_overflow' })).toBe(2);
    expect(value(text, 'ops_source_invalid_values', { source: 'backups', reason: 'wrong_type' })).toBe(9);
    const check = promtoolCheck(text);
    expect(check.output).toBe('');
    expect(check.ok).toBe(true);
  });
});
