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
import { createHash } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { METRICS, type MetricKey, type SourceName } from '../catalog.js';
import type { SourceScheduleConfig } from '../config.js';
import { countInvalid, type InvalidCounts, type Sample } from '../metrics/sample.js';
import { redactText } from '../redact.js';
import type { Source, SourceData } from '../sources/types.js';

/** Longest label value served, characters; longer ones are cut (and stay distinct by a hash suffix). */
export const MAX_LABEL_VALUE_LENGTH = 200;
/** Most series one source may serve; beyond it series are dropped and counted. */
export const MAX_SERIES_PER_SOURCE = 20_000;

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
  /** The collection under way, until its I/O has settled or been given up (never rejects). */
  inFlight?: Promise<void>;
  timer?: NodeJS.Timeout;
}

function shortHash(value: string): string {
  return createHash('sha256').update(value).digest('hex').slice(0, 8);
}

/**
 * Keeps only samples prom-client can serve: a known metric, exactly the
 * catalog's label names with string values no longer than
 * MAX_LABEL_VALUE_LENGTH, a finite number (and not negative for a counter),
 * at most MAX_SERIES_PER_SOURCE of them. A sample prom-client would throw on
 * fails the whole scrape (its registry gathers with Promise.all), so this is
 * the last line between a source's bug or the database's garbage and
 * /metrics. What is dropped is counted in `invalid` as wrong_type (one per
 * sample) or label_overflow (beyond the series cap); a cut value once as
 * label_overflow however many series carry it (pure).
 */
export function boundSamples(samples: readonly Sample[], invalid: InvalidCounts): Sample[] {
  const out: Sample[] = [];
  // A long value (one hostname) appears in several series: counted once.
  const cut = new Set<string>();
  for (const sample of samples) {
    const def = sample && typeof sample === 'object' ? METRICS[sample.metric as MetricKey] : undefined;
    if (!def || typeof sample.value !== 'number' || !Number.isFinite(sample.value) || (def.type === 'counter' && sample.value < 0)) {
      countInvalid(invalid, 'wrong_type');
      continue;
    }
    const raw = sample.labels && typeof sample.labels === 'object' ? sample.labels : {};
    const names = Object.keys(raw);
    if (names.length !== def.labels.length || !def.labels.every((l) => typeof raw[l] === 'string')) {
      countInvalid(invalid, 'wrong_type');
      continue;
    }
    let labels = raw;
    for (const name of def.labels) {
      const value = raw[name] as string;
      if (value.length > MAX_LABEL_VALUE_LENGTH) {
        if (labels === raw) labels = { ...raw };
        labels[name] = `${value.slice(0, MAX_LABEL_VALUE_LENGTH - 10)}…${shortHash(value)}`;
        if (!cut.has(value)) countInvalid(invalid, 'label_overflow');
        cut.add(value);
      }
    }
    if (out.length >= MAX_SERIES_PER_SOURCE) {
      countInvalid(invalid, 'label_overflow');
      continue;
    }
    out.push(labels === raw ? sample : { ...sample, labels });
  }
  return out;
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
      const samples = boundSamples(source.samples(data), invalid);
      state.data = data;
      state.samples = samples;
      state.invalid = invalid;
      state.lastSuccessAt = now;
      state.lastError = undefined;
      if (!state.up) this.options.logger.info({ source: source.name }, `source ${source.name} is up`);
      state.up = true;
    } catch (err) {
      state.errors += 1;
      const message = redactText(errorMessage(err), 300);
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
