/**
 * src/db/migrate.ts refuses a migration edited since it was applied, with
 * the same verdict as Prisma's own engine (its diagnoseMigrationHistory,
 * which `prisma migrate status` / `migrate dev` use): line-ending changes
 * are not edits, an unpadded checksum of an old engine still matches, any
 * other change is an edit. Prisma's engine runs compiled to WebAssembly on
 * PGlite (test/helpers/schema-engine.ts); ours on PostgreSQL 15.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checksumMatches, migrate, MIGRATIONS_DIR, REPLACED_CHECKSUMS } from '../src/db/migrate.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { NO_FILTER, openSchemaEngine, readMigrationsList, resetPglite, type EngineHandle } from './helpers/schema-engine.js';

function hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** The hex an old engine wrote: each byte without its leading zero (prisma-engines#1887). */
function unpadded(text: string): string {
  return [...createHash('sha256').update(text).digest()].map((b) => b.toString(16)).join('');
}

describe('checksumMatches, on the cases of Prisma\'s own unit tests (schema-connector checksum.rs)', () => {
  it('is the lowercase, zero-padded hex SHA-256 of the text', () => {
    expect(hex('hello')).toBe('2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824');
    expect(checksumMatches('hello', '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824')).toBe(true);
  });

  it('does not care about LF versus CRLF, in either direction; a lone CR stays significant', () => {
    const pairs = [
      ['ab\ncd\nef\ngh\rab', 'ab\r\ncd\r\nef\r\ngh\rab'],
      ['ab\ncd\nef\ngh\rab\n', 'ab\r\ncd\r\nef\r\ngh\rab\r\n'],
    ];
    for (const pair of pairs) for (const a of pair) for (const b of pair) expect(checksumMatches(a, hex(b)), `${JSON.stringify(a)} vs ${JSON.stringify(b)}`).toBe(true);
    expect(checksumMatches('ab\ncd', hex('ab\rcd'))).toBe(false);
  });

  it('sees any other change, a trailing newline included', () => {
    expect(checksumMatches('abc', hex('abcd'))).toBe(false);
    expect(checksumMatches('abc\n', hex('abc'))).toBe(false);
  });

  it("accepts an old engine's unpadded checksum, and only of the same text", () => {
    const text = Array.from({ length: 50 }, (_, i) => `-- ${i}\n`).find((t) => unpadded(t).length < 64)!;
    expect(unpadded(text).length).toBeLessThan(64);
    expect(checksumMatches(text, unpadded(text))).toBe(true);
    expect(checksumMatches(`${text} `, unpadded(text))).toBe(false);
  });
});

