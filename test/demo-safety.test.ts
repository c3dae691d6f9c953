import { describe, expect, it } from 'vitest';
import { parseDemoArgs } from '../src/demo/args.js';
import { NotADemoDatabaseError, assertDemoDatabase, isDemoDatabaseName } from '../src/demo/demo-db.js';
import { SCENARIO_NAMES, parseScenarioSpec, resolveScenario, scenarioKey } from '../src/demo/scenarios.js';

describe('assertDemoDatabase', () => {
  it.each([
    'postgresql://postgres@127.0.0.1:5432/ops_demo',
    'postgres://u:p@db:5432/demo',
    'postgresql://u@db/mpanel-demo?sslmode=disable',
    'postgresql://u@db/DEMO_platform',
    'postgresql://u@db/ops.demo.local',
    'postgresql://postgres@127.0.0.1:5432/ops_t_demo_sim_1a2b3c4d',
  ])('accepts a database whose name has the word "demo": %s', (url) => {
    expect(() => assertDemoDatabase(url)).not.toThrow();
  });

  it.each([
    ['postgresql://postgres@127.0.0.1:5432/mpanel', /database "mpanel"/],
    ['postgresql://postgres@127.0.0.1:5432/demodata', /database "demodata"/],
    ['postgresql://postgres@127.0.0.1:5432/prod_demonstration', /database "prod_demonstration"/],
    ['postgresql://demo:demo@demo-host:5432/platform', /database "platform"/],
    ['postgresql://postgres@127.0.0.1:5432/mpanel?ops_demo=1', /database "mpanel"/],
    ['postgresql://postgres@127.0.0.1:5432/', /names no database/],
    ['not a url', /cannot be parsed/],
    ['mysql://root@127.0.0.1/ops_demo', /cannot be parsed/],
  ])('refuses %s', (url, message) => {
    expect(() => assertDemoDatabase(url)).toThrow(NotADemoDatabaseError);
    expect(() => assertDemoDatabase(url)).toThrow(message);
  });

  it('splits words on _, - and . only, case-insensitively', () => {
    expect(isDemoDatabaseName('a_Demo')).toBe(true);
    expect(isDemoDatabaseName('demos')).toBe(false);
    expect(isDemoDatabaseName('my demo')).toBe(false);
  });
});

describe('scenario specs', () => {
  it('fills in the defaults of every scenario', () => {
    for (const name of SCENARIO_NAMES) expect(resolveScenario(name).name).toBe(name);
    expect(resolveScenario('node-offline')).toEqual({ name: 'node-offline', options: { node: 'DB-CORE' } });
    expect(resolveScenario('failure-burst')).toEqual({ name: 'failure-burst', options: { queue: 'ssl', count: 25 } });
  });

  it('parses name:key=value,key=value and converts numbers', () => {
    expect(parseScenarioSpec('failure-burst:queue=dns,count=40')).toEqual({ name: 'failure-burst', options: { queue: 'dns', count: 40 } });
    expect(parseScenarioSpec('node-disk-full:node=DB-CORE,percent=99.5')).toEqual({ name: 'node-disk-full', options: { node: 'DB-CORE', percent: 99.5 } });
    expect(parseScenarioSpec('block-burst')).toEqual({ name: 'block-burst', options: { perSecond: 400 } });
  });

  it('rejects unknown scenarios, options and values with the allowed ones in the message', () => {
    expect(() => parseScenarioSpec('node-gone')).toThrow(/unknown scenario "node-gone"; known: node-offline/);
    expect(() => parseScenarioSpec('node-offline:host=DB-CORE')).toThrow(/unknown option "host"; options: node/);
    expect(() => parseScenarioSpec('node-offline:node=DB-CORE2')).toThrow(/node must be one of SRV1-WEB/);
    expect(() => parseScenarioSpec('failure-burst:count=-3')).toThrow(/count must be a positive number/);
    expect(() => parseScenarioSpec('node-disk-full:percent=120')).toThrow(/at most 100/);
    expect(() => parseScenarioSpec('workers-down:queue')).toThrow(/expected key=value/);
  });

  it('keys an active scenario by name and target', () => {
    expect(scenarioKey(resolveScenario('node-offline', { node: 'MAIL-CORE' }))).toBe('node-offline:MAIL-CORE');
    expect(scenarioKey(resolveScenario('block-burst'))).toBe('block-burst');
  });
});

describe('parseDemoArgs', () => {
  it('collects repeated --scenario flags and the defaults', () => {
    const args = parseDemoArgs(['--scenario', 'node-offline', '--scenario', 'workers-down:queue=dns']);
    expect(args.scenarios).toEqual([
      { name: 'node-offline', options: { node: 'DB-CORE' } },
      { name: 'workers-down', options: { queue: 'dns' } },
    ]);
    expect(args).toMatchObject({ seed: true, adminPort: 9472, help: false, positionals: [] });
    expect(args.redisUrl).toBeUndefined();
  });

  it('reads --no-seed, --no-admin, --no-redis, --random-seed and a sub-command', () => {
    expect(parseDemoArgs(['run', '--no-seed', '--no-admin', '--no-redis', '--random-seed', '7'])).toMatchObject({
      positionals: ['run'],
      seed: false,
      adminPort: null,
      redisUrl: null,
      randomSeed: 7,
    });
  });

  it('rejects unknown flags and invalid values', () => {
    expect(() => parseDemoArgs(['--scenarios', 'x'])).toThrow(/Unknown option '--scenarios'/);
    expect(() => parseDemoArgs(['--admin-port', '70000'])).toThrow(/--admin-port must be a port number/);
    expect(() => parseDemoArgs(['--scenario', 'nope'])).toThrow(/unknown scenario "nope"/);
  });
});
