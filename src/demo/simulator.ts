/**
 * The platform simulator: writes a realistic mPanel platform into the
 * contract's tables (platform-schema.md) and real BullMQ queues, keeps it
 * moving (node metrics drifting, provisioning jobs flowing through workers,
 * WAF events, Guardian findings, nightly backups) and drives it into each
 * alertable condition on demand through scenario switches (scenarios.ts).
 *
 * Demo and tests only: it refuses a database that is not marked as a demo one
 * (see assertDemoDatabase in demo-db.ts).
 */
import type { DemoDb } from './demo-db.js';
import { JobRunner, type JobSpec, type RedisState } from './jobs.js';
import {
  ATTACK_PATHS,
  BACKUP_SYSTEMS,
  CORE_NODES,
  CRITICAL_FINDING_TITLES,
  GUARDIAN_CHECKS,
  QUEUES,
  SHIELD_PATHS,
  SHIELD_POLICIES,
  TENANT_COUNT,
  coreNodeId,
  fillTemplate,
  tenantId,
  type BackupResourceType,
  type CoreNodeName,
  type ProvisioningQueue,
} from './platform.js';
import { Rng } from './random.js';
import { resolveScenario, scenarioKey, type ResolvedScenario, type ScenarioName, type ScenarioOptions } from './scenarios.js';
import { NORMAL_DECISIONS, backupSlot, diurnal, insertColumns, randomIp, seed, type SeedOptions, type SeedResult } from './seed.js';
import { SessionLock } from './session-lock.js';
import { OutageLog, TimerSet } from './timers.js';

/** Where the simulator's log lines go. */
export interface SimulatorLogger {
  info(line: string): void;
  warn(line: string): void;
}

/** How often each part of the platform moves, in milliseconds. */
export interface SimulatorIntervals {
  /** Node metrics samples (CoreNode.metrics, lastMetricsAt). Default 5 000. */
  metricsMs: number;
  /** WAF event batches (one INSERT each). Default 1 000. */
  shieldMs: number;
  /** New provisioning jobs. Default 2 000. */
  jobsMs: number;
  /** Guardian findings opening, being acknowledged and resolved. Default 60 000. */
  findingsMs: number;
  /** Nightly backup scheduler (starts due backups, finishes running ones). Default 30 000. */
  backupsMs: number;
  /** Deletes WAF events older than the retention (see `shieldRetentionHours`). Default 600 000. */
  pruneMs: number;
}

/** Options of {@link createSimulator}. */
export interface SimulatorOptions {
  /** The (migrated, demo-marked) database to write. */
  db: DemoDb;
  /** Redis for BullMQ; null or absent runs the database side only. */
  redisUrl?: string | null;
  /** BullMQ key prefix. Default `bull`. */
  queuePrefix?: string;
  /** Seed of the random stream. Default: time-based. */
  randomSeed?: number;
  logger?: SimulatorLogger;
  intervals?: Partial<SimulatorIntervals>;
  /** Ordinary WAF traffic, events a second, [night, peak]. Default [20, 50]. */
  shieldEventsPerSecond?: readonly [number, number];
  /** Occasional small BLOCK bursts (a scanner for a few seconds) on their own, on average every this many seconds; 0 turns them off. Default 600. */
  naturalBlockBurstEverySeconds?: number;
  /** WAF events older than this many hours are deleted, as the platform's retention does; 0 keeps them all. Default 48. */
  shieldRetentionHours?: number;
  /** Multiplies the job arrival rate of every queue. Default 1 (about 37 jobs a minute at peak). */
  jobRateScale?: number;
  /** Multiplies job run times and retry delays (tests use 0.01). Default 1. */
  jobDurationScale?: number;
  /** Multiplies backup run times (minutes in reality). Default 1. */
  backupDurationScale?: number;
  /** Jobs each BullMQ worker runs at once. Default 4. */
  workerConcurrency?: number;
  /** The time source. Default `() => new Date()`. */
  clock?: () => Date;
}

/** What a scenario switch did. */
export interface ScenarioOutcome {
  /** Key the active scenario is stored under (`name:target`). */
  key: string;
  name: ScenarioName;
  options: ResolvedScenario['options'];
  /** Ids of the rows or jobs it created (stuck job, failed jobs, finding, backups). */
  ids: string[];
  /** When it was switched on. */
  since: Date;
}

