/**
 * A FIFO mutex over PGlite's one backend session. PGlite runs a single
 * PostgreSQL backend: whoever talks to it (an in-process query, a client over
 * the socket) must own the session until the backend is idle again, or the
 * extended-protocol state of one client (unnamed statement, error-skip until
 * Sync, an open transaction) leaks into another's.
 */
export class SessionLock {
  private held = false;
  private readonly waiters: Array<() => void> = [];

  /** Waits for the session and returns the function that gives it back (call it once). */
  async acquire(): Promise<() => void> {
    if (this.held) await new Promise<void>((resolve) => this.waiters.push(resolve));
    this.held = true;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      if (next) next();
      else this.held = false;
    };
  }

  /** Runs `fn` while holding the session. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /** Number of parties waiting for the session (for tests and stats). */
  get queued(): number {
    return this.waiters.length;
  }
}
