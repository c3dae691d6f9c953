/**
 * Prisma's real schema engine (the Rust code behind `prisma migrate`), compiled
 * to WebAssembly (@prisma/schema-engine-wasm), for tests that must not need
 * Prisma's native engine download.
 *
 * The package is built with `wasm-bindgen --target bundler`: its entry point
 * does `import * as wasm from "./schema_engine_bg.wasm"`, which Node 20 cannot
 * load. So it is instantiated by hand, the way Prisma's own CLI does it
 * (@prisma/internals, WasmSchemaEngineLoader): compile the .wasm, give it the
 * JS glue module `schema_engine_bg.js` as its only import namespace, hand the
 * exports back to the glue with `__wbg_set_wasm`, then call `__wbindgen_start`.
 *
 * `SchemaEngine.new(options, logCallback, adapterFactory)` always connects:
 * it calls `adapterFactory.connect()` and runs one version probe on the
 * connection. A pure diff (empty or schema.prisma on either side) never
 * touches that connection again, so a stub that answers the probe and throws
 * on anything else is enough: no database at all. A diff *from the migrations
 * folder* replays the migrations on a shadow database, which the engine asks
 * for with `adapterFactory.connectToShadowDb()`; here that is an in-process
 * PGlite (PostgreSQL compiled to WebAssembly) through pglite-prisma-adapter.
 *
 * The engine expects the factory and adapters in Prisma's "error capturing"
 * shape: every method resolves to `{ ok: true, value }` or `{ ok: false,
 * error }` (what @prisma/driver-adapter-utils' bind* helpers produce). That
 * small wrapper is written out below rather than importing a package the
 * project does not depend on directly.
 */
import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import type {
  MigrationList,
  SchemaEngine,
  SchemaFilter,
} from '@prisma/schema-engine-wasm/schema_engine_bg';
import { PrismaPGlite } from 'pglite-prisma-adapter';

export type { SchemaEngine } from '@prisma/schema-engine-wasm/schema_engine_bg';

/** The project's Prisma schema. */
export const SCHEMA_PATH = path.join(import.meta.dirname, '..', '..', 'prisma', 'schema.prisma');

/** "Everything": no external tables or enums. */
export const NO_FILTER: SchemaFilter = { externalTables: [], externalEnums: [] };

// ---------------------------------------------------------------------------
// Instantiation

/** The part of the WebAssembly JS API used here (the project's `lib` has no DOM types). */
interface WebAssemblyApi {
  instantiate(
    bytes: Uint8Array,
    imports: Record<string, object>,
  ): Promise<{ instance: { exports: Record<string, unknown> } }>;
}
const { WebAssembly: wasmApi } = globalThis as unknown as { WebAssembly: WebAssemblyApi };

let engineClass: Promise<typeof SchemaEngine> | undefined;

/**
 * Instantiates the wasm module once per process (wasm-bindgen keeps its
 * instance in module state; instantiating twice breaks it) and returns the
 * `SchemaEngine` class.
 */
export function loadSchemaEngineWasm(): Promise<typeof SchemaEngine> {
  engineClass ??= (async () => {
    const glue = await import('@prisma/schema-engine-wasm/schema_engine_bg');
    // The package's "exports" has no "./package.json" or ".wasm" entry; find
    // the .wasm next to the glue module it ships with.
    const gluePath = createRequire(import.meta.url).resolve('@prisma/schema-engine-wasm/schema_engine_bg');
    const bytes = await readFile(path.join(path.dirname(gluePath), 'schema_engine_bg.wasm'));
    const { instance } = await wasmApi.instantiate(bytes, { './schema_engine_bg.js': glue });
    glue.__wbg_set_wasm(instance.exports);
    (instance.exports.__wbindgen_start as () => void)();
    return glue.SchemaEngine;
  })();
  return engineClass;
}

// ---------------------------------------------------------------------------
// Driver adapters in the engine's error-capturing shape

type Captured<T> = { ok: true; value: T } | { ok: false; error: unknown };

interface SqlQuery {
  sql: string;
  args: unknown[];
  argTypes: unknown[];
}

/** What the engine calls on a connection (Prisma's SqlDriverAdapter, captured). */
interface CapturedAdapter {
  readonly provider: 'postgres';
  readonly adapterName: string;
  queryRaw(query: SqlQuery): Promise<Captured<unknown>>;
  executeRaw(query: SqlQuery): Promise<Captured<number>>;
  executeScript(script: string): Promise<Captured<void>>;
  startTransaction(isolationLevel?: string): Promise<Captured<unknown>>;
  dispose(): Promise<Captured<void>>;
}

/** JS errors the engine saw, by the id it reports them under ("External error id#N"). */
class ErrorRegistry {
  readonly errors = new Map<number, unknown>();
  private next = 1;