/** The simulator's state for the admin endpoint and logs. */
export interface SimulatorStatus {
  running: boolean;
  redis: RedisState;
  activeScenarios: ScenarioOutcome[];
  /** Rows written since start, by table. */
  written: { shieldEvents: number; provisioningJobs: number; metricsSamples: number; findings: number; backups: number };
}

interface NodeSample {
  cpu: number;
  ram: number;
  disk: number;
}

interface PendingBackup {
  id: string;
  resourceType: string;
  finishAt: number;
  sizeBytes: number;
}

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));
const round1 = (v: number) => Math.round(v * 10) / 10;

const DEFAULT_INTERVALS: SimulatorIntervals = { metricsMs: 5_000, shieldMs: 1_000, jobsMs: 2_000, findingsMs: 60_000, backupsMs: 30_000, pruneMs: 600_000 };

/** Prefix of the ids of findings the `critical-finding` scenario opens (resolved again at start). */
const SCENARIO_FINDING_PREFIX = 'gf_scn_';

/** The platform simulator. Create it with {@link createSimulator}. */
export class Simulator {
  readonly db: DemoDb;
  private readonly rng: Rng;
  private readonly clock: () => Date;
  private readonly log: SimulatorLogger;
  private readonly intervals: SimulatorIntervals;
  private readonly timers = new TimerSet();
  /** Loop ticks and scenario switches run one at a time, so no tick computed before a switch writes after it. */
  private readonly serial = new SessionLock();
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly jobs: JobRunner;
  private readonly nodes = new Map<CoreNodeName, NodeSample>();
  private readonly active = new Map<string, ScenarioOutcome>();
  /** Grows whenever a backup scenario is switched on or off (see backupsTick). */
  private backupEpoch = 0;
  private readonly pendingBackups = new Map<string, PendingBackup>();
  private naturalBurst: { until: number; perSecond: number; ips: string[]; path: string } | null = null;
  private attackers: string[] = [];
  private running = false;
  private readonly written = { shieldEvents: 0, provisioningJobs: 0, metricsSamples: 0, findings: 0, backups: 0 };

  constructor(private readonly options: SimulatorOptions) {
    this.db = options.db;
    this.rng = new Rng(options.randomSeed ?? Date.now());
    this.clock = options.clock ?? (() => new Date());
    this.log = options.logger ?? { info: (l) => console.log(l), warn: (l) => console.warn(l) };
    this.intervals = { ...DEFAULT_INTERVALS, ...options.intervals };
    this.jobs = new JobRunner({
      db: options.db,
      rng: this.rng,
      clock: this.clock,
      log: (l) => this.log.warn(l),
      redisUrl: options.redisUrl ?? null,
      prefix: options.queuePrefix ?? 'bull',
      durationScale: options.jobDurationScale ?? 1,
      concurrency: options.workerConcurrency ?? 4,
    });
    for (const n of CORE_NODES) this.nodes.set(n.hostname, { cpu: n.cpu, ram: n.ram, disk: n.disk });
  }

  /** Seeds the platform's starting state and history (see seed.ts); safe on an already seeded database. */
  seed(now: Date = this.clock(), options: SeedOptions = {}): Promise<SeedResult> {
    return seed(this.db, now, options);
  }

  /** Whether BullMQ is in use ('connected'), was not configured ('disabled') or did not answer ('unavailable'). */
  get redis(): RedisState {
    return this.jobs.redis;
  }

  /** The BullMQ queue object of a provisioning queue, when BullMQ is in use (tests, admin). */
  bullQueue(name: ProvisioningQueue) {
    return this.jobs.queue(name);
  }

  /**
   * Starts moving the platform: cancels jobs left unfinished by an earlier run,
   * resolves findings an earlier run's scenario left open, connects BullMQ
   * (once; without Redis the database side runs alone) and starts the loops.
   */
  async start(): Promise<void> {
    if (this.running) return;
    const now = this.clock();
    await this.recover(now);
    await this.jobs.start();
    this.running = true;
    this.loop('metrics', this.intervals.metricsMs, (at) => this.metricsTick(at));
    this.loop('shield events', this.intervals.shieldMs, (at, dt) => this.shieldTick(at, dt));
    // New jobs read no scenario state when they are created, so they need not wait for the other loops.
    this.loop('provisioning jobs', this.intervals.jobsMs, (at, dt) => this.jobsTick(at, dt), false);
    this.loop('guardian findings', this.intervals.findingsMs, (at) => this.findingsTick(at));
    this.loop('backups', this.intervals.backupsMs, (at) => this.backupsTick(at));
    if ((this.options.shieldRetentionHours ?? 48) > 0) this.loop('retention', this.intervals.pruneMs, (at) => this.pruneTick(at));
    this.log.info(
      `simulator: running (${this.db.kind}, BullMQ ${this.jobs.redis}); metrics every ${this.intervals.metricsMs} ms, WAF events every ${this.intervals.shieldMs} ms`,
    );
  }

