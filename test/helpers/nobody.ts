// Attacks run as the unprivileged user `nobody`, as a compromised app or another local user
// would run them: setpriv drops every id and group before exec.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';

export const NOBODY = { uid: 65534, gid: 65534 };
/** Debian's own python3: the test runner's may live under /root, out of nobody's reach. */
export const PYTHON = '/usr/bin/python3';

/** Why the attacks cannot run here, or false. */
export const cannotAttack: string | false =
  process.getuid?.() !== 0 ? 'needs root (the attacks run as nobody against a root master)' : !fs.existsSync(PYTHON) ? `needs ${PYTHON}` : false;

// A clean environment: tap adds its NODE_OPTIONS loader to every spawn, and that loader
// writes coverage data where nobody may not.
const SETPRIV = '/usr/bin/env';
const drop = ['-i', 'PATH=/usr/local/bin:/usr/bin:/bin', 'HOME=/nonexistent', 'LANG=C.UTF-8', '/usr/bin/setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--'];

/** Run a command as nobody to the end. */
export function asNobody(argv: string[], opts: { cwd?: string } = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(SETPRIV, [...drop, ...argv], { encoding: 'utf8', timeout: 30_000, cwd: opts.cwd ?? '/' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Python run as nobody, to the end. */
export function pythonAsNobody(code: string, ...args: string[]): { code: number | null; stdout: string; stderr: string } {
  return asNobody([PYTHON, '-c', code, ...args]);
}

/** A long-running python as nobody; killed at teardown. Resolves once it prints `ready`. */
export async function daemonAsNobody(t: { teardown(fn: () => void): void }, code: string, ...args: string[]): Promise<ChildProcess> {
  const child = spawn(SETPRIV, [...drop, PYTHON, '-u', '-c', code, ...args], { stdio: ['ignore', 'pipe', 'inherit'], cwd: '/' });
  t.teardown(() => child.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d;
      if (out.includes('ready')) resolve();
    });
    child.once('exit', (c) => reject(new Error(`attacker exited (${c}) before it was ready: ${out}`)));
  });
  return child;
}

/** A root-only file an attack must not reach: its owner, mode and content at the end. */
export function secretFile(path: string): { check(): { uid: number; mode: number; content: string } } {
  fs.writeFileSync(path, 'root secret\n', { mode: 0o600 });
  fs.chmodSync(path, 0o600);
  return {
    check() {
      const st = fs.statSync(path);
      return { uid: st.uid, mode: st.mode & 0o7777, content: fs.readFileSync(path, 'utf8') };
    },
  };
}
export const UNTOUCHED = { uid: 0, mode: 0o600, content: 'root secret\n' };
