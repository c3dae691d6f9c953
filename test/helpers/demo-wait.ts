/**
 * Bounded waiting and log capture for the simulator's tests.
 */
import type { SimulatorLogger } from '../../src/demo/simulator.js';

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
