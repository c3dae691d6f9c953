import path from 'node:path';
import { defineConfig } from 'prisma/config';

// Prisma's CLI insists on its native schema engine even for `generate`, which
// never runs it. Offline, point it at a placeholder so `npm ci` can generate
// the client; set PRISMA_SCHEMA_ENGINE_BINARY= (empty) to restore the download.
process.env.PRISMA_SCHEMA_ENGINE_BINARY ??= path.join(import.meta.dirname, 'scripts', 'schema-engine-placeholder');

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  datasource: { url: process.env.DATABASE_URL ?? 'postgresql://localhost/ops_overview_unset' },
});
