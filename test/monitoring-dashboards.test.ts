/**
 * The generated Grafana dashboards and provisioning: valid against Grafana's
 * schema types, stable uids, a datasource variable used everywhere, modern
 * panel types with descriptions and units, a first row linked to the detail
 * and the firing alerts, thresholds equal to the alert thresholds.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { config } from '../monitoring/config.js';
import { PLATFORM_NEUTRAL, PLATFORM_VARIABLE } from '../monitoring/dashboards/common.js';
import { exporterDashboard } from '../monitoring/dashboards/exporter.js';
import { overviewDashboard } from '../monitoring/dashboards/overview.js';
import { withMatcher } from '../monitoring/promql.js';
import { PROCESS_METRICS } from '../monitoring/process-metrics.js';
import { DASHBOARD_UIDS, EXPORTER_PANELS, OVERVIEW_PANELS } from '../monitoring/dashboards/ids.js';
import { REPO_ROOT } from '../monitoring/generate.js';
import { alertRules } from '../monitoring/rules.js';
import { allPanels, loadDashboards } from './helpers/monitoring-promql.js';
import { createSchemaValidator, type SchemaValidator } from './helpers/monitoring-schema.js';

interface Threshold {
  value: number | null;
  color: string;
}
interface Panel {
  type: string;
  id: number;
  title: string;
  description?: string;
  datasource?: { type: string; uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: { expr: string; refId: string; datasource?: { uid: string } }[];
  links?: { title: string; url: string }[];
  options?: unknown;
  fieldConfig?: {
    defaults: { unit?: string; custom?: Record<string, unknown>; thresholds?: { steps: Threshold[] } };
    overrides: { matcher: { id: string; options: string }; properties: { id: string; value?: unknown }[] }[];
  };
  panels?: Panel[];
}
interface Variable {
  name: string;
  type: string;
  query?: unknown;
  definition?: string;
  current?: { value: unknown };
  hide?: number;
  multi?: boolean;
  includeAll?: boolean;
  allValue?: string;
}
type DashboardJson = Record<string, unknown> & { uid: string; panels: Panel[]; templating: { list: Variable[] } };

/** Panel types Grafana ships today; `graph`, `singlestat`, `table-old` and other deprecated ones are not here. */
const MODERN_PANEL_TYPES: Record<string, { options?: string; fieldConfig?: string }> = {
  row: {},
  stat: { options: 'statOptions' },
  table: { options: 'tableOptions', fieldConfig: 'tableFieldConfig' },
  timeseries: { options: 'timeseriesOptions', fieldConfig: 'timeseriesFieldConfig' },
  bargauge: { options: 'bargaugeOptions' },
  heatmap: { options: 'heatmapOptions', fieldConfig: 'heatmapFieldConfig' },
};
/** Override properties whose values the schema describes. */
const OVERRIDE_TYPES: Record<string, string> = { thresholds: 'thresholds', mappings: 'mappings', color: 'color', unit: 'unit', decimals: 'decimals' };

let dashboards: Map<string, DashboardJson>;
let validator: SchemaValidator;

beforeAll(async () => {
  dashboards = (await loadDashboards()) as unknown as Map<string, DashboardJson>;
  validator = createSchemaValidator();
});

const panelsOf = (d: DashboardJson): Panel[] => allPanels(d) as unknown as Panel[];
const overview = (): DashboardJson => dashboards.get('ops-overview.json')!;
const panel = (d: DashboardJson, id: number): Panel => {
  const p = panelsOf(d).find((x) => x.id === id);
  if (!p) throw new Error(`no panel ${id}`);
  return p;
};
const overrideSteps = (p: Panel, name: string): Threshold[] => {
  const o = p.fieldConfig!.overrides.find((x) => x.matcher.options === name);
  const t = o?.properties.find((x) => x.id === 'thresholds')?.value as { steps: Threshold[] } | undefined;
  if (!t) throw new Error(`${p.title}: no thresholds override for ${name}`);
  return t.steps;
};
const values = (steps: Threshold[]): (number | null)[] => steps.map((s) => s.value);

