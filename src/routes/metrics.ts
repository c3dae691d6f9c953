/** GET /metrics: Prometheus text format, or OpenMetrics when the scraper asks for it. */
import type { FastifyInstance } from 'fastify';

/** Whether the Accept header prefers OpenMetrics (as Prometheus sends it when enabled). */
export function wantsOpenMetrics(accept: string | undefined): boolean {
  return typeof accept === 'string' && /application\/openmetrics-text/i.test(accept);
}

export async function metricsRoutes(app: FastifyInstance): Promise<void> {
  app.get('/metrics', { preHandler: app.requireMetricsAccess, logLevel: 'warn' }, async (request, reply) => {
    const registry = wantsOpenMetrics(request.headers.accept) ? app.registries.openMetrics : app.registries.prometheus;
    const body = await registry.metrics();
    return reply.header('Cache-Control', 'no-store').type(registry.contentType).send(body);
  });
}
