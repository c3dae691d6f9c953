/** GET /healthz (the process is alive) and GET /readyz (it can serve). */
import type { FastifyInstance } from 'fastify';

export async function healthRoutes(app: FastifyInstance): Promise<void> {
  app.get('/healthz', { logLevel: 'warn' }, async () => ({ status: 'ok' }));

  // Ready when the database answers and every source has finished its first
  // collection (up or explicitly down): from then on /metrics and the API
  // tell the truth about every area. A source down (Redis away) does not make
  // the exporter unready: it is reported, not hidden behind a 503.
  app.get('/readyz', { logLevel: 'warn' }, async (_request, reply) => {
    const states = app.collection.states();
    let database = true;
    try {
      await app.db.ping(2_000);
    } catch {
      database = false;
    }
    const collected = states.every((s) => s.collections > 0 && s.durationSeconds !== undefined);
    const ready = database && collected;
    return reply.code(ready ? 200 : 503).send({
      status: ready ? 'ready' : 'not_ready',
      database: database ? 'reachable' : 'unreachable',
      sources: Object.fromEntries(states.map((s) => [s.name, s.collections === 0 ? 'pending' : s.up ? 'up' : 'down'])),
    });
  });
}
