/**
 * Helpers for the monitoring bundle's tests: running promtool, amtool and
 * Alertmanager from PATH with bounded time, temp dirs, free ports.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

/** Under CI a missing tool fails the tests; on a developer machine the tests that need it are skipped. */
export const IN_CI = process.env.CI === 'true' || process.env.CI === '1';

/** Whether an executable is on PATH. */
export function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).status === 0;
}

/**
 * True when the tests that need these tools should run: they are installed,
 * or we are in CI (where running them makes a missing tool fail loudly).
 */
export function shouldRunWith(...tools: string[]): boolean {
  return IN_CI || tools.every(hasTool);
}

/** Result of a finished command. */
export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, killing it after `timeoutMs`. Never throws on a non-zero exit. */
export function run(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { cwd: opts.cwd, timeout: opts.timeoutMs ?? 20_000, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
          reject(new Error(`${cmd} is not installed (apt-get install prometheus prometheus-alertmanager)`));
          return;
        }
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** A fresh temp dir and its cleanup. */
export async function tempDir(label: string): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `ops-mon-${label}-`));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}


/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 10_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
}

/** A server process started for a test, and how to stop it. */
export interface Daemon {
  /** http://127.0.0.1:<port> */
  base: string;
  /** SIGTERM, then SIGKILL after 5 s. */
  stop(): Promise<void>;
}

/**
 * Starts `cmd` on a free loopback port and waits until `readyPath` answers
 * 200; retries on another port (another test may have taken it meanwhile).
 */
export async function startDaemon(
  cmd: string,
  args: (port: number, attempt: number) => string[],
  readyPath = '/-/ready',
  timeoutMs = 20_000,
  env: Record<string, string> = {},
): Promise<Daemon> {
  let log = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    log = '';
    const proc = spawn(cmd, args(port, attempt), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    proc.stdout?.on('data', (d: Buffer) => (log += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<boolean>((resolve) => {
      proc.once('exit', () => resolve(false));
      proc.once('error', (err) => {
        log += String(err);
        resolve(false);
      });
    });
    const base = `http://127.0.0.1:${port}`;
    const ready = await Promise.race([waitFor(`${cmd} ready`, async () => ((await fetch(`${base}${readyPath}`)).ok ? true : undefined), timeoutMs).catch(() => false), exited]);
    const stop = async (): Promise<void> => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const gone = new Promise((resolve) => proc.once('exit', resolve));
      proc.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 5_000))]);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    };
    if (ready) return { base, stop };
    await stop();
  }
  throw new Error(`${cmd} did not start:\n${log}`);
}
