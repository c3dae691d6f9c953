/**
 * The JSON API degrades per source: once every source has been tried once it
 * answers 200; a section whose source has never succeeded is left out (never
 * invented: `coreNodes: []` would read as "no nodes"), `sources[]` says why
 * (error class, since when), and every other section is served.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SourceName } from '../src/catalog.js';
import type { SectionName } from '../src/contract.js';
import { coreNodesOverview, type CoreNodesData } from '../src/sources/core-nodes.js';
import { provisioningOverview, type ProvisioningData } from '../src/sources/provisioning.js';
import type { Source } from '../src/sources/types.js';
import { createTestApp, type TestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { createTestRedis, type TestRedis } from './helpers/redis.js';

let db: TestDatabase;
let redis: TestRedis;
let t: TestApp | undefined;

beforeAll(async () => {
  db = await createTestDatabase('api_degrade');
  redis = await createTestRedis('api-degrade');
});
afterEach(async () => {
  await t?.close();
  t = undefined;
});
afterAll(async () => {
  await db.drop();
  await redis.cleanup();
});

/** A clock the test moves by hand. */
function clock(start = Date.parse('2026-03-01T12:00:00.000Z')) {
  let ms = start;
  return { now: () => new Date(ms), advance: (s: number) => (ms += s * 1000) };
}

/** A source that fails with `error` while `failing()` holds, otherwise returns `data`. */
function scripted<T extends { invalid: object }, K extends SectionName>(
  name: SourceName,
  section: Source<T, K>['section'],
  data: T,
  failing: () => Error | null,
): Source<T, K> {
  return {
    name,
    backend: 'database',
    async collect() {
      const err = failing();
      if (err) throw err;
      return data;
    },
    samples: () => [],
    section,
  };
}

const permissionDenied = () => Object.assign(new Error('permission denied for table "CoreNode"'), { code: '42501' });
const get = (app: TestApp) => app.app.inject({ url: '/api/ops/overview', headers: { authorization: app.authorization } });

describe('a source that never succeeds', () => {
  it('answers 503 until every source has been tried, then 200 without that section, saying why in sources[]', async () => {
    const c = clock();
    const coreNodes = scripted<CoreNodesData, 'coreNodes'>('core_nodes', { name: 'coreNodes', overview: coreNodesOverview }, { nodes: [], statusCounts: {}, omitted: 0, invalid: {} }, permissionDenied);
    t = await createTestApp('api_degrade', { db, redis, now: c.now, replaceSources: { core_nodes: coreNodes } });
    expect((await get(t)).statusCode).toBe(503);
    for (const name of ['queues', 'provisioning', 'security', 'backups', 'indexes'] as const) await t.app.collection.collect(name);
    // All but one tried: a missing section could still only mean "not yet".
    expect((await get(t)).json()).toMatchObject({ error: 'OPS_NOT_READY' });
    await t.app.collection.collect('core_nodes');

    const res = await get(t);
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(Object.keys(body).sort()).toEqual(['backups', 'generatedAt', 'provisioning', 'queues', 'security', 'sources']);
    expect(body).not.toHaveProperty('coreNodes');
    expect(body.provisioning).toEqual({ failedLast24h: 0, stuckLast24h: 0, recentFailures: [] });
    expect(body.sources.find((s: { name: string }) => s.name === 'core_nodes')).toEqual({
      name: 'core_nodes',
      up: false,
      stale: false,
      errorClass: 'permission',
      downSince: '2026-03-01T12:00:00.000Z',
    });
    expect(body.sources.find((s: { name: string }) => s.name === 'provisioning')).toEqual({
      name: 'provisioning',
      up: true,
      stale: false,
      lastSuccessAt: '2026-03-01T12:00:00.000Z',
    });
    // The message itself stays in the log, never in the response.
    expect(res.body).not.toContain('permission denied');
    expect(t.logs.text()).toContain('permission denied for table');
  });

  it('keeps downSince at the first failure of an outage, and fills the section once the source succeeds', async () => {
    const c = clock();
    let failure: (() => Error) | null = permissionDenied;
    const coreNodes = scripted<CoreNodesData, 'coreNodes'>(
      'core_nodes',
      { name: 'coreNodes', overview: coreNodesOverview },
      { nodes: [], statusCounts: {}, omitted: 0, invalid: {} },
      () => failure?.() ?? null,
    );
    t = await createTestApp('api_degrade', { db, redis, now: c.now, replaceSources: { core_nodes: coreNodes } });
    await t.app.collection.collectAll();
    c.advance(15);
    failure = () => new Error('connect ECONNREFUSED 10.0.0.1:5432');
    await t.app.collection.collect('core_nodes');
    let src = (await get(t)).json().sources.find((s: { name: string }) => s.name === 'core_nodes');
    expect(src).toMatchObject({ up: false, stale: false, errorClass: 'database', downSince: '2026-03-01T12:00:00.000Z' });

    c.advance(15);
    failure = null;
    await t.app.collection.collect('core_nodes');
    const body = (await get(t)).json();
    // An empty node list now really means the database has no nodes.
    expect(body.coreNodes).toEqual([]);
    src = body.sources.find((s: { name: string }) => s.name === 'core_nodes');
    expect(src).toEqual({ name: 'core_nodes', up: true, stale: false, lastSuccessAt: '2026-03-01T12:00:30.000Z' });
  });

  it('a section whose mapping throws takes only its own source down (class internal); the API still answers 200', async () => {
    const broken = scripted<ProvisioningData, 'provisioning'>(
      'provisioning',
      {
        name: 'provisioning',
        overview: (d) => {
          // What an out-of-range date did: RangeError from toISOString.
          new Date(Number.NaN).toISOString();
          return provisioningOverview(d);
        },
      },
      { live: [], hotspots: [], recentFailures: [], failedLast24h: 0, stuck: 0, stuckThresholdSeconds: 900, knownTypes: [], invalid: {} },
      () => null,
    );
    t = await createTestApp('api_degrade', { db, redis, replaceSources: { provisioning: broken } });
    await t.app.collection.collectAll();
    const res = await get(t);
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).not.toHaveProperty('provisioning');
    expect(body.coreNodes.length).toBeGreaterThan(0);
    expect(body.sources.find((s: { name: string }) => s.name === 'provisioning')).toMatchObject({ up: false, errorClass: 'internal' });
    const metrics = (await t.app.inject('/metrics')).body;
    expect(metrics).toContain('ops_source_up{source="provisioning"} 0');
    expect(metrics).toContain('ops_source_up{source="core_nodes"} 1');
  });
});
