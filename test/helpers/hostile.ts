/**
 * One collection of the exporter as production runs it, for the hostile
 * content tests (issue 11): the checks every case must hold, and what the
 * case then looks at.
 */
import { expect } from 'vitest';
import type { SourceName } from '../../src/catalog.js';
import type { SourceSnapshot } from '../../src/snapshot.js';
import { createTestApp, type TestAppOptions } from './app.js';
import { promtoolCheck, samples } from './prom-text.js';

export interface CheckedCollection {
  /** The /metrics page. */
  text: string;
  /** The JSON overview. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  overview: any;
  /** The source's non-zero ops_source_invalid_values, by reason. */
  invalid: Record<string, number>;
  /** The source's state after the collection. */
  state: SourceSnapshot | undefined;
}

/**
 * Collects every source once (at `options.now`) and asserts what every
 * hostile case must hold: `source` up without an error, /metrics 200 and
 * accepted by promtool, the API 200.
 */
export async function collectChecked(label: string, source: SourceName, options: Pick<TestAppOptions, 'db' | 'redis' | 'now'>): Promise<CheckedCollection> {
  const t = await createTestApp(label, options);
  try {
    await t.app.collection.collectAll();
    const state = t.app.collection.state(source);
    expect(state?.lastError).toBeUndefined();
    expect(state?.up).toBe(true);
    const metrics = await t.app.inject('/metrics');
    expect(metrics.statusCode).toBe(200);
    const text = metrics.body;
    expect(promtoolCheck(text)).toEqual({ ok: true, output: '' });
    const api = await t.app.inject({ url: '/api/ops/overview', headers: { authorization: t.authorization } });
    expect(api.statusCode).toBe(200);
    const invalid = Object.fromEntries(
      samples(text, 'ops_source_invalid_values', { source })
        .filter((s) => s.value !== 0)
        .map((s) => [s.labels.reason, s.value]),
    );
    return { text, overview: api.json(), invalid, state };
  } finally {
    await t.app.close();
  }
}
