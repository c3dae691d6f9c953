/**
 * The bundle against a real Prometheus (the Debian 2.42 the stack runs):
 * it loads the generated rules, scrapes a stand-in exporter that serves every
 * catalog metric (and the prom-client default metrics the exporter dashboard
 * reads), and answers every dashboard query with data. Proves the queries run
 * on that version, not only that they parse. With one platform (the default,
 * no platform label), every panel of the dashboards as they were before the
 * platform variable answers exactly what the same panel answers now.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { KNOWN, METRIC_LIST, MISSING_NODE_STATUS, SOURCE_NAMES, UNKNOWN_LABEL, type MetricDef } from '../src/catalog.js';
import { REPO_ROOT } from '../monitoring/generate.js';
import { PROCESS_METRIC_LIST } from '../monitoring/process-metrics.js';
import { recordingRules } from '../monitoring/rules.js';
import { EXPORTER_JOB, RULE_FILES } from '../monitoring/stack.js';
import { allPanels, loadDashboards, substituteGrafanaVariables } from './helpers/monitoring-promql.js';
import { shouldRunWith, startDaemon, tempDir, waitFor, type Daemon } from './helpers/monitoring-tools.js';

/** Label values the stand-in exporter uses, per label (and per metric where they differ). */
function labelValues(def: MetricDef, label: string): readonly string[] {
  switch (label) {
    case 'node':
      return ['SRV1-WEB', 'DB-CORE'];
    case 'role':
      return ['WEB'];
    case 'status':
      if (def.name === 'ops_core_node_status') return [...KNOWN.nodeStatus, MISSING_NODE_STATUS, UNKNOWN_LABEL];
      // Finished jobs (counters and histograms) have terminal statuses; the gauges count live ones.
      return def.type === 'gauge' ? KNOWN.liveJobStatus : KNOWN.terminalJobStatus;
    case 'prefix':
      return ['bull'];
    case 'queue':
      return ['hosting', 'mail'];
    case 'state':
      return KNOWN.queueState;
    case 'type':
      return ['hosting', 'dns'];
    case 'action':
      return ['hosting.create'];
    case 'resource_type':
      return def.source === 'backups' ? KNOWN.criticalBackupTypes : ['WEBSITE'];
    case 'decision':
      return [...KNOWN.decision, UNKNOWN_LABEL];
    case 'mode':
      return KNOWN.policyMode;
    case 'severity':
      return KNOWN.severity;
    case 'source':
      return SOURCE_NAMES;
    case 'reason':
      return ['null_value'];
    case 'version':
      return ['0.1.0'];
    case 'nodejs':
      return ['v20.11.0'];
    case 'index':
      return ['ProvisioningJob_live_idx'];
    default:
      throw new Error(`no fixture values for label ${label} of ${def.name}`);
  }
}

function combinations(def: MetricDef): Record<string, string>[] {
  return def.labels.reduce<Record<string, string>[]>((acc, label) => acc.flatMap((a) => labelValues(def, label).map((v) => ({ ...a, [label]: v }))), [{}]);
}

