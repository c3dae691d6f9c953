/**
 * SQL composed from trusted text and bound values: `sql` tagged templates,
 * nestable, that become one statement with `$1, $2, …` placeholders and a
 * value list. A value is never spliced into the text; only `raw()` text is,
 * and the exporter passes it nothing but its own constants and quoted
 * identifiers. (The same shape as Prisma's `Prisma.sql`, which the sources
 * used while they read through Prisma Client.)
 */

/** One composed statement (or fragment): the text between values, and the values. */
export class Sql {
  /** Text pieces; there is always one more piece than there are values. */
  readonly strings: string[];
  /** The bound values, in order (nested fragments already flattened). */
  readonly values: unknown[];

  constructor(strings: readonly string[], values: readonly unknown[]) {
    if (strings.length !== values.length + 1) throw new TypeError(`expected ${values.length + 1} strings, got ${strings.length}`);
    const outStrings: string[] = [strings[0]!];
    const outValues: unknown[] = [];
    values.forEach((value, i) => {
      const next = strings[i + 1]!;
      if (value instanceof Sql) {
        // Splice the fragment in: its first piece joins ours, its last the next one.
        outStrings[outStrings.length - 1] += value.strings[0]!;
        for (let j = 0; j < value.values.length; j++) {
          outValues.push(value.values[j]);
          outStrings.push(value.strings[j + 1]!);
        }
        outStrings[outStrings.length - 1] += next;
      } else {
        outValues.push(value);
        outStrings.push(next);
      }
    });
    this.strings = outStrings;
    this.values = outValues;
  }

  /** The statement for PostgreSQL, with `$n` placeholders. */
  get text(): string {
    let text = this.strings[0]!;
    for (let i = 1; i < this.strings.length; i++) text += `$${i}${this.strings[i]}`;
    return text;
  }
}

/** A statement from a tagged template: `sql\`SELECT … WHERE id = ${id}\``. */
export function sql(strings: TemplateStringsArray | readonly string[], ...values: unknown[]): Sql {
  return new Sql(strings, values);
}

/** Trusted text spliced in as it is (identifiers, constants): never a value from the platform. */
export function raw(text: string): Sql {
  return new Sql([text], []);
}

/** The empty fragment. */
export const empty: Sql = raw('');

/**
 * An instant (ms since the epoch) as its UTC wall time: the platform's
 * `timestamp(3)` convention, which also compares right with a `timestamptz`
 * column under the read transaction's TimeZone UTC.
 */
export function utcInstant(ms: number): Sql {
  return sql`(${new Date(ms).toISOString()}::timestamptz AT TIME ZONE 'UTC')`;
}

/** `values` (fragments or bound values) separated by `separator`. */
export function join(values: readonly unknown[], separator = ','): Sql {
  if (values.length === 0) throw new TypeError('join() needs at least one value');
  return new Sql(['', ...Array<string>(values.length - 1).fill(separator), ''], values);
}
