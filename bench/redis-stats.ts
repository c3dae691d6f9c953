/**
 * Redis cost from the server's own counters: INFO commandstats (calls and
 * microseconds per command; commands run inside a Lua script are counted both
 * under their own name and in the script's EVALSHA time) and INFO cpu (the
 * server process's CPU time, everything included).
 */
import type { Redis } from 'ioredis';

/** Calls and microseconds of one command. */
export interface CommandStat {
  calls: number;
  usec: number;
}

/** One reading of the counters. */
export interface RedisSnapshot {
  commands: Map<string, CommandStat>;
  /** used_cpu_user + used_cpu_sys, microseconds. */
  cpuUsec: number;
}

/** Parses INFO commandstats and INFO cpu text (pure). */
export function parseInfo(text: string): RedisSnapshot {
  const commands = new Map<string, CommandStat>();
  let cpu = 0;
  for (const line of text.split(/\r?\n/)) {
    const c = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line);
    if (c) commands.set(c[1] as string, { calls: Number(c[2]), usec: Number(c[3]) });
    const u = /^used_cpu_(?:user|sys):([\d.]+)$/.exec(line);
    if (u) cpu += Number(u[1]) * 1e6;
  }
  return { commands, cpuUsec: cpu };
}

/** Reads the counters. */
export async function snapshot(redis: Redis): Promise<RedisSnapshot> {
  const text = `${(await redis.info('commandstats')) as string}\n${(await redis.info('cpu')) as string}`;
  return parseInfo(text);
}

/** Counter differences between two snapshots. */
export interface RedisDelta {
  commands: Map<string, CommandStat>;
  cpuUsec: number;
}

export function delta(before: RedisSnapshot, after: RedisSnapshot): RedisDelta {
  const commands = new Map<string, CommandStat>();
  for (const [name, a] of after.commands) {
    const b = before.commands.get(name) ?? { calls: 0, usec: 0 };
    if (a.calls - b.calls > 0) commands.set(name, { calls: a.calls - b.calls, usec: a.usec - b.usec });
  }
  return { commands, cpuUsec: after.cpuUsec - before.cpuUsec };
}

/** Calls and microseconds summed over `names` (the commands a client sends itself, not those its scripts run). */
export function sumOf(d: RedisDelta, names: readonly string[]): CommandStat {
  let calls = 0;
  let usec = 0;
  for (const n of names) {
    const s = d.commands.get(n);
    if (s) {
      calls += s.calls;
      usec += s.usec;
    }
  }
  return { calls, usec };
}

/** "evalsha 30×, client|list 1×" (per collection). */
export function describe(d: RedisDelta, names: readonly string[], per: number): string {
  return names
    .filter((n) => d.commands.has(n))
    .map((n) => {
      const s = d.commands.get(n) as CommandStat;
      return `${n} ${fmtN(s.calls / per)}× ${(s.usec / per / 1000).toFixed(2)} ms`;
    })
    .join(', ');
}

function fmtN(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

/** One client's own commands over a window, from SLOWLOG (every command logged). */
export interface ClientCommands {
  calls: number;
  usec: number;
  /** Calls and µs per command (`xinfo|stream` for subcommands). */
  commands: Map<string, { calls: number; usec: number }>;
  /** Entries the log held (a full log means commands were dropped). */
  entries: number;
}

const CLIENT_LOG_MAX = 500_000;
const CONTAINER_COMMANDS = new Set(['xinfo', 'client', 'script', 'config', 'object', 'memory']);

/**
 * Starts logging every command with its execution time (SLOWLOG with a 0 µs
 * threshold): unlike INFO commandstats, each entry names the client, so one
 * client's cost can be told apart while others (workers) send the same
 * commands. The times are the same call() durations commandstats adds up.
 */
export async function startClientLog(redis: Redis): Promise<void> {
  await redis.config('SET', 'slowlog-max-len', String(CLIENT_LOG_MAX));
  await redis.config('SET', 'slowlog-log-slower-than', '0');
  await redis.slowlog('RESET');
}

/** Stops the log started by startClientLog and sums the commands of the clients named `clientName`. */
export async function readClientLog(redis: Redis, clientName: string): Promise<ClientCommands> {
  await redis.config('SET', 'slowlog-log-slower-than', '10000');
  const entries = (await redis.call('SLOWLOG', 'GET', '-1')) as SlowlogEntry[];
  await redis.slowlog('RESET');
  await redis.config('SET', 'slowlog-max-len', '128');
  return sumClientLog(entries, clientName);
}

/** One SLOWLOG entry: id, Unix time, µs, arguments, client address, client name. */
export type SlowlogEntry = [number, number, number, string[], string, string];

/** Sums the entries of the clients named `clientName` (pure). */
export function sumClientLog(entries: readonly SlowlogEntry[], clientName: string): ClientCommands {
  const out: ClientCommands = { calls: 0, usec: 0, commands: new Map(), entries: entries.length };
  for (const [, , usec, args, , name] of entries) {
    if (name !== clientName) continue;
    const cmd = String(args[0] ?? '').toLowerCase();
    const key = CONTAINER_COMMANDS.has(cmd) && args[1] ? `${cmd}|${String(args[1]).toLowerCase()}` : cmd;
    const c = out.commands.get(key) ?? { calls: 0, usec: 0 };
    c.calls++;
    c.usec += Number(usec);
    out.commands.set(key, c);
    out.calls++;
    out.usec += Number(usec);
  }
  return out;
}
