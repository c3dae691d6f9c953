/**
 * Indexes (the exporter's own needs): whether each index the other sources'
 * queries rely on exists and is valid on the platform database. Without them
 * every collection reads history instead of what is live or recent (200×
 * the database time at the large scale) and nothing else would say so. Runs
 * at start-up and then hourly; only the catalog is read.
 */
import type { Database } from '../db/client.js';
import { inspectIndexes, type IndexState } from '../db/indexes.js';
import type { Sample } from '../metrics/sample.js';
import type { CollectContext, Source, SourceData } from './types.js';

/** The source's name (add it to catalog.ts's SourceName). */
export const INDEXES_SOURCE_NAME = 'indexes';

/** How often the check runs by default, seconds. */
export const INDEXES_INTERVAL_SECONDS = 3600;

/** Where the source says what to run (pino's, Fastify's `app.log`). */
export interface IndexesLogger {
  warn(fields: Record<string, unknown>, message: string): void;
}

/** Options of the indexes source. */
export interface IndexesOptions {
  /** Told once per collection about each index that is missing or invalid, with the statement to run. */
  logger?: IndexesLogger;
}

/** What an indexes collection returns. */
export interface IndexesData extends SourceData {
  /** One entry per needed index, in EXPORTER_INDEXES order. */
  indexes: IndexState[];
}

/** The samples: 1 per index missing or invalid, 0 per index fine; none for a table that does not exist (pure). */
export function indexSamples(data: IndexesData): Sample[] {
  return data.indexes
    .filter((s) => s.tableExists)
    .map((s) => ({ metric: 'exporterIndexMissing' as const, labels: { index: s.name }, value: s.valid ? 0 : 1 }));
}

/** The indexes source, on the exporter's read-only connection. */
export function indexesSource(
  db: Database,
  options: IndexesOptions = {},
): Source<IndexesData> {
  return {
    name: INDEXES_SOURCE_NAME,
    backend: 'database',
    async collect(ctx: CollectContext): Promise<IndexesData> {
      const indexes = await db.read(ctx.timeoutMs, (tx) =>
        inspectIndexes(<R>(sql: string, params: unknown[]) => tx.queryUnsafe<R[]>(sql, ...params), { concurrently: true }),
      );
      for (const s of indexes) {
        if (!s.tableExists || s.valid) continue;
        options.logger?.warn(
          { source: INDEXES_SOURCE_NAME, index: s.name, table: s.table, state: s.exists ? 'invalid' : 'missing', statement: s.statement },
          s.exists
            ? `index ${s.name} is invalid (a build that failed): the exporter's queries on ${s.table} read the whole table; as the table's owner run DROP INDEX CONCURRENTLY "${s.name}"; then ${s.statement} (or: npm run db:indexes -- --concurrently)`
            : `index ${s.name} is missing: the exporter's queries on ${s.table} read the whole table; as the table's owner run ${s.statement} (or: npm run db:indexes -- --concurrently)`,
        );
      }
      return { indexes, invalid: {} };
    },
    samples: indexSamples,
  };
}
