/**
 * The exporter's database access: node-postgres, a small pool the exporter
 * owns, and read-only snapshot transactions that PostgreSQL itself stops at
 * the collection's timeout.
 *
 * Every statement the exporter runs is SQL of its own (composed with `sql`
 * templates), so it talks to node-postgres directly rather than through
 * Prisma Client: Prisma's query compiler (WebAssembly) cost the process
 * 11 MiB of resident memory alone and 15-25 MiB on a busy machine
 * (test/memory-hostile.test.ts) for statements it never compiled. The
 * schema, its migrations and the demo's typed client stay Prisma's.
 */
import { connect as netConnect } from 'node:net';
import pg from 'pg';
import { bindValue, rowTypes } from './row-types.js';
import { Sql } from './sql.js';

/** The transaction a source reads through: every statement in one snapshot. */
export interface DbTx {
  /** Runs one statement (a `sql` template, or a composed `Sql`) and resolves to its rows. */
  query<T = unknown[]>(query: TemplateStringsArray | Sql, ...values: unknown[]): Promise<T>;
  /** Runs trusted text with `$1, $2, …` placeholders bound to `values`, and resolves to its rows. */
  queryUnsafe<T = unknown[]>(text: string, ...values: unknown[]): Promise<T>;
}

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
 * SQLSTATE, and what to do about it where that is known.
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

/** A server error as a DatabaseQueryError (message, SQLSTATE and hint), else the error unchanged. */
export function clarifyQueryError(err: unknown): unknown {
  if (!(err instanceof pg.DatabaseError) || !err.code || !/^[0-9A-Z]{5}$/.test(err.code)) return err;
  const hint = SQLSTATE_HINTS[err.code];
  return new DatabaseQueryError(`${err.message} (SQLSTATE ${err.code})${hint ? `; ${hint}` : ''}`, err.code, { cause: err });
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
  /** The exporter's own pool, so it can count connections and cancel statements. */
  readonly pool: pg.Pool;
  private readonly clients = new Set<KeyedClient>();

  constructor(options: DatabaseOptions) {
    this.pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolMax,
      application_name: APPLICATION_NAME,
      types: rowTypes,
      // Fail fast when the server is gone instead of queueing scrapes.
      connectionTimeoutMillis: 5_000,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
    });
    // An idle connection that the server closes (a restart) is dropped by the
    // pool and reported here; the next collection opens a new one.
    this.pool.on('error', () => undefined);
    this.pool.on('connect', (c) => {
      this.clients.add(c as unknown as KeyedClient);
      // A connection that breaks while a collection holds it (the server
      // gone, or our own deadline cutting it) fails that collection's
      // statement, which reports it; the client's 'error' event must not
      // also end the process as an unhandled one.
      c.on('error', () => undefined);
    });
    this.pool.on('remove', (c) => this.clients.delete(c as unknown as KeyedClient));
  }

  /**
   * Runs `fn` in one REPEATABLE READ, read-only transaction (one consistent
   * snapshot for all of a source's queries) that ends at `timeoutMs`: every
   * statement has that statement_timeout and lock_timeout, a statement
   * started after it is refused, and the statement still running a little
   * after it is cancelled on the server (and its connection closed), so
   * nothing keeps running on the server after the collection gave up.
   */
  async read<T>(timeoutMs: number, fn: (tx: DbTx) => Promise<T>): Promise<T> {
    const ms = Math.max(1, Math.round(timeoutMs));
    const client = (await this.acquire(ms)) as pg.PoolClient & KeyedClient;
    const started = Date.now();
    let done = false;
    let broken: Error | undefined;
    // The backstop for a transaction that outlives its timeout although each
    // statement stays under statement_timeout (several slow ones in a row).
    // It fires a little after the timeout, so that a single slow statement is
    // ended by PostgreSQL's own statement_timeout first and its connection
    // stays usable. The connection is closed as well: a cancel arrives a
    // moment later and must not find another transaction's statement on it.
    const deadline = setTimeout(() => {
      if (done) return;
      broken = new Error(`transaction cancelled ${DEADLINE_GRACE_MS} ms after its ${ms} ms timeout`);
      sendCancel(client);
      client.connection.stream.destroy();
    }, ms + DEADLINE_GRACE_MS);
    deadline.unref();
    const run = async <R>(text: string, values: readonly unknown[]): Promise<R> => {
      if (done) throw new Error('the transaction is already over');
      if (Date.now() - started > ms) throw new Error(`transaction timed out: no statement starts after its ${ms} ms timeout`);
      const result = await client.query({ text, values: values.map(bindValue) });
      return result.rows as R;
    };
    const tx: DbTx = {
      query: (query, ...values) => {
        const statement = query instanceof Sql ? query : new Sql(query, values);
        return run(statement.text, statement.values);
      },
      queryUnsafe: (text, ...values) => run(text, values),
    };
    try {
      // One round trip and two statements open the transaction with its
      // settings, each transaction-scoped (set_config(..., true) is SET
      // LOCAL), so a pooler in transaction mode never carries one to another
      // client. JIT is off: it compiles for row estimates that grow with
      // history (the late-commit id probe at 30M events) and costs more than
      // these small queries take to run. TimeZone UTC: the queries pass
      // instants as UTC wall times, which a timestamptz column (a platform
      // that declares them so) compares through the session's time zone.
      // `ms` is an integer of ours.
      await client.query(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
        SELECT set_config('statement_timeout', '${ms}', true), set_config('lock_timeout', '${ms}', true),
               set_config('jit', 'off', true), set_config('TimeZone', 'UTC', true)`);
      const result = await fn(tx);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      // A failed statement aborts the transaction; end it so that the
      // connection goes back to the pool clean (or is dropped if it cannot).
      if (!broken) await client.query('ROLLBACK').catch((e: Error) => (broken = e));
      throw clarifyQueryError(err);
    } finally {
      done = true;
      clearTimeout(deadline);
      client.release(broken ?? (client.connection.stream.destroyed ? new Error('connection closed') : undefined));
    }
  }

  /** A connection from the pool within `ms`; one that arrives later goes back to the pool at once. */
  private async acquire(ms: number): Promise<pg.PoolClient> {
    let timer: NodeJS.Timeout | undefined;
    let gaveUp = false;
    const pending = this.pool.connect();
    try {
      return await Promise.race([
        pending,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            gaveUp = true;
            reject(new Error(`no database connection within the ${ms} ms timeout (pool of ${this.pool.options.max})`));
          }, ms);
        }),
      ]);
    } catch (err) {
      if (gaveUp) pending.then((c) => c.release(), () => undefined);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Cheap reachability check for /readyz; rejects within `timeoutMs` (plus a
   * little) even when the server hangs without answering.
   */
  async ping(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const ping = this.read(timeoutMs, (tx) => tx.query`SELECT 1`);
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
      tx.query<RolePrivileges[]>`
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
    if (this.pool.ended) return;
    const ended = this.pool.end().then(() => true as const);
    if (await Promise.race([ended, sleep(graceMs)])) return;
    for (const c of this.clients) c.connection.stream.destroy();
    await Promise.race([ended, sleep(500)]);
  }
}
