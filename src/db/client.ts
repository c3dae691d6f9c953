/**
 * The exporter's database access: Prisma Client on the node-postgres driver
 * adapter, a small pool the exporter owns, and read-only snapshot
 * transactions that PostgreSQL itself stops at the collection's timeout.
 */
import { connect as netConnect } from 'node:net';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient } from '../generated/prisma/client.js';

/** The transaction client a source reads through. */
export type DbTx = Omit<PrismaClient, '$connect' | '$disconnect' | '$on' | '$transaction' | '$extends'>;

/** How long after the timeout a transaction still running is cancelled and its connection closed, ms. */
const DEADLINE_GRACE_MS = 500;

/** Options of the database client. */
export interface DatabaseOptions {
  url: string;
  /** Connections at most (collections of all sources share them). */
  poolMax: number;
}

/** What the connected role may do, for the start-up least-privilege check. */
export interface RolePrivileges {
  user: string;
  superuser: boolean;
  /** Tables of the public schema the role may INSERT, UPDATE, DELETE or TRUNCATE. */
  writableTables: string[];
}

/** What to do about a server error, by SQLSTATE, for the log line of a source that is down. */
const SQLSTATE_HINTS: Readonly<Record<string, string>> = {
  '42501': "the exporter's role may not read it: run sql/readonly-role.sql on this database as the tables' owner",
};

/**
 * A statement the server refused, with the server's own message and
 * SQLSTATE first (not Prisma's "Invalid `prisma.$queryRaw()` invocation"
 * preamble), and what to do about it where that is known.
 */
export class DatabaseQueryError extends Error {
  constructor(
    message: string,
    /** The server's SQLSTATE, e.g. 42501 (insufficient privilege). */
    readonly sqlState: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'DatabaseQueryError';
  }
}

/** The server's message and SQLSTATE inside a Prisma raw-query error, else the error unchanged. */
export function clarifyQueryError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const m = /Code: `([0-9A-Z]{5})`\. Message: `([\s\S]*)`\s*$/.exec(err.message);
  if (!m) return err;
  const [, code, message] = m as unknown as [string, string, string];
  const hint = SQLSTATE_HINTS[code];
  return new DatabaseQueryError(`${message} (SQLSTATE ${code})${hint ? `; ${hint}` : ''}`, code, { cause: err });
}

/** The `application_name` of the exporter's sessions (pg_stat_activity shows it). */
export const APPLICATION_NAME = 'ops-overview';

/** pg's Client carries its backend's key data, which @types/pg does not declare. */
type KeyedClient = pg.Client & { processID: number | null; secretKey: number | null };

/**
 * Sends PostgreSQL's CancelRequest for the backend `pid` (protocol message
 * 80877102 on a fresh socket): cancels the statement it runs, like
 * pg_cancel_backend, without needing a pool slot or a login.
 */
function sendCancel(client: KeyedClient): void {
  if (client.processID === null || client.secretKey === null) return;
  const message = Buffer.alloc(16);
  message.writeInt32BE(16, 0);
  message.writeInt32BE(80877102, 4);
  message.writeInt32BE(client.processID, 8);
  message.writeInt32BE(client.secretKey, 12);
  const socket = client.host?.startsWith('/')
    ? netConnect(`${client.host}/.s.PGSQL.${client.port}`)
    : netConnect(client.port, client.host);
  socket.setTimeout(2_000, () => socket.destroy());
  // The server may be gone: a failed cancel changes nothing.
  socket.on('error', () => undefined);
  socket.on('connect', () => socket.end(message));
}

/** Read access to the platform's database. */
export class Database {
  readonly prisma: PrismaClient;
  /** The pool under Prisma (the exporter's own, so it can count and cancel). */
  readonly pool: pg.Pool;
  private readonly clients = new Set<KeyedClient>();
  /** Times each connection was taken from the pool, and which are taken now. */
  private readonly leases = new WeakMap<object, number>();
  private readonly checkedOut = new WeakSet<object>();

