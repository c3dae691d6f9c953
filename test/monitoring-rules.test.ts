/**
 * The generated Prometheus rules: promtool accepts them, every alert fires
 * with its exact labels and annotations in one scenario and stays quiet in
 * another (promtool test rules), each scenario again with two exporter
 * replicas and with two platforms, and every rule follows the conventions
 * (the platform label kept through every aggregation).
 */
import { access, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parser } from '@prometheus-io/lezer-promql';
import { parse, stringify } from 'yaml';
import { config } from '../monitoring/config.js';
import { REPO_ROOT } from '../monitoring/generate.js';
import { ALERT_NAMES, alertRules, recordingRules, RECORDED, type AlertName } from '../monitoring/rules.js';
import { RULE_FILES } from '../monitoring/stack.js';
import {
  ALWAYS_FIRING,
  haCases,
  healthyPlatform,
  NO_PLATFORM_VARIANT,
  NO_REPLICA_VARIANT,
  pagingScenarios,
  promtoolExpectation,
  ruleCases,
  type RuleCase,
} from './helpers/monitoring-rule-cases.js';
import { run, shouldRunWith, tempDir } from './helpers/monitoring-tools.js';

const ruleFiles = RULE_FILES.map((f) => join(REPO_ROOT, 'prometheus', f));
/** The cases as written (one replica, no platform label), then with two replicas and with two platforms. */
const allCases = [...ruleCases, ...haCases(ruleCases)];

/**
 * Groupings of an expression that lose the platform label: an aggregation
 * without `by`/`without`, a `by (...)` or `on (...)` without the platform
 * label, a `without (...)` that drops it.
 */
function platformLosses(expr: string): string[] {
  const platform = config.platformLabel;
  const losses: string[] = [];
  const labels = (node: { getChild(name: string): { getChildren(name: string): { from: number; to: number }[] } | null }) =>
    (node.getChild('GroupingLabels')?.getChildren('LabelName') ?? []).map((l) => expr.slice(l.from, l.to));
  parser.parse(expr).iterate({
    enter(ref) {
      if (ref.name === 'AggregateExpr') {
        const mod = ref.node.getChild('AggregateModifier');
        const text = expr.slice(ref.from, ref.to);
        if (!mod) losses.push(`no by/without: ${text}`);
        else if (mod.getChild('By') && !labels(mod).includes(platform)) losses.push(`by without ${platform}: ${text}`);
        else if (mod.getChild('Without') && labels(mod).includes(platform)) losses.push(`without ${platform}: ${text}`);
      }
      if (ref.name === 'MatchingModifierClause' && ref.node.getChild('On') && !labels(ref.node).includes(platform)) {
        losses.push(`on without ${platform}: ${expr.slice(ref.from, ref.to)}`);
      }
    },
  });
  return losses;
}

interface RuleFileDoc {
  groups: { name: string; rules: Record<string, unknown>[] }[];
}

async function loadRules(): Promise<Record<string, unknown>[]> {
  const docs = await Promise.all(ruleFiles.map(async (f) => parse(await readFile(f, 'utf8')) as RuleFileDoc));
  return docs.flatMap((d) => d.groups.flatMap((g) => g.rules));
}

/** The promtool test document for some cases (one test group per case). */
function promtoolTestDocument(cases: RuleCase[]): object {
  return {
    rule_files: ruleFiles,
    evaluation_interval: '1m',
    tests: cases.map((c) => ({
      name: `${c.alert}: ${c.name}`,
      interval: c.interval ?? '1m',
      input_series: c.series,
      alert_rule_test: [
        {
          eval_time: c.evalTime,
          alertname: c.alert,
          exp_alerts: c.expected.map((e) => promtoolExpectation(c.alert, e)),
        },
      ],
    })),
  };
}

