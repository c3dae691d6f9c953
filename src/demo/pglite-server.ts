/**
 * Serves an in-process PGlite over the PostgreSQL wire protocol on a local TCP
 * port, so that processes and pools that speak PostgreSQL (the exporter's `pg`
 * pools, Prisma's `@prisma/adapter-pg`, `psql`) can read the embedded demo
 * database.
 *
 * Why not `@electric-sql/pglite-socket`: 0.1.3 interleaved a pool's concurrent
 * Parse/Bind/Execute/Sync batches (upstream electric-sql/pglite#1046); 0.2.17
 * fixes that, but lets an in-process query run inside a socket client's open
 * transaction, which is the demo's normal case (the simulator writes while
 * the exporter holds a read-only snapshot): docs/pglite-socket.md. Here a
 * connection owns the backend, through the session lock the simulator takes
 * too, from its first message until the backend reports ReadyForQuery idle
 * ('I'), which is the protocol's own "session is clean" point.
 */
import net from 'node:net';
import type { PGlite } from '@electric-sql/pglite';
import type { SessionLock } from './session-lock.js';

/** Options of {@link startPgliteServer}. */
export interface PgliteServerOptions {
  /** Interface to listen on; loopback only by default (the demo database has no authentication). */
  host?: string;
  /** TCP port; 0 picks a free one. Default 0. */
  port?: number;
  /**
   * How long a connection may keep the backend to itself without sending
   * anything (an open transaction left idle), in milliseconds, before it is
   * disconnected and its transaction rolled back. Default 30 000.
   */
  idleHoldTimeoutMs?: number;
  /** Maximum simultaneous connections. Default 32. */
  maxConnections?: number;
}

/** A running server. */
export interface PgliteServer {
  host: string;
  port: number;
  /** Connection URL for a `pg` client (user and database names are accepted as given: PGlite has one of each). */
  url(database?: string, user?: string): string;
  /** Current connections. */
  connections(): number;
  /** Stops listening, disconnects every client and waits for the backend to be released. */
  close(): Promise<void>;
}

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
const PROTOCOL_3 = 196608;
const SYNC = Uint8Array.of(0x53, 0, 0, 0, 4);

/** Tracks backend messages across output chunks to find the last ReadyForQuery status. */
class BackendScanner {
  private header = Buffer.alloc(0);
  private remaining = 0;
  private type = 0;
  /** Transaction status of the last ReadyForQuery seen ('I', 'T', 'E'), or null. */
  lastReady: string | null = null;
  /** Whether the last complete message seen was a ReadyForQuery. */
  endsWithReady = false;

  feed(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, chunk.length - i);
        if (this.type === 0x5a && this.remaining === 1) this.lastReady = String.fromCharCode(chunk[i]!);
        this.remaining -= take;
        i += take;
        continue;
      }
      const need = 5 - this.header.length;
      const take = Math.min(need, chunk.length - i);
      this.header = Buffer.concat([this.header, chunk.subarray(i, i + take)]);
      i += take;
      if (this.header.length === 5) {
        this.type = this.header[0]!;
        this.remaining = this.header.readInt32BE(1) - 4;
        this.endsWithReady = this.type === 0x5a;
        this.header = Buffer.alloc(0);
      }
    }
  }
}

class Connection {
  private buffer = Buffer.alloc(0);
  private started = false;
  private release: (() => void) | null = null;
  private pumping = false;
  private closed = false;
  private idleTimer: NodeJS.Timeout | null = null;
  private sawReadyIdle = true;

