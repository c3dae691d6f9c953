/**
 * Static checks of the compose demo stack (no Docker engine runs here):
 * docker-compose.yml, the Dockerfile, the env file examples, and that the
 * stack agrees with the monitoring bundle's files it mounts.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { demoAlertmanagerConfig, DEMO_ALERTMANAGER_CONFIG, SOURCE_ALERTMANAGER_CONFIG } from '../monitoring/alertmanager-demo.js';
import { assertDemoDatabase } from '../src/demo/demo-db.js';

const ROOT = path.join(import.meta.dirname, '..');
const rel = (p: string) => path.join(ROOT, p);

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  ports?: string[];
  volumes?: string[];
  env_file?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }> | string[];
  healthcheck?: { test?: string[]; disable?: boolean };
  restart?: string;
}

const compose = YAML.parse(readFileSync(rel('docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
};
const services = compose.services;

/** Environment variables of an env file, as compose reads them (KEY=VALUE, quotes stripped, comments skipped). */
function readEnvFile(file: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    let value = line.slice(eq + 1);
    if (/^'.*'$/.test(value) || /^".*"$/.test(value)) value = value.slice(1, -1);
    env[key] = value;
  }
  return env;
}

/** A service's environment: its env files' examples, then `environment:`. */
function serviceEnv(name: string): Record<string, string> {
  const s = services[name]!;
  const env: Record<string, string> = {};
  for (const f of s.env_file ?? []) Object.assign(env, readEnvFile(rel(`${f}.example`)));
  return { ...env, ...(s.environment ?? {}) };
}

function gitIgnored(file: string): boolean {
  return spawnSync('git', ['check-ignore', '-q', file], { cwd: ROOT }).status === 0;
}

/** `name:version@sha256:<64 hex>` with a real version number in the tag. */
const PINNED = /^[a-z0-9./-]+:v?\d+\.\d+(\.\d+)?[\w.-]*@sha256:[0-9a-f]{64}$/;

const LONG_RUNNING = ['postgres', 'redis', 'simulator', 'exporter', 'prometheus', 'alertmanager', 'webhook-logger', 'grafana'];
const PUBLISHED = { grafana: '3000', prometheus: '9090', alertmanager: '9093', exporter: '9471' } as const;

