/**
 * Timers the simulator owns, so stop() can clear every one of them and leave
 * no handle behind.
 */
export class TimerSet {
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly sleepers = new Set<() => void>();

  /** Runs `fn` after `ms` milliseconds unless cleared first. */
  later(fn: () => void, ms: number): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, Math.max(0, ms));
    this.timers.add(t);
  }

  /** Resolves after `ms` milliseconds, or early (with `false`) when {@link TimerSet.wakeAll} runs. */
  sleep(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(t);
        this.timers.delete(t);
        this.sleepers.delete(wake);
        resolve(false);
      };
      const t = setTimeout(() => {
        this.timers.delete(t);
        this.sleepers.delete(wake);
        resolve(true);
      }, Math.max(0, ms));
      this.timers.add(t);
      this.sleepers.add(wake);
    });
  }

  /** Ends every pending sleep early. */
  wakeAll(): void {
    for (const wake of [...this.sleepers]) wake();
  }

  /** Cancels every pending `later` and ends every sleep. */
  clear(): void {
    this.wakeAll();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  /** Pending timers (for leak checks in tests). */
  get size(): number {
    return this.timers.size;
  }
}

/** Logs one line when trouble starts and one when it ends, never one per retry. */
export class OutageLog {
  private down = false;

  constructor(
    private readonly what: string,
    private readonly log: (line: string) => void,
  ) {}

  /** Reports a failure; only the first of an outage is logged. */
  failed(err: unknown): void {
    if (this.down) return;
    this.down = true;
    this.log(`${this.what} failing: ${err instanceof Error ? err.message : String(err)} (logged once until it recovers)`);
  }

  /** Reports a success; logs the recovery if there was an outage. */
  ok(): void {
    if (!this.down) return;
    this.down = false;
    this.log(`${this.what} recovered`);
  }

  get isDown(): boolean {
    return this.down;
  }
}
