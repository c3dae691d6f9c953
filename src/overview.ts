/**
 * The JSON overview (`GET /api/ops/overview`, ../shared/overview-api.md) from
 * one collection snapshot: each source maps its own section (its
 * `section.overview()`, run by the runner once per collection); this file
 * only assembles them and says, in `sources[]`, how fresh each one is.
 *
 * Unknown is never zero: a section whose source has never collected is left
 * out rather than invented, a section whose source is down now is its last
 * good data marked `stale`, and the contract's types are in src/contract.ts.
 */
import type { OpsOverviewSummary, SourceOverview } from './contract.js';
import type { CollectionSnapshot, SourceSnapshot } from './snapshot.js';

/** How fresh one source's section is. */
function sourceOverview(s: SourceSnapshot): SourceOverview {
  const o: SourceOverview = { name: s.name, up: s.up, stale: !s.up && s.data !== undefined };
  if (s.lastSuccessAt) o.lastSuccessAt = s.lastSuccessAt.toISOString();
  if (!s.up && s.errorClass) o.errorClass = s.errorClass;
  if (!s.up && s.downSince) o.downSince = s.downSince.toISOString();
  return o;
}

/**
 * Builds the overview, or returns null until every source has finished one
 * collection (before that, a missing section could only mean "not yet").
 */
export function buildOverview(snapshot: CollectionSnapshot): OpsOverviewSummary | null {
  if (!snapshot.everyTried) return null;
  const summary: Omit<OpsOverviewSummary, 'generatedAt'> = {};
  const collectedAt: number[] = [];
  for (const s of snapshot.sources) {
    if (!s.sectionName || s.section === undefined || !s.lastSuccessAt) continue;
    (summary as Record<string, unknown>)[s.sectionName] = s.section;
    collectedAt.push(s.lastSuccessAt.getTime());
  }
  // The oldest collection shown; when no source could collect yet, the
  // latest attempt (the moment the snapshot says so).
  const attempts = snapshot.sources.flatMap((s) => (s.lastAttemptAt ? [s.lastAttemptAt.getTime()] : []));
  const generatedAt = new Date(collectedAt.length > 0 ? Math.min(...collectedAt) : Math.max(...attempts)).toISOString();
  return { generatedAt, ...summary, sources: snapshot.sources.map(sourceOverview) };
}
