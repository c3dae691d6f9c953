/**
 * What every source is: a name, a backend, a `collect()` that does the I/O
 * and returns plain data, and a pure `samples()` that turns that data into
 * metric samples. The collection runner gives each its schedule, timeout and
 * self-metrics.
 */
import type { SourceName } from '../catalog.js';
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

/** One area the exporter reads. */
export interface Source<T extends SourceData = SourceData> {
  readonly name: SourceName;
  /** Which service it reads; /readyz and logs use it. */
  readonly backend: 'database' | 'redis';
  /** Reads the area. Throws when it cannot; never returns invented values. */
  collect(ctx: CollectContext): Promise<T>;
  /** Turns collected data into metric samples (pure). */
  samples(data: T): Sample[];
  /** Releases what the source holds (state, connections it owns). */
  close?(): Promise<void>;
}
