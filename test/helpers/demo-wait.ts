/**
 * Bounded waiting and log capture for the simulator's tests.
 */
import { pgDemoDb } from '../../src/demo/demo-db.js';
import { createSimulator, type Simulator, type SimulatorLogger, type SimulatorOptions } from '../../src/demo/simulator.js';
import { createTestDatabase, type TestDatabase } from './db.js';

/**
 * Polls `probe` until it returns a value that is not `undefined`/`false`, and
 * returns it; throws with `what` and the last value seen after `timeoutMs`.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  { timeoutMs = 10_000, intervalMs = 50 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    last = await probe();
    if (last !== undefined && last !== false) return last as T;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** A logger that keeps every line (for asserting what was logged, and keeping test output quiet). */
export function captureLogger(): SimulatorLogger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, info: (l) => lines.push(l), warn: (l) => lines.push(l) };
}

/** Fast loop intervals for tests, in milliseconds. */
export const FAST_INTERVALS = { metricsMs: 100, shieldMs: 100, jobsMs: 100, findingsMs: 100, backupsMs: 100, pruneMs: 100 } as const;

/** A simulator on a database of its own whose clock stands still (see {@link startStillSimulator}). */
export interface StillSimulator {
  db: TestDatabase;
  sim: Simulator;
  stop(): Promise<void>;
}

/**
 * Starts a simulator (database side only) on a fresh database, on a clock
 * that stands still: its background loops see no time pass and write
 * nothing, so every `sim.tick()` is exactly one step of
 * `FAST_INTERVALS.shieldMs` of simulated time. Rates are then counted per
 * simulated second, whatever the load on the machine.
 */
export async function startStillSimulator(label: string, options: Omit<SimulatorOptions, 'db' | 'clock' | 'intervals'>, seed = false): Promise<StillSimulator> {
  const db = await createTestDatabase(label);
  // DROP DATABASE ... WITH (FORCE) in drop() may reach a connection still closing.
  db.admin.on('error', () => undefined);
  let now = new Date('2026-03-01T12:00:00.000Z');
  const sim = createSimulator({ ...options, db: pgDemoDb(db.admin), intervals: FAST_INTERVALS, clock: () => now });
  if (seed) await sim.seed();
  await sim.start();
  // start() took each loop's "last tick" at `now - interval`; a step back
  // makes their first tick see no time pass either (no timer has run yet).
  now = new Date(now.getTime() - Math.max(...Object.values(FAST_INTERVALS)));
  return {
    db,
    sim,
    async stop() {
      await sim.stop();
      await db.drop();
    },
  };
}
