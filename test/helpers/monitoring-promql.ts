/**
 * Reads PromQL out of the generated bundle and checks it with a real PromQL
 * parser (@prometheus-io/lezer-promql, the grammar of Prometheus's own UI):
 * syntax errors, metric names and label matchers.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parser } from '@prometheus-io/lezer-promql';
import { parse } from 'yaml';
import { REPO_ROOT } from '../../monitoring/generate.js';

/** One PromQL expression and where it comes from. */
export interface FoundExpr {
  where: string;
  expr: string;
}

/** What an expression references. */
export interface ExprAnalysis {
  syntaxErrors: string[];
  metrics: string[];
  /** Label names used in matchers, per metric. */
  matchers: { metric: string; label: string }[];
}

/** Grafana's template variables replaced by values that keep the PromQL valid. */
export function substituteGrafanaVariables(expr: string): string {
  return expr
    .replaceAll('$__rate_interval', '5m')
    .replaceAll('$__interval', '1m')
    .replaceAll('$__range', '1h')
    .replace(/\$\{?[a-z_]+(?::[a-z]+)?\}?/g, '.*');
}

/** Parses an expression and lists what it references. */
export function analyze(expr: string): ExprAnalysis {
  const tree = parser.parse(expr);
  const result: ExprAnalysis = { syntaxErrors: [], metrics: [], matchers: [] };
  tree.iterate({
    enter(ref) {
      if (ref.type.isError) result.syntaxErrors.push(`syntax error at ${ref.from}: ${JSON.stringify(expr.slice(Math.max(0, ref.from - 20), ref.to + 20))}`);
      if (ref.name !== 'VectorSelector') return;
      const node = ref.node;
      const id = node.getChild('Identifier');
      const metric = id ? expr.slice(id.from, id.to) : '';
      if (metric) result.metrics.push(metric);
      const matchers = node.getChild('LabelMatchers');
      for (const m of matchers ? matchers.getChildren('UnquotedLabelMatcher') : []) {
        const label = m.getChild('LabelName');
        if (label) result.matchers.push({ metric, label: expr.slice(label.from, label.to) });
      }
    },
  });
  return result;
}

interface PanelJson {
  type: string;
  title?: string;
  targets?: { expr?: string; refId?: string }[];
  panels?: PanelJson[];
}

/** Every panel of a dashboard, rows' nested panels included. */
export function allPanels(dashboard: { panels?: PanelJson[] }): PanelJson[] {
  return (dashboard.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** The generated dashboards, by file name. */
export async function loadDashboards(): Promise<Map<string, Record<string, unknown> & { panels?: PanelJson[] }>> {
  const files = ['ops-overview.json', 'ops-overview-exporter.json'];
  return new Map(await Promise.all(files.map(async (f) => [f, JSON.parse(await readFile(join(REPO_ROOT, 'grafana/dashboards', f), 'utf8'))] as const)));
}

/** Every PromQL expression of the generated rule files and dashboards (variables substituted). */
export async function collectExpressions(): Promise<FoundExpr[]> {
  const found: FoundExpr[] = [];
  for (const file of ['ops-overview.recording.yml', 'ops-overview.alerts.yml']) {
    const doc = parse(await readFile(join(REPO_ROOT, 'prometheus/rules', file), 'utf8')) as { groups: { rules: { record?: string; alert?: string; expr: string }[] }[] };
    for (const g of doc.groups) for (const r of g.rules) found.push({ where: `${file}: ${r.record ?? r.alert}`, expr: r.expr });
  }
  for (const [file, dashboard] of await loadDashboards()) {
    for (const p of allPanels(dashboard)) {
      for (const t of p.targets ?? []) if (t.expr) found.push({ where: `${file}: ${p.title} (${t.refId})`, expr: substituteGrafanaVariables(t.expr) });
    }
    const variables = ((dashboard.templating as { list?: { name: string; type: string; definition?: string }[] }).list ?? []);
    for (const v of variables) {
      const m = v.type === 'query' ? /^label_values\((.+),\s*[a-z_]+\)$/.exec(v.definition ?? '') : null;
      if (m) found.push({ where: `${file}: variable ${v.name}`, expr: m[1]! });
    }
  }
  return found;
}