  constructor(
    private readonly socket: net.Socket,
    private readonly db: PGlite,
    private readonly lock: SessionLock,
    private readonly idleHoldTimeoutMs: number,
    private readonly onClosed: (c: Connection) => void,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (data) => {
      this.buffer = Buffer.concat([this.buffer, data]);
      this.touch();
      void this.pump();
    });
    socket.on('error', () => this.close());
    socket.on('close', () => this.close());
  }

  private touch(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    if (this.release && this.idleHoldTimeoutMs > 0) {
      this.idleTimer = setTimeout(() => this.socket.destroy(), this.idleHoldTimeoutMs);
      this.idleTimer.unref();
    }
  }

  /** Splits complete frontend messages off the buffer. */
  private take(): Buffer | null {
    if (!this.started) {
      if (this.buffer.length < 8) return null;
      const len = this.buffer.readInt32BE(0);
      if (this.buffer.length < len) return null;
      const msg = this.buffer.subarray(0, len);
      this.buffer = this.buffer.subarray(len);
      return msg;
    }
    let end = 0;
    while (this.buffer.length - end >= 5) {
      const len = this.buffer.readInt32BE(end + 1) + 1;
      if (this.buffer.length - end < len) break;
      end += len;
    }
    if (end === 0) return null;
    const batch = this.buffer.subarray(0, end);
    this.buffer = this.buffer.subarray(end);
    return batch;
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (let msg = this.take(); msg && !this.closed; msg = this.take()) {
        if (!this.started) {
          const code = msg.readInt32BE(4);
          if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
            this.socket.write('N');
            continue;
          }
          if (code === CANCEL_REQUEST || code !== PROTOCOL_3) {
            this.socket.destroy();
            return;
          }
          this.started = true;
        } else if (msg[0] === 0x58 && msg.length === 5) {
          // Terminate: PGlite has one session for everyone; just hang up.
          this.socket.end();
          return;
        }
        await this.exec(msg);
      }
    } catch {
      this.socket.destroy();
    } finally {
      this.pumping = false;
    }
  }

  private async exec(msg: Buffer): Promise<void> {
    if (!this.release) this.release = await this.lock.acquire();
    if (this.closed) return this.giveBack();
    const scanner = new BackendScanner();
    await this.db.runExclusive(() =>
      this.db.execProtocolRawStream(new Uint8Array(msg), {
        onRawData: (chunk: Uint8Array) => {
          scanner.feed(chunk);
          if (!this.closed && this.socket.writable) this.socket.write(Buffer.from(chunk));
        },
      }),
    );
    this.sawReadyIdle = scanner.endsWithReady && scanner.lastReady === 'I';
    if (this.sawReadyIdle && this.buffer.length === 0) await this.giveBack();
    else this.touch();
  }

  private async giveBack(): Promise<void> {
    const release = this.release;
    this.release = null;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    release?.();
  }

  /** Cleans the shared backend after a client that left while owning it. */
  private async cleanup(): Promise<void> {
    if (!this.release) return;
    try {
      if (!this.sawReadyIdle) {
        // Ends an unfinished extended-protocol exchange (and any error-skip mode).
        await this.db.runExclusive(() => this.db.execProtocolRawStream(SYNC, { onRawData: () => undefined }));
      }
      if (this.db.isInTransaction()) await this.db.runExclusive(() => this.db.execProtocolRawStream(
        encodeQuery('ROLLBACK'),
        { onRawData: () => undefined },
      ));
    } catch {
      // The backend is gone or closing: nothing left to clean.
    } finally {
      await this.giveBack();
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    // Wait for an exec in flight (it holds the lock) before cleaning up.
    const finish = async () => {
      while (this.pumping) await new Promise((r) => setTimeout(r, 5));
      await this.cleanup();
      this.onClosed(this);
    };
    void finish();
  }

  /** Resolves once this connection has let go of the backend. */
  get idle(): boolean {
    return this.release === null && !this.pumping;
  }
}

function encodeQuery(sql: string): Uint8Array {
  const body = Buffer.from(`${sql}\0`, 'utf8');
  const out = Buffer.alloc(5 + body.length);
  out[0] = 0x51;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return new Uint8Array(out);
}

/**
 * Listens on `host:port` and serves `db` to PostgreSQL clients. Every party
 * that uses `db` directly must go through the same `lock`.
 */
export async function startPgliteServer(
  db: PGlite,
  lock: SessionLock,
  options: PgliteServerOptions = {},
): Promise<PgliteServer> {
  const host = options.host ?? '127.0.0.1';
  const maxConnections = options.maxConnections ?? 32;
  const idleHoldTimeoutMs = options.idleHoldTimeoutMs ?? 30_000;
  await db.waitReady;
  const connections = new Set<Connection>();
  const closedWaiters = new Set<() => void>();
  const server = net.createServer((socket) => {
    if (connections.size >= maxConnections) {
      socket.destroy();
      return;
    }
    const conn = new Connection(socket, db, lock, idleHoldTimeoutMs, (c) => {
      connections.delete(c);
      if (connections.size === 0) for (const w of closedWaiters) w();
    });
    connections.add(conn);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    host,
    port,
    url(database = 'postgres', user = 'postgres') {
      return `postgresql://${encodeURIComponent(user)}@${host.includes(':') ? `[${host}]` : host}:${port}/${encodeURIComponent(database)}`;
    },
    connections: () => connections.size,
    async close() {
      const allClosed = new Promise<void>((resolve) => {
        if (connections.size === 0) resolve();
        else closedWaiters.add(resolve);
      });
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const c of connections) c.close();
      });
      await allClosed;
    },
  };
}
