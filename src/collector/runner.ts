/**
 * The collection runner: collects every source in the background on its own
 * schedule, with its own timeout, isolated from the others, and keeps each
 * one's last result and health for /metrics and the JSON API to read.
 *
 * Why background collection rather than collect-on-scrape: the database load
 * stays one collection per source and interval however many Prometheus
 * replicas, dashboards and API clients ask, a scrape never waits on the
 * database (so a slow or dead source cannot slow /metrics), and every reader
 * sees the same collection. The price is that data can be up to one interval
 * old; each source's collection time is exported so that is never hidden.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { SourceName } from '../catalog.js';
import type { SourceScheduleConfig } from '../config.js';
import type { InvalidCounts, Sample } from '../metrics/sample.js';
import { redactText } from '../redact.js';
import type { Source, SourceData } from '../sources/types.js';

/** What the runner knows about one source. */
export interface SourceState {
  name: SourceName;
  backend: 'database' | 'redis';
  /** True when the last finished collection succeeded. */
  up: boolean;
  /** Last successful collection's data; kept while down for the API, marked stale there. */
  data?: SourceData;
  /** Samples of the last successful collection; served only while up. */
  samples: Sample[];
  invalid: InvalidCounts;
  /** The instant the last successful collection read ("now" of that collection). */
  lastSuccessAt?: Date;
  lastAttemptAt?: Date;
  /** Wall time of the last finished collection, seconds. */
  durationSeconds?: number;
  collections: number;
  errors: number;
  /** Redacted message of the last failure, for logs and /readyz. */
  lastError?: string;
}

/** A source with its schedule. */
export interface ScheduledSource {
  source: Source<SourceData>;
  schedule: SourceScheduleConfig;
}

/** Options of the runner. */
export interface CollectionRunnerOptions {
  logger: FastifyBaseLogger;
  /** The clock; tests pin it. */
  now?: () => Date;
}

class TimeoutError extends Error {
  constructor(source: string, seconds: number) {
    super(`${source} collection timed out after ${seconds}s`);
    this.name = 'TimeoutError';
  }
}

interface Entry extends ScheduledSource {
  state: SourceState;
  /** The collection under way, until its I/O has really settled (even after a timeout). */
  inFlight?: Promise<void>;
  timer?: NodeJS.Timeout;
}

/** Collects sources in the background; see the file comment. */
export class CollectionRunner {
  private readonly entries = new Map<SourceName, Entry>();
  private readonly now: () => Date;
  private running = false;
  /** Grows by one whenever a collection finishes: readers cache by it. */
  generation = 0;

  constructor(
    sources: readonly ScheduledSource[],
    private readonly options: CollectionRunnerOptions,
  ) {
    this.now = options.now ?? (() => new Date());
    for (const s of sources) {
      this.entries.set(s.source.name, {
        ...s,
        state: { name: s.source.name, backend: s.source.backend, up: false, samples: [], invalid: {}, collections: 0, errors: 0 },
      });
    }
  }

  /** Starts every source's schedule; the first collections start at once. */
  start(): void {
    if (this.running) return;
    this.running = true;
    for (const entry of this.entries.values()) this.loop(entry);
  }

  /** Stops scheduling and waits for the collections under way to settle. */
  async stop(): Promise<void> {
    this.running = false;
    for (const entry of this.entries.values()) clearTimeout(entry.timer);
    await Promise.all([...this.entries.values()].map((e) => e.inFlight));
    await Promise.all([...this.entries.values()].map((e) => e.source.close?.()));
  }

  /**
   * Collects `name` now, unless a collection of it is already under way, in
   * which case this waits for that one: never two at once per source.
   */
  collect(name: SourceName): Promise<void> {
    const entry = this.entries.get(name);
    if (!entry) throw new Error(`unknown source ${name}`);
    entry.inFlight ??= this.run(entry).finally(() => {
      entry.inFlight = undefined;
    });
    return entry.inFlight;
  }

  /** Collects every source once (in parallel) and waits for all. */
  async collectAll(): Promise<void> {
    await Promise.all([...this.entries.keys()].map((n) => this.collect(n)));
  }

  /** Every source's state, in registration order. */
  states(): SourceState[] {
    return [...this.entries.values()].map((e) => e.state);
  }

  state(name: SourceName): SourceState | undefined {
    return this.entries.get(name)?.state;
  }

  private loop(entry: Entry): void {
    if (!this.running) return;
    const started = Date.now();
    void this.collect(entry.source.name).finally(() => {
      if (!this.running) return;
      // At most one collection per interval, measured start to start.
      const wait = Math.max(0, entry.schedule.intervalSeconds * 1000 - (Date.now() - started));
      entry.timer = setTimeout(() => this.loop(entry), wait);
      entry.timer.unref();
    });
  }

  private async run(entry: Entry): Promise<void> {
    const { source, schedule, state } = entry;
    const now = this.now();
    const timeoutMs = schedule.timeoutSeconds * 1000;
    const controller = new AbortController();
    const started = process.hrtime.bigint();
    state.lastAttemptAt = now;
    state.collections += 1;
    const work = source.collect({ now, signal: controller.signal, timeoutMs });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        controller.abort();
        reject(new TimeoutError(source.name, schedule.timeoutSeconds));
      }, timeoutMs);
    });
    try {
      const data = await Promise.race([work, timeout]);
      const samples = source.samples(data);
      state.data = data;
      state.samples = samples;
      state.invalid = data.invalid;
      state.lastSuccessAt = now;
      state.lastError = undefined;
      if (!state.up) this.options.logger.info({ source: source.name }, `source ${source.name} is up`);
      state.up = true;
    } catch (err) {
      state.errors += 1;
      const message = redactText(err instanceof Error ? err.message : String(err), 300);
      const wasUp = state.up || state.collections === 1;
      const previous = state.lastError;
      state.up = false;
      state.samples = [];
      state.lastError = message;
      // One line when a source goes down; repeats only at debug, so a dead
      // Redis or database does not flood the log.
      if (wasUp || previous !== message) {
        this.options.logger.warn({ source: source.name, err: message }, `source ${source.name} is down`);
      } else {
        this.options.logger.debug({ source: source.name, err: message }, `source ${source.name} still down`);
      }
    } finally {
      clearTimeout(timer);
      this.generation += 1;
      state.durationSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    }
    // Hold the slot until the I/O has settled, so a timed-out collection
    // cannot pile up connections behind it.
    await work.then(
      () => undefined,
      () => undefined,
    );
  }
}
