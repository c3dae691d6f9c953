/**
 * The exporter's entry point: reads the configuration, listens, and shuts
 * down gracefully on SIGTERM/SIGINT. `--check-config` validates the
 * environment and exits.
 */
import { build } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { redactUrl } from './redact.js';

/** Longest a graceful shutdown may take before the process exits anyway, ms. */
const SHUTDOWN_TIMEOUT_MS = 10_000;

function configOrExit(): Config {
  try {
    return loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`ops-overview: invalid configuration: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
}

const config = configOrExit();
if (process.argv.includes('--check-config')) {
  console.log(`ops-overview: configuration is valid (database ${redactUrl(config.databaseUrl)}, redis ${redactUrl(config.redisUrl)}, port ${config.port})`);
  process.exit(0);
}

const app = await build({ config });
let stopping = false;
const shutdown = (signal: string) => {
  if (stopping) return;
  stopping = true;
  app.log.info({ signal }, 'shutting down');
  const force = setTimeout(() => {
    app.log.error('shutdown timed out; exiting');
    process.exit(1);
  }, SHUTDOWN_TIMEOUT_MS);
  force.unref();
  app.close().then(
    () => process.exit(0),
    (err: unknown) => {
      app.log.error({ err }, 'shutdown failed');
      process.exit(1);
    },
  );
};
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('unhandledRejection', (reason) => {
  app.log.error({ err: reason }, 'unhandled rejection');
});

try {
  await app.listen({ host: config.host, port: config.port });
  app.log.info(`ops-overview serving /metrics and /api/ops/overview; database ${redactUrl(config.databaseUrl)}`);
} catch (err) {
  app.log.error({ err }, 'cannot listen');
  process.exit(1);
}