  constructor(options: DatabaseOptions) {
    this.pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolMax,
      application_name: APPLICATION_NAME,
      // Fail fast when the server is gone instead of queueing scrapes.
      connectionTimeoutMillis: 5_000,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
    });
    // An idle connection that the server closes (a restart) is dropped by the
    // pool and reported here; the next collection opens a new one.
    this.pool.on('error', () => undefined);
    this.pool.on('connect', (c) => this.clients.add(c as unknown as KeyedClient));
    this.pool.on('remove', (c) => this.clients.delete(c as unknown as KeyedClient));
    this.pool.on('acquire', (c) => {
      this.leases.set(c, (this.leases.get(c) ?? 0) + 1);
      this.checkedOut.add(c);
    });
    this.pool.on('release', (_err, c) => this.checkedOut.delete(c));
    const adapter = new PrismaPg(this.pool, {
      onPoolError: () => undefined,
      onConnectionError: () => undefined,
    });
    // Minimal error messages: no call-site excerpts in logs.
    this.prisma = new PrismaClient({ adapter, errorFormat: 'minimal' });
  }

  /**
   * Runs `fn` in one REPEATABLE READ, read-only transaction (one consistent
   * snapshot for all of a source's queries) that ends at `timeoutMs`: every
   * statement has that statement_timeout and lock_timeout, the statement
   * still running at the deadline is cancelled on the server (and its
   * connection closed), and Prisma refuses further statements, so nothing
   * keeps running on the server after the collection gave up.
   */
  async read<T>(timeoutMs: number, fn: (tx: DbTx) => Promise<T>): Promise<T> {
    const ms = Math.max(1, Math.round(timeoutMs));
    let backend: KeyedClient | undefined;
    let lease: number | undefined;
    let done = false;
    // The backstop for a transaction that outlives its timeout although each
    // statement stays under statement_timeout (several slow ones in a row).
    // It fires a little after the timeout, so that a single slow statement is
    // ended by PostgreSQL's own statement_timeout first and its connection
    // stays usable.
    const deadline = setTimeout(() => {
      // Only while this transaction still holds the connection (not once it is
      // back in the pool or lent to another). The connection is then closed
      // as well: a cancel arrives a moment later, and must not find another
      // transaction's statement on a connection reused in between.
      if (done || !backend || !this.checkedOut.has(backend) || this.leases.get(backend) !== lease) return;
      sendCancel(backend);
      backend.connection.stream.destroy();
    }, ms + DEADLINE_GRACE_MS);
    deadline.unref();
    try {
      return await this.prisma.$transaction(
        async (tx) => {
          // One round trip: the backend (to cancel it at the deadline) and the
          // transaction's settings; set_config(..., true) is SET LOCAL. JIT is
          // off: it compiles for row estimates that grow with history (the
          // late-commit id probe at 30M events) and costs more than these
          // small queries take to run. TimeZone UTC: the queries pass instants
          // as UTC wall times, which a timestamptz column (a platform that
          // declares them so) compares through the session's time zone.
          // Every setting is transaction-scoped, so a pooler in transaction
          // mode never carries one to another client.
          const [row] = await tx.$queryRawUnsafe<Array<{ pid: number }>>(
            `SELECT pg_backend_pid() AS pid,
                    set_config('transaction_read_only', 'on', true),
                    set_config('statement_timeout', $1, true),
                    set_config('lock_timeout', $1, true),
                    set_config('jit', 'off', true),
                    set_config('TimeZone', 'UTC', true)`,
            String(ms),
          );
          backend = [...this.clients].find((c) => c.processID === row?.pid);
          lease = backend ? this.leases.get(backend) : undefined;
          return fn(tx);
        },
        { isolationLevel: 'RepeatableRead', maxWait: ms, timeout: ms },
      );
    } catch (err) {
      throw clarifyQueryError(err);
    } finally {
      done = true;
      clearTimeout(deadline);
    }
  }

  /**
   * Cheap reachability check for /readyz; rejects within `timeoutMs` (plus a
   * little) even when the server hangs without answering.
   */
  async ping(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const ping = this.read(timeoutMs, (tx) => tx.$queryRaw`SELECT 1`);
    try {
      await Promise.race([
        ping,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`database ping timed out after ${timeoutMs} ms`)), timeoutMs + 250);
        }),
      ]);
    } finally {
      clearTimeout(timer);
      // A ping that loses the race settles later; its rejection is expected.
      ping.catch(() => undefined);
    }
  }

  /** What the connected role may do (the exporter warns when it can write). */
  async privileges(timeoutMs: number): Promise<RolePrivileges> {
    const [row] = await this.read(timeoutMs, (tx) =>
      tx.$queryRaw<RolePrivileges[]>`
        SELECT current_user::text AS "user",
               COALESCE((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false) AS superuser,
               ARRAY(SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
                        AND (has_table_privilege(c.oid, 'INSERT') OR has_table_privilege(c.oid, 'UPDATE')
                             OR has_table_privilege(c.oid, 'DELETE') OR has_table_privilege(c.oid, 'TRUNCATE'))
                      ORDER BY 1) AS "writableTables"`,
    );
    return row ?? { user: 'unknown', superuser: false, writableTables: [] };
  }

  /** Connections the pool holds now (idle and in use). */
  get connections(): number {
    return this.pool.totalCount;
  }

  /**
   * Closes the pool: waits up to `graceMs` for the connections in use to be
   * released, then cuts their sockets (a server that hangs must not hold the
   * exporter's shutdown).
   */
  async close(graceMs = 1_500): Promise<void> {
    const sleep = (ms: number) => new Promise<false>((resolve) => setTimeout(() => resolve(false), ms).unref());
    await Promise.race([this.prisma.$disconnect(), sleep(graceMs)]);
    if (this.pool.ended) return;
    const ended = this.pool.end().then(() => true as const);
    if (await Promise.race([ended, sleep(graceMs)])) return;
    for (const c of this.clients) c.connection.stream.destroy();
    await Promise.race([ended, sleep(500)]);
  }
}
