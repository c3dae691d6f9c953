/**
 * The exporter as `npm start` runs it: `npm run build`, then the start
 * script's own `node [flags] dist/main.js`, in a child process whose memory
 * is its own, configured through the environment like a deployment.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { makeToken } from './app.js';
import { freePort } from './ports.js';

const ROOT = path.join(import.meta.dirname, '..', '..');

let built = false;

/** Builds dist/ once per test file (serialised with flock: test files run in parallel). */
export function buildDist(): void {
  if (built) return;
  const lock = path.join(tmpdir(), `ops-overview-build-${createHash('sha256').update(ROOT).digest('hex').slice(0, 12)}.lock`);
  const r = spawnSync('flock', [lock, 'npm', 'run', '-s', 'build'], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new Error('npm run build failed');
  built = true;
}

/** The node flags and script of package.json's `start` (`node --max-old-space-size=… dist/main.js`). */
export function startArgs(): string[] {
  const start = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start;
  const [node, ...args] = start.trim().split(/\s+/);
  if (node !== 'node') throw new Error(`npm start is not a plain node command: ${start}`);
  return args;
}

/** Resident memory of a process from /proc, MiB: now (VmRSS) and its peak so far (VmHWM). */
export function memoryMiB(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

/** A running compiled exporter. */
export interface CompiledExporter {
  child: ChildProcess;
  port: number;
  /** Authorization header value that may read the overview. */
  authorization: string;
  /** Everything it wrote to stdout and stderr. */
  output(): string;
  /** Whether the process is still running. */
  alive(): boolean;
  /** SIGTERM, then its exit code. */
  stop(): Promise<number | null>;
}

/** GET `url` on loopback: status and body size (the body is read and dropped). */
export function httpGet(port: number, url: string, headers: Record<string, string> = {}, timeoutMs = 15_000): Promise<{ status: number; bytes: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: url, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, bytes: body.length, body });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** Starts `node <start flags> dist/main.js` (call buildDist() first) and waits until /readyz answers 200. */
export async function startCompiledExporter(env: Record<string, string>, readyTimeoutMs = 60_000): Promise<CompiledExporter> {
  const port = await freePort();
  const token = makeToken('compiled', ['ops:overview:read']);
  const child = spawn(process.execPath, startArgs(), {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      OPS_API_TOKENS: JSON.stringify([token.entry]),
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  // Bounded: a test must not grow its own memory with a chatty child.
  const keep = (d: Buffer) => {
    if (out.length < 1_000_000) out += d.toString();
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exporter: CompiledExporter = {
    child,
    port,
    authorization: `Bearer ${token.token}`,
    output: () => out,
    alive: () => child.exitCode === null && child.signalCode === null,
    stop: () =>
      new Promise((resolve) => {
        if (!exporter.alive()) return resolve(child.exitCode);
        child.once('exit', (code) => resolve(code));
        child.kill('SIGTERM');
      }),
  };
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    const status = await httpGet(port, '/readyz').then((r) => r.status, () => 0);
    if (status === 200) return exporter;
    if (!exporter.alive()) throw new Error(`the exporter exited before it was ready:\n${out.slice(-4_000)}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the exporter was not ready within ${readyTimeoutMs} ms:\n${out.slice(-4_000)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