describe('migrate() and Prisma\'s engine agree on which applied migrations were edited', () => {
  let dir: string;
  let db: TestDatabase;
  let pglite: PGlite;
  let engine: EngineHandle;
  const first = '20990101000000_first';
  const second = '20990101000100_second';
  const files: Record<string, string> = {
    [first]: '-- first\nCREATE TABLE "t1" ("id" INTEGER);\n',
    [second]: '-- second\nCREATE TABLE "t2" ("id" INTEGER);\n',
  };
  const file = (name: string) => path.join(dir, name, 'migration.sql');

  /** Prisma's verdict: the engine's editedMigrationNames for the folder as it is now. */
  async function prismaEdited(): Promise<string[]> {
    const diagnosis = await engine.engine
      .diagnoseMigrationHistory({ migrationsList: await readMigrationsList(dir), optInToShadowDatabase: false, filters: NO_FILTER })
      .catch(engine.explain);
    return diagnosis.editedMigrationNames;
  }

  /** Our verdict: the names migrate() refuses, or [] when it runs. */
  async function oursEdited(): Promise<string[]> {
    try {
      expect(await migrate(db.adminUrl, dir)).toEqual({ applied: [], alreadyApplied: [first, second] });
      return [];
    } catch (err) {
      const m = /^migration (.+) was edited after it was applied/.exec((err as Error).message);
      if (!m) throw err;
      return m[1]!.split(', ');
    }
  }

  async function setChecksum(name: string, checksum: string): Promise<void> {
    await db.admin.query('UPDATE "_prisma_migrations" SET checksum = $2 WHERE migration_name = $1', [name, checksum]);
    await pglite.query('UPDATE "_prisma_migrations" SET checksum = $2 WHERE migration_name = $1', [name, checksum]);
  }

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ops-checksums-'));
    await writeFile(path.join(dir, 'migration_lock.toml'), 'provider = "postgresql"\n');
    for (const [name, sql] of Object.entries(files)) {
      await mkdir(path.join(dir, name));
      await writeFile(file(name), sql);
    }
    db = await createTestDatabase('mig_checksums', { migrate: false });
    pglite = new PGlite();
    await pglite.waitReady;
    await resetPglite(pglite);
    engine = await openSchemaEngine({ db: pglite });
    expect(await migrate(db.adminUrl, dir)).toEqual({ applied: [first, second], alreadyApplied: [] });
    const applied = await engine.engine.applyMigrations({ migrationsList: await readMigrationsList(dir), filters: NO_FILTER }).catch(engine.explain);
    expect(applied).toEqual({ appliedMigrationNames: [first, second] });
  }, 60_000);

  afterAll(async () => {
    engine?.free();
    await pglite?.close();
    await db?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('unchanged files: neither finds an edit', async () => {
    expect(await prismaEdited()).toEqual([]);
    expect(await oursEdited()).toEqual([]);
  }, 20_000);

  it('a file checked out with CRLF line endings: neither finds an edit', async () => {
    await writeFile(file(first), files[first]!.replace(/\n/g, '\r\n'));
    expect(await prismaEdited()).toEqual([]);
    expect(await oursEdited()).toEqual([]);
    await writeFile(file(first), files[first]!);
  }, 20_000);

  it('a changed statement: both name that migration, and ours applies nothing', async () => {
    await writeFile(file(second), files[second]!.replace('"t2"', '"t2b"'));
    expect(await prismaEdited()).toEqual([second]);
    expect(await oursEdited()).toEqual([second]);
    const { rows } = await db.admin.query(`SELECT tablename FROM pg_tables WHERE tablename = 't2b'`);
    expect(rows).toEqual([]);
    await writeFile(file(second), files[second]!);
  }, 20_000);

  it("an old engine's unpadded checksum of the same text: neither finds an edit; of another text: both do", async () => {
    // The first file's comment is varied until its digest has a byte below 0x10.
    const text = Array.from({ length: 50 }, (_, i) => `-- first ${i}\nCREATE TABLE "t1" ("id" INTEGER);\n`).find(
      (t) => unpadded(t).length < 64,
    )!;
    await writeFile(file(first), text);
    await setChecksum(first, unpadded(text));
    expect(await prismaEdited()).toEqual([]);
    expect(await oursEdited()).toEqual([]);
    await writeFile(file(first), `${text}-- edited\n`);
    expect(await prismaEdited()).toEqual([first]);
    expect(await oursEdited()).toEqual([first]);
    await writeFile(file(first), files[first]!);
    await setChecksum(first, hex(files[first]!));
  }, 20_000);
});

describe("the exporter's own index migration, applied before its text was replaced", () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase('mig_replaced');
  }, 30_000);

  afterAll(async () => {
    await db?.drop();
  });

  it('is run again in its new, idempotent text and its checksum updated, instead of being refused', async () => {
    const name = '20261125000100_exporter_indexes';
    const [old] = REPLACED_CHECKSUMS[name]!;
    await db.admin.query('UPDATE "_prisma_migrations" SET checksum = $2 WHERE migration_name = $1', [name, old]);
    await db.admin.query('DROP INDEX "Backup_failed_idx"');
    const result = await migrate(db.adminUrl);
    expect(result.reapplied).toEqual([name]);
    expect(result.applied).toEqual([]);
    const current = hex(await readFile(path.join(MIGRATIONS_DIR, name, 'migration.sql'), 'utf8'));
    const { rows } = await db.admin.query<{ checksum: string }>('SELECT checksum FROM "_prisma_migrations" WHERE migration_name = $1', [name]);
    expect(rows).toEqual([{ checksum: current }]);
    const { rows: idx } = await db.admin.query(`SELECT 1 FROM pg_indexes WHERE indexname = 'Backup_failed_idx'`);
    expect(idx).toHaveLength(1);
    // Any other unknown checksum is an edit.
    await db.admin.query('UPDATE "_prisma_migrations" SET checksum = $2 WHERE migration_name = $1', [name, hex('something else')]);
    await expect(migrate(db.adminUrl)).rejects.toThrow(`migration ${name} was edited after it was applied`);
  }, 30_000);
});
