/**
 * GET /api/ops/overview (and its alias /api/ops/platform-overview): the whole
 * picture as one JSON document, from the same collection as /metrics.
 */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { OpsOverviewSummarySchema } from '../contract.js';
import { errorBodySchema, OpsError } from '../errors.js';
import { buildOverview } from '../overview.js';

export async function overviewRoutes(app: FastifyInstance, opts: { rateLimitPerMinute: number }): Promise<void> {
  // Built and serialised (through the response schema) once per collection
  // snapshot, however many clients ask in between.
  const handler = async (_request: FastifyRequest, reply: FastifyReply) => {
    const snapshot = app.collection.snapshot();
    const json = snapshot.derive('overview:json', () => {
      const overview = buildOverview(snapshot);
      // One Buffer per snapshot: queued responses share one copy.
      if (!overview) return null;
      const json = reply.serialize(overview);
      return typeof json === 'string' ? Buffer.from(json, 'utf8') : Buffer.from(json as ArrayBuffer);
    });
    if (json === null) throw new OpsError('OPS_NOT_READY');
    // Operational data for authorised readers only: no cache may keep it.
    return reply.header('Cache-Control', 'no-store').type('application/json; charset=utf-8').send(json);
  };
  const routeOptions = {
    preHandler: app.requireOverviewAccess,
    // One budget for both paths: the alias must not double a credential's.
    config: { rateLimit: { max: opts.rateLimitPerMinute, timeWindow: '1 minute', groupId: 'overview' } },
    schema: {
      response: {
        200: OpsOverviewSummarySchema,
        '4xx': errorBodySchema,
        '5xx': errorBodySchema,
      },
    },
  };
  const typed = app.withTypeProvider<TypeBoxTypeProvider>();
  typed.get('/api/ops/overview', routeOptions, handler);
  // The earlier attempt's route, kept as an alias.
  typed.get('/api/ops/platform-overview', routeOptions, handler);
}
