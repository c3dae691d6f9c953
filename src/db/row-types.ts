/**
 * How the exporter's connections turn PostgreSQL's text values into
 * JavaScript: like Prisma's raw queries (which the sources were written
 * against), int8 is a `bigint` and a `timestamp` without time zone is a UTC
 * instant, never the exporter host's local time as node-postgres would read
 * it. Every other type keeps node-postgres's own parser.
 */
import pg from 'pg';

/** PostgreSQL type OIDs given a parser of our own. */
const OID = { int8: 20, date: 1082, timestamp: 1114, timestamptz: 1184, int8Array: 1016, timestampArray: 1115, timestamptzArray: 1185 } as const;

const TIMESTAMP = /^(\d{4,})-(\d\d)-(\d\d)(?: (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?)?(?:([+-])(\d\d)(?::(\d\d))?(?::(\d\d))?)?( BC)?$/;

/**
 * A `timestamp`, `timestamptz` or `date` in PostgreSQL's ISO output: the
 * instant it names, read as UTC where it carries no offset. `infinity`,
 * `-infinity` and instants beyond what a Date holds are an Invalid Date
 * (never a number, as node-postgres returns for infinity), so a caller's
 * validity check sees one kind of value.
 */
export function parseTimestamp(text: string): Date {
  const m = TIMESTAMP.exec(text);
  if (!m) return new Date(Number.NaN);
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = '', sign, oh = '0', om = '0', os = '0', bc] = m as unknown as string[];
  const at = new Date(0);
  // setUTCFullYear, not Date.UTC: the latter reads years 0-99 as 1900-1999.
  at.setUTCFullYear(bc ? 1 - Number(y) : Number(y), Number(mo) - 1, Number(d));
  at.setUTCHours(Number(h), Number(mi), Number(s), Number(frac.padEnd(3, '0').slice(0, 3)));
  const offsetMs = ((Number(oh) * 60 + Number(om)) * 60 + Number(os)) * 1000;
  return new Date(at.getTime() - (sign === '-' ? -offsetMs : offsetMs));
}

function arrayOf<T>(parse: (text: string) => T): (text: string) => unknown {
  const parseArray = (pg.types.getTypeParser as (oid: number) => (text: string) => unknown)(1009);
  const map = (v: unknown): unknown => (Array.isArray(v) ? v.map(map) : v === null ? null : parse(v as string));
  return (text) => map(parseArray(text));
}

const PARSERS: Readonly<Record<number, (text: string) => unknown>> = {
  [OID.int8]: (text) => BigInt(text),
  [OID.date]: parseTimestamp,
  [OID.timestamp]: parseTimestamp,
  [OID.timestamptz]: parseTimestamp,
  [OID.int8Array]: arrayOf((text) => BigInt(text)),
  [OID.timestampArray]: arrayOf(parseTimestamp),
  [OID.timestamptzArray]: arrayOf(parseTimestamp),
};

/** The `types` of the exporter's pool: our parsers where listed, node-postgres's otherwise. */
export const rowTypes: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) =>
    format === 'binary' ? pg.types.getTypeParser(oid, 'binary') : (PARSERS[oid] ?? pg.types.getTypeParser(oid, 'text'))) as pg.CustomTypesConfig['getTypeParser'],
};

/**
 * A bound value as node-postgres should send it: a Date as its ISO instant
 * (which PostgreSQL reads as UTC wall time for a `timestamp`, rather than
 * node-postgres's local time), arrays element by element; the rest as is.
 */
export function bindValue(value: unknown): unknown {
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(bindValue);
  return value;
}
