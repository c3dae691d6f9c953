/**
 * The pure mapping functions, without any database: how raw values become
 * labels, ratios and samples.
 */
import { describe, expect, it } from 'vitest';
import { knownLabel, LabelLimiter, type InvalidCounts } from '../src/metrics/sample.js';
import { backupSamples, mapBackups } from '../src/sources/backups.js';
import { parsePercent } from '../src/sources/core-nodes.js';
import { mapProvisioning, provisioningSamples } from '../src/sources/provisioning.js';
import { countWorkers, parseQueueStats } from '../src/sources/queues.js';
import { redactText } from '../src/redact.js';

describe('parsePercent', () => {
  const cases: Array<[unknown, number | undefined, keyof InvalidCounts | null]> = [
    [{ cpuPercent: 55 }, 0.55, null],
    [{ cpuPercent: 0 }, 0, null],
    [{ cpuPercent: 100 }, 1, null],
    [{ cpuPercent: 100.01 }, undefined, 'out_of_range'],
    [{ cpuPercent: -1 }, undefined, 'out_of_range'],
    [{ cpuPercent: '55' }, undefined, 'wrong_type'],
    [{ cpuPercent: 'NaN' }, undefined, 'wrong_type'],
    [{ cpuPercent: { value: 5 } }, undefined, 'wrong_type'],
    [{ cpuPercent: true }, undefined, 'wrong_type'],
    [{ cpuPercent: null }, undefined, null],
    [{}, undefined, null],
    [null, undefined, null],
    ['{"cpuPercent": 5}', undefined, null],
    [[55], undefined, null],
  ];
  it.each(cases)('%j -> %s', (metrics, expected, reason) => {
    const invalid: InvalidCounts = {};
    expect(parsePercent(metrics, 'cpuPercent', invalid)).toBe(expected);
    expect(invalid).toEqual(reason ? { [reason]: 1 } : {});
  });
});

describe('labels', () => {
  it('keeps known values, maps NULL and anything else to UNKNOWN, matching exactly', () => {
    const invalid: InvalidCounts = {};
    expect(knownLabel('BLOCK', ['ALLOW', 'BLOCK'], invalid)).toBe('BLOCK');
    expect(knownLabel(null, ['ALLOW', 'BLOCK'], invalid)).toBe('UNKNOWN');
    expect(knownLabel('block', ['ALLOW', 'BLOCK'], invalid)).toBe('UNKNOWN');
    expect(knownLabel(' BLOCK', ['ALLOW', 'BLOCK'], invalid)).toBe('UNKNOWN');
    expect(invalid).toEqual({ null_value: 1, unknown_value: 2 });
  });

  it('bounds free-text labels: the first N keep their names, the rest become OTHER', () => {
    const invalid: InvalidCounts = {};
    const l = new LabelLimiter(2, invalid);
    expect(['a', 'b', 'a', 'c', 'd', 'b'].map((v) => l.label(v))).toEqual(['a', 'b', 'a', 'OTHER', 'OTHER', 'b']);
    expect(invalid).toEqual({ label_overflow: 2 });
  });
});

