/**
 * `npm run demo`: the whole product on one machine with nothing configured.
 * An embedded PostgreSQL (PGlite, persisted under .demo-data/) or a demo-marked
 * DATABASE_URL, filled and kept moving by the platform simulator; BullMQ on
 * REDIS_URL or a local Redis when one answers; the real exporter reading it
 * all. Prints where to look and a demo API token.
 */
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { build } from '../app.js';
import { loadConfig } from '../config.js';
import { redactUrl } from '../redact.js';
import { startDemoAdminServer, type DemoAdminServer } from './admin.js';
import { demoArgsHelp, parseDemoArgs } from './args.js';
import { assertDemoDatabase, pgDemoDb } from './demo-db.js';
import { openEmbeddedDatabase, type EmbeddedDatabase } from './embedded-db.js';
import { setupDemoDatabase } from './setup.js';
import { createSimulator, type Simulator } from './simulator.js';

const LOCAL_REDIS = 'redis://127.0.0.1:6379';
/** Where the exporter looks for Redis when the demo has none: a port nothing listens on. */
const NO_REDIS = 'redis://127.0.0.1:1';

/** Whether something answers PING at `url` within `timeoutMs`. */
async function redisAnswers(url: string, timeoutMs = 500): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect(Number(u.port || 6379), u.hostname);
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

const log = (line: string) => console.log(`[demo] ${line}`);

async function main(): Promise<void> {
  const args = parseDemoArgs(process.argv.slice(2));
  if (args.help) {
    console.log(`Usage: npm run demo -- [flags]\n\n${demoArgsHelp()}`);
    return;
  }

  // The database: a demo-marked PostgreSQL when DATABASE_URL is given (the
  // simulator refuses any other), else the embedded one.
  let embedded: EmbeddedDatabase | null = null;
  let pool: pg.Pool | null = null;
  let exporterDatabaseUrl: string;
  let simulatorDb;
  const givenUrl = process.env.DATABASE_URL;
  if (givenUrl) {
    assertDemoDatabase(givenUrl);
    await setupDemoDatabase(givenUrl, { seed: false });
    pool = new pg.Pool({ connectionString: givenUrl, max: 4, application_name: 'ops-overview-demo' });
    pool.on('error', () => undefined);
    simulatorDb = pgDemoDb(pool);
    exporterDatabaseUrl = givenUrl;
    log(`database: ${redactUrl(givenUrl)}`);
  } else {
    // OPS_DEMO_DATA_DIR moves the data folder (tests use a temporary one).
    embedded = await openEmbeddedDatabase(process.env.OPS_DEMO_DATA_DIR ? { dataDir: process.env.OPS_DEMO_DATA_DIR } : {});
    const server = await embedded.serve();
    simulatorDb = embedded.db;
    exporterDatabaseUrl = server.url('ops_demo');
    log(`database: embedded PGlite in .demo-data/ (opened in ${Math.round(embedded.openMs)} ms), served on ${server.host}:${server.port}`);
  }

  // Redis: the flag, REDIS_URL, or a local one when it answers.
  let redisUrl: string | null = args.redisUrl !== undefined ? args.redisUrl : (process.env.REDIS_URL ?? null);
  if (redisUrl === null && args.redisUrl === undefined && (await redisAnswers(LOCAL_REDIS))) redisUrl = LOCAL_REDIS;
  if (redisUrl === null) {
    log('no Redis answers (set REDIS_URL or start redis-server): BullMQ queues are not simulated and the exporter reports ops_source_up{source="queues"} 0; everything else runs');
  } else {
    log(`redis: ${redactUrl(redisUrl)} (BullMQ prefix "bull")`);
  }

  const sim: Simulator = createSimulator({
    db: simulatorDb,
    redisUrl,
    ...(args.randomSeed !== undefined ? { randomSeed: args.randomSeed } : {}),
    logger: { info: (l) => log(l), warn: (l) => log(`warning: ${l}`) },
  });
  if (args.seed) await sim.seed();
  await sim.start();
  for (const s of args.scenarios) await sim.scenario(s.name, s.options as never);

  // The exporter, as production runs it, with a token made for this run.
  const token = `demo-${randomBytes(18).toString('base64url')}`;
  const env: Record<string, string | undefined> = {
    OPS_COLLECT_INTERVAL_SECONDS: '5',
    LOG_LEVEL: 'warn',
    ...process.env,
    DATABASE_URL: exporterDatabaseUrl,
    // With no Redis the queue source must say so, not vanish: point it at an
    // address that does not answer.
    REDIS_URL: redisUrl ?? NO_REDIS,
    OPS_QUEUE_PREFIXES: 'bull',
    OPS_API_TOKENS: JSON.stringify([
      { name: 'demo', sha256: createHash('sha256').update(token).digest('hex'), scopes: ['ops:overview:read'] },
    ]),
  };
  const config = loadConfig(env);
  const app: FastifyInstance = await build({ config });
  await app.listen({ host: config.host === '0.0.0.0' ? '127.0.0.1' : config.host, port: config.port });
  const admin: DemoAdminServer | null = args.adminPort === null ? null : await startDemoAdminServer(sim, { port: args.adminPort });

  const base = `http://127.0.0.1:${config.port}`;
  console.log(`
ops-overview demo is running (Ctrl-C stops it).

  metrics:   curl ${base}/metrics
  overview:  curl -H 'Authorization: Bearer ${token}' ${base}/api/ops/overview
  ready:     curl ${base}/readyz
${admin ? `  scenarios: curl -X POST ${admin.url}/demo/scenarios/node-offline     (list: curl ${admin.url}/demo/scenarios)
             curl -X DELETE ${admin.url}/demo/scenarios/node-offline` : '  scenarios: admin endpoint disabled (--no-admin)'}

The token above is made for this run only. Dashboards and alerts: docker compose up (see README).
`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping`);
    const force = setTimeout(() => process.exit(1), 15_000);
    force.unref();
    await app.close().catch(() => undefined);
    await admin?.close().catch(() => undefined);
    await sim.stop().catch(() => undefined);
    await pool?.end().catch(() => undefined);
    await embedded?.close().catch(() => undefined);
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((err: unknown) => {
  console.error(`[demo] ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
