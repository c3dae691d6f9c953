/**
 * The exporter's database access: Prisma Client on the node-postgres driver
 * adapter, a small pool, and read-only snapshot transactions whose statements
 * the server itself cancels at the collection's timeout.
 */
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from '../generated/prisma/client.js';

/** The transaction client a source reads through. */
export type DbTx = Omit<PrismaClient, '$connect' | '$disconnect' | '$on' | '$transaction' | '$extends'>;

/** Options of the database client. */
export interface DatabaseOptions {
  url: string;
  /** Connections at most (collections of all sources share them). */
  poolMax: number;
}

/** Read access to the platform's database. */
export class Database {
  readonly prisma: PrismaClient;

  constructor(options: DatabaseOptions) {
    const adapter = new PrismaPg(
      {
        connectionString: options.url,
        max: options.poolMax,
        application_name: 'ops-overview',
        // Fail fast when the server is gone instead of queueing scrapes.
        connectionTimeoutMillis: 5_000,
        idleTimeoutMillis: 30_000,
      },
      // Errors from idle connections (a restarted server) must not crash the process.
      { onPoolError: () => undefined, onConnectionError: () => undefined },
    );
    this.prisma = new PrismaClient({ adapter });
  }

  /**
   * Runs `fn` in one REPEATABLE READ, read-only transaction (one consistent
   * snapshot for all of a source's queries), with every statement cancelled
   * by PostgreSQL after `timeoutMs`, so nothing keeps running on the server
   * after the collection gave up.
   */
  async read<T>(timeoutMs: number, fn: (tx: DbTx) => Promise<T>): Promise<T> {
    const ms = Math.max(1, Math.round(timeoutMs));
    return this.prisma.$transaction(
      async (tx) => {
        await tx.$executeRawUnsafe('SET TRANSACTION READ ONLY');
        await tx.$executeRawUnsafe(`SET LOCAL statement_timeout = ${ms}`);
        await tx.$executeRawUnsafe(`SET LOCAL lock_timeout = ${ms}`);
        return fn(tx);
      },
      { isolationLevel: 'RepeatableRead', maxWait: ms, timeout: ms + 1_000 },
    );
  }

  /** Cheap reachability check for /readyz. */
  async ping(timeoutMs: number): Promise<void> {
    await this.read(timeoutMs, (tx) => tx.$queryRaw`SELECT 1`);
  }

  async close(): Promise<void> {
    await this.prisma.$disconnect();
  }
}