describe('provisioning mapping', () => {
  const options = { stuckThresholdSeconds: 900, labelValueLimit: 1, errorMessageMaxLength: 100 };
  const none = { live: [], hotspots: [], recent: [], badFailedTimestamps: 0 };

  it('labels the rows the SQL summed as OTHER, counting what it merged and the bad timestamps', () => {
    const known = new Set<string>();
    const data = mapProvisioning(
      {
        live: [
          { type: 'hosting', status: 'PENDING', jobs: 5, stuck: 2, oldest: new Date(3000), badTimestamps: 1, mergedTypes: 0, typeCut: false },
          { type: null, status: 'PENDING', jobs: 4, stuck: 2, oldest: new Date(1000), badTimestamps: 0, mergedTypes: 2, typeCut: false },
        ],
        hotspots: [
          { action: 'a', resourceType: 'R', failed: 3, mergedPairs: 0, actionCut: false, resourceTypeCut: false },
          { action: null, resourceType: null, failed: 7, mergedPairs: 5, actionCut: false, resourceTypeCut: false },
        ],
        recent: [],
        badFailedTimestamps: 4,
      },
      options,
      known,
    );
    const samples = provisioningSamples(data);
    const get = (metric: string, labels: Record<string, string>) =>
      samples.find((s) => s.metric === metric && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
    expect(get('provisioningJobs', { type: 'hosting', status: 'PENDING' })).toBe(5);
    expect(get('provisioningJobs', { type: 'OTHER', status: 'PENDING' })).toBe(4);
    expect(get('provisioningStuck', { type: 'OTHER', status: 'PENDING' })).toBe(2);
    expect(get('provisioningOldestLive', { type: 'OTHER', status: 'PENDING' })).toBe(1);
    expect(get('provisioningFailed24h', { action: 'OTHER', resource_type: 'OTHER' })).toBe(7);
    expect(data.invalid).toEqual({ label_overflow: 7, bad_timestamp: 5 });
    expect(data.stuck).toBe(4);
    expect(data.failedLast24h).toBe(10);
    // A type seen once stays present at 0 when its jobs are gone.
    const later = provisioningSamples(mapProvisioning(none, options, known));
    expect(later.filter((s) => s.metric === 'provisioningStuck').map((s) => [s.labels.type, s.labels.status, s.value])).toEqual([
      ['OTHER', 'PENDING', 0],
      ['OTHER', 'RUNNING', 0],
      ['hosting', 'PENDING', 0],
      ['hosting', 'RUNNING', 0],
    ]);
  });

  it('an empty type, action or resource type is UNKNOWN (an empty label is no label); a cut label counts once', () => {
    const row = (status: string) => ({ type: '', status, jobs: 1, stuck: 0, oldest: null, badTimestamps: 0, mergedTypes: 0, typeCut: false });
    const long = `${'a'.repeat(190)}…0123abcd`;
    const data = mapProvisioning(
      {
        ...none,
        live: [row('PENDING'), row('RUNNING')],
        hotspots: [
          { action: '', resourceType: long, failed: 2, mergedPairs: 0, actionCut: false, resourceTypeCut: true },
          { action: 'x', resourceType: long, failed: 1, mergedPairs: 0, actionCut: false, resourceTypeCut: true },
        ],
      },
      options,
      new Set(),
    );
    expect(data.live.map((r) => r.typeLabel)).toEqual(['UNKNOWN', 'UNKNOWN']);
    expect(data.hotspots.map((r) => [r.actionLabel, r.resourceTypeLabel])).toEqual([
      ['UNKNOWN', long],
      ['x', long],
    ]);
    expect(data.invalid).toEqual({ unknown_value: 3, label_overflow: 1 });
  });

  it('keeps at most labelValueLimit + 1 known types, this collection\'s first', () => {
    const known = new Set(['old-1', 'old-2', 'old-3']);
    const row = (type: string | null) => ({ type, status: 'PENDING', jobs: 1, stuck: 0, oldest: null, badTimestamps: 0, mergedTypes: type ? 0 : 1, typeCut: false });
    const data = mapProvisioning({ ...none, live: [row('new'), row(null)] }, { ...options, labelValueLimit: 2 }, known);
    expect(data.knownTypes).toEqual(['OTHER', 'new', 'old-1']);
  });
});

describe('backup mapping', () => {
  it('always reports the critical types, and OTHER keeps the newest of what it merges', () => {
    const data = mapBackups(
      true,
      [
        { resourceType: 'X_1', status: 'COMPLETED', at: new Date(5000) },
        { resourceType: 'X_2', status: 'COMPLETED', at: new Date(9000) },
      ],
      { labelValueLimit: 3 },
    );
    const samples = backupSamples(data);
    const ever = Object.fromEntries(samples.filter((s) => s.metric === 'backupEverSucceeded').map((s) => [s.labels.resource_type, s.value]));
    expect(ever).toEqual({ DB_CORE: 0, MPANEL_CORE: 0, CLOUD_POD: 0, OTHER: 1 });
    expect(samples.find((s) => s.metric === 'backupLastSuccess')).toEqual({ metric: 'backupLastSuccess', labels: { resource_type: 'OTHER' }, value: 9 });
  });
});

describe('queue parsing', () => {
  it('decodes the stats script reply, and tells a vanished queue from a foreign key', () => {
    const invalid: InvalidCounts = {};
    expect(parseQueueStats('bull', 'q', [0], invalid)).toBeNull();
    expect(parseQueueStats('bull', 'q', [1, 0], invalid)).toBeNull();
    expect(invalid).toEqual({ not_a_queue: 1 });
    const v = parseQueueStats('bull', 'q', [1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, '1700000000123', 1], invalid);
    expect(v).toEqual({
      prefix: 'bull',
      name: 'q',
      paused: true,
      counts: { waiting: 2, paused: 3, active: 4, delayed: 5, prioritized: 6, failed: 7, completed: 8, 'waiting-children': 9 },
      oldestWaitingAt: new Date(1700000000123),
    });
    expect(invalid).toEqual({ not_a_queue: 1, bad_timestamp: 1 });
    expect(parseQueueStats('bull', 'q', [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, '-1', 0], {})?.oldestWaitingAt).toBeUndefined();
  });

  it('counts workers with BullMQ\'s naming rule', () => {
    const b64 = Buffer.from('hosting').toString('base64');
    const list = [
      `id=1 addr=1 name=bull:${b64} db=0`,
      `id=2 addr=1 name=bull:${b64}:w:worker-a db=0`,
      `id=3 addr=1 name=bull:${b64}x db=0`,
      `id=4 addr=1 name=other:${b64} db=0`,
      'id=5 addr=1 name= db=0',
    ].join('\n');
    const counts = countWorkers(list, [
      { prefix: 'bull', name: 'hosting' },
      { prefix: 'bull', name: 'dns' },
    ]);
    expect([...counts.values()]).toEqual([2, 0]);
  });
});

describe('redaction', () => {
  const cases: Array<[string, string]> = [
    ['connect postgres://u:pa55@host/db failed', 'connect postgres://u:***@host/db failed'],
    ['redis://:s3cret@cache:6379', 'redis://:***@cache:6379'],
    ['password=hunter2 user=x', 'password=*** user=x'],
    ['{"api_key": "abc123"}', '{"api_key": ***}'],
    ['Authorization: Bearer abcdefghijklmnop', 'Authorization: Bearer ***'],
    ['token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig_nature-x', 'token ***'],
    ['AKIAABCDEFGHIJKLMNOP leaked', '*** leaked'],
    ['line1\nline2\u0000\u001b[31m', 'line1\nline2  [31m'],
  ];
  it.each(cases)('%j', (input, expected) => {
    expect(redactText(input, 1000)).toBe(expected);
  });

  it('truncates to the limit with an ellipsis, without scanning megabytes', () => {
    const out = redactText('x'.repeat(1_000_000), 100);
    expect(out).toHaveLength(100);
    expect(out.endsWith('…')).toBe(true);
  });
});