  register(error: unknown): number {
    const id = this.next++;
    this.errors.set(id, error);
    return id;
  }
}

/**
 * Runs `fn` and turns its outcome into the engine's result shape: PostgreSQL
 * errors become `{ kind: 'postgres', … }` so the engine reports the database's
 * message; anything else is kept in the registry and reported by id.
 */
function capture<A extends unknown[], T>(
  registry: ErrorRegistry,
  fn: (...args: A) => Promise<T>,
): (...args: A) => Promise<Captured<T>> {
  return async (...args: A) => {
    try {
      return { ok: true, value: await fn(...args) };
    } catch (error) {
      const e = error as { name?: unknown; cause?: unknown; code?: unknown; severity?: unknown; message?: unknown };
      if (e?.name === 'DriverAdapterError' && typeof e.cause === 'object') return { ok: false, error: e.cause };
      if (typeof e?.code === 'string' && typeof e.severity === 'string' && typeof e.message === 'string') {
        return {
          ok: false,
          error: { kind: 'postgres', code: e.code, severity: e.severity, message: e.message, originalCode: e.code, originalMessage: e.message },
        };
      }
      return { ok: false, error: { kind: 'GenericJs', id: registry.register(error) } };
    }
  };
}

/** PostgreSQL 15, as the engine's connection probe wants to see it. */
const VERSION_PROBE = /server_version_num/;
const BOOLEAN = 5;
const TEXT = 7;
const INT32 = 0;

/**
 * A connection to no database: answers the engine's constructor probe and
 * throws on anything else, so a call that would need a database fails loudly
 * instead of silently diffing against nothing.
 */
function noDatabaseAdapter(registry: ErrorRegistry): CapturedAdapter {
  const refuse = (what: string) => async (): Promise<never> => {
    throw new Error(`schema-engine test helper: this engine has no database (it tried ${what})`);
  };
  return {
    provider: 'postgres',
    adapterName: 'ops-overview-no-database',
    queryRaw: capture(registry, async (query: SqlQuery) => {
      if (VERSION_PROBE.test(query.sql)) {
        return {
          columnNames: ['exists', 'version', 'numeric_version'],
          columnTypes: [BOOLEAN, TEXT, INT32],
          rows: [[true, 'PostgreSQL 15 (no database: schema-engine-wasm test helper)', 150000]],
        };
      }
      throw new Error(`schema-engine test helper: this engine has no database (it queried: ${query.sql.slice(0, 200)})`);
    }),
    executeRaw: capture(registry, refuse('executeRaw')),
    executeScript: capture(registry, refuse('executeScript')),
    startTransaction: capture(registry, refuse('startTransaction')),
    dispose: capture(registry, async () => undefined),
  };
}

/** A connection to `db` through pglite-prisma-adapter (type mapping included). */
async function pgliteAdapter(db: PGlite, registry: ErrorRegistry): Promise<CapturedAdapter> {
  const inner = await new PrismaPGlite(db).connect();
  return {
    provider: 'postgres',
    adapterName: inner.adapterName,
    queryRaw: capture(registry, (query: SqlQuery) => inner.queryRaw(query as Parameters<typeof inner.queryRaw>[0])),
    executeRaw: capture(registry, (query: SqlQuery) => inner.executeRaw(query as Parameters<typeof inner.executeRaw>[0])),
    // pglite-prisma-adapter 0.7.2's executeScript does not await `exec()`: a
    // failing migration would count as applied and its error would surface
    // later as an unhandled rejection. Run the script here and wait for it.
    executeScript: capture(registry, async (script: string) => {
      await db.exec(script);
    }),
    // None of the engine calls these tests make opens a transaction.
    startTransaction: capture(registry, async (): Promise<never> => {
      throw new Error('schema-engine test helper: transactions are not supported');
    }),
    dispose: capture(registry, async () => undefined),
  };
}

/** An engine and what it needs to be explained and closed. */
export interface EngineHandle {
  engine: SchemaEngine;
  /** The engine's log lines (JSON), for failure messages. */
  logs: string[];
  /** Rethrows an engine error with the JS error behind any "External error id#N". */
  explain(error: unknown): never;
  free(): void;
}

/**
 * A schema engine whose main connection is `db` (or no database at all) and
 * whose shadow database, if the engine asks for one, is `shadowDb`.
 */
