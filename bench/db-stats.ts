/**
 * Database time from pg_stat_statements, per role, attributed to the
 * exporter's sources by the table each statement reads; and the plans
 * auto_explain logged for a role's statements.
 */
import { readFileSync, statSync } from 'node:fs';
import pg from 'pg';

/** One statement's totals. */
export interface StatementStat {
  query: string;
  calls: number;
  execMs: number;
  planMs: number;
  rows: number;
  sharedHit: number;
  sharedRead: number;
}

/** Which part of the exporter a statement belongs to. */
export type StatementOwner = 'core_nodes' | 'provisioning' | 'security' | 'backups' | 'transaction';

/** The source a statement belongs to, by the table it reads; BEGIN/SET/COMMIT are "transaction". */
export function ownerOf(query: string): StatementOwner {
  if (/"ShieldEvent"|"ShieldPolicy"|GuardianFinding/.test(query)) return 'security';
  if (/"ProvisioningJob"/.test(query)) return 'provisioning';
  if (/"Backup"/.test(query)) return 'backups';
  if (/"CoreNode"/.test(query)) return 'core_nodes';
  return 'transaction';
}

/** Reads and resets pg_stat_statements (the extension lives in the `postgres` database). */
export class StatementStats {
  private constructor(private readonly client: pg.Client) {}

  static async open(adminUrl: string): Promise<StatementStats> {
    const client = new pg.Client({ connectionString: adminUrl });
    await client.connect();
    await client.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    return new StatementStats(client);
  }

  /** Forgets the statements of `role` in `database`. */
  async reset(role: string, database: string): Promise<void> {
    await this.client.query(
      `SELECT pg_stat_statements_reset((SELECT oid FROM pg_roles WHERE rolname = $1), (SELECT oid FROM pg_database WHERE datname = $2), 0)`,
      [role, database],
    );
  }

  /** The statements of `role` in `database` since the last reset. */
  async read(role: string, database: string): Promise<StatementStat[]> {
    const { rows } = await this.client.query<StatementStat>(
      `SELECT s.query, s.calls::int AS calls, s.total_exec_time AS "execMs", s.total_plan_time AS "planMs", s.rows::bigint::float8 AS rows,
              s.shared_blks_hit::float8 AS "sharedHit", s.shared_blks_read::float8 AS "sharedRead"
         FROM pg_stat_statements s
        WHERE s.userid = (SELECT oid FROM pg_roles WHERE rolname = $1)
          AND s.dbid = (SELECT oid FROM pg_database WHERE datname = $2)
        ORDER BY s.total_exec_time DESC`,
      [role, database],
    );
    return rows;
  }

  async close(): Promise<void> {
    await this.client.end();
  }
}

/** Sums of a list of statements. */
export function totals(stats: readonly StatementStat[]): { execMs: number; planMs: number; calls: number; sharedHit: number; sharedRead: number } {
  return stats.reduce(
    (t, s) => ({ execMs: t.execMs + s.execMs, planMs: t.planMs + s.planMs, calls: t.calls + s.calls, sharedHit: t.sharedHit + s.sharedHit, sharedRead: t.sharedRead + s.sharedRead }),
    { execMs: 0, planMs: 0, calls: 0, sharedHit: 0, sharedRead: 0 },
  );
}

/** One plan auto_explain logged. */
export interface LoggedPlan {
  user: string;
  database: string;
  durationMs: number;
  query: string;
  plan: string;
}

const ENTRY = /^\S+ \S+ \S+ \[\d+\] (\S*)@(\S*) LOG:\s+duration: ([\d.]+) ms\s+plan:$/;

/** Byte length of the server log now (plans logged after it are read by readPlans). */
export function logOffset(logFile: string): number {
  return statSync(logFile).size;
}

