/**
 * The collection runner: collects every source in the background on its own
 * schedule, with its own timeout, isolated from the others, and after each
 * collection publishes a new read-only snapshot (src/snapshot.ts) of every
 * source's last result and health, which /metrics, the JSON API and /readyz
 * read.
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
import { boundSamples } from '../metrics/bound.js';
import type { InvalidCounts } from '../metrics/sample.js';
import { redactText } from '../redact.js';
import { CollectionSnapshot, type ErrorClass, type SourceSnapshot } from '../snapshot.js';
import type { ScheduledSource, SourceData } from '../sources/types.js';

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

/** A failure of the source's pure mapping (samples or overview), not of its I/O. */
class MappingError extends Error {
  constructor(readonly original: unknown) {
    super(errorMessage(original));
    this.name = 'MappingError';
  }
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

interface Entry extends ScheduledSource {
  /** The source's current state; copied into each published snapshot. */
  state: Mutable<SourceSnapshot>;
  /** The collection under way, until its I/O has settled or been given up (never rejects). */
  inFlight?: Promise<void>;
  timer?: NodeJS.Timeout;
}

/** Classifies a failed collection for readers (`sources[].errorClass`); the message stays in the log. */
export function classifyError(err: unknown, backend: 'database' | 'redis'): ErrorClass {
  if (err instanceof TimeoutError) return 'timeout';
  if (err instanceof MappingError) return 'internal';
  const code = (err as { code?: unknown } | null)?.code;
  if (code === '42501' || /permission denied|may not read/i.test(errorMessage(err))) return 'permission';
  return backend;
}

/** Collects sources in the background; see the file comment. */
export class CollectionRunner {
  private readonly entries = new Map<SourceName, Entry>();
  private readonly now: () => Date;
  private running = false;
  private current: CollectionSnapshot;

  constructor(
    sources: readonly ScheduledSource[],
    private readonly options: CollectionRunnerOptions,
  ) {
    this.now = options.now ?? (() => new Date());
    for (const s of sources) {
      this.entries.set(s.source.name, {
        ...s,
        state: { name: s.source.name, backend: s.source.backend, sectionName: s.source.section?.name, up: false, samples: [], invalid: {}, collections: 0, errors: 0 },
      });
    }
    this.current = this.publish(0);
  }

  /** The current snapshot: what /metrics, the overview and /readyz read. */
  snapshot(): CollectionSnapshot {
    return this.current;
  }

  /** Grows by one whenever a collection finishes. */
  get generation(): number {
    return this.current.generation;
  }

  private publish(generation: number): CollectionSnapshot {
    return new CollectionSnapshot(
      generation,
      [...this.entries.values()].map((e) => Object.freeze({ ...e.state })),
    );
  }

  /** Starts every source's schedule; the first collections start at once. */
  start(): void {
    if (this.running) return;
    this.running = true;
    for (const entry of this.entries.values()) this.loop(entry);
  }

