/**
 * The demo's admin endpoint switches scenarios on the running simulator, and
 * listens on loopback only.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLoopbackHost, registerDemoAdminRoutes, startDemoAdminServer } from '../src/demo/admin.js';
import { pgDemoDb } from '../src/demo/demo-db.js';
import { SCENARIO_NAMES } from '../src/demo/scenarios.js';
import { createSimulator, type Simulator } from '../src/demo/simulator.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { captureLogger, FAST_INTERVALS } from './helpers/demo-wait.js';

let tdb: TestDatabase;
let sim: Simulator;
let app: FastifyInstance;

const nodeStatus = async (hostname: string) =>
  (await tdb.admin.query(`SELECT "status" FROM "CoreNode" WHERE "hostname" = $1`, [hostname])).rows[0]?.status as string;

beforeAll(async () => {
  tdb = await createTestDatabase('demo-admin');
  // DROP DATABASE ... WITH (FORCE) in drop() may reach a connection still closing.
  tdb.admin.on('error', () => undefined);
  sim = createSimulator({ db: pgDemoDb(tdb.admin), logger: captureLogger(), intervals: FAST_INTERVALS, randomSeed: 1 });
  await sim.seed(new Date(), { shieldEventsPerMinute: 1, jobHistoryScale: 0.01 });
  await sim.start();
  app = Fastify();
  await registerDemoAdminRoutes(app, sim);
  await app.ready();
});

afterAll(async () => {
  await app?.close();
  await sim?.stop();
  await tdb?.drop();
});

describe('demo admin routes', () => {
  it('lists every scenario with its description and defaults', async () => {
    const res = await app.inject({ method: 'GET', url: '/demo/scenarios' });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.available.map((s: { name: string }) => s.name)).toEqual(SCENARIO_NAMES);
    expect(body.available[0]).toEqual({ name: 'node-offline', description: expect.stringContaining('OFFLINE'), defaults: { node: 'DB-CORE' } });
    expect(body.active).toEqual([]);
  });

  it('switches a scenario on with JSON options and off by target', async () => {
    const on = await app.inject({ method: 'POST', url: '/demo/scenarios/node-offline', payload: { node: 'MPANEL-CORE' } });
    expect(on.statusCode).toBe(200);
    expect(on.json()).toMatchObject({ key: 'node-offline:MPANEL-CORE', name: 'node-offline', options: { node: 'MPANEL-CORE' }, ids: ['node_mpanel_core'] });
    expect(await nodeStatus('MPANEL-CORE')).toBe('OFFLINE');
    const status = await app.inject({ method: 'GET', url: '/demo/status' });
    expect(status.json()).toMatchObject({ running: true, redis: 'disabled', activeScenarios: [{ key: 'node-offline:MPANEL-CORE' }] });
    const wrongTarget = await app.inject({ method: 'DELETE', url: '/demo/scenarios/node-offline?node=DB-CORE' });
    expect(wrongTarget.json()).toEqual({ cleared: 0 });
    const off = await app.inject({ method: 'DELETE', url: '/demo/scenarios/node-offline?node=MPANEL-CORE' });
    expect(off.json()).toEqual({ cleared: 1 });
    expect(await nodeStatus('MPANEL-CORE')).toBe('ONLINE');
  });

  it('switches one on with its defaults when there is no body, and every one off at once', async () => {
    const on = await app.inject({ method: 'POST', url: '/demo/scenarios/critical-finding' });
    expect(on.statusCode).toBe(200);
    expect(on.json().options).toEqual({ node: 'SRV1-WEB' });
    await app.inject({ method: 'POST', url: '/demo/scenarios/block-burst', payload: { perSecond: 50 } });
    const off = await app.inject({ method: 'DELETE', url: '/demo/scenarios' });
    expect(off.json()).toEqual({ cleared: 2 });
    expect(sim.activeScenarios()).toEqual([]);
  });

  it('answers 404 for an unknown scenario and 400 for invalid options, with the reason', async () => {
    const unknown = await app.inject({ method: 'POST', url: '/demo/scenarios/meteor-strike' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error).toMatch(/unknown scenario "meteor-strike"/);
    const bad = await app.inject({ method: 'POST', url: '/demo/scenarios/workers-down', payload: { queue: 'billing' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toMatch(/queue must be one of hosting, dns, mail, ssl, backup, cloudpod/);
    const badClear = await app.inject({ method: 'DELETE', url: '/demo/scenarios/node-offline?host=x' });
    expect(badClear.statusCode).toBe(400);
  });
});

describe('startDemoAdminServer', () => {
  it('listens on 127.0.0.1 and serves the routes', async () => {
    const server = await startDemoAdminServer(sim);
    try {
      expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const res = await fetch(`${server.url}/demo/status`);
      expect(res.status).toBe(200);
      expect(((await res.json()) as { running: boolean }).running).toBe(true);
    } finally {
      await server.close();
    }
  });

  it('refuses any address that is not loopback', async () => {
    await expect(startDemoAdminServer(sim, { host: '0.0.0.0' })).rejects.toThrow(/only listens on loopback/);
    expect(isLoopbackHost('127.0.0.1')).toBe(true);
    expect(isLoopbackHost('::1')).toBe(true);
    expect(isLoopbackHost('10.0.0.1')).toBe(false);
    expect(isLoopbackHost('::')).toBe(false);
  });
});