describe('rule conventions', () => {
  it('keeps the platform label through every aggregation and vector match', () => {
    const losses = [...recordingRules.map((r) => [r.record, r.expr] as const), ...alertRules.map((r) => [r.alert, r.expr] as const)].flatMap(([name, expr]) =>
      platformLosses(expr).map((l) => `${name}: ${l}`),
    );
    expect(losses).toEqual([]);
    // The check itself sees each way of losing it.
    expect(platformLosses('max(a) > 0 and on (node) sum by (node) (b) or max without (platform) (c)')).toHaveLength(4);
    expect(platformLosses('sum by (platform, node) (max without (instance, pod) (a)) and on (platform, node) b')).toEqual([]);
  });

  it('merges exporter replicas before every sum', () => {
    const unmerged: string[] = [];
    for (const r of [...recordingRules, ...alertRules]) {
      for (const m of r.expr.matchAll(/sum by \([^)]*\) \((.{0,40})/g)) {
        if (!m[1]!.startsWith(`max without (${config.replicaLabels.join(', ')})`) && !m[1]!.startsWith('rate(ops_source_')) unmerged.push(`${'record' in r ? r.record : r.alert}: ${m[0]}`);
      }
    }
    expect(unmerged).toEqual([]);
  });

  it('names recording rules level:metric:operation', () => {
    for (const r of recordingRules) expect(r.record).toMatch(/^[a-z_]*:[a-z0-9_]+:[a-z0-9_]+$/);
    expect(new Set(recordingRules.map((r) => r.record))).toEqual(new Set(Object.values(RECORDED)));
  });

  it('gives every alert a known severity, an area, the four annotations and a for: (the Watchdog aside)', async () => {
    const rules = (await loadRules()).filter((r) => 'alert' in r);
    expect(rules.length).toBe(alertRules.length);
    for (const r of rules) {
      const labels = r.labels as Record<string, string>;
      const annotations = r.annotations as Record<string, string>;
      expect(['critical', 'warning', 'info'], String(r.alert)).toContain(labels.severity);
      expect(labels.area, String(r.alert)).toMatch(/^[a-z_]+$/);
      expect(Object.keys(annotations).sort()).toEqual(['dashboard_url', 'description', 'runbook_url', 'summary']);
      if (r.alert !== 'Watchdog') expect(annotations.description, String(r.alert)).toMatch(/\{\{/);
      if (r.alert !== 'Watchdog') expect(r.for, String(r.alert)).toMatch(/^\d+[smhd]$/);
      expect(String(r.alert)).toMatch(/^(Ops[A-Z][A-Za-z]+|Watchdog)$/);
    }
  });

  it('points every runbook_url at a file in docs/runbooks', async () => {
    const rules = (await loadRules()).filter((r) => 'alert' in r);
    for (const r of rules) {
      const url = (r.annotations as Record<string, string>).runbook_url!;
      const file = url.split('/').pop()!;
      expect(file).toBe(`${String(r.alert)}.md`);
      await expect(access(join(REPO_ROOT, 'docs/runbooks', file)), url).resolves.toBeUndefined();
    }
  });

  it('pages only for symptoms someone must act on now', () => {
    const paging = [...new Set(alertRules.filter((r) => r.severity === 'critical').map((r) => r.alert))].sort();
    expect(paging).toEqual([
      'OpsBackupNeverSucceeded',
      'OpsBackupTooOld',
      'OpsCoreNodeDiskHigh',
      'OpsCoreNodeDown',
      'OpsExporterDown',
      'OpsExporterSourceDown',
      'OpsGuardianCriticalFindingsOpen',
      'OpsProvisioningErrorBudgetBurn',
      'OpsProvisioningJobsStuck',
      'OpsProvisioningLatencyBudgetBurn',
      'OpsQueueNoWorkers',
      'OpsQueueStalled',
    ]);
  });

  it('has a firing and a quiet case for every alert, each also with two replicas and with two platforms', () => {
    for (const name of ALERT_NAMES) {
      const cases = allCases.filter((c) => c.alert === name);
      const variants: [string, (c: RuleCase) => boolean, boolean][] = [
        ['', (c) => !c.name.includes(' ['), true],
        [' with two replicas', (c) => c.name.endsWith('[two replicas]'), !NO_REPLICA_VARIANT[name]],
        [' with two platforms', (c) => c.name.includes('[two platforms'), !NO_PLATFORM_VARIANT[name]],
      ];
      for (const [what, is, required] of variants) {
        if (!required) continue;
        expect(cases.some((c) => is(c) && c.expected.length > 0), `${name} has no firing case${what}`).toBe(true);
        if (!ALWAYS_FIRING[name]) expect(cases.some((c) => is(c) && c.expected.length === 0), `${name} has no quiet case${what}`).toBe(true);
      }
    }
    // Its own cases give OpsExporterReplicaDown two replicas.
    expect(ruleCases.filter((c) => c.alert === 'OpsExporterReplicaDown').every((c) => c.series.filter((x) => x.series.startsWith('up{')).length === 2)).toBe(true);
    // Every severity tier of an alert is seen firing somewhere.
    for (const r of alertRules) {
      const seen = ruleCases.some((c) => c.alert === r.alert && c.expected.some((e) => e.severity === r.severity));
      expect(seen, `${r.alert} (${r.severity}) is never seen firing`).toBe(true);
    }
  });
});

describe.runIf(shouldRunWith('promtool'))('promtool', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  beforeAll(async () => {
    dir = await tempDir('rules');
  });
  afterAll(async () => {
    await dir?.cleanup();
  });

  it('check rules accepts the rule files', async () => {
    const res = await run('promtool', ['check', 'rules', ...ruleFiles]);
    expect(res.code, res.stdout + res.stderr).toBe(0);
  });

  const byAlert = new Map<AlertName, RuleCase[]>();
  for (const c of allCases) byAlert.set(c.alert, [...(byAlert.get(c.alert) ?? []), c]);

  for (const [alert, cases] of byAlert) {
    it(`test rules: ${alert} (${cases.map((c) => c.name).join('; ')})`, async () => {
      const file = join(dir.path, `${alert}.test.yml`);
      await writeFile(file, stringify(promtoolTestDocument(cases), { lineWidth: 0 }));
      // A hang guard, not a speed bound: the SLO cases evaluate three days of
      // series at one-minute steps, which takes promtool long on busy cores.
      const res = await run('promtool', ['test', 'rules', file], { timeoutMs: 240_000 });
      expect(res.code, `${res.stdout}\n${res.stderr}`).toBe(0);
    }, 300_000);
  }
});

describe.runIf(shouldRunWith('promtool'))('paging on a realistic platform', () => {
  const MINUTES = 180;
  let dir: { path: string; cleanup: () => Promise<void> };
  beforeAll(async () => {
    dir = await tempDir('paging');
  });
  afterAll(async () => {
    await dir?.cleanup();
  });

  it('a healthy platform fires nothing but the Watchdog', async () => {
    const series = healthyPlatform(MINUTES);
    const doc = {
      rule_files: ruleFiles,
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: [...series].map(([s, values]) => ({ series: s, values })),
          promql_expr_test: [40, 90, MINUTES].map((m) => ({
            expr: 'count by (alertname, severity) (ALERTS)',
            eval_time: `${m}m`,
            exp_samples: [{ labels: '{alertname="Watchdog", severity="info"}', value: 1 }],
          })),
        },
      ],
    };
    const file = join(dir.path, 'healthy.test.yml');
    await writeFile(file, stringify(doc, { lineWidth: 0 }));
    const res = await run('promtool', ['test', 'rules', file], { timeoutMs: 30_000 });
    expect(res.code, `${res.stdout}\n${res.stderr}`).toBe(0);
  });

  for (const scenario of pagingScenarios) {
    it(`${scenario.name} pages ${scenario.pages.join(', ') || 'nothing'} and tickets ${scenario.tickets.join(', ') || 'nothing'}`, async () => {
      const series = healthyPlatform(MINUTES);
      scenario.change(series, MINUTES);
      const doc = {
        rule_files: ruleFiles,
        evaluation_interval: '1m',
        tests: [
          {
            interval: '1m',
            input_series: [...series].map(([s, values]) => ({ series: s, values })),
            promql_expr_test: [
              {
                expr: 'count by (alertname) (ALERTS{alertstate="firing", severity="critical"})',
                eval_time: `${MINUTES}m`,
                exp_samples: scenario.pages.map((a) => ({ labels: `{alertname="${a}"}`, value: 1 })),
              },
              {
                expr: 'count by (alertname) (ALERTS{alertstate="firing", severity="warning"})',
                eval_time: `${MINUTES}m`,
                exp_samples: scenario.tickets.map((a) => ({ labels: `{alertname="${a}"}`, value: 1 })),
              },
            ],
          },
        ],
      };
      const file = join(dir.path, `paging-${pagingScenarios.indexOf(scenario)}.test.yml`);
      await writeFile(file, stringify(doc, { lineWidth: 0 }));
      // A hang guard, not a speed bound: the SLO cases evaluate three days of
      // series at one-minute steps, which takes promtool long on busy cores.
      const res = await run('promtool', ['test', 'rules', file], { timeoutMs: 240_000 });
      expect(res.code, `${res.stdout}\n${res.stderr}`).toBe(0);
    }, 300_000);
  }
});