/** The plans auto_explain wrote to `logFile` after `offset` (PostgreSQL's stderr log, continuation lines tab-indented). */
export function readPlans(logFile: string, offset: number): LoggedPlan[] {
  const text = readFileSync(logFile).subarray(offset).toString('utf8');
  const plans: LoggedPlan[] = [];
  let cur: { head: RegExpExecArray; lines: string[] } | null = null;
  const flush = () => {
    if (!cur) return;
    const body = cur.lines.map((l) => l.replace(/^\t/, ''));
    const first = (body[0] ?? '').replace(/^Query Text: /, '');
    const rest = [first, ...body.slice(1)];
    // The plan starts at the first unindented line with a cost estimate.
    const at = rest.findIndex((l) => /^\S.*\(cost=\d/.test(l));
    plans.push({
      user: cur.head[1] as string,
      database: cur.head[2] as string,
      durationMs: Number(cur.head[3]),
      query: (at < 0 ? rest : rest.slice(0, at)).join('\n').trim(),
      plan: (at < 0 ? [] : rest.slice(at)).join('\n').trimEnd(),
    });
    cur = null;
  };
  for (const line of text.split('\n')) {
    if (line.startsWith('\t')) {
      cur?.lines.push(line);
      continue;
    }
    flush();
    const head = ENTRY.exec(line);
    if (head) cur = { head, lines: [] };
  }
  flush();
  return plans;
}

/** Turns auto_explain logging of every statement with its plan on or off (a reload reaches open sessions). */
export async function setAutoExplain(adminUrl: string, on: boolean): Promise<void> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    await c.query(on ? 'ALTER SYSTEM SET auto_explain.log_min_duration = 0' : 'ALTER SYSTEM RESET auto_explain.log_min_duration');
    await c.query('SELECT pg_reload_conf()');
  } finally {
    await c.end();
  }
}

/** Clock ticks a second in /proc/<pid>/stat (USER_HZ: 100 on Linux). */
const CLOCK_TICKS = 100;

function cpuMsOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start after ") ".
    const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

/**
 * CPU time (user + system) of the server processes serving `role` in
 * `database`, by pid, ms. Unlike pg_stat_statements' elapsed times it does
 * not grow when other work on the machine keeps the backend waiting for a
 * core. The cluster must run on this machine.
 */
export async function backendCpu(adminUrl: string, role: string, database: string): Promise<Map<number, number>> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    const { rows } = await c.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE usename = $1 AND datname = $2`, [role, database]);
    const out = new Map<number, number>();
    for (const { pid } of rows) {
      const ms = cpuMsOf(pid);
      if (ms !== undefined) out.set(pid, ms);
    }
    return out;
  } finally {
    await c.end();
  }
}

/** CPU used between two backendCpu() readings, ms; a backend that started in between counts from zero. */
export async function backendCpuSince(before: Map<number, number>, adminUrl: string, role: string, database: string): Promise<number> {
  const after = await backendCpu(adminUrl, role, database);
  let ms = 0;
  for (const [pid, t] of after) ms += t - (before.get(pid) ?? 0);
  return ms;
}

/**
 * CPU time of the cluster's exited children (parallel query workers,
 * autovacuum workers, connections that closed), ms: the kernel adds it to the
 * postmaster's cutime/cstime when the postmaster reaps them.
 */
export function exitedChildrenCpuMs(dataDir: string): number {
  const pid = Number(readFileSync(`${dataDir}/postmaster.pid`, 'utf8').split('\n')[0]);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / CLOCK_TICKS;
}

/** A CPU reading of a role's backends and the cluster's exited children. */
export interface ServerCpuMark {
  backends: Map<number, number>;
  exitedChildrenMs: number;
}

export async function markServerCpu(adminUrl: string, dataDir: string, role: string, database: string): Promise<ServerCpuMark> {
  return { backends: await backendCpu(adminUrl, role, database), exitedChildrenMs: exitedChildrenCpuMs(dataDir) };
}

/** Server CPU since `mark`, ms: the role's backends plus every child that exited (its parallel workers among them). */
export async function serverCpuSince(mark: ServerCpuMark, adminUrl: string, dataDir: string, role: string, database: string): Promise<number> {
  const backends = await backendCpuSince(mark.backends, adminUrl, role, database);
  return backends + exitedChildrenCpuMs(dataDir) - mark.exitedChildrenMs;
}
