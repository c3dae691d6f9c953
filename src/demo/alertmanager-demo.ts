/**
 * The compose demo's Alertmanager configuration: the bundle's own
 * alertmanager/alertmanager.yml (same routes, grouping, inhibitions, receiver
 * names) with every receiver replaced by a webhook to the stack's logger, so
 * pages, tickets and the watchdog show up in `docker compose logs
 * webhook-logger` instead of going to PagerDuty or Slack.
 *
 *   tsx src/demo/alertmanager-demo.ts    rewrites docker/alertmanager/alertmanager.demo.yml
 *
 * test/compose.test.ts fails when the committed file is out of step with
 * alertmanager/alertmanager.yml.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

const ROOT = path.join(import.meta.dirname, '..', '..');

/** The bundle's Alertmanager configuration. */
export const SOURCE_ALERTMANAGER_CONFIG = path.join(ROOT, 'alertmanager', 'alertmanager.yml');

/** Where the demo configuration is written (mounted by docker-compose.yml). */
export const DEMO_ALERTMANAGER_CONFIG = path.join(ROOT, 'docker', 'alertmanager', 'alertmanager.demo.yml');

/** Base URL of the stack's webhook logger (docker/webhook-logger.mjs); the receiver name is appended. */
export const WEBHOOK_LOGGER_URL = 'http://webhook-logger:9099/alerts';

const HEADER = [
  '# Generated from alertmanager/alertmanager.yml by src/demo/alertmanager-demo.ts: do not edit,',
  '# run `npx tsx src/demo/alertmanager-demo.ts`. Same routes and inhibitions; every receiver',
  '# posts to the compose stack\'s webhook logger instead of PagerDuty or Slack.',
  '',
].join('\n');

interface Receiver {
  name: string;
  [kind: string]: unknown;
}

/** Turns the bundle's alertmanager.yml text into the demo's. */
export function demoAlertmanagerConfig(sourceYaml: string): string {
  const doc = YAML.parse(sourceYaml) as { receivers?: Receiver[] } & Record<string, unknown>;
  if (!doc || !Array.isArray(doc.receivers)) throw new Error('alertmanager.yml has no receivers list');
  const receivers = doc.receivers.map((r) => {
    const configs = Object.entries(r)
      .filter(([k, v]) => k.endsWith('_configs') && Array.isArray(v))
      .flatMap(([, v]) => v as Array<{ send_resolved?: boolean }>);
    const sendResolved = configs.some((c) => c.send_resolved !== false);
    return { name: r.name, webhook_configs: [{ url: `${WEBHOOK_LOGGER_URL}/${encodeURIComponent(r.name)}`, send_resolved: sendResolved }] };
  });
  return HEADER + YAML.stringify({ ...doc, receivers }, { aliasDuplicateObjects: false, lineWidth: 0 });
}

/** Rewrites {@link DEMO_ALERTMANAGER_CONFIG} from {@link SOURCE_ALERTMANAGER_CONFIG}. */
export async function writeDemoAlertmanagerConfig(): Promise<void> {
  await writeFile(DEMO_ALERTMANAGER_CONFIG, demoAlertmanagerConfig(await readFile(SOURCE_ALERTMANAGER_CONFIG, 'utf8')));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await writeDemoAlertmanagerConfig();
  console.log(`wrote ${path.relative(ROOT, DEMO_ALERTMANAGER_CONFIG)}`);
}