describe('docker-compose.yml', () => {
  it('has the stack\'s services and nothing else', () => {
    expect(Object.keys(services).sort()).toEqual([...LONG_RUNNING, 'setup'].sort());
  });

  it('pins every image to a version and a digest, the Dockerfile\'s bases too', () => {
    for (const [name, s] of Object.entries(services)) {
      expect(s.image, name).toBeDefined();
      if (s.build) expect(s.image, name).toBe(name === 'exporter' ? 'ops-overview:local' : 'ops-overview-simulator:local');
      else expect(s.image, name).toMatch(PINNED);
    }
    const lines = readFileSync(rel('Dockerfile'), 'utf8').split('\n').filter((l) => /^FROM\s/i.test(l));
    const stages = lines.map((l) => /\sAS\s+(\S+)/i.exec(l)?.[1]).filter(Boolean);
    // Bases that are not one of the file's own stages.
    const froms = lines.map((l) => l.split(/\s+/)[1]!).filter((f) => !stages.includes(f));
    expect(froms.length).toBeGreaterThan(0);
    for (const f of froms) expect(f).toMatch(PINNED);
    expect(froms.every((f) => f.startsWith('node:20.'))).toBe(true);
  });

  it('publishes only Grafana, Prometheus, Alertmanager and the exporter, on 127.0.0.1 only', () => {
    const published = Object.entries(services).filter(([, s]) => s.ports?.length).map(([n]) => n).sort();
    expect(published).toEqual(Object.keys(PUBLISHED).sort());
    for (const [name, port] of Object.entries(PUBLISHED)) {
      expect(services[name]!.ports).toEqual([`127.0.0.1:${port}:${port}`]);
    }
  });

  it('mounts only host files and folders that exist, and declares its named volumes', () => {
    const named = new Set(Object.keys(compose.volumes ?? {}));
    for (const [name, s] of Object.entries(services)) {
      for (const v of s.volumes ?? []) {
        const [source] = v.split(':');
        if (source!.startsWith('.') || source!.startsWith('/')) {
          expect(existsSync(rel(source!)), `${name}: ${source} is missing`).toBe(true);
        } else {
          expect(named.has(source!), `${name}: volume ${source} is not declared`).toBe(true);
        }
      }
    }
    expect(services.grafana!.volumes).toContain('./grafana/provisioning:/etc/grafana/provisioning:ro');
    expect(services.prometheus!.volumes).toEqual(
      expect.arrayContaining(['./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro', './prometheus/rules:/etc/prometheus/rules:ro']),
    );
  });

  it('gives every long-running service a healthcheck, and starts services in order on conditions', () => {
    for (const name of LONG_RUNNING) {
      const hc = services[name]!.healthcheck;
      expect(hc?.test?.length, `${name} has no healthcheck`).toBeGreaterThan(1);
      expect(hc?.disable).toBeUndefined();
      expect(services[name]!.restart).toBe('unless-stopped');
    }
    expect(services.setup!.restart).toBe('no');
    for (const [name, s] of Object.entries(services)) {
      if (!s.depends_on) continue;
      expect(Array.isArray(s.depends_on), `${name}: depends_on without conditions`).toBe(false);
      for (const [dep, { condition }] of Object.entries(s.depends_on as Record<string, { condition: string }>)) {
        expect(services[dep], `${name} depends on unknown ${dep}`).toBeDefined();
        expect(['service_healthy', 'service_started', 'service_completed_successfully']).toContain(condition);
        if (dep === 'setup') expect(condition).toBe('service_completed_successfully');
      }
    }
    expect(services.exporter!.depends_on).toMatchObject({ setup: { condition: 'service_completed_successfully' }, redis: { condition: 'service_healthy' } });
    expect(services.simulator!.depends_on).toMatchObject({ setup: { condition: 'service_completed_successfully' }, redis: { condition: 'service_healthy' } });
    expect(services.setup!.depends_on).toMatchObject({ postgres: { condition: 'service_healthy' } });
  });

  it('reads secrets from git-ignored env files that have a committed example', () => {
    const files = Object.values(services).flatMap((s) => s.env_file ?? []);
    expect(new Set(files)).toEqual(new Set(['docker/postgres.env', 'docker/simulator.env', 'docker/exporter.env', 'docker/grafana.env']));
    for (const f of new Set(files)) {
      expect(existsSync(rel(`${f}.example`)), `${f}.example`).toBe(true);
      expect(gitIgnored(f), `${f} must be git-ignored`).toBe(true);
      expect(gitIgnored(`${f}.example`), `${f}.example must be committed`).toBe(false);
    }
    // No secret written inline.
    for (const [name, s] of Object.entries(services)) {
      for (const key of Object.keys(s.environment ?? {})) {
        expect(key, `${name}: ${key} belongs in an env file`).not.toMatch(/PASSWORD|SECRET|TOKEN|DATABASE_URL/);
      }
    }
  });

  it('wires the passwords and the demo database consistently across the env file examples', () => {
    const pgEnv = readEnvFile(rel('docker/postgres.env.example'));
    const sim = readEnvFile(rel('docker/simulator.env.example'));
    const exp = readEnvFile(rel('docker/exporter.env.example'));
    const owner = new URL(sim.DATABASE_URL!);
    expect(() => assertDemoDatabase(sim.DATABASE_URL!)).not.toThrow();
    expect([owner.hostname, owner.port, owner.username, decodeURIComponent(owner.password), owner.pathname]).toEqual([
      'postgres', '5432', pgEnv.POSTGRES_USER, pgEnv.POSTGRES_PASSWORD, `/${pgEnv.POSTGRES_DB}`,
    ]);
    const reader = new URL(exp.DATABASE_URL!);
    expect([reader.hostname, reader.username, decodeURIComponent(reader.password), reader.pathname]).toEqual([
      'postgres', 'ops_overview_reader', sim.OPS_READER_PASSWORD, `/${pgEnv.POSTGRES_DB}`,
    ]);
    expect(serviceEnv('simulator').REDIS_URL).toBe('redis://redis:6379');
    // The exporter reads the Redis and the BullMQ prefix the simulator writes.
    expect(serviceEnv('exporter').REDIS_URL).toBe(serviceEnv('simulator').REDIS_URL);
    expect(serviceEnv('exporter').OPS_QUEUE_PREFIXES!.split(',')).toContain(serviceEnv('simulator').OPS_DEMO_QUEUE_PREFIX);
  });

  it('runs commands and scripts that exist in the repository', () => {
    expect(services.setup!.command).toEqual(['node', '--import', 'tsx', 'src/demo/simulator-cli.ts', 'setup']);
    expect(services.simulator!.command!.slice(0, 5)).toEqual(['node', '--import', 'tsx', 'src/demo/simulator-cli.ts', 'run']);
    expect(existsSync(rel('src/demo/simulator-cli.ts'))).toBe(true);
    expect(services['webhook-logger']!.volumes).toContain('./docker/webhook-logger.mjs:/srv/webhook-logger.mjs:ro');
    expect(services['webhook-logger']!.command).toEqual(['node', '/srv/webhook-logger.mjs']);
  });
});

