/**
 * GET /api/ops/overview (and its alias /api/ops/platform-overview): the whole
 * picture as one JSON document, from the same collection as /metrics.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errorBodySchema } from '../errors.js';
import { OpsError } from '../errors.js';
import { buildOverview } from '../overview.js';

const str = { type: 'string' } as const;
const int = { type: 'integer' } as const;
const num = { type: 'number' } as const;
const nullableNum = { type: ['number', 'null'] } as const;
const bool = { type: 'boolean' } as const;

/** JSON schema of OpsOverviewSummary (overview-api.md), used to serialise the response. */
export const overviewSchema = {
  type: 'object',
  required: ['generatedAt', 'coreNodes', 'queues', 'provisioning', 'security', 'backups'],
  additionalProperties: false,
  properties: {
    generatedAt: str,
    coreNodes: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'label', 'role', 'status', 'cpuPercent', 'ramPercent', 'diskPercent'],
        additionalProperties: false,
        properties: {
          id: str, label: str, role: str, status: str,
          cpuPercent: nullableNum, ramPercent: nullableNum, diskPercent: nullableNum,
          lastMetricsAt: str, expected: bool,
        },
      },
    },
    queues: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'waiting', 'active', 'failed', 'delayed'],
        additionalProperties: false,
        properties: {
          name: str, waiting: int, active: int, failed: int, delayed: int,
          oldestWaitingSeconds: num, prefix: str, workers: int, paused: bool,
        },
      },
    },
    provisioning: {
      type: 'object',
      required: ['failedLast24h', 'stuckLast24h', 'recentFailures'],
      additionalProperties: false,
      properties: {
        failedLast24h: int,
        stuckLast24h: int,
        recentFailures: {
          type: 'array',
          items: {
            type: 'object',
            required: ['id', 'action', 'resourceType', 'createdAt'],
            additionalProperties: false,
            properties: { id: str, action: str, resourceType: str, resourceId: str, tenantId: str, createdAt: str, errorMessage: str },
          },
        },
      },
    },
    security: {
      type: 'object',
      required: ['shieldEventsLast24h', 'shieldPolicies'],
      additionalProperties: false,
      properties: {
        shieldEventsLast24h: {
          type: 'object',
          required: ['total', 'byDecision'],
          additionalProperties: false,
          properties: {
            total: int,
            byDecision: {
              type: 'object',
              required: ['ALLOW', 'BLOCK', 'CHALLENGE', 'RATE_LIMITED'],
              additionalProperties: false,
              properties: { ALLOW: int, BLOCK: int, CHALLENGE: int, RATE_LIMITED: int },
            },
            otherDecisions: int,
          },
        },
        shieldPolicies: {
          type: 'object',
          required: ['enforceCount', 'monitorCount', 'disabledCount'],
          additionalProperties: false,
          properties: { enforceCount: int, monitorCount: int, disabledCount: int },
        },
        guardianFindings: {
          type: 'object',
          required: ['criticalOpen', 'highOpen', 'mediumOpen'],
          additionalProperties: false,
          properties: { criticalOpen: int, highOpen: int, mediumOpen: int },
        },
      },
    },
    backups: {
      type: 'object',
      additionalProperties: false,
      properties: { dbCoreLastSuccess: str, mpanelCoreLastSuccess: str, cloudPodsLastSuccess: str, notes: str },
    },
    sources: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'up', 'stale'],
        additionalProperties: false,
        properties: { name: str, up: bool, stale: bool, lastSuccessAt: str },
      },
    },
  },
} as const;

export async function overviewRoutes(app: FastifyInstance, opts: { rateLimitPerMinute: number }): Promise<void> {
  // Built and serialised (through the response schema) once per runner
  // state, however many clients ask in between.
  let built: { generation: number; json: ReturnType<FastifyReply['serialize']> | null } | null = null;
  const handler = async (_request: FastifyRequest, reply: FastifyReply) => {
    const generation = app.collection.generation;
    if (!built || built.generation !== generation) {
      const overview = buildOverview(app.collection.states());
      built = { generation, json: overview ? reply.serialize(overview) : null };
    }
    const { json } = built;
    if (json === null) throw new OpsError('OPS_NOT_READY');
    // Operational data for authorised readers only: no cache may keep it.
    return reply.header('Cache-Control', 'no-store').type('application/json; charset=utf-8').send(json);
  };
  const routeOptions = {
    preHandler: app.requireOverviewAccess,
    config: { rateLimit: { max: opts.rateLimitPerMinute, timeWindow: '1 minute' } },
    schema: {
      response: {
        200: overviewSchema,
        '4xx': errorBodySchema,
        '5xx': errorBodySchema,
      },
    },
  };
  app.get('/api/ops/overview', routeOptions, handler);
  // The earlier attempt's route, kept as an alias.
  app.get('/api/ops/platform-overview', routeOptions, handler);
}
