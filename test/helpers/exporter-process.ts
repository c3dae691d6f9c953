/**
 * The real exporter in a child process of its own, configured through the
 * environment like a deployment: for the shutdown test, the load test and
 * the benchmark (one way to start it, so they measure the same thing).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import path from 'node:path';
import { freePort } from './ports.js';

const ROOT = path.join(import.meta.dirname, '..', '..');
/** Output kept per process, characters (the end is kept). */
const OUTPUT_LIMIT = 1_000_000;

/** How to run an exporter process. */
export interface ExporterProcessOptions {
  /** The exporter's environment (DATABASE_URL, REDIS_URL, OPS_*, LOG_LEVEL); PATH, HOME, HOST and PORT are set here. */
  env: Record<string, string>;
  /**
   * `built`: the command `npm start` runs (`node <its flags> dist/main.js`,
   * built once per test process); `source`: src/main.ts through tsx. Default `source`.
   */
  run?: 'built' | 'source';
  /** Node flags before the script (e.g. --max-old-space-size=64). */
  nodeOptions?: string[];
  /** Port to listen on; default a free one. */
  port?: number;
  /** Path that must answer 200 before the process counts as started. Default `/readyz`. */
  readyPath?: string;
  /** How long it may take to answer there, milliseconds. Default 60,000. */
  readyTimeoutMs?: number;
}

/** How a process ended. */
export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Date.now() when it exited. */
  at: number;
}

/** A running exporter process. */
export interface ExporterProcess {
  child: ChildProcess;
  pid: number;
  port: number;
  /** http://127.0.0.1:<port> */
  url: string;
  /** What it wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves when the process has exited. */
  exited: Promise<ExitStatus>;
  /** Current resident set size (VmRSS), bytes. */
  rssBytes(): number;
  /** Peak resident set size so far (VmHWM), bytes. */
  peakRssBytes(): number;
  /** SIGTERM (SIGKILL 15 s later if it is still there); resolves with its exit code. */
  stop(): Promise<number | null>;
}

let built = false;

/** The arguments after `node` that `npm start` runs, built first (once per process). */
function builtArgs(): string[] {
  if (!built) {
    const r = spawnSync('npm', ['run', '-s', 'build'], { cwd: ROOT, stdio: 'inherit' });
    if (r.status !== 0) throw new Error('npm run build failed');
    built = true;
  }
  const start = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start;
  const [node, ...args] = start.split(/\s+/);
  if (node !== 'node') throw new Error(`npm start is not a node command: ${start}`);
  return args;
}

function procStatus(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/** GET `url` on loopback without keep-alive; the status, 0 when nothing answers. */
export function getStatus(port: number, url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: url, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.setTimeout(15_000, () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

/** Starts the exporter and waits until `readyPath` answers 200. */
export async function startExporterProcess(options: ExporterProcessOptions): Promise<ExporterProcess> {
  const port = options.port ?? (await freePort());
  const script = options.run === 'built' ? builtArgs() : ['--import', 'tsx', 'src/main.ts'];
  const child = spawn(process.execPath, [...(options.nodeOptions ?? []), ...script], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...options.env, HOST: '127.0.0.1', PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (chunk: Buffer) => {
    out += chunk.toString('utf8');
    if (out.length > OUTPUT_LIMIT) out = out.slice(-OUTPUT_LIMIT);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<ExitStatus>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })));
  const tail = () => out.trim().split('\n').slice(-5).join(' | ');

  const readyPath = options.readyPath ?? '/readyz';
  const timeoutMs = options.readyTimeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  while ((await getStatus(port, readyPath)) !== 200) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the exporter exited (${child.exitCode ?? child.signalCode}): ${tail()}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the exporter did not answer ${readyPath} with 200 within ${timeoutMs / 1000} s: ${tail()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const pid = child.pid!;
  return {
    child,
    pid,
    port,
    url: `http://127.0.0.1:${port}`,
    output: () => out,
    exited,
    rssBytes: () => procStatus(pid, 'VmRSS'),
    peakRssBytes: () => procStatus(pid, 'VmHWM'),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(kill);
      }
      return (await exited).code;
    },
  };
}
