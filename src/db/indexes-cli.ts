/**
 * `npm run db:indexes [-- --concurrently] [-- --check]`: builds the indexes
 * the exporter's queries need on the platform database at DATABASE_URL (as
 * its owner), one statement at a time. `--concurrently` builds them without
 * locking writes (a live database); `--check` only reports. Leaves the
 * platform's own `_prisma_migrations` alone.
 */
import pg from 'pg';
import { redactUrl } from '../redact.js';
import { applyIndexes, inspectIndexes } from './indexes.js';

const args = process.argv.slice(2);
const unknown = args.filter((a) => a !== '--concurrently' && a !== '--check');
if (unknown.length > 0) {
  console.error(`db:indexes: unknown argument ${unknown.join(' ')} (usage: npm run db:indexes -- [--concurrently] [--check])`);
  process.exit(2);
}
const url = process.env.DATABASE_URL;
if (!url) {
  console.error('DATABASE_URL is not set: it names the platform database, as a role that owns its tables');
  process.exit(2);
}
const concurrently = args.includes('--concurrently');
const client = new pg.Client({ connectionString: url, application_name: 'ops-overview-indexes' });
let code = 0;
try {
  await client.connect();
  if (args.includes('--check')) {
    const states = await inspectIndexes(async (sql, params) => (await client.query(sql, params)).rows, { concurrently });
    for (const s of states) {
      const state = !s.tableExists ? 'no table' : s.valid ? 'ok' : s.exists ? 'INVALID' : 'MISSING';
      console.log(`${s.name}: ${state}${s.tableExists && !s.valid ? `\n  ${s.statement}` : ''}`);
      if (s.tableExists && !s.valid) code = 1;
    }
  } else {
    const actions = await applyIndexes(client, { concurrently, log: (statement) => console.log(statement) });
    for (const a of actions) console.log(`${a.name}: ${a.action.replace(/_/g, ' ')}`);
    console.log(`done on ${redactUrl(url)}`);
  }
} catch (err) {
  console.error(`db:indexes failed on ${redactUrl(url)}: ${err instanceof Error ? err.message : String(err)}`);
  console.error('An index whose build failed is left INVALID; run the same command again: it drops and rebuilds it.');
  code = 1;
} finally {
  await client.end().catch(() => undefined);
}
process.exit(code);
