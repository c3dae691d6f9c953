/**
 * The generated alertmanager.yml: amtool accepts it, routes every severity
 * and the Watchdog to their receivers, keeps secrets out of the repository,
 * and a real Alertmanager process inhibits what it should (alerts posted to
 * its API, inhibition read back).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { GROUP_BY, RECEIVERS } from '../monitoring/alertmanager.js';
import { config } from '../monitoring/config.js';
import { REPO_ROOT } from '../monitoring/generate.js';
import { alertRules, type Severity } from '../monitoring/rules.js';
import { run, shouldRunWith, startDaemon, tempDir, waitFor, type Daemon } from './helpers/monitoring-tools.js';

const AM_CONFIG = join(REPO_ROOT, 'alertmanager/alertmanager.yml');

const receiverFor: Record<Severity, string> = {
  critical: RECEIVERS.pager,
  warning: RECEIVERS.ticket,
  info: RECEIVERS.info,
};

/** The receiver amtool routes a label set to. */
async function routeOf(labels: Record<string, string>): Promise<string> {
  const args = ['config', 'routes', 'test', `--config.file=${AM_CONFIG}`, ...Object.entries(labels).map(([k, v]) => `${k}=${v}`)];
  const res = await run('amtool', args);
  expect(res.code, res.stderr).toBe(0);
  return res.stdout.trim();
}

describe('alertmanager.yml with several platforms', () => {
  it('groups by the platform label: one notification per alert, platform and object', async () => {
    const doc = parse(await readFile(AM_CONFIG, 'utf8')) as { route: { group_by: string[] }; inhibit_rules: { equal: string[] }[] };
    expect(doc.route.group_by).toEqual(GROUP_BY);
    expect(GROUP_BY.slice(0, 2)).toEqual(['alertname', config.platformLabel]);
    // No inhibition reaches across platforms.
    for (const rule of doc.inhibit_rules) expect(rule.equal).toContain(config.platformLabel);
  });
});

