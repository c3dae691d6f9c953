/**
 * The simulator on its own, against PostgreSQL (the compose stack's `setup`
 * and `simulator` services, or by hand):
 *
 *   tsx src/demo/simulator-cli.ts setup              migrate, reader role, seed (DATABASE_URL, OPS_READER_PASSWORD)
 *   tsx src/demo/simulator-cli.ts run [flags]        run the simulator (DATABASE_URL, REDIS_URL, OPS_DEMO_QUEUE_PREFIX)
 *   tsx src/demo/simulator-cli.ts scenario SPEC      switch a scenario on in the running simulator (via its admin port)
 *   tsx src/demo/simulator-cli.ts clear NAME[:k=v]   switch it off ("all" for every scenario)
 *   tsx src/demo/simulator-cli.ts status             the running simulator's state
 */
import pg from 'pg';
import { startDemoAdminServer, type DemoAdminServer } from './admin.js';
import { DEFAULT_ADMIN_PORT, demoArgsHelp, parseDemoArgs, type DemoArgs } from './args.js';
import { assertDemoDatabase, pgDemoDb } from './demo-db.js';
import { parseScenarioSpec } from './scenarios.js';
import { setupDemoDatabase } from './setup.js';
import { createSimulator } from './simulator.js';
import { redactUrl } from '../redact.js';

const USAGE = `Usage: simulator-cli.ts setup | run [flags] | scenario SPEC | clear NAME[:key=value] | status\n\n${demoArgsHelp()}`;

function requireDatabaseUrl(): string {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('DATABASE_URL is not set: it names the demo database (postgresql://user:pass@host:5432/ops_demo)');
  assertDemoDatabase(url);
  return url;
}

async function setup(): Promise<void> {
  const url = requireDatabaseUrl();
  const result = await setupDemoDatabase(url, process.env.OPS_READER_PASSWORD ? { readerPassword: process.env.OPS_READER_PASSWORD } : {});
  console.log(`setup: ${result.migrations.applied.length} migrations applied, ${result.migrations.alreadyApplied.length} already applied on ${redactUrl(url)}`);
  if (result.seeded) console.log(`setup: seeded ${JSON.stringify(result.seeded)}`);
}

async function run(args: DemoArgs): Promise<void> {
  const url = requireDatabaseUrl();
  const pool = new pg.Pool({ connectionString: url, max: 4, application_name: 'ops-overview-simulator' });
  pool.on('error', () => undefined);
  const redisUrl = args.redisUrl !== undefined ? args.redisUrl : (process.env.REDIS_URL ?? null);
  const sim = createSimulator({
    db: pgDemoDb(pool),
    redisUrl,
    queuePrefix: process.env.OPS_DEMO_QUEUE_PREFIX ?? 'bull',
    ...(args.randomSeed !== undefined ? { randomSeed: args.randomSeed } : {}),
  });
  if (args.seed) {
    const seeded = await sim.seed();
    console.log(`simulator: seeded ${JSON.stringify(seeded)}`);
  }
  await sim.start();
  for (const s of args.scenarios) await sim.scenario(s.name, s.options as never);
  let admin: DemoAdminServer | null = null;
  if (args.adminPort !== null) {
    admin = await startDemoAdminServer(sim, { port: args.adminPort });
    console.log(`simulator: admin endpoint on ${admin.url}/demo (loopback only)`);
  }
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`simulator: ${signal}, stopping`);
    await admin?.close();
    await sim.stop();
    await pool.end();
  };
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
}

async function adminCall(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<void> {
  const port = Number(process.env.OPS_DEMO_ADMIN_PORT ?? DEFAULT_ADMIN_PORT);
  const res = await fetch(`http://127.0.0.1:${port}/demo${path}`, {
    method,
    ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  console.log(text);
  if (!res.ok) process.exitCode = 1;
}

async function main(argv: string[]): Promise<void> {
  const args = parseDemoArgs(argv);
  const [command = 'run', operand] = args.positionals;
  if (args.help) {
    console.log(USAGE);
    return;
  }
  switch (command) {
    case 'setup':
      return setup();
    case 'run':
      return run(args);
    case 'status':
      return adminCall('GET', '/status');
    case 'scenario': {
      if (!operand) throw new Error('scenario needs a SPEC, e.g. node-offline:node=DB-CORE');
      const s = parseScenarioSpec(operand);
      return adminCall('POST', `/scenarios/${s.name}`, s.options);
    }
    case 'clear': {
      if (!operand) throw new Error('clear needs a scenario name (or "all")');
      if (operand === 'all') return adminCall('DELETE', '/scenarios');
      const colon = operand.indexOf(':');
      const name = colon === -1 ? operand : operand.slice(0, colon);
      const query = colon === -1 ? '' : `?${operand.slice(colon + 1).split(',').join('&')}`;
      return adminCall('DELETE', `/scenarios/${encodeURIComponent(name)}${query}`);
    }
    default:
      throw new Error(`unknown command "${command}"\n\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  console.error(`simulator: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
