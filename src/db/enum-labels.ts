/**
 * Enum-like contract columns on platforms that declare them as PostgreSQL
 * enums (a Prisma `enum`) rather than text.
 *
 * Comparing an enum column with a label the enum lacks is an error
 * (`invalid input value for enum "JobStatus": "CANCELLED"`), and comparing it
 * as text (`"status"::text`) defeats the exporter's partial indexes (an enum's
 * text cast is not immutable, so no index predicate can use it). So each
 * collection reads, in its own snapshot, which labels every enum column it
 * compares has, and writes its predicates with those labels only, as plain
 * literals that PostgreSQL types as the column's own type: the same text as
 * the index predicates, on text and enum schemas alike.
 */
import { raw, type Sql } from './sql.js';
import type { DbTx } from './client.js';

/** An enum-like column of a contract table, as `Table.column`. */
export type EnumColumn = `${string}.${string}`;

/**
 * The labels each column accepts: the enum's labels, or `null` for a text
 * column (any value may occur). A column of a table that does not exist is
 * absent from the map.
 */
export type EnumLabels = ReadonlyMap<EnumColumn, readonly string[] | null>;

/** Reads the labels of `columns` in the transaction's snapshot (catalog only: no table is read). */
export async function readEnumLabels(tx: DbTx, columns: readonly EnumColumn[]): Promise<EnumLabels> {
  const tables = columns.map((c) => c.slice(0, c.indexOf('.')));
  const names = columns.map((c) => c.slice(c.indexOf('.') + 1));
  const rows = await tx.query<Array<{ table: string; column: string; labels: string[] | null }>>`
    SELECT k.tbl AS "table", k.col AS "column",
           CASE WHEN t.typtype = 'e'
                THEN ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder)
           END AS labels
      FROM unnest(${tables}::text[], ${names}::text[]) AS k(tbl, col)
      JOIN pg_attribute a ON a.attrelid = to_regclass(quote_ident(k.tbl)) AND a.attname = k.col AND NOT a.attisdropped
      JOIN pg_type t ON t.oid = a.atttypid`;
  return new Map(rows.map((r) => [`${r.table}.${r.column}` as EnumColumn, r.labels]));
}

/** The wanted values the column can hold: all of them for text, the enum's labels among them otherwise. */
export function presentLabels(labels: EnumLabels, column: EnumColumn, wanted: readonly string[]): string[] {
  const accepted = labels.get(column);
  return accepted ? wanted.filter((w) => accepted.includes(w)) : [...wanted];
}

function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

function quoted(column: EnumColumn, alias: string | undefined): string {
  const name = `"${column.slice(column.indexOf('.') + 1).replace(/"/g, '""')}"`;
  return alias ? `${alias}.${name}` : name;
}

/**
 * `"col" IN ('A', 'B')` over the wanted values the column can hold; `FALSE`
 * when it can hold none of them. `alias` qualifies the column (`b."status"`).
 */
export function isOneOf(labels: EnumLabels, column: EnumColumn, wanted: readonly string[], alias?: string): Sql {
  const present = presentLabels(labels, column, wanted);
  if (present.length === 0) return raw('FALSE');
  return raw(`${quoted(column, alias)} IN (${present.map(literal).join(', ')})`);
}

/**
 * `"col" NOT IN ('A', 'B')` over the wanted values the column can hold, so a
 * NULL stays excluded as before; `"col" IS NOT NULL` when it can hold none.
 */
export function isNoneOf(labels: EnumLabels, column: EnumColumn, wanted: readonly string[], alias?: string): Sql {
  const present = presentLabels(labels, column, wanted);
  if (present.length === 0) return raw(`${quoted(column, alias)} IS NOT NULL`);
  return raw(`${quoted(column, alias)} NOT IN (${present.map(literal).join(', ')})`);
}
