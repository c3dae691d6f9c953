/**
 * The generated prometheus.yml: promtool accepts it (with the rule files it
 * names), it scrapes the exporter under the job the alerts select, and it
 * sends alerts to Alertmanager.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { config } from '../monitoring/config.js';
import { REPO_ROOT } from '../monitoring/generate.js';
import { durationSeconds } from '../monitoring/promql.js';
import { EXPORTER_JOB, RULE_FILES } from '../monitoring/stack.js';
import { run, shouldRunWith } from './helpers/monitoring-tools.js';

const FILE = join(REPO_ROOT, 'prometheus/prometheus.yml');
const HA_FILE = join(REPO_ROOT, 'prometheus/prometheus.ha.yml');

interface PromConfig {
  rule_files: string[];
  alerting: { alertmanagers: { static_configs: { targets: string[] }[] }[] };
  scrape_configs: { job_name: string; scrape_interval: string; scrape_timeout: string; metrics_path?: string; static_configs: { targets: string[] }[] }[];
}

describe('prometheus.yml', () => {
  it('scrapes the exporter under the job the alerts and dashboards select', async () => {
    const doc = parse(await readFile(FILE, 'utf8')) as PromConfig;
    const job = doc.scrape_configs.find((s) => s.job_name === EXPORTER_JOB)!;
    expect(config.selectors.exporterJob).toBe(`job="${job.job_name}"`);
    expect(job.static_configs[0]!.targets).toEqual([config.stack.exporterTarget]);
    expect(job.metrics_path).toBe('/metrics');
    expect(durationSeconds(job.scrape_timeout)).toBeLessThanOrEqual(durationSeconds(job.scrape_interval));
    expect(doc.rule_files).toEqual([...RULE_FILES]);
    expect(doc.alerting.alertmanagers[0]!.static_configs[0]!.targets).toEqual([config.stack.alertmanagerTarget]);
  });

  it('scrapes often enough for every for: to see several samples', () => {
    const fors = [config.coreNodes.downFor, config.queues.noWorkersFor, config.provisioning.stuckFor, config.exporter.downFor, config.security.guardianCriticalFor];
    for (const f of fors) expect(durationSeconds(f) / durationSeconds(config.stack.scrapeInterval), f).toBeGreaterThanOrEqual(4);
  });

  it.runIf(shouldRunWith('promtool'))('promtool check config accepts it and its rule files', async () => {
    const res = await run('promtool', ['check', 'config', FILE]);
    expect(res.code, res.stdout + res.stderr).toBe(0);
    expect(res.stdout).toContain(`SUCCESS: ${RULE_FILES.length} rule files found`);
  });
});

describe('prometheus.ha.yml (one of a Prometheus pair over several platforms)', () => {
  interface HaConfig {
    global: { external_labels: Record<string, string> };
    rule_files: string[];
    alerting: { alert_relabel_configs: { action: string; regex: string }[]; alertmanagers: { static_configs: { targets: string[] }[] }[] };
    scrape_configs: { job_name: string; static_configs: { targets: string[]; labels?: Record<string, string> }[] }[];
  }

  it('sets the platform as a target label, tells the pair apart by an external label that it drops from alerts, and sends to every Alertmanager peer', async () => {
    const doc = parse(await readFile(HA_FILE, 'utf8')) as HaConfig;
    const ha = config.ha;
    expect(doc.global.external_labels).toEqual({ [ha.replicaLabel]: `\${${ha.replicaEnv}}` });
    expect(doc.alerting.alert_relabel_configs).toEqual([{ action: 'labeldrop', regex: ha.replicaLabel }]);
    expect(doc.alerting.alertmanagers.flatMap((a) => a.static_configs.flatMap((s) => s.targets))).toEqual([...ha.alertmanagerTargets]);
    const job = doc.scrape_configs.find((s) => s.job_name === EXPORTER_JOB)!;
    expect(job.static_configs).toEqual(Object.entries(ha.platforms).map(([platform, targets]) => ({ targets: [...targets], labels: { [config.platformLabel]: platform } })));
    expect(Object.values(ha.platforms).every((targets) => targets.length >= 2)).toBe(true);
    expect(doc.rule_files).toEqual([...RULE_FILES]);
  });

  it.runIf(shouldRunWith('promtool'))('promtool check config accepts it and its rule files', async () => {
    const res = await run('promtool', ['check', 'config', HA_FILE]);
    expect(res.code, res.stdout + res.stderr).toBe(0);
    expect(res.stdout).toContain(`SUCCESS: ${RULE_FILES.length} rule files found`);
  });
});
