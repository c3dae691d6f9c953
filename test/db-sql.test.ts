/**
 * The exporter's SQL composition and row types, against the real PostgreSQL:
 * composed statements bind every value (none spliced into the text), and the
 * values come back as the sources expect them (int8 a bigint, a timestamp
 * without time zone a UTC instant, infinity an Invalid Date, numeric exact
 * text).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bindValue, parseTimestamp, rowTypes } from '../src/db/row-types.js';
import { empty, join, raw, sql, Sql, utcInstant } from '../src/db/sql.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

describe('sql templates', () => {
  it('numbers the placeholders of nested fragments in order and keeps their values', () => {
    const inner = sql`b = ${2} AND c = ${'three'}`;
    const q = sql`SELECT * FROM t WHERE a = ${1} AND ${inner} AND d IN (${join([4, 5, 6])})${empty} LIMIT ${raw('10')}`;
    expect(q.text).toBe('SELECT * FROM t WHERE a = $1 AND b = $2 AND c = $3 AND d IN ($4,$5,$6) LIMIT 10');
    expect(q.values).toEqual([1, 2, 'three', 4, 5, 6]);
  });

  it('joins fragments with a separator, and refuses an empty list', () => {
    const q = join([sql`x = ${1}`, raw('TRUE'), sql`y = ${2}`], ' OR ');
    expect(q.text).toBe('x = $1 OR TRUE OR y = $2');
    expect(q.values).toEqual([1, 2]);
    expect(() => join([])).toThrow(TypeError);
  });

  it('never splices a value into the text, however it looks', () => {
    const hostile = "'; DROP TABLE t; --";
    const q = sql`SELECT ${hostile}::text`;
    expect(q.text).toBe('SELECT $1::text');
    expect(q.values).toEqual([hostile]);
    expect(() => new Sql(['a', 'b'], [])).toThrow(TypeError);
  });
});

describe('row types (pure)', () => {
  it.each([
    ['2026-12-06 05:35:32.123456', '2026-12-06T05:35:32.123Z'],
    ['2026-12-06 05:35:32', '2026-12-06T05:35:32.000Z'],
    ['2026-12-06 07:35:32.5+02', '2026-12-06T05:35:32.500Z'],
    ['2026-12-06 00:05:32-05:30', '2026-12-06T05:35:32.000Z'],
    ['0044-03-15 00:00:00', '0044-03-15T00:00:00.000Z'],
    ['0044-03-15 00:00:00 BC', '-000043-03-15T00:00:00.000Z'],
    ['10000-01-01 00:00:00', '+010000-01-01T00:00:00.000Z'],
    ['2026-12-06', '2026-12-06T00:00:00.000Z'],
  ])('reads %s as %s', (text, iso) => {
    expect(parseTimestamp(text).toISOString()).toBe(iso);
  });

  it.each(['infinity', '-infinity', '', 'garbage', '999999-01-01 00:00:00'])('reads %j as an Invalid Date', (text) => {
    expect(Number.isNaN(parseTimestamp(text).getTime())).toBe(true);
  });

  it('binds Dates as their ISO instant, in arrays too', () => {
    const at = new Date('2026-12-06T05:35:32.123Z');
    expect(bindValue(at)).toBe('2026-12-06T05:35:32.123Z');
    expect(bindValue([at, 1n, null])).toEqual(['2026-12-06T05:35:32.123Z', 1n, null]);
  });
});

describe('row types (PostgreSQL)', () => {
  let db: TestDatabase;
  let client: pg.Client;
  beforeAll(async () => {
    db = await createTestDatabase('db_sql', { migrate: false });
    // Not UTC, so a timestamp read through the session's or the host's zone would show.
    client = new pg.Client({ connectionString: db.readerUrl, types: rowTypes, options: '-c TimeZone=Asia/Kolkata' });
    await client.connect();
  });
  afterAll(async () => {
    await client?.end();
    await db?.drop();
  });

  it('returns int8 as bigint, timestamps as UTC instants and infinity as an Invalid Date', async () => {
    const q = sql`SELECT 9007199254740993::int8 AS big, ARRAY[1, 2]::int8[] AS bigs, 7::int AS small,
                         ${new Date('2026-12-06T05:35:32.123Z')}::timestamp AS ts,
                         '2026-12-06 05:35:32.123+00'::timestamptz AS tstz,
                         'infinity'::timestamp AS inf, ARRAY['2026-01-01 00:00:00'::timestamp, NULL] AS tss,
                         '{"a": 1}'::jsonb AS doc, 1.5::numeric AS num`;
    const { rows } = await client.query({ text: q.text, values: q.values.map(bindValue) });
    const row = rows[0];
    expect(row.big).toBe(9007199254740993n);
    expect(row.bigs).toEqual([1n, 2n]);
    expect(row.small).toBe(7);
    expect(row.ts.toISOString()).toBe('2026-12-06T05:35:32.123Z');
    expect(row.tstz.toISOString()).toBe('2026-12-06T05:35:32.123Z');
    expect(Number.isNaN(row.inf.getTime())).toBe(true);
    expect(row.tss.map((d: Date | null) => d?.toISOString() ?? null)).toEqual(['2026-01-01T00:00:00.000Z', null]);
    expect(row.doc).toEqual({ a: 1 });
    // An instant composed for a query is its UTC wall time, whatever the session's zone.
    const at = utcInstant(Date.UTC(2026, 11, 6, 5, 35, 32, 123));
    expect(at.values).toEqual(['2026-12-06T05:35:32.123Z']);
    const [wall] = (await client.query({ text: sql`SELECT ${at}::text AS t`.text, values: at.values })).rows;
    expect(wall.t).toBe('2026-12-06 05:35:32.123');
    // numeric stays exact text (node-postgres's own parser); the sources cast what they read.
    expect(row.num).toBe('1.5');
  });
});
