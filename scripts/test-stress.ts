/**
 * `npm run test:stress [-- vitest args]`: the whole suite (`npm test`) with
 * two CPU-burning processes beside it, as on a machine shared with other
 * work (issue 9). A test that only passes on an idle machine fails here.
 *
 * The burners are bounded: each stops after TEST_STRESS_MAX_MINUTES (default
 * 30), when this script's process is gone, and at the end of the run, also
 * when the tests fail or the run is interrupted.
 */
import { spawn, type ChildProcess } from 'node:child_process';

const BURNERS = 2;
const MAX_MS = Number(process.env.TEST_STRESS_MAX_MINUTES ?? 30) * 60_000;

// Spins until its deadline, checking now and then that its parent still lives.
const BURN = `
const end = Date.now() + Number(process.argv[1]);
const parent = process.ppid;
for (let i = 1; Date.now() < end; i++) {
  if (i % 5e6 === 0) { try { process.kill(parent, 0); } catch { process.exit(0); } }
}`;

function startBurners(): ChildProcess[] {
  return Array.from({ length: BURNERS }, () => spawn(process.execPath, ['-e', BURN, String(MAX_MS)], { stdio: 'ignore' }));
}

async function stopBurners(burners: ChildProcess[]): Promise<void> {
  await Promise.all(
    burners.map(
      (b) =>
        new Promise<void>((resolve) => {
          if (b.exitCode !== null || b.signalCode !== null) return resolve();
          b.once('exit', () => resolve());
          b.kill('SIGKILL');
        }),
    ),
  );
}

async function main(): Promise<number> {
  const burners = startBurners();
  console.log(`test:stress: ${BURNERS} CPU burners (pids ${burners.map((b) => b.pid).join(', ')}) beside npm test`);
  const tests = spawn('npm', ['test', '--', ...process.argv.slice(2)], { stdio: 'inherit' });
  const forward = (signal: NodeJS.Signals) => tests.kill(signal);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  try {
    return await new Promise<number>((resolve) => {
      tests.once('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
      tests.once('error', () => resolve(1));
    });
  } finally {
    await stopBurners(burners);
    console.log('test:stress: burners stopped');
  }
}

process.exitCode = await main();
