/**
 * What every source is: a name, a backend, a `collect()` that does the I/O
 * and returns plain data, a pure `samples()` that turns that data into metric
 * samples and, for sources the JSON overview shows, a pure `overview()` that
 * turns it into the source's section of the contract. The collection runner
 * gives each its schedule, timeout and self-metrics.
 */
import type { SourceName } from '../catalog.js';
import type { SourceScheduleConfig } from '../config.js';
import type { OverviewSections, SectionName } from '../contract.js';
import type { InvalidCounts, Sample } from '../metrics/sample.js';

/** What a collection may use. */
export interface CollectContext {
  /** The collection's clock: every "now" in the collection is this instant. */
  now: Date;
  /** Aborted when the collection's timeout passes. */
  signal: AbortSignal;
  /** The timeout in milliseconds, for SQL statement_timeout. */
  timeoutMs: number;
}

/** Data every source returns besides its own. */
export interface SourceData {
  /** Values the source could not use as they are, by reason. */
  invalid: InvalidCounts;
}

/** The section of the JSON overview a source fills, and how. */
export interface SourceSection<T, K extends SectionName> {
  /** The field of OpsOverviewSummary it fills. */
  readonly name: K;
  /** Turns collected data into that field (pure); `collectedAt` is the collection's instant. */
  overview(data: T, collectedAt: Date): OverviewSections[K];
}

/** One area the exporter reads. */
export interface Source<T extends SourceData = SourceData, K extends SectionName = SectionName> {
  readonly name: SourceName;
  /** Which service it reads; /readyz and logs use it. */
  readonly backend: 'database' | 'redis';
  /** Reads the area. Throws when it cannot; never returns invented values. */
  collect(ctx: CollectContext): Promise<T>;
  /** Turns collected data into metric samples (pure). */
  samples(data: T): Sample[];
  /** Its section of the JSON overview; absent for a source the overview does not show. */
  readonly section?: SourceSection<T, K>;
  /** Releases what the source holds (state, connections it owns). */
  close?(): Promise<void>;
}

/** Any source, whatever its data: the runner and the overview handle them alike. */
export type AnySource = Source<any, SectionName>;

/** A source with its schedule. */
export interface ScheduledSource {
  source: AnySource;
  schedule: SourceScheduleConfig;
}
