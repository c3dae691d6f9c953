/**
 * Concurrent scrapers against /metrics: wrk when installed (`wrk -c10 -t2
 * --latency`), else a small keep-alive client in this process with the same
 * shape (fewer requests a second than wrk can push: it is said in the output).
 */
import { spawn, spawnSync } from 'node:child_process';
import http from 'node:http';

/** What a load run measured. */
export interface LoadResult {
  p50Ms: number;
  p75Ms: number;
  p90Ms: number;
  p99Ms: number;
  requestsPerSecond: number;
  requests: number;
  /** Non-2xx answers and socket errors. */
  errors: number;
}

function toMs(value: string, unit: string): number {
  const n = Number(value);
  switch (unit) {
    case 'us':
      return n / 1000;
    case 'ms':
      return n;
    case 's':
      return n * 1000;
    case 'm':
      return n * 60_000;
    default:
      throw new Error(`unknown wrk unit ${unit}`);
  }
}

/** Parses `wrk --latency` output (pure). */
export function parseWrk(out: string): LoadResult {
  const pct = (p: number): number => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(out);
    if (!m) throw new Error(`wrk output has no ${p}% latency line`);
    return toMs(m[1] as string, m[2] as string);
  };
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(out);
  const total = /^\s+(\d+) requests in/m.exec(out);
  if (!rps || !total) throw new Error('wrk output has no Requests/sec line');
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = Number(non2xx?.[1] ?? 0) + (sock ? [1, 2, 3, 4].reduce((n, i) => n + Number(sock[i]), 0) : 0);
  return { p50Ms: pct(50), p75Ms: pct(75), p90Ms: pct(90), p99Ms: pct(99), requestsPerSecond: Number(rps[1]), requests: Number(total[1]), errors };
}

/** Whether wrk is on PATH. */
export function hasWrk(): boolean {
  return spawnSync('wrk', ['--version'], { encoding: 'utf8' }).error === undefined;
}

/** Runs wrk with `connections` connections on 2 threads for `seconds`. */
export function runWrk(url: string, connections: number, seconds: number): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', [`-c${connections}`, '-t2', `-d${seconds}s`, '--latency', '--timeout', '5s', url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`wrk exited with ${code}: ${out.slice(-500)}`));
      try {
        resolve(parseWrk(out));
      } catch (err) {
        reject(err);
      }
    });
  });
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

/** The in-process fallback: `connections` keep-alive loops for `seconds`. */
export async function runNodeLoad(url: string, connections: number, seconds: number): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const latencies: number[] = [];
  let errors = 0;
  const end = Date.now() + seconds * 1000;
  const one = () =>
    new Promise<void>((resolve) => {
      const t0 = process.hrtime.bigint();
      const req = http.get(url, { agent }, (res) => {
        res.resume();
        res.on('end', () => {
          latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
          if ((res.statusCode ?? 500) >= 300) errors++;
          resolve();
        });
      });
      req.on('error', () => {
        errors++;
        resolve();
      });
    });
  const started = Date.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (Date.now() < end) await one();
    }),
  );
  agent.destroy();
  const elapsed = (Date.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    p50Ms: percentile(latencies, 50),
    p75Ms: percentile(latencies, 75),
    p90Ms: percentile(latencies, 90),
    p99Ms: percentile(latencies, 99),
    requestsPerSecond: latencies.length / elapsed,
    requests: latencies.length,
    errors,
  };
}
