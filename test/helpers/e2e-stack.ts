/**
 * The whole alerting path for the end-to-end tests: the exporter (in-process,
 * on a test database and Redis prefix), the real Prometheus and Alertmanager
 * from Debian running the bundle's own prometheus.yml, rule files and
 * alertmanager.yml, and a webhook receiver standing in for every receiver's
 * integrations.
 *
 * The bundle's files are rewritten in three ways only:
 * - time is compressed: every duration (scrape and evaluation intervals,
 *   scrape timeouts, rule groups' intervals, alerts' `for:`, range and
 *   subquery selectors and offsets inside expressions, Alertmanager's
 *   group_wait / group_interval / repeat_interval / resolve_timeout) is
 *   divided by {@link TIME_COMPRESSION}, rounded to the millisecond. Numbers
 *   in expressions that are not durations (`> 90000`, `> 600`: data
 *   thresholds in seconds) are left alone;
 * - target addresses point at this test's processes (job names unchanged);
 * - each receiver keeps its name, but its integrations (PagerDuty, Slack,
 *   the dead man's switch) become one webhook to the test's receiver, under
 *   `/<receiver name>`, with the `send_resolved` of the integration it replaces.
 * Prometheus's `--rules.alert.resend-delay` (a flag, default 1m) is compressed too.
 * Expressions, labels, annotations, routes, matchers and inhibitions stay as
 * generated.
 *
 * {@link startHaStack} runs the HA topology of prometheus/prometheus.ha.yml
 * from the same pieces: several platforms with their exporter replicas, a
 * Prometheus pair with different `replica` external labels, an Alertmanager
 * cluster gossiping on loopback ports.
 */
import { writeFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { parser } from '@prometheus-io/lezer-promql';
import type { FastifyInstance } from 'fastify';
import { parse, stringify } from 'yaml';
import { REPO_ROOT } from '../../monitoring/generate.js';
import { EXPORTER_JOB, RULE_FILES } from '../../monitoring/stack.js';
import type { TestDatabase } from './db.js';
import { buildTestExporter } from './exporter.js';
import { config } from '../../monitoring/config.js';
import { startDaemon, tempDir, waitFor, type Daemon } from './monitoring-tools.js';
import { freePort } from './ports.js';
import type { TestRedis } from './redis.js';

/** Every duration of the bundle is divided by this: 30 s scrapes become 500 ms, `for: 5m` becomes 5 s. */
export const TIME_COMPRESSION = 60;

const UNIT_MS: Record<string, number> = { y: 365 * 86_400_000, w: 7 * 86_400_000, d: 86_400_000, h: 3_600_000, m: 60_000, s: 1_000, ms: 1 };
const DURATION = /^(?:\d+(?:ms|[ywdhms]))+$/;

/** Milliseconds of a Prometheus duration (`1h30m`, `500ms`; a bare number is seconds, as PromQL reads it). */
export function parseDuration(text: string): number {
  const t = text.trim();
  if (/^\d+(?:\.\d+)?$/.test(t)) return Number(t) * 1000;
  if (!DURATION.test(t)) throw new Error(`not a duration: ${JSON.stringify(text)}`);
  let ms = 0;
  for (const m of t.matchAll(/(\d+)(ms|[ywdhms])/g)) ms += Number(m[1]) * UNIT_MS[m[2]!]!;
  return ms;
}

/** A duration in milliseconds written as Prometheus and Alertmanager parse it (`12m`, `1m30s`, `417ms`). */
export function formatDuration(ms: number): string {
  let rest = Math.round(ms);
  if (rest === 0) return '0s';
  let out = '';
  for (const unit of ['h', 'm', 's', 'ms'] as const) {
    const n = Math.floor(rest / UNIT_MS[unit]!);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * UNIT_MS[unit]!;
  }
  return out;
}

/** A duration divided by {@link TIME_COMPRESSION}. */
export function compressDuration(text: string): string {
  return formatDuration(parseDuration(text) / TIME_COMPRESSION);
}

/**
 * An expression with the durations of its range selectors, subqueries and
 * offsets compressed, found with Prometheus's own PromQL grammar (so numbers
 * compared with, and text inside label matchers, are never touched).
 */
export function compressExpr(expr: string): string {
  const spans: { from: number; to: number }[] = [];
  parser.parse(expr).iterate({
    enter(ref) {
      if (ref.type.isError) throw new Error(`cannot parse ${JSON.stringify(expr)} at ${ref.from}`);
      if (ref.name === 'NumberDurationLiteralInDurationContext') spans.push({ from: ref.from, to: ref.to });
    },
  });
  let out = expr;
  for (const s of spans.sort((a, b) => b.from - a.from)) out = out.slice(0, s.from) + compressDuration(out.slice(s.from, s.to)) + out.slice(s.to);
  return out;
}

/** Keys whose value is a duration, in prometheus.yml, rule files and alertmanager.yml. */
const DURATION_KEYS = new Set(['scrape_interval', 'scrape_timeout', 'evaluation_interval', 'interval', 'for', 'keep_firing_for', 'group_wait', 'group_interval', 'repeat_interval', 'resolve_timeout']);
/** Maps whose keys and values are the user's (alert labels, annotations): never rewritten or inspected. */
const OPAQUE_KEYS = new Set(['labels', 'annotations']);

/**
 * Compresses every duration-valued key of a configuration document in place,
 * and fails on any other string that looks like a duration: a setting this
 * helper does not know would otherwise stay uncompressed unnoticed.
 */
function compressDurations(node: unknown, where: string): void {
  if (Array.isArray(node)) {
    node.forEach((v, i) => compressDurations(v, `${where}[${i}]`));
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const obj = node as Record<string, unknown>;
  for (const [key, value] of Object.entries(obj)) {
    if (OPAQUE_KEYS.has(key) || key === 'expr') continue;
    if (DURATION_KEYS.has(key)) {
      if (typeof value !== 'string') throw new Error(`${where}.${key}: expected a duration, got ${JSON.stringify(value)}`);
      obj[key] = compressDuration(value);
    } else if (typeof value === 'string' && DURATION.test(value)) {
      throw new Error(`${where}.${key} = ${value} looks like a duration this helper does not compress; add its key to DURATION_KEYS`);
    } else {
      compressDurations(value, `${where}.${key}`);
    }
  }
}

interface RuleFile {
  groups: { name: string; interval?: string; rules: { alert?: string; record?: string; expr: string; for?: string }[] }[];
}

/** A rule file with its durations compressed (intervals, `for:`, selectors in expressions). */
export function compressRuleFile(doc: RuleFile): RuleFile {
  const out = structuredClone(doc);
  compressDurations(out, 'rules');
  for (const g of out.groups) for (const r of g.rules) r.expr = compressExpr(r.expr);
  return out;
}

interface PrometheusDoc {
  global?: Record<string, unknown>;
  rule_files?: string[];
  alerting?: { alertmanagers: { static_configs: { targets: string[] }[] }[] };
  scrape_configs: { job_name: string; static_configs?: { targets: string[] }[] }[];
}

/** Where the test's processes listen, by the bundle's job name. */
export interface StackTargets {
  exporter: string;
  prometheus: string;
  alertmanager: string;
}

/** prometheus.yml compressed, its targets pointed at the test's processes and its rule files at the compressed copies. */
export function compressPrometheusConfig(doc: PrometheusDoc, targets: StackTargets, ruleFiles: string[]): PrometheusDoc {
  const out = structuredClone(doc);
  compressDurations(out, 'prometheus.yml');
  out.rule_files = ruleFiles;
  for (const am of out.alerting?.alertmanagers ?? []) am.static_configs = am.static_configs.map(() => ({ targets: [targets.alertmanager] }));
  const byJob: Record<string, string> = { [EXPORTER_JOB]: targets.exporter, prometheus: targets.prometheus, alertmanager: targets.alertmanager };
  for (const s of out.scrape_configs) {
    const target = byJob[s.job_name];
    if (!target) throw new Error(`prometheus.yml: no test target for scrape job ${s.job_name}`);
    s.static_configs = (s.static_configs ?? []).map(() => ({ targets: [target] }));
  }
  return out;
}

interface AlertmanagerDoc {
  receivers: ({ name: string } & Record<string, unknown>)[];
}

/** alertmanager.yml compressed, every receiver's integrations replaced by one webhook to `webhookBase/<receiver>`. */
export function compressAlertmanagerConfig(doc: AlertmanagerDoc, webhookBase: string): AlertmanagerDoc {
  const out = structuredClone(doc);
  out.receivers = out.receivers.map((r) => {
    const integrations = Object.entries(r).filter(([k]) => k.endsWith('_configs')).flatMap(([, v]) => v as { send_resolved?: boolean }[]);
    if (integrations.length === 0) throw new Error(`alertmanager.yml: receiver ${r.name} has no integration`);
    return { name: r.name, webhook_configs: [{ url: `${webhookBase}/${r.name}`, send_resolved: integrations.some((i) => i.send_resolved === true) }] };
  });
  compressDurations(out, 'alertmanager.yml');
  return out;
}

// ---- the webhook receiver ---------------------------------------------------

/** One alert of a webhook notification (Alertmanager's payload version 4). */
export interface WebhookAlert {
  status: 'firing' | 'resolved';
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  fingerprint: string;
}

/** A webhook notification as Alertmanager posts it. */
export interface WebhookPayload {
  version: string;
  groupKey: string;
  status: 'firing' | 'resolved';
  receiver: string;
  groupLabels: Record<string, string>;
  commonLabels: Record<string, string>;
  alerts: WebhookAlert[];
}

/** A notification the receiver got, with the URL path it was posted to and when (ms since epoch). */
export interface Notification {
  path: string;
  receivedAt: number;
  payload: WebhookPayload;
}

/** An HTTP server that records every notification posted to it. */
export interface WebhookReceiver {
  /** http://127.0.0.1:<port> */
  base: string;
  notifications: Notification[];
  /**
   * Waits for a notification to `receiver`, received at or after `since`,
   * holding an alert whose labels are exactly `labels` with `status`;
   * returns that notification.
   */
  waitForAlert(receiver: string, labels: Record<string, string>, status: 'firing' | 'resolved', since: number, timeoutMs: number): Promise<Notification>;
  close(): Promise<void>;
}

const sameLabels = (a: Record<string, string>, b: Record<string, string>) =>
  Object.keys(a).length === Object.keys(b).length && Object.entries(b).every(([k, v]) => a[k] === v);

/** Starts a webhook receiver on a free loopback port. */
export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const notifications: Notification[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      try {
        notifications.push({ path: req.url ?? '', receivedAt: Date.now(), payload: JSON.parse(body) as WebhookPayload });
        res.writeHead(200).end();
      } catch {
        res.writeHead(400).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  return {
    base,
    notifications,
    waitForAlert(receiver, labels, status, since, timeoutMs) {
      return waitFor(
        `${status} ${JSON.stringify(labels)} at ${receiver} (got: ${JSON.stringify(notifications.map((n) => [n.payload.receiver, n.payload.status, n.payload.alerts.map((a) => a.labels.alertname)]))})`,
        async () =>
          notifications.find(
            (n) => n.receivedAt >= since && n.payload.receiver === receiver && n.payload.alerts.some((a) => a.status === status && sameLabels(a.labels, labels)),
          ),
        timeoutMs,
        100,
      );
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

// ---- the stack ----------------------------------------------------------------

/** An alert as Prometheus's /api/v1/alerts lists it. */
export interface PromAlert {
  labels: Record<string, string>;
  state: 'pending' | 'firing';
}

/** One series of an instant query's answer. */
export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

/** The running stack. */
export interface E2EStack {
  /** Base URLs. */
  prometheus: string;
  alertmanager: string;
  receiver: WebhookReceiver;
  exporter: FastifyInstance;
  /** When the stack was started (ms since epoch). */
  startedAt: number;
  /** An instant query; throws when Prometheus answers with an error. */
  query(expr: string): Promise<PromSample[]>;
  /** Values of a label over the series matching `match`. */
  labelValues(label: string, match: string): Promise<string[]>;
  /** Pending and firing alerts in Prometheus. */
  alerts(): Promise<PromAlert[]>;
  /** Stops everything this helper started (the database and Redis prefix stay the caller's). */
  stop(): Promise<void>;
}

/** Options of {@link startE2EStack}. */
export interface E2EStackOptions {
  label: string;
  db: TestDatabase;
  redis: TestRedis;
  /** Extra exporter environment (e.g. OPS_STUCK_THRESHOLD_SECONDS). */
  exporterEnv?: Record<string, string>;
}

async function getJson<T>(url: string, init?: RequestInit): Promise<T> {
  const res = await fetch(url, init);
  const body = (await res.json()) as { status: string; error?: string; data: T };
  if (body.status !== 'success') throw new Error(`${url}: ${body.error ?? res.status}`);
  return body.data;
}

/** The bundle's rule files, compressed, written into `dir`; their paths. */
async function writeCompressedRules(dir: string): Promise<string[]> {
  const ruleFiles: string[] = [];
  for (const f of RULE_FILES) {
    const out = join(dir, f.replace('rules/', ''));
    await writeFile(out, stringify(compressRuleFile(parse(await readFile(join(REPO_ROOT, 'prometheus', f), 'utf8')) as RuleFile)));
    ruleFiles.push(out);
  }
  return ruleFiles;
}

/** The bundle's alertmanager.yml, compressed, its receivers posting to `receiverBase`, written into `dir`. */
async function writeAlertmanagerConfig(dir: string, receiverBase: string): Promise<string> {
  const amDoc = compressAlertmanagerConfig(parse(await readFile(join(REPO_ROOT, 'alertmanager/alertmanager.yml'), 'utf8')) as AlertmanagerDoc, receiverBase);
  const file = join(dir, 'alertmanager.yml');
  await writeFile(file, stringify(amDoc));
  return file;
}

/**
 * Gossip settings of a test's Alertmanager cluster. Alertmanager's default
 * peer timeout (15 s: how long the n-th peer waits for the first to notify
 * before it notifies itself) is cut to 1 s; gossip stays far faster than
 * that (100 ms), so a peer always learns of a notification before its turn.
 */
const CLUSTER_FLAGS = ['--cluster.peer-timeout=1s', '--cluster.gossip-interval=100ms', '--cluster.pushpull-interval=1s', '--cluster.reconnect-interval=1s', '--cluster.settle-timeout=2s'];

/** Starts one Alertmanager; `cluster` gives its gossip port and its peers' (none: no clustering). */
function startAlertmanager(dir: string, name: string, configFile: string, cluster?: { port: number; peers: number[] }): Promise<Daemon> {
  return startDaemon('prometheus-alertmanager', (port, attempt) => [
    `--config.file=${configFile}`,
    `--storage.path=${join(dir, `${name}-${attempt}`)}`,
    `--web.listen-address=127.0.0.1:${port}`,
    ...(cluster
      ? [`--cluster.listen-address=127.0.0.1:${cluster.port}`, ...cluster.peers.map((p) => `--cluster.peer=127.0.0.1:${p}`), ...CLUSTER_FLAGS]
      : ['--cluster.listen-address=']),
  ]);
}

/** An exporter of the test listening on loopback. */
export interface RunningExporter {
  app: FastifyInstance;
  /** host:port Prometheus scrapes. */
  target: string;
}

/** Builds an exporter on a test's database and Redis prefix, collecting every second, listening on `port` (0: any). */
async function startExporter(db: TestDatabase, redis: TestRedis, env: Record<string, string> = {}, port = 0): Promise<RunningExporter> {
  const app = await buildTestExporter({
    db,
    redis,
    startCollection: true,
    env: { OPS_COLLECT_INTERVAL_SECONDS: '1', OPS_QUEUE_DISCOVERY_INTERVAL_SECONDS: '1', ...env },
  });
  try {
    await app.listen({ port, host: '127.0.0.1' });
  } catch (err) {
    await app.close();
    throw err;
  }
  const address = app.server.address();
  return { app, target: `127.0.0.1:${typeof address === 'object' && address ? address.port : 0}` };
}

/** A Prometheus of the test and what the tests ask it. */
export interface TestPrometheus {
  base: string;
  query(expr: string): Promise<PromSample[]>;
  alerts(): Promise<PromAlert[]>;
  stop(): Promise<void>;
}

function prometheusClient(daemon: Daemon): TestPrometheus {
  return {
    base: daemon.base,
    async query(expr) {
      const data = await getJson<{ resultType: string; result: PromSample[] }>(`${daemon.base}/api/v1/query`, { method: 'POST', body: new URLSearchParams({ query: expr }) });
      return data.result;
    },
    async alerts() {
      return (await getJson<{ alerts: PromAlert[] }>(`${daemon.base}/api/v1/alerts`)).alerts;
    },
    stop: daemon.stop,
  };
}

/** Starts Prometheus with the config `render(port, attempt)` writes; time compressed like everything else. */
function startPrometheus(dir: string, name: string, render: (port: number) => object, env: Record<string, string> = {}, flags: string[] = []): Promise<Daemon> {
  return startDaemon(
    'prometheus',
    (port, attempt) => {
      const file = join(dir, `${name}-${attempt}.yml`);
      writeFileSync(file, stringify(render(port)));
      return [
        `--config.file=${file}`,
        `--storage.tsdb.path=${join(dir, `${name}-tsdb-${attempt}`)}`,
        `--web.listen-address=127.0.0.1:${port}`,
        // Prometheus's own default (1m), compressed like the rest: a firing alert sent before the
        // notifier had found Alertmanager would otherwise only be sent again a minute later.
        `--rules.alert.resend-delay=${compressDuration('1m')}`,
        ...flags,
      ];
    },
    '/-/ready',
    20_000,
    env,
  );
}

/** Stops what `stoppers` holds, newest first, each failure ignored; empties it. */
function stopInReverse(stoppers: (() => Promise<unknown>)[]): () => Promise<void> {
  return async () => {
    for (const stop of stoppers.reverse()) await stop().catch(() => undefined);
    stoppers.length = 0;
  };
}

/** What every stack starts first: its temporary folder and the webhook receiver, registered in `stoppers`. */
async function startStackBase(label: string, stoppers: (() => Promise<unknown>)[]) {
  const dir = await tempDir(`e2e-${label}`);
  stoppers.push(dir.cleanup);
  const receiver = await startWebhookReceiver();
  stoppers.push(receiver.close);
  return { dir, receiver };
}

/**
 * Starts the webhook receiver, Alertmanager, the exporter and Prometheus
 * (in that order: each needs the address of the one before), with the
 * bundle's configuration compressed as this file's header says.
 */
export async function startE2EStack(opts: E2EStackOptions): Promise<E2EStack> {
  const stoppers: (() => Promise<unknown>)[] = [];
  const stopAll = stopInReverse(stoppers);
  try {
    const { dir, receiver } = await startStackBase(opts.label, stoppers);

    const am = await startAlertmanager(dir.path, 'am', await writeAlertmanagerConfig(dir.path, receiver.base));
    stoppers.push(am.stop);

    const { app: exporter, target: exporterTarget } = await startExporter(opts.db, opts.redis, opts.exporterEnv);
    stoppers.push(() => exporter.close());

    const ruleFiles = await writeCompressedRules(dir.path);
    const promSource = parse(await readFile(join(REPO_ROOT, 'prometheus/prometheus.yml'), 'utf8')) as PrometheusDoc;
    const startedAt = Date.now();
    const daemon = await startPrometheus(dir.path, 'prometheus', (port) =>
      compressPrometheusConfig(promSource, { exporter: exporterTarget, prometheus: `127.0.0.1:${port}`, alertmanager: am.base.replace('http://', '') }, ruleFiles),
    );
    stoppers.push(daemon.stop);
    const prometheus = prometheusClient(daemon);

    return {
      prometheus: prometheus.base,
      alertmanager: am.base,
      receiver,
      exporter,
      startedAt,
      query: prometheus.query,
      labelValues(label, match) {
        return getJson<string[]>(`${prometheus.base}/api/v1/label/${label}/values?${new URLSearchParams({ 'match[]': match })}`);
      },
      alerts: prometheus.alerts,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

// ---- the HA stack ---------------------------------------------------------------

interface HaPrometheusDoc extends PrometheusDoc {
  alerting: { alert_relabel_configs?: unknown[]; alertmanagers: { static_configs: { targets: string[] }[] }[] };
  scrape_configs: { job_name: string; static_configs?: { targets: string[]; labels?: Record<string, string> }[] }[];
}

/**
 * prometheus.ha.yml compressed, its platforms replaced by the test's (in
 * order: the file's first platform becomes the test's first), each with its
 * exporter targets and its platform label value; every Alertmanager peer a
 * target of the notifier.
 */
export function compressHaPrometheusConfig(doc: HaPrometheusDoc, platforms: [string, string[]][], self: string, alertmanagers: string[], ruleFiles: string[]): HaPrometheusDoc {
  const out = structuredClone(doc);
  compressDurations(out, 'prometheus.ha.yml');
  out.rule_files = ruleFiles;
  for (const am of out.alerting.alertmanagers) am.static_configs = [{ targets: alertmanagers }];
  for (const s of out.scrape_configs) {
    if (s.job_name === EXPORTER_JOB) {
      const generated = s.static_configs ?? [];
      if (generated.length < platforms.length) throw new Error(`prometheus.ha.yml has ${generated.length} platforms, the test ${platforms.length}`);
      s.static_configs = platforms.map(([name, targets], i) => ({ targets, labels: { ...generated[i]!.labels, [config.platformLabel]: name } }));
    } else if (s.job_name === 'prometheus') s.static_configs = [{ targets: [self] }];
    else if (s.job_name === 'alertmanager') s.static_configs = [{ targets: alertmanagers }];
    else throw new Error(`prometheus.ha.yml: no test target for scrape job ${s.job_name}`);
  }
  return out;
}

/** One platform of the HA stack: its own database and Redis prefix, served by `replicas` exporters. */
export interface HaPlatform {
  name: string;
  db: TestDatabase;
  redis: TestRedis;
  replicas: number;
}

/** The running HA stack. */
export interface HaStack {
  receiver: WebhookReceiver;
  /** The Prometheus pair (`replica` external labels `1`, `2`, ...). */
  prometheus: TestPrometheus[];
  /** The Alertmanager peers' base URLs. */
  alertmanagers: string[];
  /** Exporter targets (host:port) per platform, in replica order. */
  targets: Record<string, string[]>;
  /** Stops one exporter replica (its port stops answering). */
  killExporter(platform: string, replica: number): Promise<void>;
  /** Starts a stopped replica again on the same port. */
  restartExporter(platform: string, replica: number): Promise<void>;
  killPrometheus(index: number): Promise<void>;
  killAlertmanager(index: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts the webhook receiver, an Alertmanager cluster of `alertmanagers`
 * peers gossiping on loopback, every platform's exporter replicas, and
 * `prometheus` Prometheus running prometheus.ha.yml (the same rules, each
 * with its own `replica` external label, sending to every peer), all with
 * time compressed as this file's header says.
 */
export async function startHaStack(opts: { label: string; platforms: HaPlatform[]; alertmanagers: number; prometheus: number }): Promise<HaStack> {
  const stoppers: (() => Promise<unknown>)[] = [];
  const stopAll = stopInReverse(stoppers);
  try {
    const { dir, receiver } = await startStackBase(opts.label, stoppers);

    const amConfig = await writeAlertmanagerConfig(dir.path, receiver.base);
    const gossipPorts: number[] = [];
    for (let i = 0; i < opts.alertmanagers; i++) gossipPorts.push(await freePort());
    const peers = await Promise.all(
      gossipPorts.map((port, i) => startAlertmanager(dir.path, `am${i + 1}`, amConfig, { port, peers: gossipPorts.filter((p) => p !== port) })),
    );
    for (const am of peers) stoppers.push(am.stop);

    const exporters: Record<string, (RunningExporter | undefined)[]> = {};
    const targets: Record<string, string[]> = {};
    for (const p of opts.platforms) {
      exporters[p.name] = [];
      for (let i = 0; i < p.replicas; i++) exporters[p.name]!.push(await startExporter(p.db, p.redis));
      targets[p.name] = exporters[p.name]!.map((e) => e!.target);
    }
    stoppers.push(async () => {
      for (const list of Object.values(exporters)) await Promise.all(list.map((e) => e?.app.close()));
    });

    const ruleFiles = await writeCompressedRules(dir.path);
    const source = parse(await readFile(join(REPO_ROOT, 'prometheus/prometheus.ha.yml'), 'utf8')) as HaPrometheusDoc;
    const amTargets = peers.map((am) => am.base.replace('http://', ''));
    const prometheus: TestPrometheus[] = [];
    for (let i = 1; i <= opts.prometheus; i++) {
      const daemon = await startPrometheus(
        dir.path,
        `prometheus${i}`,
        (port) => compressHaPrometheusConfig(source, Object.entries(targets), `127.0.0.1:${port}`, amTargets, ruleFiles),
        { [config.ha.replicaEnv]: String(i) },
        ['--enable-feature=expand-external-labels'],
      );
      stoppers.push(daemon.stop);
      prometheus.push(prometheusClient(daemon));
    }

    const platformOf = (name: string): HaPlatform => {
      const p = opts.platforms.find((x) => x.name === name);
      if (!p) throw new Error(`no platform ${name}`);
      return p;
    };
    return {
      receiver,
      prometheus,
      alertmanagers: peers.map((am) => am.base),
      targets,
      async killExporter(platform, replica) {
        const e = exporters[platform]![replica];
        exporters[platform]![replica] = undefined;
        await e?.app.close();
      },
      async restartExporter(platform, replica) {
        const p = platformOf(platform);
        const port = Number(targets[platform]![replica]!.split(':')[1]);
        exporters[platform]![replica] = await startExporter(p.db, p.redis, {}, port);
      },
      killPrometheus: (index) => prometheus[index]!.stop(),
      killAlertmanager: (index) => peers[index]!.stop(),
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