  /**
   * Stops scheduling, waits for the collections under way to settle, at most
   * `graceMs` (a hung database must not hold a shutdown; what is still
   * pending then fails when the pools close, handled like any failure), and
   * closes the sources.
   */
  async stop(graceMs = 2_000): Promise<void> {
    this.running = false;
    for (const entry of this.entries.values()) clearTimeout(entry.timer);
    let grace: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([...this.entries.values()].map((e) => e.inFlight)),
      new Promise<void>((resolve) => {
        grace = setTimeout(resolve, graceMs);
        grace.unref();
      }),
    ]);
    clearTimeout(grace);
    await Promise.all(
      [...this.entries.values()].map(async (e) => {
        try {
          await e.source.close?.();
        } catch (err) {
          this.options.logger.warn({ source: e.source.name, err: redactText(errorMessage(err), 300) }, `source ${e.source.name} failed to close`);
        }
      }),
    );
  }

  /**
   * Collects `name` now, unless a collection of it is already under way, in
   * which case this waits for that one: never two at once per source. The
   * promise never rejects: a failure is recorded in the source's state.
   */
  collect(name: SourceName): Promise<void> {
    const entry = this.entries.get(name);
    if (!entry) throw new Error(`unknown source ${name}`);
    entry.inFlight ??= this.run(entry)
      .catch((err: unknown) => {
        // run() handles every failure of the source itself; this is a bug guard.
        this.options.logger.error({ source: name, err: redactText(errorMessage(err), 300) }, 'collection runner error');
      })
      .finally(() => {
        entry.inFlight = undefined;
      });
    return entry.inFlight;
  }

  /** Collects every source once (in parallel) and waits for all. */
  async collectAll(): Promise<void> {
    await Promise.all([...this.entries.keys()].map((n) => this.collect(n)));
  }

  /** Every source as of the current snapshot, in registration order. */
  states(): readonly SourceSnapshot[] {
    return this.current.sources;
  }

  /** One source as of the current snapshot. */
  state(name: SourceName): SourceSnapshot | undefined {
    return this.current.source(name);
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
    // The timeout is armed before the source starts, so it fires before any
    // deadline the source arms for the same duration (the database's): the
    // collection is reported as timed out, not as what the deadline caused.
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        timedOut = true;
        controller.abort();
        reject(new TimeoutError(source.name, schedule.timeoutSeconds));
      }, timeoutMs);
    });
    // Handled by the race below; never an unhandled rejection if work wins.
    timeout.catch(() => undefined);
    let work: Promise<SourceData>;
    try {
      // A source that throws synchronously (or returns a non-promise) is
      // handled exactly like one that rejects.
      work = Promise.resolve(source.collect({ now, signal: controller.signal, timeoutMs }));
    } catch (err) {
      work = Promise.reject(err);
    }
    // Whatever happens below, a late rejection of `work` is handled here.
    const settled = work.then(
      () => true,
      () => true,
    );
    try {
      const data = await Promise.race([work, timeout]);
      const invalid: InvalidCounts = { ...(data.invalid ?? {}) };
      let samples;
      let section;
      try {
        // Mapped here, once per collection: a mapping that throws on this
        // data takes this source down, never a scrape or an API call.
        samples = boundSamples(source.samples(data), invalid);
        section = source.section?.overview(data, now);
      } catch (err) {
        throw new MappingError(err);
      }
      state.data = data;
      state.samples = samples;
      state.section = section;
      state.invalid = invalid;
      state.lastSuccessAt = now;
      state.lastError = undefined;
      state.errorClass = undefined;
      state.downSince = undefined;
      if (!state.up) this.options.logger.info({ source: source.name }, `source ${source.name} is up`);
      state.up = true;
    } catch (err) {
      state.errors += 1;
      const message = redactText(errorMessage(err), 300);
      const wasUp = state.up || state.collections === 1;
      const previous = state.lastError;
      if (state.up || state.downSince === undefined) state.downSince = now;
      state.up = false;
      state.samples = [];
      state.lastError = message;
      state.errorClass = classifyError(err, source.backend);
      // One warning per outage; a changed reason (connection refused, then a
      // timeout) at info, repeats at debug: a dead Redis or database does not
      // flood the log, and an outage is one line however the machine is loaded.
      if (wasUp) {
        this.options.logger.warn({ source: source.name, err: message }, `source ${source.name} is down`);
      } else if (previous !== message) {
        this.options.logger.info({ source: source.name, err: message }, `source ${source.name} still down, for another reason`);
      } else {
        this.options.logger.debug({ source: source.name, err: message }, `source ${source.name} still down`);
      }
    } finally {
      clearTimeout(timer);
      state.durationSeconds = Number(process.hrtime.bigint() - started) / 1e9;
      this.current = this.publish(this.current.generation + 1);
    }
    if (!timedOut) return;
    // Hold the slot until the timed-out I/O has settled, so a slow source
    // cannot pile up connections behind it, but not forever: a source whose
    // I/O never settles (a hung socket) is given up after one more timeout,
    // so it is collected again rather than reported down for good.
    let grace: NodeJS.Timeout | undefined;
    const gaveUp = await Promise.race([
      settled.then(() => false),
      new Promise<boolean>((resolve) => {
        grace = setTimeout(() => resolve(true), timeoutMs);
        grace.unref();
      }),
    ]);
    clearTimeout(grace);
    if (gaveUp) {
      this.options.logger.warn(
        { source: source.name },
        `source ${source.name}: a timed-out collection had not settled ${schedule.timeoutSeconds}s later; given up`,
      );
    }
  }
}

function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  try {
    return String(err);
  } catch {
    return 'unprintable error';
  }
}
