/**
 * The demo's admin endpoint: switch the simulator's scenarios on and off over
 * HTTP (`curl -X POST 127.0.0.1:9472/demo/scenarios/node-offline -d '{"node":"DB-CORE"}'`).
 * Demo only, never authenticated, so it only ever listens on loopback.
 */
import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import { SCENARIOS, SCENARIO_NAMES, isScenarioName, resolveScenario, type ScenarioName } from './scenarios.js';
import type { Simulator } from './simulator.js';

/** Options of {@link demoAdminRoutes}. */
export interface DemoAdminOptions {
  simulator: Simulator;
}

const scenarioOutcomeSchema = {
  type: 'object',
  properties: {
    key: { type: 'string' },
    name: { type: 'string' },
    options: { type: 'object', additionalProperties: true },
    ids: { type: 'array', items: { type: 'string' } },
    since: { type: 'string' },
  },
} as const;

const errorSchema = { type: 'object', properties: { error: { type: 'string' } } } as const;

/**
 * Fastify plugin with the admin routes (register it with a `prefix`, e.g. `/demo`):
 * - `GET  /status`: the simulator's state (running, BullMQ, active scenarios, rows written);
 * - `GET  /scenarios`: every scenario with its description and defaults, and the active ones;
 * - `POST /scenarios/:name`: switch one on; the JSON body holds its options (`{"node":"DB-CORE"}`);
 * - `DELETE /scenarios/:name`: switch it off (every target, or the one named in the query: `?node=DB-CORE`);
 * - `DELETE /scenarios`: switch every scenario off.
 */
export const demoAdminRoutes: FastifyPluginAsync<DemoAdminOptions> = async (app, { simulator }) => {
  app.get('/status', {
    schema: {
      response: {
        200: {
          type: 'object',
          properties: {
            running: { type: 'boolean' },
            redis: { type: 'string' },
            activeScenarios: { type: 'array', items: scenarioOutcomeSchema },
            written: { type: 'object', additionalProperties: { type: 'integer' } },
          },
        },
      },
    },
  }, async () => simulator.status());

  app.get('/scenarios', {
    schema: {
      response: {
        200: {
          type: 'object',
          properties: {
            available: {
              type: 'array',
              items: {
                type: 'object',
                properties: { name: { type: 'string' }, description: { type: 'string' }, defaults: { type: 'object', additionalProperties: true } },
              },
            },
            active: { type: 'array', items: scenarioOutcomeSchema },
          },
        },
      },
    },
  }, async () => ({
    available: SCENARIO_NAMES.map((name) => ({ name, description: SCENARIOS[name].description, defaults: SCENARIOS[name].defaults })),
    active: simulator.activeScenarios(),
  }));

  app.post<{ Params: { name: string }; Body: Record<string, unknown> | undefined }>('/scenarios/:name', {
    schema: {
      body: { anyOf: [{ type: 'object', additionalProperties: true }, { type: 'null' }] },
      response: { 200: scenarioOutcomeSchema, 400: errorSchema, 404: errorSchema, 409: errorSchema },
    },
  }, async (req, reply) => {
    const { name } = req.params;
    if (!isScenarioName(name)) return reply.code(404).send({ error: `unknown scenario "${name}"; known: ${SCENARIO_NAMES.join(', ')}` });
    let options: Record<string, unknown>;
    try {
      options = resolveScenario(name, req.body ?? {}).options as Record<string, unknown>;
    } catch (err) {
      return reply.code(400).send({ error: (err as Error).message });
    }
    if (!simulator.isRunning) return reply.code(409).send({ error: 'the simulator is not running' });
    return simulator.scenario(name, options as never);
  });

  app.delete<{ Params: { name: string }; Querystring: Record<string, string> }>('/scenarios/:name', {
    schema: { response: { 200: { type: 'object', properties: { cleared: { type: 'integer' } } }, 400: errorSchema, 404: errorSchema } },
  }, async (req, reply) => {
    const { name } = req.params;
    if (!isScenarioName(name)) return reply.code(404).send({ error: `unknown scenario "${name}"; known: ${SCENARIO_NAMES.join(', ')}` });
    const target = Object.keys(req.query).length > 0 ? req.query : undefined;
    try {
      if (target) resolveScenario(name, target);
    } catch (err) {
      return reply.code(400).send({ error: (err as Error).message });
    }
    return { cleared: await simulator.clear(name as ScenarioName, target as never) };
  });

  app.delete('/scenarios', {
    schema: { response: { 200: { type: 'object', properties: { cleared: { type: 'integer' } } } } },
  }, async () => ({ cleared: await simulator.clearAll() }));
};

/** Registers the admin routes on `app` under `prefix` (default `/demo`). */
export async function registerDemoAdminRoutes(app: FastifyInstance, simulator: Simulator, prefix = '/demo'): Promise<void> {
  await app.register(demoAdminRoutes, { prefix, simulator });
}

/** Whether `host` is a loopback address (the admin endpoint binds nowhere else). */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

/** A running admin server. */
export interface DemoAdminServer {
  url: string;
  app: FastifyInstance;
  close(): Promise<void>;
}

/**
 * Starts a small Fastify server with only the admin routes on a loopback
 * address (default 127.0.0.1; port 0 picks a free one). Throws for any other host.
 */
export async function startDemoAdminServer(simulator: Simulator, options: { host?: string; port?: number } = {}): Promise<DemoAdminServer> {
  const host = options.host ?? '127.0.0.1';
  if (!isLoopbackHost(host)) throw new Error(`the demo admin endpoint is unauthenticated and only listens on loopback (127.0.0.1, ::1), not on ${host}`);
  const app = Fastify({ logger: false });
  await registerDemoAdminRoutes(app, simulator);
  const url = await app.listen({ host, port: options.port ?? 0 });
  return { url, app, close: () => app.close() };
}