export async function openSchemaEngine(opts: { db?: PGlite; shadowDb?: PGlite } = {}): Promise<EngineHandle> {
  const Engine = await loadSchemaEngineWasm();
  const registry = new ErrorRegistry();
  const logs: string[] = [];
  const factory = {
    provider: 'postgres',
    adapterName: 'ops-overview-test',
    connect: capture(registry, async () => (opts.db ? pgliteAdapter(opts.db, registry) : noDatabaseAdapter(registry))),
    connectToShadowDb: capture(registry, async () => {
      if (!opts.shadowDb) throw new Error('schema-engine test helper: no shadow database was given');
      return pgliteAdapter(opts.shadowDb, registry);
    }),
  };
  const explain = (error: unknown): never => {
    if (!(error instanceof Error)) throw error;
    const details = [...error.message.matchAll(/External error id#(\d+)/g)]
      .map((m) => registry.errors.get(Number(m[1])))
      .filter((e) => e !== undefined)
      .map((e) => (e instanceof Error ? e.message : String(e)));
    if (details.length > 0) error.message += `\nJS error(s) behind it: ${details.join('; ')}`;
    throw error;
  };
  let engine: SchemaEngine;
  try {
    engine = await Engine.new({ datamodels: undefined }, (line: string) => logs.push(line), factory);
  } catch (error) {
    return explain(error);
  }
  return { engine, logs, explain, free: () => engine.free() };
}

// ---------------------------------------------------------------------------
// Inputs, read as Prisma's CLI reads them

/**
 * The migrations folder as `prisma migrate` hands it to the engine (Prisma 7
 * reads the files in JS, as UTF-8 text, and passes their contents; see
 * packages/migrate/src/utils/listMigrations.ts).
 */
export async function readMigrationsList(dir: string): Promise<MigrationList> {
  const lockfileContent = await readFile(path.join(dir, 'migration_lock.toml'), 'utf8').catch(() => null);
  const entries = await readdir(dir, { withFileTypes: true });
  const names = entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort((a, b) => a.localeCompare(b));
  return {
    baseDir: dir,
    lockfile: { path: 'migration_lock.toml', content: lockfileContent },
    shadowDbInitScript: '',
    migrationDirectories: await Promise.all(
      names.map(async (name) => ({
        path: name,
        migrationFile: {
          path: 'migration.sql',
          content: await readFile(path.join(dir, name, 'migration.sql'), 'utf8').then(
            (value) => ({ tag: 'ok' as const, value }),
            (error: Error) => ({ tag: 'error' as const, value: error.message }),
          ),
        },
      })),
    ),
  };
}

async function schemaFiles(schemaPath: string) {
  return { files: [{ path: schemaPath, content: await readFile(schemaPath, 'utf8') }] };
}

// ---------------------------------------------------------------------------
// Diffs

/**
 * The SQL of `prisma migrate diff --from-empty --to-schema <schema> --script`:
 * what Prisma Migrate would put in a first migration. No database involved.
 */
export async function diffFromEmpty(schemaPath: string = SCHEMA_PATH): Promise<string> {
  const h = await openSchemaEngine();
  try {
    const result = await h.engine
      .diff({
        from: { tag: 'empty' },
        to: { tag: 'schemaDatamodel', ...(await schemaFiles(schemaPath)) },
        script: true,
        exitCode: null,
        filters: NO_FILTER,
      })
      .catch(h.explain);
    if (result.stdout === null) throw new Error('schema engine returned no script');
    return result.stdout;
  } finally {
    h.free();
  }
}

/**
 * `prisma migrate diff --from-migrations <dir> --to-schema <schema>`: the
 * engine replays the migrations on `shadowDb` (which must be empty; it is left
 * with the migrated schema) and diffs the result with the schema. `exitCode`
 * is 0 when there is nothing to migrate, 2 otherwise; `script` is the SQL of
 * the migration Prisma would generate next and `summary` its readable form.
 */
export async function diffFromMigrations(
  dir: string,
  shadowDb: PGlite,
  schemaPath: string = SCHEMA_PATH,
): Promise<{ exitCode: number; script: string; summary: string }> {
  const h = await openSchemaEngine({ shadowDb });
  try {
    const migrations = await readMigrationsList(dir);
    const to = { tag: 'schemaDatamodel' as const, ...(await schemaFiles(schemaPath)) };
    const script = await h.engine
      .diff({ from: { tag: 'migrations', ...migrations }, to, script: true, exitCode: true, filters: NO_FILTER })
      .catch(h.explain);
    // The engine does not clean the shadow database; reset it for the second replay.
    await resetPglite(shadowDb);
    const summary = await h.engine
      .diff({ from: { tag: 'migrations', ...migrations }, to, script: false, exitCode: true, filters: NO_FILTER })
      .catch(h.explain);
    return { exitCode: script.exitCode, script: script.stdout ?? '', summary: summary.stdout ?? '' };
  } finally {
    h.free();
  }
}

/** Empties a PGlite database's `public` schema (tables, indexes, sequences, rows). */
export async function resetPglite(db: PGlite): Promise<void> {
  await db.exec('DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public; RESET search_path;');
}
