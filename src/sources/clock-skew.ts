/**
 * The clock-skew allowance shared by every source that judges a platform time
 * against the exporter's clock: a time up to this far in the future is taken
 * as "now" (hosts' clocks differ a little); one beyond it is invalid, counted
 * as `bad_timestamp` and never wins a "newest" contest.
 */

/** How far in the future a platform timestamp may be, in milliseconds. */
export const CLOCK_SKEW_MS = 300_000;
