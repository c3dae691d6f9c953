/**
 * The simulator's scenario switches: each one drives the platform into one
 * alertable condition on demand, and clearing it brings the platform back.
 * This file names them, types their options, describes them and parses them
 * from the command line (`--scenario node-offline:node=DB-CORE`).
 */
import { BACKUP_RESOURCE_TYPES, CORE_NODE_NAMES, QUEUE_NAMES, type BackupResourceType, type CoreNodeName, type ProvisioningQueue } from './platform.js';

/** Options of each scenario (all optional: each has a sensible target). */
export interface ScenarioOptions {
  /** A core node goes OFFLINE and stops reporting metrics. */
  'node-offline': { node?: CoreNodeName };
  /** A core node stays ONLINE but its metrics stop arriving (lastMetricsAt backdated by `ageSeconds`). */
  'node-metrics-stale': { node?: CoreNodeName; ageSeconds?: number };
  /** A core node's disk fills up to `percent`. */
  'node-disk-full': { node?: CoreNodeName; percent?: number };
  /** Every worker of a queue stops: no workers connected, jobs pile up waiting (and PENDING). */
  'workers-down': { queue?: ProvisioningQueue };
  /** A queue's workers stay connected but stop finishing jobs: each job they take hangs, new jobs wait. */
  'stalled-worker': { queue?: ProvisioningQueue };
  /** One job hangs RUNNING (started `ageSeconds` ago) and stays active in BullMQ. */
  'job-stuck': { queue?: ProvisioningQueue; ageSeconds?: number };
  /** `count` jobs of a queue fail at once, and the queue keeps failing most jobs. */
  'failure-burst': { queue?: ProvisioningQueue; count?: number };
  /** Migra Shield blocks an attack: `perSecond` BLOCK events a second. */
  'block-burst': { perSecond?: number };
  /** Guardian opens a CRITICAL finding on a node. */
  'critical-finding': { node?: CoreNodeName };
  /** A system's nightly backup stopped running `hours` ago (its recent backups are gone). */
  'backup-stale': { resourceType?: BackupResourceType; hours?: number };
  /** A system's backups fail (one FAILED now, and each nightly run fails). */
  'backup-failing': { resourceType?: BackupResourceType };
}

/** Name of a scenario switch. */
export type ScenarioName = keyof ScenarioOptions;

/** A scenario with its options filled in. */
export type ResolvedScenario = {
  [N in ScenarioName]: { name: N; options: Required<ScenarioOptions[N]> };
}[ScenarioName];

/** What each scenario does, for `--help`, the admin endpoint and docs. */
export const SCENARIOS: { readonly [N in ScenarioName]: { description: string; defaults: Required<ScenarioOptions[N]> } } = {
  'node-offline': {
    description: 'CoreNode.status = OFFLINE for the node and its metrics stop (lastMetricsAt frozen); clear: ONLINE with a fresh sample',
    defaults: { node: 'DB-CORE' },
  },
  'node-metrics-stale': {
    description: 'the node stays ONLINE but lastMetricsAt is set ageSeconds back and stops advancing; clear: a fresh sample',
    defaults: { node: 'VOIP-CORE', ageSeconds: 900 },
  },
  'node-disk-full': {
    description: 'the node\'s diskPercent jumps to percent (±1) and stays there; clear: back to its usual level',
    defaults: { node: 'MAIL-CORE', percent: 97 },
  },
  'workers-down': {
    description: 'the queue\'s BullMQ workers close (0 workers), new jobs wait in BullMQ and stay PENDING; clear: workers start again and drain it',
    defaults: { queue: 'mail' },
  },
  'stalled-worker': {
    description:
      'the queue\'s BullMQ workers stay connected but every job they take hangs before it runs (active in BullMQ, PENDING in the table): completions stop and new jobs wait; clear: the hung jobs run and the queue drains',
    defaults: { queue: 'dns' },
  },
  'job-stuck': {
    description: 'a job RUNNING since ageSeconds ago (ProvisioningJob) held active by a BullMQ worker; clear: it completes',
    defaults: { queue: 'cloudpod', ageSeconds: 1800 },
  },
  'failure-burst': {
    description: 'count jobs of the queue fail now (BullMQ failed set and FAILED rows) and 70% of its new jobs fail; clear: usual failure rate',
    defaults: { queue: 'ssl', count: 25 },
  },
  'block-burst': {
    description: 'perSecond extra Migra Shield BLOCK events a second from a few attacking IPs; clear: usual traffic',
    defaults: { perSecond: 400 },
  },
  'critical-finding': {
    description: 'an OPEN CRITICAL GuardianFinding on the node; clear: RESOLVED with resolvedAt',
    defaults: { node: 'SRV1-WEB' },
  },
  'backup-stale': {
    description: 'the resource type\'s backups of the last hours are removed and its nightly run stops; clear: a COMPLETED backup now and nightly runs again',
    defaults: { resourceType: 'DB_CORE', hours: 50 },
  },
  'backup-failing': {
    description: 'a FAILED backup of the resource type now, and its nightly runs fail; clear: a COMPLETED backup now',
    defaults: { resourceType: 'MPANEL_CORE' },
  },
};

