/**
 * The README tells the truth about the catalog and the configuration: every
 * metric is documented with its type and labels, nothing documented is
 * missing from the catalog, and every variable the exporter reads is listed.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { METRIC_LIST } from '../src/catalog.js';
import { CONFIG_VARIABLES } from '../src/config.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

function metricTable(): Map<string, { type: string; labels: string[] }> {
  const rows = new Map<string, { type: string; labels: string[] }>();
  for (const line of readme.split('\n')) {
    const m = /^\| `(ops_[a-z0-9_]+)` \| (gauge|counter|histogram) \|([^|]*)\|/.exec(line);
    if (m) rows.set(m[1]!, { type: m[2]!, labels: m[3]!.split(',').map((l) => l.trim()).filter(Boolean) });
  }
  return rows;
}

describe('README', () => {
  it('documents every metric of the catalog with its type and labels, and no other', () => {
    const table = metricTable();
    for (const def of METRIC_LIST) {
      expect(table.get(def.name), def.name).toEqual({ type: def.type, labels: [...def.labels] });
    }
    expect([...table.keys()].sort()).toEqual(METRIC_LIST.map((d) => d.name).sort());
  });

  it('lists every configuration variable', () => {
    for (const variable of CONFIG_VARIABLES) {
      const base = variable.replace(/_FILE$/, '');
      const perSource = /^OPS_(CORE_NODES|QUEUES|PROVISIONING|SECURITY|BACKUPS)_(INTERVAL|TIMEOUT)_SECONDS$/.exec(variable);
      const documented = perSource ? `OPS_<SOURCE>_${perSource[2]}_SECONDS` : base;
      expect(readme, variable).toContain(`\`${documented}`);
    }
  });
});
