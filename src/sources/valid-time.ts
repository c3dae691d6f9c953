/**
 * Which recorded instants the exporter believes. A time the platform wrote
 * can be `infinity`, `-infinity`, BC, year 10000 or in the future (a host
 * with a wrong clock, a bug): such a time is invalid for its row only,
 * counted as `bad_timestamp`, and never wins a "newest" contest, so a backup
 * "completed" in 9999 cannot silence the backup pages and a node "sampled"
 * tomorrow cannot look fresh. The check runs in SQL, so no out-of-range value
 * ever reaches JavaScript (where it would become an Invalid Date).
 */
import { raw, sql, utcInstant, type Sql } from '../db/sql.js';

/** How far in the future a recorded time may lie (clock skew between the platform's hosts and the exporter's), ms. */
export const CLOCK_SKEW_MS = 300_000;

/**
 * The earliest recorded time taken as real, as an SQL literal: the Unix
 * epoch. Earlier ones (BC dates, `-infinity`) are invalid. Untyped, so
 * PostgreSQL reads it as the column's own type (timestamp or timestamptz,
 * the latter in the transaction's TimeZone, UTC).
 */
export const EARLIEST_VALID_TIME = '1970-01-01 00:00:00';

/** The latest valid instant at `now` (now plus the clock-skew allowance), as SQL. */
export function latestValidTime(now: Date): Sql {
  return utcInstant(now.getTime() + CLOCK_SKEW_MS);
}

/**
 * SQL that is true when the time `expr` is valid at `now`: not before the
 * epoch, not beyond the skew allowance, not infinite; NULL when `expr` is
 * NULL. Written as a range on `expr` alone, so an index on `expr` serves it.
 */
export function isValidTime(expr: Sql, now: Date): Sql {
  return sql`(${expr} >= ${raw(`'${EARLIEST_VALID_TIME}'`)} AND ${expr} <= ${latestValidTime(now)})`;
}

/** The same rule for an instant already in JavaScript (pure; for mappings and tests). */
export function isValidInstant(at: Date, now: Date): boolean {
  const ms = at.getTime();
  return Number.isFinite(ms) && ms >= 0 && ms <= now.getTime() + CLOCK_SKEW_MS;
}