describe('Grafana schema', () => {
  it('validates every dashboard, panel options, field config, override and query against the SDK\'s schema types', () => {
    for (const [file, d] of dashboards) {
      const errors = [...validator.validate('dashboard', d, file)];
      for (const p of panelsOf(d)) {
        const kind = MODERN_PANEL_TYPES[p.type];
        if (!kind) continue;
        const at = `${file} panel ${p.id}`;
        if (kind.options) errors.push(...validator.validate(kind.options, p.options, `${at}.options`));
        if (kind.fieldConfig) errors.push(...validator.validate(kind.fieldConfig, p.fieldConfig?.defaults.custom ?? {}, `${at}.custom`));
        for (const t of p.targets ?? []) errors.push(...validator.validate('prometheusQuery', t, `${at}.targets.${t.refId}`));
        for (const o of p.fieldConfig?.overrides ?? []) {
          for (const prop of o.properties) {
            const type = OVERRIDE_TYPES[prop.id];
            if (type) errors.push(...validator.validate(type, prop.value, `${at} override ${o.matcher.options} ${prop.id}`));
            else if (prop.id.startsWith('custom.') && kind.fieldConfig) {
              const merged = { ...(p.fieldConfig?.defaults.custom ?? {}), [prop.id.slice('custom.'.length)]: prop.value };
              errors.push(...validator.validate(kind.fieldConfig, merged, `${at} override ${o.matcher.options} ${prop.id}`));
            } else errors.push(`${at}: override property ${prop.id} not checked`);
          }
        }
      }
      expect(errors).toEqual([]);
    }
  });

  it('the validator rejects a broken dashboard', () => {
    const broken = structuredClone(overview()) as DashboardJson & { schemaVersion?: unknown; refreshh?: string };
    delete broken.schemaVersion;
    broken.refreshh = '1m';
    broken.panels[1]!.gridPos = { ...broken.panels[1]!.gridPos, h: 'five' as unknown as number };
    const errors = validator.validate('dashboard', broken);
    expect(errors).toContain('$.schemaVersion: required');
    expect(errors.some((e) => e.includes('refreshh'))).toBe(true);
    expect(errors.some((e) => e.includes('gridPos.h'))).toBe(true);
    expect(validator.validate('prometheusQuery', { expr: 'up', format: 'tabel' }).length).toBeGreaterThan(0);
  });
});