  /**
   * Stops every loop, closes the BullMQ workers and queues and waits for the
   * writes in flight. Scenarios are forgotten without being undone: the next
   * start heals what they left (see {@link Simulator.start}).
   */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.timers.clear();
    await Promise.allSettled([...this.inFlight]);
    await this.jobs.stop();
    this.active.clear();
    this.pendingBackups.clear();
    this.log.info('simulator: stopped');
  }

  /** Whether {@link Simulator.start} has run and {@link Simulator.stop} has not. */
  get isRunning(): boolean {
    return this.running;
  }

  /** The simulator's state. */
  status(): SimulatorStatus {
    return { running: this.running, redis: this.jobs.redis, activeScenarios: this.activeScenarios(), written: { ...this.written } };
  }

  /** The scenarios switched on, oldest first. */
  activeScenarios(): ScenarioOutcome[] {
    return [...this.active.values()];
  }

  /**
   * Switches a scenario on (see scenarios.ts for each one's effect) and
   * returns once its condition is written. Switching on one that is already on
   * for the same target returns the running one.
   */
  async scenario<N extends ScenarioName>(name: N, options: ScenarioOptions[N] = {} as ScenarioOptions[N]): Promise<ScenarioOutcome> {
    if (!this.running) throw new Error('start the simulator before switching scenarios on');
    const s = resolveScenario(name, options as Record<string, unknown>);
    const key = scenarioKey(s);
    const existing = this.active.get(key);
    if (existing) return existing;
    return this.serial.run(async () => {
      const now = this.clock();
      const outcome: ScenarioOutcome = { key, name: s.name, options: s.options, ids: [], since: now };
      this.active.set(key, outcome);
      try {
        outcome.ids = await this.apply(s, now);
      } catch (err) {
        this.active.delete(key);
        throw err;
      }
      this.log.info(`simulator: scenario ${key} on`);
      return outcome;
    });
  }

  /**
   * Switches scenarios off and undoes their condition: every active one of
   * `name`, or only the one whose target (node, queue, resourceType) matches
   * `options`. Returns how many were switched off.
   */
  async clear<N extends ScenarioName>(name: N, options?: ScenarioOptions[N]): Promise<number> {
    const target = options ? scenarioKey(resolveScenario(name, options as Record<string, unknown>)) : null;
    let n = 0;
    for (const [key, outcome] of [...this.active]) {
      if (outcome.name !== name || (target && key !== target)) continue;
      await this.serial.run(() => this.undo(outcome, this.clock()));
      this.active.delete(key);
      this.log.info(`simulator: scenario ${key} off`);
      n++;
    }
    return n;
  }

  /** Switches every scenario off. */
  async clearAll(): Promise<number> {
    let n = 0;
    for (const outcome of [...this.active.values()]) n += await this.clear(outcome.name, outcome.options as never);
    return n;
  }

  /** Runs one round of every loop now (tests, and a first sample right after start). */
  async tick(): Promise<void> {
    const now = this.clock();
    await this.metricsTick(now);
    await this.shieldTick(now, this.intervals.shieldMs);
    await this.jobsTick(now, this.intervals.jobsMs);
    await this.findingsTick(now);
    await this.backupsTick(now);
  }

  /** Creates one job on `queue` now (PENDING row and BullMQ job): tests and demos. */
  async enqueueJob(queue: ProvisioningQueue, outcome?: JobSpec['outcome']): Promise<string> {
    const spec = this.jobs.newJob(queue);
    if (outcome) spec.outcome = outcome;
    await this.jobs.enqueue(spec);
    this.written.provisioningJobs++;
    return spec.id;
  }

  // ---- loops ------------------------------------------------------------

  private loop(name: string, everyMs: number, fn: (now: Date, dtMs: number) => Promise<void>, serial = true): void {
    const outage = new OutageLog(`simulator: ${name}`, (l) => this.log.warn(l));
    let last = this.clock().getTime() - everyMs;
    const run = async () => {
      if (!this.running) return;
      const tick = async () => {
        if (!this.running) return;
        const now = this.clock();
        // A stalled loop does not catch up with a flood.
        const dt = clamp(now.getTime() - last, 0, everyMs * 5);
        last = now.getTime();
        await fn(now, dt);
      };
      const p = (serial ? this.serial.run(tick) : tick()).then(
        () => outage.ok(),
        (err: unknown) => outage.failed(err),
      );
      this.inFlight.add(p);
      await p;
      this.inFlight.delete(p);
      if (this.running) this.timers.later(() => void run(), everyMs);
    };
    this.timers.later(() => void run(), 0);
  }

  private isOn(name: ScenarioName, target?: string): ScenarioOutcome | undefined {
    for (const o of this.active.values()) {
      if (o.name !== name) continue;
      const opts = o.options as Record<string, unknown>;
      if (target === undefined || opts.node === target || opts.queue === target || opts.resourceType === target) return o;
    }
    return undefined;
  }

  // ---- core nodes -------------------------------------------------------

  private async metricsTick(now: Date): Promise<void> {
    const hostnames: CoreNodeName[] = [];
    for (const n of CORE_NODES) {
      if (this.isOn('node-offline', n.hostname) || this.isOn('node-metrics-stale', n.hostname)) continue;
      const s = this.nodes.get(n.hostname)!;
      const load = diurnal(now);
      s.cpu = clamp(s.cpu + 0.25 * (n.cpu * (0.6 + load * 0.6) - s.cpu) + this.rng.gaussian() * 4, 1, 99);
      s.ram = clamp(s.ram + 0.1 * (n.ram - s.ram) + this.rng.gaussian() * 1.2, 5, 98);
      const full = this.isOn('node-disk-full', n.hostname);
      s.disk = full
        ? clamp((full.options as { percent: number }).percent + this.rng.gaussian() * 0.4, 0, 100)
        : clamp(s.disk + 0.05 * (n.disk - s.disk) + this.rng.gaussian() * 0.15, 1, 99);
      hostnames.push(n.hostname);
    }
    await this.writeMetrics(now, hostnames);
  }

  /** Writes the current sample of `hostnames` (status ONLINE, lastMetricsAt = now). */
  private async writeMetrics(now: Date, hostnames: readonly CoreNodeName[]): Promise<void> {
    if (hostnames.length === 0) return;
    const metrics = hostnames.map((h) => {
      const s = this.nodes.get(h)!;
      return JSON.stringify({ cpuPercent: round1(s.cpu), ramPercent: round1(s.ram), diskPercent: round1(s.disk) });
    });
    // The Server Metrics module reports a node that answers as ONLINE.
    await this.db.query(
      `UPDATE "CoreNode" AS n SET "metrics" = v.metrics::jsonb, "status" = 'ONLINE', "lastMetricsAt" = $3::timestamp, "updatedAt" = $3::timestamp
       FROM unnest($1::text[], $2::text[]) AS v(hostname, metrics) WHERE n."hostname" = v.hostname`,
      [hostnames, metrics, now.toISOString()],
    );
    this.written.metricsSamples += hostnames.length;
  }

  // ---- Migra Shield -----------------------------------------------------

  private async shieldTick(now: Date, dtMs: number): Promise<void> {
    const dt = dtMs / 1000;
    const [night, peak] = this.options.shieldEventsPerSecond ?? [20, 50];
    const rate = night + (peak - night) * ((diurnal(now) - 0.6) / 0.4);
    const cols: unknown[][] = Array.from({ length: 6 }, () => []);
    const t = now.getTime();
    const push = (decision: string | null, policyId: string | null, tenant: string, ip: string, path: string) => {
      // Most events are a fraction of a second old; a few arrive seconds late.
      const age = this.rng.chance(0.03) ? this.rng.between(1000, 5000) : this.rng.next() * dtMs;
      cols[0]!.push(new Date(t - age).toISOString());
      cols[1]!.push(decision);
      cols[2]!.push(policyId);
      cols[3]!.push(tenant);
      cols[4]!.push(ip);
      cols[5]!.push(path);
    };
    const policies = SHIELD_POLICIES.filter((p) => p.mode === 'ENFORCE');
    const normal = this.rng.poisson(rate * dt);
    for (let i = 0; i < normal; i++) {
      const decision = this.rng.weighted(NORMAL_DECISIONS);
      push(decision, decision === 'ALLOW' ? null : this.rng.pick(policies).id, tenantId(this.rng.int(1, TENANT_COUNT)), randomIp(this.rng), this.rng.weighted(SHIELD_PATHS));
    }
    const every = this.options.naturalBlockBurstEverySeconds ?? 600;
    if (!this.naturalBurst && every > 0 && this.rng.chance(dt / every)) {
      this.naturalBurst = {
        until: t + this.rng.between(5, 20) * 1000,
        perSecond: this.rng.between(20, 60),
        ips: Array.from({ length: this.rng.int(1, 3) }, () => randomIp(this.rng)),
        path: this.rng.pick(ATTACK_PATHS),
      };
    }
    if (this.naturalBurst) {
      const b = this.naturalBurst;
      const n = this.rng.poisson(b.perSecond * dt);
      const victim = tenantId(this.rng.int(1, TENANT_COUNT));
      for (let i = 0; i < n; i++) push('BLOCK', 'pol_bad_bots', victim, this.rng.pick(b.ips), b.path);
      if (t >= b.until) this.naturalBurst = null;
    }
    const attack = this.isOn('block-burst');
    if (attack) this.pushAttack(push, (attack.options as { perSecond: number }).perSecond * dt);
    if (cols[0]!.length === 0) return;
    this.written.shieldEvents += await insertColumns(
      this.db,
      'ShieldEvent',
      [['timestamp', 'timestamp'], ['decision', 'text'], ['policyId', 'text'], ['tenantId', 'text'], ['ip', 'text'], ['path', 'text']],
      cols,
      20_000,
    );
  }

  private pushAttack(push: (d: string, p: string, tenant: string, ip: string, path: string) => void, count: number): void {
    const n = Math.round(count);
    for (let i = 0; i < n; i++) {
      const path = this.rng.pick(ATTACK_PATHS);
      push('BLOCK', path.includes('wp-login') ? 'pol_wp_login' : 'pol_owasp_core', tenantId(17), this.rng.pick(this.attackers), path);
    }
  }

  /** Deletes WAF events past the retention, a bounded batch at a time (a demo left running for days stays small). */
  private async pruneTick(now: Date): Promise<void> {
    const hours = this.options.shieldRetentionHours ?? 48;
    if (hours <= 0) return;
    const cutoff = new Date(now.getTime() - hours * 3_600_000).toISOString();
    await this.db.query(
      `DELETE FROM "ShieldEvent" WHERE "id" IN (SELECT "id" FROM "ShieldEvent" WHERE "timestamp" < $1::timestamp ORDER BY "id" LIMIT 100000)`,
      [cutoff],
    );
  }

  // ---- provisioning -----------------------------------------------------

  private async jobsTick(now: Date, dtMs: number): Promise<void> {
    const scale = (this.options.jobRateScale ?? 1) * diurnal(now);
    const specs: JobSpec[] = [];
    for (const q of QUEUES) {
      const n = this.rng.poisson((q.perMinute / 60) * (dtMs / 1000) * scale);
      for (let i = 0; i < n; i++) specs.push(this.jobs.newJob(q.name));
    }
    await Promise.all(specs.map((s) => this.jobs.enqueue(s)));
    this.written.provisioningJobs += specs.length;
  }

  // ---- Guardian ---------------------------------------------------------

  private async findingsTick(now: Date): Promise<void> {
    const iso = now.toISOString();
    if (this.rng.chance(0.2)) {
      const check = this.rng.pick(GUARDIAN_CHECKS);
      const tenantNum = this.rng.int(1, TENANT_COUNT);
      const node = this.rng.pick(CORE_NODES).hostname;
      const perNode = check.title.includes('{node}');
      await this.db.query(
        `INSERT INTO "GuardianFinding" ("id", "severity", "status", "title", "nodeId", "tenantId", "createdAt") VALUES ($1, $2, 'OPEN', $3, $4, $5, $6::timestamp)`,
        [
          `gf_${now.getTime().toString(36)}${this.rng.id(5)}`,
          check.severity,
          fillTemplate(check.title, { site: `site_${tenantNum}_1`, domain: `shop-${tenantNum}.example.com`, node, version: '6.3.2' }),
          coreNodeId(perNode ? node : 'SRV1-WEB'),
          perNode ? null : tenantId(tenantNum),
          iso,
        ],
      );
      this.written.findings++;
    }
    // Triage: now and then one is acknowledged, and one is fixed. Critical ones are the scenario's to manage.
    if (this.rng.chance(0.15)) {
      await this.db.query(
        `UPDATE "GuardianFinding" SET "status" = 'ACKNOWLEDGED' WHERE "id" = (
           SELECT "id" FROM "GuardianFinding" WHERE "status" = 'OPEN' AND "severity" IS DISTINCT FROM 'CRITICAL' ORDER BY "createdAt" LIMIT 1)`,
      );
    }
    if (this.rng.chance(0.2)) {
      await this.db.query(
        `UPDATE "GuardianFinding" SET "status" = 'RESOLVED', "resolvedAt" = $1::timestamp WHERE "id" = (
           SELECT "id" FROM "GuardianFinding" WHERE "status" IN ('OPEN', 'ACKNOWLEDGED') AND "severity" IS DISTINCT FROM 'CRITICAL' ORDER BY "createdAt" LIMIT 1)`,
        [iso],
      );
    }
  }

  // ---- backups ----------------------------------------------------------

  private async backupsTick(now: Date): Promise<void> {
    const t = now.getTime();
    // A backup scenario switched on or off while this tick reads would make
    // its view of the last runs stale: it then starts nothing this time.
    const epoch = this.backupEpoch;
    for (const p of [...this.pendingBackups.values()]) {
      if (p.finishAt > t) continue;
      this.pendingBackups.delete(p.id);
      const failing = this.isOn('backup-failing', p.resourceType);
      if (this.isOn('backup-stale', p.resourceType)) continue;
      await this.db.query(
        `UPDATE "Backup" SET "status" = $2, "completedAt" = $3::timestamp, "sizeBytes" = $4::bigint WHERE "id" = $1 AND "status" = 'RUNNING'`,
        [p.id, failing ? 'FAILED' : 'COMPLETED', now.toISOString(), failing ? null : String(p.sizeBytes)],
      );
    }
    const earliest = Math.min(...BACKUP_SYSTEMS.map((s) => this.lastSlot(s, 0, now)));
    const { rows } = await this.db.query<{ resourceType: string; resourceId: string | null; last: string }>(
      `SELECT "resourceType", "resourceId", to_char(max("startedAt"), 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "last"
       FROM "Backup" WHERE "startedAt" >= $1::timestamp GROUP BY 1, 2`,
      [new Date(earliest - 60_000).toISOString()],
    );
    const last = new Map(rows.map((r) => [`${r.resourceType}/${r.resourceId ?? ''}`, Date.parse(r.last)]));
    for (const system of BACKUP_SYSTEMS) {
      if (this.isOn('backup-stale', system.resourceType)) continue;
      for (const [k, rid] of system.resourceIds.entries()) {
        const slot = this.lastSlot(system, k, now);
        if ((last.get(`${system.resourceType}/${rid}`) ?? 0) >= slot - 60_000) continue;
        if (epoch !== this.backupEpoch) return;
        const minutes = this.rng.between(system.durationMinutes[0], system.durationMinutes[1]);
        const id = `bk_${t.toString(36)}${this.rng.id(5)}`;
        await this.db.query(
          `INSERT INTO "Backup" ("id", "resourceType", "resourceId", "status", "startedAt") VALUES ($1, $2, $3, 'RUNNING', $4::timestamp)`,
          [id, system.resourceType, rid, now.toISOString()],
        );
        this.written.backups++;
        this.pendingBackups.set(id, {
          id,
          resourceType: system.resourceType,
          finishAt: t + minutes * 60_000 * (this.options.backupDurationScale ?? 1),
          sizeBytes: Math.round(this.rng.between(system.sizeGiB[0], system.sizeGiB[1]) * 2 ** 30),
        });
      }
    }
  }

  /** The most recent scheduled run of a backup at or before `now` (today's slot, else yesterday's). */
  private lastSlot(system: (typeof BACKUP_SYSTEMS)[number], index: number, now: Date): number {
    const today = backupSlot(system, index, now).getTime();
    return today <= now.getTime() ? today : today - 24 * 3_600_000;
  }

  /** Writes a finished backup of every resource of `type` now; returns their ids. */
  private async backupNow(type: BackupResourceType, status: 'COMPLETED' | 'FAILED', now: Date): Promise<string[]> {
    const system = BACKUP_SYSTEMS.find((s) => s.resourceType === type)!;
    const ids: string[] = [];
    for (const rid of system.resourceIds) {
      const id = `bk_${now.getTime().toString(36)}${this.rng.id(5)}`;
      const minutes = this.rng.between(system.durationMinutes[0], system.durationMinutes[1]);
      await this.db.query(
        `INSERT INTO "Backup" ("id", "resourceType", "resourceId", "status", "startedAt", "completedAt", "sizeBytes") VALUES ($1, $2, $3, $4, $5::timestamp, $6::timestamp, $7::bigint)`,
        [
          id,
          type,
          rid,
          status,
          new Date(now.getTime() - (status === 'FAILED' ? 3 : minutes) * 60_000).toISOString(),
          now.toISOString(),
          status === 'FAILED' ? null : String(Math.round(this.rng.between(system.sizeGiB[0], system.sizeGiB[1]) * 2 ** 30)),
        ],
      );
      ids.push(id);
      this.written.backups++;
    }
    return ids;
  }

  // ---- start-up recovery --------------------------------------------------

  private async recover(now: Date): Promise<void> {
    const iso = now.toISOString();
    const jobs = await this.db.query(
      `UPDATE "ProvisioningJob" SET "status" = 'CANCELLED', "finishedAt" = $1::timestamp, "updatedAt" = $1::timestamp,
         "errorMessage" = 'cancelled: the worker that owned it stopped (simulator restart)'
       WHERE "status" IN ('PENDING', 'RUNNING', 'DELAYED')`,
      [iso],
    );
    await this.db.query(
      `UPDATE "GuardianFinding" SET "status" = 'RESOLVED', "resolvedAt" = $1::timestamp WHERE "id" LIKE $2 AND "status" <> 'RESOLVED'`,
      [iso, `${SCENARIO_FINDING_PREFIX}%`],
    );
    // Backups an earlier run left RUNNING finish normally.
    const { rows } = await this.db.query<{ id: string; resourceType: string }>(`SELECT "id", "resourceType" FROM "Backup" WHERE "status" = 'RUNNING'`);
    for (const r of rows) {
      this.pendingBackups.set(r.id, { id: r.id, resourceType: r.resourceType, finishAt: now.getTime() + 60_000 * (this.options.backupDurationScale ?? 1), sizeBytes: 5 * 2 ** 30 });
    }
    if (jobs.rowCount > 0) this.log.info(`simulator: cancelled ${jobs.rowCount} provisioning jobs left unfinished by an earlier run`);
  }

  // ---- scenarios ----------------------------------------------------------

  private async apply(s: ResolvedScenario, now: Date): Promise<string[]> {
    if (!s.name.startsWith('backup-')) return this.applyScenario(s, now);
    // Before and after: a backups tick that read the runs in between starts nothing.
    this.backupEpoch += 1;
    try {
      return await this.applyScenario(s, now);
    } finally {
      this.backupEpoch += 1;
    }
  }

  private async applyScenario(s: ResolvedScenario, now: Date): Promise<string[]> {
    const iso = now.toISOString();
    switch (s.name) {
      case 'node-offline':
        await this.db.query(`UPDATE "CoreNode" SET "status" = 'OFFLINE', "updatedAt" = $2::timestamp WHERE "hostname" = $1`, [s.options.node, iso]);
        return [coreNodeId(s.options.node)];
      case 'node-metrics-stale': {
        const at = new Date(now.getTime() - s.options.ageSeconds * 1000).toISOString();
        await this.db.query(`UPDATE "CoreNode" SET "lastMetricsAt" = $2::timestamp, "updatedAt" = $3::timestamp WHERE "hostname" = $1`, [s.options.node, at, iso]);
        return [coreNodeId(s.options.node)];
      }
      case 'node-disk-full':
        this.nodes.get(s.options.node)!.disk = s.options.percent;
        await this.writeMetrics(now, [s.options.node]);
        return [coreNodeId(s.options.node)];
      case 'workers-down':
        await this.jobs.stopWorkers(s.options.queue);
        return [];
      case 'stalled-worker':
        this.jobs.hangWorkers(s.options.queue);
        return [];
      case 'job-stuck': {
        const spec = this.jobs.newJob(s.options.queue);
        spec.outcome = 'stick';
        spec.startedAt = new Date(now.getTime() - s.options.ageSeconds * 1000);
        spec.createdAt = new Date(spec.startedAt.getTime() - this.rng.between(1, 20) * 1000);
        await this.jobs.enqueue(spec);
        this.written.provisioningJobs++;
        return [spec.id];
      }
      case 'failure-burst': {
        this.jobs.setFailureRate(s.options.queue, 0.7);
        const ids: string[] = [];
        for (let i = 0; i < s.options.count; i++) ids.push(await this.enqueueJob(s.options.queue, 'fail'));
        return ids;
      }
      case 'block-burst': {
        this.attackers = Array.from({ length: 4 }, () => randomIp(this.rng));
        // One second of the attack right away, so it shows before the next batch.
        const cols: unknown[][] = Array.from({ length: 6 }, () => []);
        this.pushAttack((d, p, tenant, ip, path) => {
          cols[0]!.push(new Date(now.getTime() - this.rng.next() * 1000).toISOString());
          cols[1]!.push(d);
          cols[2]!.push(p);
          cols[3]!.push(tenant);
          cols[4]!.push(ip);
          cols[5]!.push(path);
        }, s.options.perSecond);
        this.written.shieldEvents += await insertColumns(
          this.db,
          'ShieldEvent',
          [['timestamp', 'timestamp'], ['decision', 'text'], ['policyId', 'text'], ['tenantId', 'text'], ['ip', 'text'], ['path', 'text']],
          cols,
        );
        return [];
      }
      case 'critical-finding': {
        const id = `${SCENARIO_FINDING_PREFIX}${now.getTime().toString(36)}${this.rng.id(4)}`;
        const title = fillTemplate(this.rng.pick(CRITICAL_FINDING_TITLES), { site: 'site_17_1', node: s.options.node });
        await this.db.query(
          `INSERT INTO "GuardianFinding" ("id", "severity", "status", "title", "nodeId", "tenantId", "createdAt") VALUES ($1, 'CRITICAL', 'OPEN', $2, $3, $4, $5::timestamp)`,
          [id, title, coreNodeId(s.options.node), tenantId(17), iso],
        );
        this.written.findings++;
        return [id];
      }
      case 'backup-stale': {
        for (const [id, p] of this.pendingBackups) if (p.resourceType === s.options.resourceType) this.pendingBackups.delete(id);
        const cutoff = new Date(now.getTime() - s.options.hours * 3_600_000).toISOString();
        // A run that started before the cutoff may have finished after it: what counts is its latest timestamp.
        await this.db.query(`DELETE FROM "Backup" WHERE "resourceType" = $1 AND GREATEST("startedAt", "completedAt") > $2::timestamp`, [s.options.resourceType, cutoff]);
        return [];
      }
      case 'backup-failing':
        return this.backupNow(s.options.resourceType, 'FAILED', now);
    }
  }

  private async undo(o: ScenarioOutcome, now: Date): Promise<void> {
    if (!o.name.startsWith('backup-')) return this.undoScenario(o, now);
    this.backupEpoch += 1;
    try {
      await this.undoScenario(o, now);
    } finally {
      this.backupEpoch += 1;
    }
  }

  private async undoScenario(o: ScenarioOutcome, now: Date): Promise<void> {
    const s = { name: o.name, options: o.options } as ResolvedScenario;
    switch (s.name) {
      case 'node-offline':
      case 'node-metrics-stale':
        this.active.delete(o.key);
        await this.writeMetrics(now, [s.options.node]);
        return;
      case 'node-disk-full': {
        this.active.delete(o.key);
        const base = CORE_NODES.find((n) => n.hostname === s.options.node)!;
        this.nodes.get(s.options.node)!.disk = base.disk;
        await this.writeMetrics(now, [s.options.node]);
        return;
      }
      case 'workers-down':
        this.active.delete(o.key);
        await this.jobs.startWorkers(s.options.queue);
        return;
      case 'stalled-worker':
        this.active.delete(o.key);
        this.jobs.unhangWorkers(s.options.queue);
        return;
      case 'job-stuck':
        this.jobs.releaseStuck(o.ids);
        return;
      case 'failure-burst':
        this.jobs.setFailureRate(s.options.queue, null);
        return;
      case 'block-burst':
        return;
      case 'critical-finding':
        await this.db.query(`UPDATE "GuardianFinding" SET "status" = 'RESOLVED', "resolvedAt" = $2::timestamp WHERE "id" = ANY($1::text[])`, [o.ids, now.toISOString()]);
        return;
      case 'backup-stale':
        this.active.delete(o.key);
        await this.backupNow(s.options.resourceType, 'COMPLETED', now);
        return;
      case 'backup-failing':
        this.active.delete(o.key);
        await this.backupNow(s.options.resourceType, 'COMPLETED', now);
        return;
    }
  }
}

/** Creates a simulator on a demo database (call {@link Simulator.start} to set it moving). */
export function createSimulator(options: SimulatorOptions): Simulator {
  return new Simulator(options);
}
