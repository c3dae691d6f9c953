/** `npm run db:migrate`: applies pending migrations to DATABASE_URL. */
import { migrate } from './migrate.js';
import { redactUrl } from '../redact.js';

const url = process.env.DATABASE_URL;
if (!url) {
  console.error('DATABASE_URL is not set: it names the database to migrate (postgresql://user:pass@host:5432/db)');
  process.exit(2);
}
try {
  const result = await migrate(url);
  for (const name of result.applied) console.log(`applied ${name}`);
  for (const name of result.reapplied ?? []) console.log(`re-applied ${name} (its text was replaced by an idempotent one)`);
  console.log(`${result.applied.length} applied, ${result.alreadyApplied.length} already applied on ${redactUrl(url)}`);
} catch (err) {
  console.error(`db:migrate failed on ${redactUrl(url)}: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