describe('dashboards', () => {
  it('have stable, unique uids', () => {
    expect([...dashboards.values()].map((d) => d.uid).sort()).toEqual([DASHBOARD_UIDS.exporter, DASHBOARD_UIDS.overview].sort());
  });

  it('have a datasource variable defaulting to the provisioned Prometheus, used by every panel and query', () => {
    for (const [file, d] of dashboards) {
      const v = d.templating.list.find((x) => x.name === 'datasource');
      expect(v, file).toMatchObject({ type: 'datasource', query: 'prometheus', current: { value: config.grafana.prometheusDatasourceUid } });
      for (const p of panelsOf(d).filter((x) => x.type !== 'row')) {
        for (const t of p.targets ?? []) expect(t.datasource?.uid, `${file} ${p.title}`).toBe('${datasource}');
      }
    }
  });

  it('use no deprecated panel type, and give every panel a description and a unit', () => {
    for (const [file, d] of dashboards) {
      for (const p of panelsOf(d)) {
        expect(Object.keys(MODERN_PANEL_TYPES), `${file} ${p.title}`).toContain(p.type);
        if (p.type === 'row') continue;
        expect(p.description?.length ?? 0, `${file} ${p.title} description`).toBeGreaterThan(20);
        expect(p.fieldConfig?.defaults.unit, `${file} ${p.title} unit`).toBeTruthy();
        expect(p.targets?.length ?? 0, `${file} ${p.title} queries`).toBeGreaterThan(0);
      }
    }
  });

  it('have unique panel ids and panels that do not overlap', () => {
    for (const [file, d] of dashboards) {
      const panels = panelsOf(d);
      expect(new Set(panels.map((p) => p.id)).size, file).toBe(panels.length);
      for (const a of panels) {
        for (const b of panels) {
          if (a === b) continue;
          const overlap = a.gridPos.x < b.gridPos.x + b.gridPos.w && b.gridPos.x < a.gridPos.x + a.gridPos.w && a.gridPos.y < b.gridPos.y + b.gridPos.h && b.gridPos.y < a.gridPos.y + a.gridPos.h;
          expect(overlap, `${file}: ${a.title} overlaps ${b.title}`).toBe(false);
        }
      }
    }
  });

  it('put the at-a-glance stats in the first row, each linked to its detail panel and to the firing alerts', () => {
    const d = overview();
    const rows = d.panels.filter((p) => p.type === 'row');
    expect(rows.map((r) => r.title)).toEqual(['Overview', 'Core nodes', 'Queues', 'Provisioning', 'Provisioning SLOs', 'Security', 'Backups']);
    const secondRowY = rows[1]!.gridPos.y;
    const first = d.panels.filter((p) => p.type !== 'row' && p.gridPos.y < secondRowY);
    const stats = first.filter((p) => p.type === 'stat');
    expect(stats.map((p) => p.id)).toEqual([
      OVERVIEW_PANELS.statCoreNodes,
      OVERVIEW_PANELS.statQueues,
      OVERVIEW_PANELS.statStuck,
      OVERVIEW_PANELS.statFailures,
      OVERVIEW_PANELS.statShield,
      OVERVIEW_PANELS.statFindings,
      OVERVIEW_PANELS.statBackups,
      OVERVIEW_PANELS.statSources,
    ]);
    expect(first.some((p) => p.id === OVERVIEW_PANELS.firingAlerts && p.targets![0]!.expr.startsWith('sort_desc(ALERTS{'))).toBe(true);
    const ids = new Set(panelsOf(d).map((p) => p.id));
    for (const s of stats) {
      const urls = (s.links ?? []).map((l) => l.url);
      expect(urls.some((u) => u.startsWith(config.urls.alertmanager)), `${s.title} links to firing alerts`).toBe(true);
      const detail = urls.map((u) => /viewPanel=panel-(\d+)/.exec(u)?.[1]).find(Boolean);
      if (s.id !== OVERVIEW_PANELS.statSources) expect(ids.has(Number(detail)), `${s.title} links to an existing panel`).toBe(true);
    }
  });

  it('colour the first row and the detail panels at the alert thresholds', () => {
    const d = overview();
    const c = config;
    expect(values(overrideSteps(panel(d, OVERVIEW_PANELS.coreNodesTable), 'disk'))).toEqual([null, c.coreNodes.diskWarningRatio, c.coreNodes.diskCriticalRatio]);
    expect(values(overrideSteps(panel(d, OVERVIEW_PANELS.coreNodesTable), 'RAM'))).toEqual([null, c.coreNodes.memoryWarningRatio]);
    expect(values(overrideSteps(panel(d, OVERVIEW_PANELS.coreNodesTable), 'metrics age'))).toEqual([null, c.coreNodes.metricsStaleAfterSeconds]);
    expect(values(panel(d, OVERVIEW_PANELS.coreNodesDisk).fieldConfig!.defaults.thresholds!.steps)).toEqual([null, c.coreNodes.diskWarningRatio, c.coreNodes.diskCriticalRatio]);
    expect(values(panel(d, OVERVIEW_PANELS.queuesOldestAge).fieldConfig!.defaults.thresholds!.steps)).toEqual([null, c.queues.oldestWaitingWarningSeconds]);
    expect(values(overrideSteps(panel(d, OVERVIEW_PANELS.statFailures), `new in ${c.provisioning.failureSpikeWindow}`))).toEqual([null, c.provisioning.failureSpikeCount]);
    expect(values(overrideSteps(panel(d, OVERVIEW_PANELS.statShield), 'rate vs 24 h avg'))).toEqual([null, c.security.blockSurgeFactor]);
    for (const [rt, limit] of Object.entries(c.backups.maxAgeSeconds)) {
      expect(values(overrideSteps(panel(d, OVERVIEW_PANELS.statBackups), rt))).toEqual([null, limit]);
    }
    // Paging conditions are red, ticketing ones orange.
    expect(overrideSteps(panel(d, OVERVIEW_PANELS.statQueues), 'no workers').at(-1)!.color).toBe('red');
    expect(overrideSteps(panel(d, OVERVIEW_PANELS.statFindings), 'CRITICAL').at(-1)!.color).toBe('red');
    expect(overrideSteps(panel(d, OVERVIEW_PANELS.statQueues), 'behind').at(-1)!.color).toBe('orange');
  });

  it('have a hidden platform variable ("All") used by every query, the config\'s platform-neutral series aside', () => {
    expect(config.multiPlatform).toBe(false);
    const matcher = `${config.platformLabel}=~"$${PLATFORM_VARIABLE}"`;
    for (const [file, d] of dashboards) {
      const v = d.templating.list.find((x) => x.name === PLATFORM_VARIABLE);
      expect(v, file).toMatchObject({ type: 'query', hide: 2, multi: false, includeAll: true, allValue: '.*', current: { value: '$__all' } });
      expect(v!.definition).toBe(`label_values(up{${config.selectors.exporterJob}}, ${config.platformLabel})`);
      for (const p of panelsOf(d).filter((x) => x.type !== 'row')) {
        for (const t of p.targets ?? []) {
          // Adding the matcher again changes nothing only where every selector already carries it.
          const stripped = t.expr.replaceAll(`${matcher}, `, '').replaceAll(`{${matcher}}`, '');
          expect(withMatcher(stripped, matcher, PLATFORM_NEUTRAL), `${file} ${p.title} ${t.refId}`).toBe(t.expr);
          if (!PLATFORM_NEUTRAL.includes(t.expr)) expect(t.expr, `${file} ${p.title} ${t.refId}`).toContain(matcher);
        }
      }
      // Other variables offer the values of the selected platforms.
      for (const other of d.templating.list.filter((x) => x.type === 'query' && x.name !== PLATFORM_VARIABLE)) expect(other.definition, other.name).toContain(matcher);
    }
  });

  it('with multiPlatform, offer several platforms and tell them apart in legends and tables', () => {
    const saved = config.multiPlatform;
    config.multiPlatform = true;
    try {
      for (const d of [overviewDashboard(), exporterDashboard()] as unknown as DashboardJson[]) {
        const v = d.templating.list.find((x) => x.name === PLATFORM_VARIABLE);
        expect(v, d.uid).toMatchObject({ hide: 0, multi: true, includeAll: true });
        expect(validator.validate('dashboard', JSON.parse(JSON.stringify(d)), d.uid)).toEqual([]);
      }
      const o = overviewDashboard() as unknown as DashboardJson;
      const legends = panelsOf(o).flatMap((p) => (p.targets ?? []) as { legendFormat?: string }[]).map((t) => t.legendFormat);
      expect(legends).toContain(`{{${config.platformLabel}}} {{node}}`);
      expect(legends).toContain(`{{${config.platformLabel}}} {{prefix}}:{{queue}}`);
      const table = panel(o, OVERVIEW_PANELS.coreNodesTable) as Panel & { transformations: { id: string; options: { indexByName?: Record<string, number>; excludeByName?: Record<string, boolean> } }[] };
      const organize = table.transformations.find((t) => t.id === 'organize')!.options;
      expect(organize.indexByName![config.platformLabel]).toBe(0);
      expect(organize.excludeByName![config.platformLabel]).toBeUndefined();
    } finally {
      config.multiPlatform = saved;
    }
    const single = panel(overview(), OVERVIEW_PANELS.coreNodesTable) as Panel & { transformations: { id: string; options: { excludeByName?: Record<string, boolean> } }[] };
    expect(single.transformations.find((t) => t.id === 'organize')!.options.excludeByName![config.platformLabel]).toBe(true);
  });

  it('filter the queue panels with the queue variable', () => {
    const d = overview();
    expect(d.templating.list.find((v) => v.name === 'queue')).toMatchObject({ type: 'query' });
    for (const id of [OVERVIEW_PANELS.queuesBacklog, OVERVIEW_PANELS.queuesOldestAge, OVERVIEW_PANELS.queuesWorkers, OVERVIEW_PANELS.queuesFailed]) {
      expect(panel(d, id).targets![0]!.expr).toContain('queue=~"$queue"');
    }
  });

  it('the exporter dashboard shows sources, durations, errors and scrape size', () => {
    const d = dashboards.get('ops-overview-exporter.json')!;
    const exprs = panelsOf(d).flatMap((p) => (p.targets ?? []).map((t) => t.expr)).join('\n');
    for (const needle of ['ops_source_up', 'ops_source_collect_duration_seconds', 'ops_source_errors_total', 'scrape_samples_scraped', 'scrape_duration_seconds']) {
      expect(exprs).toContain(needle);
    }
    expect(panel(d, EXPORTER_PANELS.durations).fieldConfig!.defaults.unit).toBe('s');
  });

  it('the exporter dashboard shows the process: resident memory, CPU, event-loop lag and heap of each replica', () => {
    const d = dashboards.get('ops-overview-exporter.json')!;
    const job = config.selectors.exporterJob;
    const m = `${config.platformLabel}=~"$${PLATFORM_VARIABLE}", ${job}`;
    const expected: [number, string, string][] = [
      [EXPORTER_PANELS.residentMemory, `${PROCESS_METRICS.residentMemory.name}{${m}}`, 'bytes'],
      [EXPORTER_PANELS.cpu, `rate(${PROCESS_METRICS.cpuSeconds.name}{${m}}[$__rate_interval])`, 'percentunit'],
      [EXPORTER_PANELS.eventLoopLag, `${PROCESS_METRICS.eventLoopLagP99.name}{${m}}`, 's'],
      [EXPORTER_PANELS.heapUsed, `${PROCESS_METRICS.heapUsed.name}{${m}}`, 'bytes'],
    ];
    for (const [id, expr, unit] of expected) {
      const p = panel(d, id);
      expect(p.targets!.map((t) => t.expr)).toEqual([expr]);
      expect(p.fieldConfig!.defaults.unit).toBe(unit);
    }
  });

  it('every alert\'s dashboard_url opens an existing dashboard and panel', () => {
    for (const r of alertRules) {
      const url = new URL(r.dashboardUrl.replace(/\{\{[^}]+\}\}/g, 'x'));
      const uid = url.pathname.split('/')[2];
      const d = [...dashboards.values()].find((x) => x.uid === uid);
      expect(d, `${r.alert}: ${r.dashboardUrl}`).toBeDefined();
      const view = url.searchParams.get('viewPanel');
      if (view) expect(panelsOf(d!).some((p) => `panel-${p.id}` === view), `${r.alert}: ${view}`).toBe(true);
    }
  });
});

describe('Grafana provisioning', () => {
  it('provisions the Prometheus datasource with the pinned uid, and the dashboards folder', async () => {
    const ds = parse(await readFile(join(REPO_ROOT, 'grafana/provisioning/datasources/ops-overview.yml'), 'utf8')) as { apiVersion: number; datasources: { uid: string; type: string; url: string }[] };
    expect(ds.apiVersion).toBe(1);
    expect(ds.datasources.find((x) => x.type === 'prometheus')).toMatchObject({ uid: config.grafana.prometheusDatasourceUid, url: config.stack.prometheusUrl });
    const prov = parse(await readFile(join(REPO_ROOT, 'grafana/provisioning/dashboards/ops-overview.yml'), 'utf8')) as { providers: { type: string; options: { path: string }; folderUid: string }[] };
    expect(prov.providers[0]).toMatchObject({ type: 'file', folderUid: config.grafana.folderUid, options: { path: config.grafana.dashboardsPath } });
  });
});
