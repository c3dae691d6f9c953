/**
 * The collection snapshot: what every reader sees of the sources' last
 * collections. The runner publishes a new, read-only snapshot each time a
 * collection finishes; /metrics, the JSON overview and /readyz all read the
 * current one, so they show the same numbers, and whatever they derive from it
 * (the grouped samples, a rendered exposition, the serialised overview) is
 * computed once per snapshot through `derive()`.
 *
 * A neutral module: it depends on no reader, no writer and no source, so the
 * collector, the metrics and the sources import one way.
 */
import type { SourceName } from './catalog.js';
import type { SectionName } from './contract.js';
import type { InvalidCounts, Sample } from './metrics/sample.js';

/** Why a collection failed, as far as a reader needs to know (never the message itself). */
export type ErrorClass = 'timeout' | 'permission' | 'database' | 'redis' | 'internal';

/** One source as of its last finished collection. */
export interface SourceSnapshot {
  readonly name: SourceName;
  readonly backend: 'database' | 'redis';
  /** The field of the JSON overview the source fills; absent for a source the overview does not show. */
  readonly sectionName?: SectionName;
  /** True when the last finished collection succeeded. */
  readonly up: boolean;
  /** Last successful collection's data; kept while down for the API, marked stale there. */
  readonly data?: unknown;
  /** Samples of the last successful collection; empty while down (served only while up). */
  readonly samples: readonly Sample[];
  /** The source's overview section of the last successful collection (see `Source.section`). */
  readonly section?: unknown;
  readonly invalid: Readonly<InvalidCounts>;
  /** The instant the last successful collection read ("now" of that collection). */
  readonly lastSuccessAt?: Date;
  readonly lastAttemptAt?: Date;
  /** Wall time of the last finished collection, seconds. */
  readonly durationSeconds?: number;
  /** Collections attempted; finished ones are those with a duration. */
  readonly collections: number;
  readonly errors: number;
  /** Redacted message of the last failure, for logs and tests; never served. */
  readonly lastError?: string;
  /** While down: the class of the last failure. */
  readonly errorClass?: ErrorClass;
  /** While down: when the first failed collection of this outage started. */
  readonly downSince?: Date;
}

/** Every source's last collection, as one immutable value. */
export class CollectionSnapshot {
  private readonly derived = new Map<string, unknown>();

  constructor(
    /** Grows by one with every finished collection. */
    readonly generation: number,
    /** Every source, in registration order. */
    readonly sources: readonly SourceSnapshot[],
  ) {}

  /** One source by name. */
  source(name: SourceName): SourceSnapshot | undefined {
    return this.sources.find((s) => s.name === name);
  }

  /** True once every source has finished at least one collection, up or down. */
  get everyTried(): boolean {
    return this.sources.every((s) => s.durationSeconds !== undefined);
  }

  /**
   * `compute()` once per snapshot and key: the one cache of everything
   * derived from a collection (a snapshot never changes, so neither do they).
   */
  derive<T>(key: string, compute: () => T): T {
    if (!this.derived.has(key)) this.derived.set(key, compute());
    return this.derived.get(key) as T;
  }
}
