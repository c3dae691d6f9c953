/** GET /metrics: Prometheus text format, or OpenMetrics when the scraper prefers it. */
import type { FastifyInstance } from 'fastify';

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

export async function metricsRoutes(app: FastifyInstance): Promise<void> {
  // What /metrics serves changes only with the collection snapshot: render
  // once per snapshot and format, however many scrapers ask in between.
  const render = (format: 'text' | 'openmetrics'): Promise<Buffer> => {
    const snapshot = app.collection.snapshot();
    return snapshot.derive(`metrics:${format}`, () => {
      const registry = format === 'openmetrics' ? app.registries.openMetrics : app.registries.prometheus;
      // Encoded once: a large exposition is not re-encoded for every scrape.
      return registry.metrics().then((text) => Buffer.from(text, 'utf8'));
    });
  };

  app.get('/metrics', { preHandler: app.requireMetricsAccess, logLevel: 'warn' }, async (request, reply) => {
    const format = wantsOpenMetrics(request.headers.accept) ? 'openmetrics' : 'text';
    const registry = format === 'openmetrics' ? app.registries.openMetrics : app.registries.prometheus;
    const body = await render(format);
    return reply.header('Cache-Control', 'no-store').header('Vary', 'Accept').type(registry.contentType).send(body);
  });
}
