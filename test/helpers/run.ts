// Running a command to its end: the tsmaster CLI in the tests, git, npm, pm2 and tsmaster
// in the bench.
import { spawn, type ChildProcess } from 'node:child_process';

export interface RunResult {
  /** Exit code; null when a signal ended it or it never started. */
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** Why it could not start (spawn ENOENT...), or null. */
  error: string | null;
  /** Killed with SIGKILL after `timeoutMs`. */
  timedOut: boolean;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Told about the child as soon as it exists (the bench keeps it for its cleanup). */
  onSpawn?: (child: ChildProcess) => void;
}

export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    opts.onSpawn?.(child);
    let stdout = '';
    let stderr = '';
    let error: string | null = null;
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 60_000);
    child.on('error', (err) => (error = err.message));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: performance.now() - started, error, timedOut });
    });
  });
}
