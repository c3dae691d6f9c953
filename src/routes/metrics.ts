/**
 * GET /metrics: Prometheus text format, or OpenMetrics when the scraper
 * prefers it; gzip-compressed when the scraper accepts it (Prometheus always
 * does). Both the body and its compressed form are made once per collection
 * generation and format, not per scrape.
 */
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

const gzipAsync = promisify(gzip);

/** OpenMetrics versions prom-client's output satisfies (Prometheus asks for 1.0.0, then 0.0.1). */
const OPENMETRICS_VERSIONS = ['1.0.0', '0.0.1'];

interface MediaRange {
  type: string;
  params: Record<string, string>;
  q: number;
}

function parseAccept(accept: string): MediaRange[] {
  return accept
    .slice(0, 2_000)
    .split(',')
    .slice(0, 50)
    .map((part) => {
      const [type = '', ...rest] = part.split(';').map((s) => s.trim());
      const params: Record<string, string> = {};
      for (const p of rest) {
        const eq = p.indexOf('=');
        if (eq > 0) params[p.slice(0, eq).trim().toLowerCase()] = p.slice(eq + 1).trim().replace(/^"|"$/g, '');
      }
      const q = params.q === undefined ? 1 : Number(params.q);
      return { type: type.toLowerCase(), params, q: Number.isFinite(q) ? Math.min(1, Math.max(0, q)) : 0 };
    })
    .filter((r) => r.type !== '');
}

/**
 * Whether the Accept header prefers OpenMetrics: an `application/openmetrics-text`
 * range (without a version, or a version prom-client's output satisfies) with
 * a q above 0 and not below text/plain's. Anything else, including an Accept
 * that allows neither, gets the Prometheus text format, which every scraper
 * reads.
 */
export function wantsOpenMetrics(accept: string | undefined): boolean {
  if (typeof accept !== 'string' || accept === '') return false;
  let om = 0;
  let text = 0;
  for (const r of parseAccept(accept)) {
    if (r.type === 'application/openmetrics-text') {
      const version = r.params.version;
      if (version === undefined || OPENMETRICS_VERSIONS.includes(version)) om = Math.max(om, r.q);
    } else if (r.type === 'text/plain' || r.type === 'text/*' || r.type === '*/*') {
      text = Math.max(text, r.type === 'text/plain' ? r.q : r.q - 1e-6);
    }
  }
  return om > 0 && om >= text;
}

/** The two expositions /metrics serves. */
export type ExpositionFormat = 'text' | 'openmetrics';

/** What the exposition cache has done since start, for tests and the bench. */
export interface ExpositionStats {
  /** Times a registry was rendered (once per collection generation and format asked for). */
  renders: number;
  /** Times a rendered body was gzip-compressed (once per generation and format asked for gzip). */
  compressions: number;
  /** Sizes of the last body rendered and compressed, bytes, per format. */
  lastBytes: Partial<Record<ExpositionFormat, { identity: number; gzip?: number }>>;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The /metrics bodies, rendered and compressed once per collection generation. */
    exposition: { stats(): ExpositionStats };
  }
}

/**
 * Whether the Accept-Encoding header accepts gzip: `gzip` (or `x-gzip`) with a
 * q above 0, or `*` with a q above 0 when gzip is not named. Malformed parts
 * are ignored; only the first 1,000 characters and 20 codings are read.
 */
export function acceptsGzip(acceptEncoding: string | string[] | undefined): boolean {
  const header = Array.isArray(acceptEncoding) ? acceptEncoding.join(',') : acceptEncoding;
  if (typeof header !== 'string' || header === '') return false;
  let gzip: number | undefined;
  let star: number | undefined;
  for (const part of header.slice(0, 1_000).split(',').slice(0, 20)) {
    const [coding = '', ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    let q = 1;
    for (const p of params) {
      const m = /^q\s*=\s*([0-9.]{1,6})$/.exec(p);
      if (m) q = Number(m[1]);
    }
    if (!Number.isFinite(q)) q = 0;
    if (coding === 'gzip' || coding === 'x-gzip') gzip = Math.max(gzip ?? 0, q);
    else if (coding === '*') star = Math.max(star ?? 0, q);
  }
  return (gzip ?? star ?? 0) > 0;
}

/** gzip level of the /metrics body: zlib's default, ~1/8 of the text for a few ms once per generation. */
const GZIP_LEVEL = 6;

/**
 * GET /metrics. Wrapped in fastify-plugin so that the `exposition` decorator
 * (its counters) is visible on the application.
 */
export const metricsRoutes = fp(
  async (app: FastifyInstance) => {
    // What /metrics serves changes only with the collection snapshot:
    // render, and compress, once per snapshot and format, however many
    // scrapers ask in between (the snapshot is the one cache).
    interface Entry {
      body: Promise<Buffer>;
      gzip?: Promise<Buffer>;
    }
    const stats: ExpositionStats = { renders: 0, compressions: 0, lastBytes: {} };

    const entry = (format: ExpositionFormat): Entry =>
      app.collection.snapshot().derive(`metrics:${format}`, (): Entry => {
        const registry = format === 'openmetrics' ? app.registries.openMetrics : app.registries.prometheus;
        stats.renders += 1;
        // Encoded once: a large exposition is not re-encoded for every scrape.
        const body = registry.metrics().then((text) => {
          const buffer = Buffer.from(text, 'utf8');
          stats.lastBytes[format] = { identity: buffer.length };
          return buffer;
        });
        return { body };
      });

    const gzipped = (format: ExpositionFormat, e: Entry): Promise<Buffer> => {
      if (!e.gzip) {
        e.gzip = e.body.then((buffer) => {
          stats.compressions += 1;
          return gzipAsync(buffer, { level: GZIP_LEVEL }).then((compressed) => {
            const last = stats.lastBytes[format];
            if (last && last.identity === buffer.length) last.gzip = compressed.length;
            return compressed;
          });
        });
        const pending = e.gzip;
        pending.catch(() => {
          if (e.gzip === pending) e.gzip = undefined;
        });
      }
      return e.gzip;
    };

    app.decorate('exposition', { stats: (): ExpositionStats => structuredClone(stats) });

    app.get('/metrics', { preHandler: app.requireMetricsAccess, logLevel: 'warn' }, async (request, reply) => {
      const format: ExpositionFormat = wantsOpenMetrics(request.headers.accept) ? 'openmetrics' : 'text';
      const registry = format === 'openmetrics' ? app.registries.openMetrics : app.registries.prometheus;
      const e = entry(format);
      reply.header('Cache-Control', 'no-store').header('Vary', 'Accept, Accept-Encoding').type(registry.contentType);
      if (acceptsGzip(request.headers['accept-encoding'])) {
        return reply.header('Content-Encoding', 'gzip').send(await gzipped(format, e));
      }
      return reply.send(await e.body);
    });
  },
  { name: 'ops-metrics-route', fastify: '5.x', dependencies: ['ops-auth', 'ops-collection'] },
);