/** Every scenario name. */
export const SCENARIO_NAMES = Object.keys(SCENARIOS) as ScenarioName[];

/** Whether `name` is a scenario name. */
export function isScenarioName(name: string): name is ScenarioName {
  return Object.hasOwn(SCENARIOS, name);
}

function positive(name: string, key: string, value: unknown): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`scenario ${name}: ${key} must be a positive number, got ${JSON.stringify(value)}`);
  return n;
}

function oneOf<T extends string>(name: string, key: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new Error(`scenario ${name}: ${key} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

/**
 * Validates a scenario's options (from code, JSON or the command line) and
 * fills in the defaults. Throws on an unknown scenario, an unknown option or
 * an invalid value.
 */
export function resolveScenario(name: string, options: Record<string, unknown> = {}): ResolvedScenario {
  if (!isScenarioName(name)) throw new Error(`unknown scenario "${name}"; known: ${SCENARIO_NAMES.join(', ')}`);
  const defaults = SCENARIOS[name].defaults as Record<string, unknown>;
  const out: Record<string, unknown> = { ...defaults };
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined) continue;
    if (!Object.hasOwn(defaults, key)) {
      throw new Error(`scenario ${name}: unknown option "${key}"; options: ${Object.keys(defaults).join(', ') || 'none'}`);
    }
    switch (key) {
      case 'node':
        out[key] = oneOf(name, key, value, CORE_NODE_NAMES);
        break;
      case 'queue':
        out[key] = oneOf(name, key, value, QUEUE_NAMES);
        break;
      case 'resourceType':
        out[key] = oneOf(name, key, value, BACKUP_RESOURCE_TYPES);
        break;
      case 'percent': {
        const p = positive(name, key, value);
        if (p > 100) throw new Error(`scenario ${name}: percent must be at most 100, got ${p}`);
        out[key] = p;
        break;
      }
      case 'count':
      case 'perSecond':
        out[key] = Math.round(positive(name, key, value));
        break;
      default:
        out[key] = positive(name, key, value);
    }
  }
  return { name, options: out } as ResolvedScenario;
}

/**
 * Parses a command-line scenario spec: `name` or `name:key=value,key=value`
 * (e.g. `node-offline:node=DB-CORE`, `failure-burst:queue=dns,count=40`).
 */
export function parseScenarioSpec(spec: string): ResolvedScenario {
  const colon = spec.indexOf(':');
  const name = (colon === -1 ? spec : spec.slice(0, colon)).trim();
  const options: Record<string, unknown> = {};
  if (colon !== -1) {
    for (const pair of spec.slice(colon + 1).split(',')) {
      if (!pair.trim()) continue;
      const eq = pair.indexOf('=');
      if (eq === -1) throw new Error(`scenario spec "${spec}": expected key=value, got "${pair}"`);
      options[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
    }
  }
  return resolveScenario(name, options);
}

/** The key an active scenario is stored under: one instance per scenario and target. */
export function scenarioKey(s: ResolvedScenario): string {
  const o = s.options as Record<string, unknown>;
  const target = o.node ?? o.queue ?? o.resourceType ?? '';
  return target ? `${s.name}:${String(target)}` : s.name;
}

/** One line per scenario, for `--help`. */
export function scenarioHelp(): string {
  return SCENARIO_NAMES.map((n) => {
    const d = SCENARIOS[n];
    const opts = Object.entries(d.defaults).map(([k, v]) => `${k}=${String(v)}`).join(',');
    return `  ${n}${opts ? `:${opts}` : ''}\n      ${d.description}`;
  }).join('\n');
}
