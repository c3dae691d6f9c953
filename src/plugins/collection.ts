/**
 * The collection: the database and Redis connections, the five sources, the
 * background runner and the metric registries, decorated on the app and
 * closed with it.
 */
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { CollectionRunner } from '../collector/runner.js';
import { Database } from '../db/client.js';
import { createRegistries, type ExporterRegistries } from '../metrics/registry.js';
import { createRedis } from '../redis.js';
import { createSources } from '../sources/index.js';
import type { ScheduledSource } from '../sources/types.js';

/** The exporter's version, from package.json. */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

declare module 'fastify' {
  interface FastifyInstance {
    collection: CollectionRunner;
    registries: ExporterRegistries;
    db: Database;
    redis: Redis;
  }
}

/** Options of the collection plugin. */
export interface CollectionPluginOptions {
  config: Config;
  /** The clock of every collection; tests pin it. */
  now?: () => Date;
  /** Replaces the sources built from the config (tests). */
  sources?: (deps: { db: Database; redis: Redis }) => ScheduledSource[];
  /** Whether to start background collection (default true); tests drive collections by hand. */
  start?: boolean;
}

export const collectionPlugin = fp(
  async (app, opts: CollectionPluginOptions) => {
    const { config } = opts;
    const db = new Database({ url: config.databaseUrl, poolMax: config.dbPoolMax });
    const redis = createRedis(config.redisUrl, app.log, { commandTimeoutMs: config.sources.queues.timeoutSeconds * 1000 });
    const sources = opts.sources ? opts.sources({ db, redis }) : createSources(config, db, redis, app.log);
    const runner = new CollectionRunner(sources, { logger: app.log, now: opts.now });
    app.decorate('db', db);
    app.decorate('redis', redis);
    app.decorate('collection', runner);
    app.decorate('registries', createRegistries(() => runner.snapshot(), { version: VERSION }));
    if (opts.start !== false) app.addHook('onReady', async () => runner.start());
    // Least privilege, checked once: say loudly when the role could write.
    // Not awaited: a database that is down at start-up is reported by the sources.
    app.addHook('onReady', async () => {
      db.privileges(5_000).then(
        (p) => {
          if (p.superuser || p.writableTables.length > 0) {
            app.log.warn(
              { user: p.user, superuser: p.superuser, writableTables: p.writableTables.slice(0, 20) },
              `the database role "${p.user}" can ${p.superuser ? 'do anything (superuser)' : 'write tables'}; run the exporter as a read-only role (sql/readonly-role.sql)`,
            );
          }
        },
        () => undefined,
      );
    });
    app.addHook('onClose', async () => {
      await runner.stop();
      await db.close();
      redis.disconnect();
    });
  },
  { name: 'ops-collection', fastify: '5.x' },
);
