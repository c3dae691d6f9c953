/** GET /healthz (the process is alive) and GET /readyz (it can serve). */
import type { FastifyInstance } from 'fastify';

/** How long one database ping answers every /readyz, ms: probes cannot flood the pool. */
const PING_CACHE_MS = 1_000;
/** Longest a ping may take, ms. */
const PING_TIMEOUT_MS = 2_000;

export async function healthRoutes(app: FastifyInstance): Promise<void> {
  app.get('/healthz', { logLevel: 'warn' }, async (_request, reply) => reply.header('Cache-Control', 'no-store').send({ status: 'ok' }));

  // One ping at a time, its answer reused for a second: /readyz is
  // unauthenticated, and each call would otherwise take a pool connection.
  let ping: { settledAt: number | null; result: Promise<boolean> } | null = null;
  const databaseReachable = (): Promise<boolean> => {
    const fresh = ping && (ping.settledAt === null || Date.now() - ping.settledAt <= PING_CACHE_MS);
    if (!ping || !fresh) {
      const current: { settledAt: number | null; result: Promise<boolean> } = { settledAt: null, result: Promise.resolve(false) };
      current.result = app.db.ping(PING_TIMEOUT_MS).then(
        () => true,
        () => false,
      );
      void current.result.then(() => {
        current.settledAt = Date.now();
      });
      ping = current;
    }
    return ping.result;
  };

  // Ready when the database answers and every source has finished its first
  // collection (up or explicitly down): from then on /metrics and the API
  // tell the truth about every area. A source down (Redis away) does not make
  // the exporter unready: it is reported, not hidden behind a 503.
  app.get('/readyz', { logLevel: 'warn' }, async (_request, reply) => {
    const states = app.collection.states();
    const database = await databaseReachable();
    const collected = states.every((s) => s.collections > 0 && s.durationSeconds !== undefined);
    const ready = database && collected;
    return reply
      .code(ready ? 200 : 503)
      .header('Cache-Control', 'no-store')
      .send({
        status: ready ? 'ready' : 'not_ready',
        database: database ? 'reachable' : 'unreachable',
        sources: Object.fromEntries(states.map((s) => [s.name, s.collections === 0 ? 'pending' : s.up ? 'up' : 'down'])),
      });
  });
}
