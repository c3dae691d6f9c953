/**
 * The exporter's entry point: reads the configuration, listens, and shuts
 * down gracefully on SIGTERM/SIGINT (stops accepting, finishes the requests
 * under way, stops collecting, closes the pools, exits 0). `--check-config`
 * validates the environment and exits.
 */
import type { FastifyInstance } from 'fastify';
import { build } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { redactText, redactUrl } from './redact.js';

/** Longest a graceful shutdown may take before the process exits anyway, ms. */
const SHUTDOWN_TIMEOUT_MS = 10_000;

/** Exit status of a configuration error (the message names the variable). */
const EXIT_CONFIG = 2;

function exitOnConfigError(err: unknown): never {
  if (err instanceof ConfigError) {
    console.error(`ops-overview: invalid configuration: ${err.message}`);
    process.exit(EXIT_CONFIG);
  }
  throw err;
}

function configOrExit(): Config {
  try {
    return loadConfig(process.env);
  } catch (err) {
    return exitOnConfigError(err);
  }
}

const config = configOrExit();
if (process.argv.includes('--check-config')) {
  console.log(`ops-overview: configuration is valid (database ${redactUrl(config.databaseUrl)}, redis ${redactUrl(config.redisUrl)}, port ${config.port})`);
  process.exit(0);
}

let app: FastifyInstance;
try {
  app = await build({ config });
} catch (err) {
  exitOnConfigError(err);
}

let stopping = false;
const shutdown = (signal: string) => {
  if (stopping) return;
  stopping = true;
  app.log.info({ signal }, 'shutting down: no new connections, finishing requests under way');
  const force = setTimeout(() => {
    app.log.error(`shutdown did not finish within ${SHUTDOWN_TIMEOUT_MS / 1000}s; exiting`);
    process.exit(1);
  }, SHUTDOWN_TIMEOUT_MS);
  force.unref();
  app.close().then(
    () => {
      app.log.info('shut down');
      process.exit(0);
    },
    (err: unknown) => {
      app.log.error({ err }, 'shutdown failed');
      process.exit(1);
    },
  );
};
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
// The runner isolates every source; this is the last net, logged through the
// redacting serializer rather than printed raw to stderr.
process.on('unhandledRejection', (reason) => {
  app.log.error({ err: reason }, 'unhandled rejection');
});
process.on('uncaughtException', (err) => {
  app.log.fatal({ err }, 'uncaught exception; exiting');
  process.exit(1);
});

try {
  await app.listen({ host: config.host, port: config.port });
  app.log.info(`ops-overview serving /metrics and /api/ops/overview; database ${redactUrl(config.databaseUrl)}`);
} catch (err) {
  const code = (err as NodeJS.ErrnoException).code ?? 'error';
  app.log.error({ err }, `cannot listen on HOST=${config.host} PORT=${config.port} (${code})`);
  console.error(`ops-overview: cannot listen on HOST=${config.host} PORT=${config.port}: ${redactText(code, 100)}`);
  process.exit(1);
}