describe('the exporter service', () => {
  const env = serviceEnv('exporter');

  it('is built from the repository, listens on 9471 and is checked on /healthz', () => {
    expect(services.exporter!.build).toEqual({ context: '.', dockerfile: 'Dockerfile', target: 'exporter' });
    for (const name of ['setup', 'simulator']) {
      expect(services[name]!.build, name).toEqual({ context: '.', dockerfile: 'Dockerfile', target: 'simulator' });
    }
    expect(env.PORT).toBe('9471');
    expect(env.HOST).toBe('0.0.0.0');
    expect(services.exporter!.healthcheck!.test!.join(' ')).toContain('http://127.0.0.1:9471/healthz');
  });

  it('sets only variables the exporter reads, and ones its loadConfig accepts', async () => {
    const configFile = rel('src/config.ts');
    const documented = [
      'DATABASE_URL', 'REDIS_URL', 'PORT', 'HOST', 'LOG_LEVEL', 'OPS_API_TOKENS', 'OPS_API_TOKENS_FILE', 'OPS_JWT_SECRET',
      'OPS_JWT_SECRET_FILE', 'OPS_JWT_PUBLIC_KEY', 'OPS_JWT_PUBLIC_KEY_FILE', 'OPS_API_AUTH_DISABLED', 'OPS_EXPECTED_NODES',
      'OPS_QUEUE_PREFIXES', 'OPS_STUCK_THRESHOLD_SECONDS', 'OPS_COLLECT_INTERVAL_SECONDS', 'OPS_COLLECT_TIMEOUT_SECONDS',
    ];
    let known: readonly string[] = documented;
    if (existsSync(configFile)) {
      // Loaded by path so this test compiles before the exporter's config module exists.
      const mod = (await import(pathToFileURL(configFile).href)) as { loadConfig?: (e: Record<string, string>) => unknown; CONFIG_VARIABLES?: readonly string[] };
      if (mod.CONFIG_VARIABLES) known = mod.CONFIG_VARIABLES;
      if (mod.loadConfig) {
        const config = mod.loadConfig(env) as { port?: number };
        if (config.port !== undefined) expect(config.port).toBe(9471);
      }
    }
    for (const key of Object.keys(env)) expect(known, `${key} is not a variable the exporter reads`).toContain(key);
    expect(env.DATABASE_URL).toMatch(/^postgresql:\/\//);
    expect(env.OPS_EXPECTED_NODES!.split(',')).toEqual(['SRV1-WEB', 'MAIL-CORE', 'DNS-CORE', 'CLOUD-CORE', 'MIGRAGUARD-QUANTUM', 'DB-CORE', 'MPANEL-CORE', 'VOIP-CORE']);
  });

  it('has a Dockerfile whose default image is the exporter, with only production modules', () => {
    const dockerfile = readFileSync(rel('Dockerfile'), 'utf8');
    const stages = [...dockerfile.matchAll(/^FROM\s+\S+\s+AS\s+(\S+)/gim)].map((m) => m[1]);
    expect(stages.at(-1)).toBe('exporter');
    expect(stages).toContain('simulator');
    const exporter = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    // Its modules come from the pruned stage; no TypeScript sources, no tsx.
    expect(exporter).toContain('COPY --from=exporter-modules /app/node_modules ./node_modules');
    expect(exporter).not.toMatch(/COPY src\b|tsx/);
    expect(dockerfile).toMatch(/npm prune --omit=dev --omit=optional/);
    const pkg = JSON.parse(readFileSync(rel('package.json'), 'utf8')) as { dependencies: Record<string, string> };
    for (const devOnly of ['@electric-sql/pglite', 'pglite-prisma-adapter', 'tsx', 'prisma', '@prisma/client', '@prisma/adapter-pg']) expect(pkg.dependencies, devOnly).not.toHaveProperty(devOnly);
  });

  it('has a Dockerfile that installs with npm ci, builds, runs as a non-root user and starts the compiled exporter', () => {
    const dockerfile = readFileSync(rel('Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^RUN npm ci\b/m);
    const users = [...dockerfile.matchAll(/^USER\s+(\S+)/gm)].map((m) => m[1]);
    expect(users.at(-1)).toBe('node');
    expect(dockerfile).toMatch(/npm run build/);
    // What `npm start` runs after its build step.
    const start = (JSON.parse(readFileSync(rel('package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start;
    expect(dockerfile).toContain(`CMD ${JSON.stringify(start!.split(' '))}`.replace(/","/g, '", "'));
    expect(dockerfile).toMatch(/^EXPOSE 9471$/m);
    const ignore = readFileSync(rel('.dockerignore'), 'utf8').split('\n');
    for (const entry of ['node_modules', '.git', '*.env', '.demo-data', 'src/generated', 'dist']) expect(ignore).toContain(entry);
  });
});

describe('the stack and the monitoring bundle', () => {
  const promFile = rel('prometheus/prometheus.yml');

  it('scrapes the exporter where compose runs it, and alerts to the compose Alertmanager', () => {
    if (!existsSync(promFile)) throw new Error('prometheus/prometheus.yml is missing (the monitoring bundle writes it)');
    const prom = YAML.parse(readFileSync(promFile, 'utf8')) as {
      scrape_configs: Array<{ job_name: string; metrics_path?: string; static_configs: Array<{ targets: string[] }> }>;
      alerting: { alertmanagers: Array<{ static_configs: Array<{ targets: string[] }> }> };
      rule_files?: string[];
    };
    const targets = prom.scrape_configs.flatMap((c) => c.static_configs.flatMap((s) => s.targets.map((t) => ({ job: c.job_name, target: t, path: c.metrics_path ?? '/metrics' }))));
    const exporter = targets.filter((t) => t.target.startsWith('exporter:'));
    expect(exporter).toEqual([{ job: expect.any(String), target: `exporter:${serviceEnv('exporter').PORT}`, path: '/metrics' }]);
    for (const t of targets) {
      const host = t.target.split(':')[0]!;
      if (host !== 'localhost') expect(services[host], `scrape target ${t.target}`).toBeDefined();
    }
    const am = prom.alerting.alertmanagers.flatMap((a) => a.static_configs.flatMap((s) => s.targets));
    expect(am).toEqual(['alertmanager:9093']);
  });

  it('mounts every rule file prometheus.yml loads', () => {
    const prom = YAML.parse(readFileSync(promFile, 'utf8')) as { rule_files?: string[] };
    for (const f of prom.rule_files ?? []) {
      // prometheus.yml is mounted at /etc/prometheus/, ./prometheus/rules at /etc/prometheus/rules/.
      expect(f).toMatch(/^rules\//);
      expect(existsSync(rel(path.join('prometheus', f))), `prometheus/${f} is missing`).toBe(true);
    }
  });

  it('points Grafana\'s datasources at compose services and its dashboard provider at the mounted dashboards', () => {
    const dsDir = rel('grafana/provisioning/datasources');
    const urls = readdirSync(dsDir).filter((f) => /\.ya?ml$/.test(f)).flatMap((f) =>
      ((YAML.parse(readFileSync(path.join(dsDir, f), 'utf8')) as { datasources: Array<{ url: string }> }).datasources ?? []).map((d) => new URL(d.url)),
    );
    expect(urls.length).toBeGreaterThan(0);
    for (const u of urls) {
      expect(services[u.hostname], `datasource host ${u.hostname}`).toBeDefined();
      expect(services[u.hostname]!.ports?.[0]?.endsWith(`:${u.port}`) ?? true).toBe(true);
    }
    const provDir = rel('grafana/provisioning/dashboards');
    const providers = readdirSync(provDir).filter((f) => /\.ya?ml$/.test(f)).flatMap((f) =>
      (YAML.parse(readFileSync(path.join(provDir, f), 'utf8')) as { providers: Array<{ options: { path: string } }> }).providers,
    );
    expect(providers.length).toBeGreaterThan(0);
    const mounts = (services.grafana!.volumes ?? []).map((v) => v.split(':')).filter(([src]) => src!.startsWith('.'));
    for (const p of providers) {
      const mount = mounts.find(([, target]) => p.options.path === target || p.options.path.startsWith(`${target}/`));
      expect(mount, `no mount serves the dashboard provider path ${p.options.path}`).toBeDefined();
      const hostDir = rel(path.join(mount![0]!, path.relative(mount![1]!, p.options.path)));
      expect(statSync(hostDir).isDirectory()).toBe(true);
      expect(readdirSync(hostDir).filter((f) => f.endsWith('.json')).length, `no dashboards in ${hostDir}`).toBeGreaterThan(0);
    }
  });

  it('pages into the webhook logger with the bundle\'s own routes (demo Alertmanager config in step)', () => {
    const demo = readFileSync(DEMO_ALERTMANAGER_CONFIG, 'utf8');
    expect(demo, 'run `npm run generate`').toBe(demoAlertmanagerConfig(readFileSync(SOURCE_ALERTMANAGER_CONFIG, 'utf8')));
    const doc = YAML.parse(demo) as { receivers: Array<{ name: string; webhook_configs: Array<{ url: string }> }> };
    const pager = doc.receivers.find((r) => r.name === 'ops-pager');
    expect(pager?.webhook_configs[0]?.url).toBe('http://webhook-logger:9099/alerts/ops-pager');
    for (const r of doc.receivers) {
      expect(Object.keys(r).sort()).toEqual(['name', 'webhook_configs']);
      expect(new URL(r.webhook_configs[0]!.url).hostname).toBe('webhook-logger');
    }
    expect(services.alertmanager!.volumes).toContain('./docker/alertmanager/alertmanager.demo.yml:/etc/alertmanager/alertmanager.yml:ro');
  });

  it('has a demo Alertmanager config that amtool accepts (where amtool is installed)', () => {
    const amtool = spawnSync('amtool', ['--version']);
    if (amtool.error) return;
    const out = execFileSync('amtool', ['check-config', DEMO_ALERTMANAGER_CONFIG], { encoding: 'utf8' });
    expect(out).toMatch(/SUCCESS/);
  });
});

describe('docker-compose.ha.yml (several platforms and HA, an overlay of docker-compose.yml)', () => {
  const overlay = YAML.parse(readFileSync(rel('docker-compose.ha.yml'), 'utf8'), { merge: true }) as {
    services: Record<string, Service>;
    volumes?: Record<string, unknown>;
  };
  const target = (v: string) => v.split(':')[1];
  /** The services as `docker compose -f docker-compose.yml -f docker-compose.ha.yml` merges them (the rules these files use). */
  const merged: Record<string, Service> = Object.fromEntries(
    [...new Set([...Object.keys(services), ...Object.keys(overlay.services)])].map((name) => {
      const base = services[name] ?? {};
      const over = overlay.services[name] ?? {};
      const volumes = [...(base.volumes ?? []).filter((v) => !(over.volumes ?? []).some((o) => target(o) === target(v))), ...(over.volumes ?? [])];
      return [
        name,
        {
          ...base,
          ...over,
          volumes,
          ports: [...new Set([...(base.ports ?? []), ...(over.ports ?? [])])],
          environment: { ...(base.environment ?? {}), ...(over.environment ?? {}) },
          depends_on: { ...((base.depends_on ?? {}) as object), ...((over.depends_on ?? {}) as object) } as Service['depends_on'],
        },
      ];
    }),
  );
  const ha = YAML.parse(readFileSync(rel('prometheus/prometheus.ha.yml'), 'utf8')) as {
    alerting: { alertmanagers: { static_configs: { targets: string[] }[] }[] };
    scrape_configs: { job_name: string; static_configs: { targets: string[]; labels?: Record<string, string> }[] }[];
  };
  const envOf = (name: string): Record<string, string> => {
    const s = merged[name]!;
    const env: Record<string, string> = {};
    for (const f of s.env_file ?? []) Object.assign(env, readEnvFile(rel(`${f}.example`)));
    return { ...env, ...(s.environment ?? {}) };
  };
  const platforms = ha.scrape_configs.find((s) => s.job_name === 'ops-overview')!.static_configs;

  it('adds the second exporter replica, the second platform, the second Prometheus and the second Alertmanager, and reconfigures the first two', () => {
    expect(Object.keys(overlay.services).sort()).toEqual(
      ['exporter-2', 'postgres-us-1', 'redis-us-1', 'setup-us-1', 'simulator-us-1', 'exporter-us-1', 'exporter-us-1-2', 'prometheus', 'prometheus-2', 'alertmanager', 'alertmanager-2'].sort(),
    );
  });

  it('runs every exporter prometheus.ha.yml scrapes, two replicas per platform sharing one database and Redis, each platform its own', () => {
    expect(platforms.map((p) => p.labels?.platform)).toEqual(['eu-1', 'us-1']);
    const seen = new Map<string, string>();
    for (const p of platforms) {
      expect(p.targets.length).toBe(2);
      const envs = p.targets.map((t) => {
        const [host, port] = t.split(':');
        const s = merged[host!];
        expect(s, `scrape target ${t}`).toBeDefined();
        expect(envOf(host!).PORT).toBe(port);
        expect(s!.healthcheck!.test!.join(' ')).toContain(`http://127.0.0.1:${port}/healthz`);
        return envOf(host!);
      });
      const [first, second] = envs;
      for (const key of ['DATABASE_URL', 'REDIS_URL', 'OPS_QUEUE_PREFIXES', 'OPS_EXPECTED_NODES']) expect(second![key], key).toBe(first![key]);
      const where = `${new URL(first!.DATABASE_URL!).hostname} ${first!.REDIS_URL}`;
      expect(seen.has(where), `${p.labels?.platform} shares ${where} with ${seen.get(where)}`).toBe(false);
      seen.set(where, p.labels!.platform!);
      // The database and Redis the replicas read are services of the stack, written by that platform's simulator.
      expect(merged[new URL(first!.DATABASE_URL!).hostname]).toBeDefined();
      expect(merged[new URL(first!.REDIS_URL!).hostname]).toBeDefined();
    }
    const sim = envOf('simulator-us-1');
    expect(() => assertDemoDatabase(sim.DATABASE_URL!)).not.toThrow();
    expect(new URL(sim.DATABASE_URL!).hostname).toBe('postgres-us-1');
    expect(sim.REDIS_URL).toBe(envOf('exporter-us-1').REDIS_URL);
  });

  it('runs the Prometheus pair on prometheus.ha.yml and the rules, each with its own replica label', () => {
    const pair = ['prometheus', 'prometheus-2'];
    const replicas = pair.map((name) => {
      const s = merged[name]!;
      expect(s.volumes).toEqual(expect.arrayContaining(['./prometheus/prometheus.ha.yml:/etc/prometheus/prometheus.yml:ro', './prometheus/rules:/etc/prometheus/rules:ro']));
      expect(s.command).toContain('--config.file=/etc/prometheus/prometheus.yml');
      expect(s.command).toContain('--enable-feature=expand-external-labels');
      return s.environment!.PROMETHEUS_REPLICA;
    });
    expect(new Set(replicas).size).toBe(2);
    expect(readFileSync(rel('prometheus/prometheus.ha.yml'), 'utf8')).toContain('${PROMETHEUS_REPLICA}');
  });

  it('clusters every Alertmanager Prometheus sends to with all the others', () => {
    const targets = ha.alerting.alertmanagers.flatMap((a) => a.static_configs.flatMap((s) => s.targets));
    const hosts = targets.map((t) => t.split(':')[0]!);
    expect(hosts.sort()).toEqual(['alertmanager', 'alertmanager-2']);
    for (const host of hosts) {
      const command = merged[host]!.command!;
      expect(command).toContain('--cluster.listen-address=0.0.0.0:9094');
      expect(command.filter((c) => c.startsWith('--cluster.peer=')).sort()).toEqual(hosts.filter((h) => h !== host).map((h) => `--cluster.peer=${h}:9094`));
      expect(merged[host]!.volumes).toContain('./docker/alertmanager/alertmanager.demo.yml:/etc/alertmanager/alertmanager.yml:ro');
    }
  });

  it('pins its images, publishes on loopback only without clashes, mounts what exists, checks health, keeps secrets in ignored env files', () => {
    const named = new Set([...Object.keys(compose.volumes ?? {}), ...Object.keys(overlay.volumes ?? {})]);
    const hostPorts: string[] = [];
    for (const [name, s] of Object.entries(merged)) {
      if (s.image !== 'ops-overview:local' && s.image !== 'ops-overview-simulator:local') expect(s.image, name).toMatch(PINNED);
      for (const p of s.ports ?? []) {
        expect(p, name).toMatch(/^127\.0\.0\.1:\d+:\d+$/);
        hostPorts.push(p.split(':')[1]!);
      }
      for (const v of s.volumes ?? []) {
        const [source] = v.split(':');
        if (source!.startsWith('.')) expect(existsSync(rel(source!)), `${name}: ${source}`).toBe(true);
        else expect(named.has(source!), `${name}: volume ${source}`).toBe(true);
      }
      if (s.restart === 'unless-stopped') expect(s.healthcheck?.test?.length, `${name} has no healthcheck`).toBeGreaterThan(1);
      for (const [dep] of Object.entries((s.depends_on ?? {}) as Record<string, unknown>)) expect(merged[dep], `${name} depends on unknown ${dep}`).toBeDefined();
      for (const key of Object.keys(overlay.services[name]?.environment ?? {})) expect(key).not.toMatch(/PASSWORD|SECRET|TOKEN|DATABASE_URL/);
    }
    expect(new Set(hostPorts).size).toBe(hostPorts.length);
    for (const f of new Set(Object.values(overlay.services).flatMap((s) => s.env_file ?? []))) {
      expect(existsSync(rel(`${f}.example`)), `${f}.example`).toBe(true);
      expect(gitIgnored(f), `${f} must be git-ignored`).toBe(true);
      expect(gitIgnored(`${f}.example`), `${f}.example must be committed`).toBe(false);
    }
  });
});