/** The exposition text of a stand-in exporter, `scrape` being the scrape count (counters grow with it). */
function exposition(scrape: number, now: number): string {
  const lines: string[] = [];
  for (const def of METRIC_LIST) {
    lines.push(`# HELP ${def.name} ${def.help}`, `# TYPE ${def.name} ${def.type}`);
    for (const labels of combinations(def)) {
      const body = Object.entries(labels)
        .map(([k, v]) => `${k}="${v}"`)
        .join(',');
      if (def.type === 'histogram') {
        // Ten observations a scrape, spread evenly over the buckets (cumulative), 30 s each on average.
        const buckets = def.buckets ?? [];
        const le = (b: string) => `${def.name}_bucket{${body ? `${body},` : ''}le="${b}"}`;
        buckets.forEach((b, i) => lines.push(`${le(String(b))} ${(scrape * 10 * (i + 1)) / (buckets.length + 1)}`));
        lines.push(`${le('+Inf')} ${scrape * 10}`, `${def.name}_sum${body ? `{${body}}` : ''} ${scrape * 300}`, `${def.name}_count${body ? `{${body}}` : ''} ${scrape * 10}`);
        continue;
      }
      let value: number;
      // Failures and errors at a tenth of the rest: a healthy-looking stand-in whose ratios are not 0.
      if (def.type === 'counter') value = scrape * (def.name === 'ops_source_errors_total' || labels.status === 'FAILED' || def.name === 'ops_queue_jobs_failed_total' ? 1 : 10);
      else if (def.unit === 'timestamp_seconds') value = now - 120;
      else if (def.unit === 'ratio') value = 0.5;
      else if (def.name === 'ops_core_node_status') value = labels.status === 'ONLINE' ? 1 : 0;
      else if (def.unit === 'boolean' || def.unit === 'info') value = 1;
      else if (def.unit === 'seconds') value = 0.25;
      else value = 3;
      lines.push(`${def.name}${body ? `{${body}}` : ''} ${value}`);
    }
  }
  for (const def of PROCESS_METRIC_LIST) {
    lines.push(`# HELP ${def.name} ${def.help}`, `# TYPE ${def.name} ${def.type}`, `${def.name} ${def.type === 'counter' ? scrape * 0.05 : 1000 + scrape}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The dashboards as generated before the platform variable existed (test/fixtures/dashboards-before-platform). */
async function dashboardsBeforePlatform(): Promise<Map<string, { panels?: { id?: number; title?: string; targets?: { expr?: string; refId?: string; legendFormat?: string }[] }[] }>> {
  const dir = join(REPO_ROOT, 'test/fixtures/dashboards-before-platform');
  const files = ['ops-overview.json', 'ops-overview-exporter.json'];
  return new Map(await Promise.all(files.map(async (f) => [f, JSON.parse(await readFile(join(dir, f), 'utf8'))] as const)));
}

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

/** A query's answer as Grafana draws it: each series' labels (those a legend or column could show) and value, sorted. */
function rendered(result: Sample[], fixedLegend: boolean): string[] {
  return result
    .map((r) => {
      const { __name__: _, ...labels } = r.metric;
      return JSON.stringify([fixedLegend && result.length === 1 ? {} : labels, r.value[1]]);
    })
    .sort();
}

/** Dashboard queries that may rightly return nothing on a healthy stand-in. */
const MAY_BE_EMPTY = new Set(['Firing alerts']);

describe.runIf(shouldRunWith('prometheus'))('the bundle on a real Prometheus', () => {
  let exporter: Server;
  let prometheus: Daemon | undefined;
  let dir: { path: string; cleanup: () => Promise<void> };
  let base = '';

  const query = async (expr: string): Promise<{ status: string; error?: string; data?: { result: unknown[] } }> => {
    const res = await fetch(`${base}/api/v1/query`, { method: 'POST', body: new URLSearchParams({ query: expr }) });
    return (await res.json()) as { status: string; error?: string; data?: { result: unknown[] } };
  };

  beforeAll(async () => {
    dir = await tempDir('live');
    let scrapes = 0;
    exporter = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      scrapes += 1;
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(exposition(scrapes, Date.now() / 1000));
    });
    await new Promise<void>((resolve) => exporter.listen(0, '127.0.0.1', resolve));
    const address = exporter.address();
    const exporterPort = typeof address === 'object' && address ? address.port : 0;

    // The generated prometheus.yml, sped up and pointed at the stand-in; no Alertmanager needed.
    const doc = parse(await readFile(join(REPO_ROOT, 'prometheus/prometheus.yml'), 'utf8')) as Record<string, unknown> & {
      scrape_configs: { job_name: string; scrape_interval?: string; scrape_timeout?: string; static_configs: { targets: string[] }[] }[];
    };
    doc.global = { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' };
    delete doc.alerting;
    doc.scrape_configs = doc.scrape_configs
      .filter((s) => s.job_name === EXPORTER_JOB)
      .map((s) => ({ ...s, scrape_interval: '1s', scrape_timeout: '1s', static_configs: [{ targets: [`127.0.0.1:${exporterPort}`] }] }));
    const configFile = join(dir.path, 'prometheus.yml');
    // Rules evaluated with intervals of 30s would leave recorded series empty for 30s: evaluate every second.
    for (const f of RULE_FILES) {
      const rules = parse(await readFile(join(REPO_ROOT, 'prometheus', f), 'utf8')) as { groups: { interval?: string }[] };
      for (const g of rules.groups) g.interval = '1s';
      await writeFile(join(dir.path, f.replace('rules/', '')), stringify(rules));
    }
    doc.rule_files = RULE_FILES.map((f) => join(dir.path, f.replace('rules/', '')));
    await writeFile(configFile, stringify(doc));

    prometheus = await startDaemon('prometheus', (port, attempt) => [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(dir.path, `tsdb-${attempt}`)}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ]);
    base = prometheus.base;
    // Rates need two scrapes and recorded series a rule evaluation after them.
    await waitFor('rates and recording rules', async () => ((await query('decision:ops_shield_events:rate5m')).data?.result.length ? true : undefined), 20_000, 250);
  });

  afterAll(async () => {
    await prometheus?.stop();
    await new Promise((resolve) => exporter?.close(resolve));
    await dir?.cleanup();
  });

  it('scrapes the stand-in exporter under the exporter job', async () => {
    const up = await query(`up{job="${EXPORTER_JOB}"}`);
    expect(up.data?.result).toHaveLength(1);
  });

  it('records every recording rule', async () => {
    for (const r of recordingRules) {
      const res = await query(r.labels ? `${r.record}{resource_type="${r.labels.resource_type}"}` : r.record);
      expect(res.data?.result.length, r.record).toBeGreaterThan(0);
    }
  });

  it('answers every dashboard query with data', async () => {
    const problems: string[] = [];
    for (const [file, dashboard] of await loadDashboards()) {
      for (const p of allPanels(dashboard)) {
        for (const t of p.targets ?? []) {
          if (!t.expr) continue;
          const res = await query(substituteGrafanaVariables(t.expr));
          if (res.status !== 'success') problems.push(`${file} ${p.title} ${t.refId}: ${res.error}`);
          else if (!MAY_BE_EMPTY.has(p.title ?? '') && (res.data?.result.length ?? 0) === 0) problems.push(`${file} ${p.title} ${t.refId}: no data`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('with one platform, answers every panel query exactly as the dashboards before the platform variable did', async () => {
    const before = await dashboardsBeforePlatform();
    const now = await loadDashboards();
    const at = String(Date.now() / 1000 - 2);
    const instant = async (expr: string): Promise<Sample[]> => {
      const res = await fetch(`${base}/api/v1/query`, { method: 'POST', body: new URLSearchParams({ query: expr, time: at }) });
      const body = (await res.json()) as { status: string; error?: string; data: { result: Sample[] } };
      if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`);
      return body.data.result;
    };
    const differences: string[] = [];
    let compared = 0;
    for (const [file, old] of before) {
      const current = allPanels(now.get(file)!) as { id?: number; targets?: { expr?: string; refId?: string; legendFormat?: string }[] }[];
      for (const p of old.panels ?? []) {
        const newPanel = current.find((x) => x.id === p.id);
        for (const t of p.targets ?? []) {
          const newTarget = newPanel?.targets?.find((x) => x.refId === t.refId);
          if (!t.expr || !newTarget?.expr) {
            differences.push(`${file} ${p.title} ${t.refId}: gone`);
            continue;
          }
          const fixedLegend = t.legendFormat !== undefined && !t.legendFormat.includes('{{');
          const [a, b] = await Promise.all([instant(substituteGrafanaVariables(t.expr)), instant(substituteGrafanaVariables(newTarget.expr))]);
          compared += 1;
          if (JSON.stringify(rendered(a, fixedLegend)) !== JSON.stringify(rendered(b, fixedLegend))) {
            differences.push(`${file} ${p.title} ${t.refId}: ${JSON.stringify(rendered(a, fixedLegend))} became ${JSON.stringify(rendered(b, fixedLegend))}`);
          }
        }
      }
    }
    expect(differences).toEqual([]);
    expect(compared).toBeGreaterThan(40);
  });

  it('evaluates the alert rules without errors, with only the Watchdog firing at once', async () => {
    const res = (await (await fetch(`${base}/api/v1/rules?type=alert`)).json()) as { data: { groups: { rules: { name: string; health: string; lastError?: string; state: string }[] }[] } };
    const rules = res.data.groups.flatMap((g) => g.rules);
    expect(rules.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.lastError}`)).toEqual([]);
    expect(rules.filter((r) => r.state === 'firing').map((r) => r.name)).toEqual(['Watchdog']);
  });
});
