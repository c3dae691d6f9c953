/**
 * Every alert has a runbook in docs/runbooks that says what it means, how to
 * confirm it (PromQL, and SQL where the data comes from the database), what
 * to do and when to escalate; and every runbook belongs to an alert.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { config } from '../monitoring/config.js';
import { REPO_ROOT } from '../monitoring/generate.js';
import { withMatcher } from '../monitoring/promql.js';
import { ALERT_NAMES, alertRules, runbookUrl } from '../monitoring/rules.js';

const DIR = join(REPO_ROOT, 'docs/runbooks');
const SECTIONS = ['## What it means', '## How to confirm', '## What to do', '## When to escalate'];
/** Areas whose data the exporter reads from the platform database: their runbooks give SQL. */
const SQL_AREAS = new Set(['core_nodes', 'provisioning', 'security', 'backups']);

describe('runbooks', () => {
  it.each(ALERT_NAMES.map((n) => [n]))('%s has a complete runbook', async (name) => {
    const text = await readFile(join(DIR, `${name}.md`), 'utf8');
    expect(text.split('\n')[0]).toBe(`# ${name}`);
    for (const s of SECTIONS) expect(text, `${name}: ${s}`).toContain(s);
    expect(text, `${name}: PromQL to confirm`).toContain('```promql');
    const rules = alertRules.filter((r) => r.alert === name);
    if (rules.some((r) => SQL_AREAS.has(r.area))) expect(text, `${name}: SQL to confirm`).toContain('```sql');
    for (const r of rules) expect(text, `${name}: states its severity`).toContain(r.severity);
  });

  it('filters every PromQL selector on the platform label (but where the alert has none)', async () => {
    const platformless = new Set(['Watchdog', 'OpsExporterAbsent']);
    const missing: string[] = [];
    for (const name of ALERT_NAMES.filter((n) => !platformless.has(n))) {
      const text = await readFile(join(DIR, `${name}.md`), 'utf8');
      expect(text, `${name}: names the platform label`).toMatch(new RegExp(`\\*\\*Labels?:\\*\\* \`${config.platformLabel}\``));
      for (const block of text.matchAll(/```promql\n([\s\S]*?)```/g)) {
        for (const line of block[1]!.split('\n').map((l) => l.replace(/\s+#.*$/, '').trim()).filter(Boolean)) {
          // Adding the matcher again changes nothing only where every selector already has it.
          const matcher = `${config.platformLabel}="<platform>"`;
          if (withMatcher(line.replaceAll(`${matcher}, `, '').replaceAll(`{${matcher}}`, ''), matcher) !== line) missing.push(`${name}: ${line}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it('each runbook_url ends in the runbook\'s file name', () => {
    for (const name of ALERT_NAMES) expect(runbookUrl(name).endsWith(`/${name}.md`)).toBe(true);
  });

  it('has no runbook for an alert that does not exist, and the index lists every alert', async () => {
    const files = (await readdir(DIR)).filter((f) => f.endsWith('.md') && f !== 'README.md');
    expect(files.map((f) => f.replace(/\.md$/, '')).sort()).toEqual([...ALERT_NAMES].sort());
    const index = await readFile(join(DIR, 'README.md'), 'utf8');
    for (const name of ALERT_NAMES) expect(index).toContain(`(${name}.md)`);
  });
});
