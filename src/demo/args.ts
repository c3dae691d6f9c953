/**
 * Command-line flags of the demo and the simulator (`npm run demo -- --scenario
 * node-offline`, `simulator-cli.ts run --scenario failure-burst:queue=dns`).
 */
import { parseArgs } from 'node:util';
import { parseScenarioSpec, scenarioHelp, type ResolvedScenario } from './scenarios.js';

/** Default port of the admin endpoint (loopback only). */
export const DEFAULT_ADMIN_PORT = 9472;

/** Parsed demo flags. */
export interface DemoArgs {
  /** Scenarios to switch on right after start. */
  scenarios: ResolvedScenario[];
  /** Seed the platform's history when the database is empty. Default true (`--no-seed` turns it off). */
  seed: boolean;
  /** Seed of the random stream; absent for a time-based one. */
  randomSeed?: number;
  /** Port of the loopback admin endpoint; null with `--no-admin`. Default {@link DEFAULT_ADMIN_PORT}. */
  adminPort: number | null;
  /** Redis URL given on the command line (overrides REDIS_URL); `--no-redis` gives null. */
  redisUrl?: string | null;
  /** Whether `--help` was asked for. */
  help: boolean;
  /** Positional arguments (a sub-command and its operands). */
  positionals: string[];
}

/** The flags' help text. */
export function demoArgsHelp(): string {
  return [
    'Flags:',
    '  --scenario SPEC      switch a scenario on at start (repeatable); SPEC is name[:key=value,...]',
    '  --no-seed            do not seed history into an empty database',
    '  --random-seed N      seed of the random stream (same seed, same platform)',
    `  --admin-port N       port of the loopback admin endpoint (default ${DEFAULT_ADMIN_PORT})`,
    '  --no-admin           no admin endpoint',
    '  --redis-url URL      Redis for BullMQ (default: REDIS_URL)',
    '  --no-redis           run without BullMQ (jobs go to ProvisioningJob only)',
    '',
    'Scenarios (name:defaults):',
    scenarioHelp(),
  ].join('\n');
}

/** Parses demo flags; throws with a clear message on an unknown flag or an invalid scenario. */
export function parseDemoArgs(argv: readonly string[]): DemoArgs {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      scenario: { type: 'string', multiple: true },
      seed: { type: 'boolean' },
      'no-seed': { type: 'boolean' },
      'random-seed': { type: 'string' },
      'admin-port': { type: 'string' },
      'no-admin': { type: 'boolean' },
      'redis-url': { type: 'string' },
      'no-redis': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  let adminPort: number | null = DEFAULT_ADMIN_PORT;
  if (values['admin-port'] !== undefined) {
    adminPort = Number(values['admin-port']);
    if (!Number.isInteger(adminPort) || adminPort < 0 || adminPort > 65535) throw new Error(`--admin-port must be a port number, got ${values['admin-port']}`);
  }
  if (values['no-admin']) adminPort = null;
  let randomSeed: number | undefined;
  if (values['random-seed'] !== undefined) {
    randomSeed = Number(values['random-seed']);
    if (!Number.isInteger(randomSeed)) throw new Error(`--random-seed must be an integer, got ${values['random-seed']}`);
  }
  const args: DemoArgs = {
    scenarios: (values.scenario ?? []).map(parseScenarioSpec),
    seed: !values['no-seed'],
    adminPort,
    help: values.help ?? false,
    positionals,
  };
  if (randomSeed !== undefined) args.randomSeed = randomSeed;
  if (values['no-redis']) args.redisUrl = null;
  else if (values['redis-url'] !== undefined) args.redisUrl = values['redis-url'];
  return args;
}