describe('alertmanager.yml without secrets', () => {
  it('reads every secret from a file, never from the repository', async () => {
    const doc = parse(await readFile(AM_CONFIG, 'utf8')) as { receivers: Record<string, unknown>[] };
    const text = JSON.stringify(doc.receivers);
    // Keys that would carry a secret inline; their *_file variants are fine.
    for (const key of ['api_url', 'routing_key', 'service_key', 'api_key', 'auth_password', 'bot_token', 'credentials', 'password', 'token']) {
      expect(text, key).not.toMatch(new RegExp(`"${key}":`));
    }
    for (const r of doc.receivers) {
      for (const hook of (r.webhook_configs ?? []) as { url: string; http_config?: { authorization?: { credentials_file?: string } } }[]) {
        const url = new URL(hook.url);
        expect(url.username + url.password + url.search, `${r.name as string} webhook URL carries no credentials`).toBe('');
        expect(hook.http_config?.authorization?.credentials_file, 'webhook authenticates with a mounted token').toMatch(/^\//);
      }
    }
  });
});

describe.runIf(shouldRunWith('amtool'))('amtool', () => {
  it('check-config accepts the file', async () => {
    const res = await run('amtool', ['check-config', AM_CONFIG]);
    expect(res.code, res.stdout + res.stderr).toBe(0);
    expect(res.stdout).toContain('SUCCESS');
  });

  it.each([
    ['critical', RECEIVERS.pager],
    ['warning', RECEIVERS.ticket],
    ['info', RECEIVERS.info],
  ])('routes severity=%s to %s', async (severity, receiver) => {
    expect(await routeOf({ alertname: 'OpsSomething', severity })).toBe(receiver);
  });

  it('routes the Watchdog to the dead man\'s switch, not to info', async () => {
    expect(await routeOf({ alertname: 'Watchdog', severity: 'info', area: 'monitoring' })).toBe(RECEIVERS.watchdog);
  });

  it('sends an alert without a severity to the ticket receiver rather than dropping it', async () => {
    expect(await routeOf({ alertname: 'SomeoneElsesAlert' })).toBe(RECEIVERS.ticket);
  });

  it('routes every alert of the bundle by its severity', async () => {
    for (const r of alertRules) {
      const expected = r.alert === 'Watchdog' ? RECEIVERS.watchdog : receiverFor[r.severity];
      expect(await routeOf({ alertname: r.alert, severity: r.severity, area: r.area }), `${r.alert} (${r.severity})`).toBe(expected);
    }
  });
});

interface ApiAlert {
  labels: Record<string, string>;
  fingerprint: string;
  receivers: { name: string }[];
  status: { state: string; inhibitedBy: string[]; silencedBy: string[] };
}

describe.runIf(shouldRunWith('prometheus-alertmanager'))('a real Alertmanager', () => {
  let am: Daemon | undefined;
  let dir: { path: string; cleanup: () => Promise<void> };
  let base = '';

  beforeAll(async () => {
    dir = await tempDir('am');
    // The bundle's routes and inhibit rules, with receivers that notify nobody: the test must not
    // reach PagerDuty or chat. Inhibition is decided before receivers are involved.
    const doc = parse(await readFile(AM_CONFIG, 'utf8')) as { receivers: { name: string }[] };
    doc.receivers = doc.receivers.map((r) => ({ name: r.name }));
    const configFile = join(dir.path, 'alertmanager.yml');
    await writeFile(configFile, stringify(doc));

    am = await startDaemon('prometheus-alertmanager', (port, attempt) => [
      `--config.file=${configFile}`,
      `--storage.path=${join(dir.path, `data-${attempt}`)}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--cluster.listen-address=',
    ]);
    base = am.base;
  });

  afterAll(async () => {
    await am?.stop();
    await dir?.cleanup();
  });

  const alert = (alertname: string, severity: Severity, area: string, labels: Record<string, string>) => ({
    labels: { alertname, severity, area, ...labels },
    annotations: { summary: `${alertname} test` },
  });

  /** Posts alerts, then waits until every one is listed and the inhibitor has caught up. */
  async function post(alerts: ReturnType<typeof alert>[], expectInhibited: number): Promise<ApiAlert[]> {
    const res = await fetch(`${base}/api/v2/alerts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(alerts) });
    expect(res.status, await res.text()).toBe(200);
    return waitFor(
      'alerts listed with their inhibition',
      async () => {
        const listed = (await (await fetch(`${base}/api/v2/alerts`)).json()) as ApiAlert[];
        const mine = listed.filter((a) => alerts.some((p) => Object.entries(p.labels).every(([k, v]) => a.labels[k] === v)));
        const inhibited = mine.filter((a) => a.status.inhibitedBy.length > 0).length;
        return mine.length === alerts.length && inhibited >= expectInhibited ? mine : undefined;
      },
      10_000,
    );
  }

  const find = (alerts: ApiAlert[], labels: Record<string, string>): ApiAlert => {
    const a = alerts.find((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v));
    if (!a) throw new Error(`no alert ${JSON.stringify(labels)}`);
    return a;
  };

  it('a node down silences that node\'s dependent alerts, not other nodes\'', async () => {
    const alerts = await post(
      [
        alert('OpsCoreNodeDown', 'critical', 'core_nodes', { node: 'DB-CORE' }),
        alert('OpsCoreNodeMetricsStale', 'warning', 'core_nodes', { node: 'DB-CORE' }),
        alert('OpsCoreNodeMemoryHigh', 'warning', 'core_nodes', { node: 'DB-CORE' }),
        alert('OpsCoreNodeMetricsStale', 'warning', 'core_nodes', { node: 'SRV1-WEB' }),
      ],
      2,
    );
    const down = find(alerts, { alertname: 'OpsCoreNodeDown', node: 'DB-CORE' });
    expect(down.status.state).toBe('active');
    expect(down.receivers.map((r) => r.name)).toEqual([RECEIVERS.pager]);
    expect(find(alerts, { alertname: 'OpsCoreNodeMetricsStale', node: 'DB-CORE' }).status.inhibitedBy).toEqual([down.fingerprint]);
    expect(find(alerts, { alertname: 'OpsCoreNodeMemoryHigh', node: 'DB-CORE' }).status.inhibitedBy).toEqual([down.fingerprint]);
    const other = find(alerts, { alertname: 'OpsCoreNodeMetricsStale', node: 'SRV1-WEB' });
    expect(other.status.state).toBe('active');
    expect(other.receivers.map((r) => r.name)).toEqual([RECEIVERS.ticket]);
  });

  it('the exporter down silences the source-down alerts', async () => {
    const alerts = await post(
      [
        alert('OpsExporterDown', 'critical', 'exporter', { job: 'ops-overview' }),
        alert('OpsExporterSourceDown', 'warning', 'exporter', { job: 'ops-overview', source: 'queues' }),
        alert('OpsExporterSourceDown', 'warning', 'exporter', { job: 'ops-overview', source: 'backups' }),
      ],
      2,
    );
    const down = find(alerts, { alertname: 'OpsExporterDown' });
    expect(down.status.state).toBe('active');
    for (const source of ['queues', 'backups']) {
      expect(find(alerts, { alertname: 'OpsExporterSourceDown', source }).status.inhibitedBy).toEqual([down.fingerprint]);
    }
  });

  it('a critical alert silences its own warning tier for the same object only', async () => {
    const alerts = await post(
      [
        alert('OpsCoreNodeDiskHigh', 'critical', 'core_nodes', { node: 'MAIL-CORE' }),
        alert('OpsCoreNodeDiskHigh', 'warning', 'core_nodes', { node: 'MAIL-CORE' }),
        alert('OpsCoreNodeDiskHigh', 'warning', 'core_nodes', { node: 'CLOUD-CORE' }),
        alert('OpsQueueBacklogGrowing', 'warning', 'queues', { prefix: 'bull', queue: 'hosting' }),
      ],
      1,
    );
    const critical = find(alerts, { alertname: 'OpsCoreNodeDiskHigh', node: 'MAIL-CORE', severity: 'critical' });
    expect(critical.status.state).toBe('active');
    expect(find(alerts, { alertname: 'OpsCoreNodeDiskHigh', node: 'MAIL-CORE', severity: 'warning' }).status.inhibitedBy).toEqual([critical.fingerprint]);
    expect(find(alerts, { alertname: 'OpsCoreNodeDiskHigh', node: 'CLOUD-CORE' }).status.state).toBe('active');
    expect(find(alerts, { alertname: 'OpsQueueBacklogGrowing' }).status.state).toBe('active');
  });

  it('a queue without workers silences that queue\'s backlog warning', async () => {
    const alerts = await post(
      [
        alert('OpsQueueNoWorkers', 'critical', 'queues', { prefix: 'bull', queue: 'mail' }),
        alert('OpsQueueBacklogGrowing', 'warning', 'queues', { prefix: 'bull', queue: 'mail' }),
        alert('OpsQueueBacklogGrowing', 'warning', 'queues', { prefix: 'bull', queue: 'dns' }),
      ],
      1,
    );
    const noWorkers = find(alerts, { alertname: 'OpsQueueNoWorkers' });
    expect(find(alerts, { alertname: 'OpsQueueBacklogGrowing', queue: 'mail' }).status.inhibitedBy).toEqual([noWorkers.fingerprint]);
    expect(find(alerts, { alertname: 'OpsQueueBacklogGrowing', queue: 'dns' }).status.state).toBe('active');
  });

  it('inhibits within one platform only', async () => {
    const P = config.platformLabel;
    const alerts = await post(
      [
        alert('OpsCoreNodeDown', 'critical', 'core_nodes', { [P]: 'A', node: 'WEB-9' }),
        alert('OpsCoreNodeMetricsStale', 'warning', 'core_nodes', { [P]: 'A', node: 'WEB-9' }),
        alert('OpsCoreNodeMetricsStale', 'warning', 'core_nodes', { [P]: 'B', node: 'WEB-9' }),
        alert('OpsExporterDown', 'critical', 'exporter', { [P]: 'A', job: 'ops-overview' }),
        alert('OpsExporterSourceDown', 'warning', 'exporter', { [P]: 'A', job: 'ops-overview', source: 'security' }),
        alert('OpsExporterReplicaDown', 'warning', 'exporter', { [P]: 'A', job: 'ops-overview', instance: 'a-2:9471' }),
        alert('OpsExporterSourceDown', 'warning', 'exporter', { [P]: 'B', job: 'ops-overview', source: 'security' }),
      ],
      3,
    );
    const nodeDown = find(alerts, { alertname: 'OpsCoreNodeDown', [P]: 'A' });
    expect(find(alerts, { alertname: 'OpsCoreNodeMetricsStale', [P]: 'A' }).status.inhibitedBy).toEqual([nodeDown.fingerprint]);
    expect(find(alerts, { alertname: 'OpsCoreNodeMetricsStale', [P]: 'B' }).status.state).toBe('active');
    const exporterDown = find(alerts, { alertname: 'OpsExporterDown', [P]: 'A' });
    expect(find(alerts, { alertname: 'OpsExporterSourceDown', [P]: 'A', source: 'security' }).status.inhibitedBy).toEqual([exporterDown.fingerprint]);
    expect(find(alerts, { alertname: 'OpsExporterReplicaDown', [P]: 'A' }).status.inhibitedBy).toEqual([exporterDown.fingerprint]);
    expect(find(alerts, { alertname: 'OpsExporterSourceDown', [P]: 'B', source: 'security' }).status.state).toBe('active');
  });

  it('never inhibits the Watchdog, and routes it to the dead man\'s switch', async () => {
    const alerts = await post([alert('Watchdog', 'info', 'monitoring', {})], 0);
    const watchdog = find(alerts, { alertname: 'Watchdog' });
    expect(watchdog.status.state).toBe('active');
    expect(watchdog.receivers.map((r) => r.name)).toEqual([RECEIVERS.watchdog]);
  });
});
