// Start real tsmaster processes for tests and make sure every pid they start is gone at
// teardown, also when a test fails.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KEEPER_TITLE } from '../../src/master/process-groups.js';
import { childrenOf as allChildrenOf, isAlive } from '../../src/proc.js';
import { parseOutcome, type Outcome, type OutcomeEvent, type OutcomeOf } from '../../src/outcomes.js';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const cli = path.join(root, 'dist', 'cli', 'main.js');
export const fixtures = path.join(root, 'test', 'fixtures');

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll `check` (which may be async) until it gives a value; fail after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | undefined | false | null | Promise<T | undefined | false | null>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false && v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await sleep(25);
  }
}

/** A fixture app by file name. */
export function app(name: string): string {
  return path.join(fixtures, 'apps', name);
}

/** The body of the first GET on `port` that gets an answer (workers may be starting). */
export async function waitForAnswer(port: number, timeoutMs = 20_000): Promise<string> {
  return waitFor(`an answer on port ${port}`, () => get({ port }).then((r) => r.body, () => undefined), timeoutMs);
}

/** A port nobody listens on right now (bound and released by the test itself). */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

export function tempDir(t: Teardown, prefix = 'tsm-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export { isAlive } from '../../src/proc.js';

/** A master's children but its process group keeper (started with the first exec worker). */
export function childrenOf(pid: number): number[] {
  return allChildrenOf(pid).filter((p) => !cmdline(p).startsWith(KEEPER_TITLE));
}

/** The pid of a master's process group keeper, if it has one. */
export function keeperOf(pid: number): number | undefined {
  return allChildrenOf(pid).find((p) => cmdline(p).startsWith(KEEPER_TITLE));
}

/** Gone: no such process, or a zombie nobody reaped yet (kill -0 would still succeed). */
export function isGone(pid: number): boolean {
  return !isAlive(pid);
}

export function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '';
  }
}

/** Worker pids of a master: its children whose title says so. */
export function workersOf(masterPid: number): number[] {
  return childrenOf(masterPid).filter((p) => cmdline(p).startsWith('tsmaster: worker process'));
}

/** Inodes of the sockets a process holds (/proc/PID/fd). */
export function socketInodes(pid: number): Set<string> {
  const out = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.add(m[1]!);
    } catch {
      // fd closed meanwhile
    }
  }
  return out;
}

/** Inodes of the TCP sockets in `state` (01 established, 0A listening) held by `pid`. */
export function tcpSockets(pid: number, state: '01' | '0A'): string[] {
  const mine = socketInodes(pid);
  const out: string[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of fs.readFileSync(file, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] === state && mine.has(f[9]!)) out.push(f[9]!);
    }
  }
  return out.sort();
}

export interface LogLine {
  level: string;
  pid: number;
  text: string;
}

export function readLog(file: string): LogLine[] {
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return parseLog(text);
}

/** Log lines in the error_log's format, from raw text. */
export function parseLog(text: string): LogLine[] {
  const out: LogLine[] = [];
  for (const raw of text.split('\n')) {
    const m = /^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \[(\w+)\] (\d+)#\d+: (.*)$/.exec(raw);
    if (m) out.push({ level: m[1]!, pid: Number(m[2]), text: m[3]! });
  }
  return out;
}

/** Whether raw log text (a whole file, a captured stderr) tells this outcome. */
export function told(text: string, event: OutcomeEvent): boolean {
  return eventsOf(parseLog(text)).some((e) => e.event === event);
}

/** The outcomes (src/outcomes.ts) these log lines tell, each with its line. */
export function eventsOf(lines: readonly LogLine[]): Array<Outcome & { line: LogLine }> {
  return lines.flatMap((line) => {
    const o = parseOutcome(line.text);
    return o ? [{ ...o, line }] : [];
  });
}

export interface Instance {
  dir: string;
  conf: string;
  log: string;
  pidFile: string;
  /** The foreground process we spawned (the master itself when `daemon off`). */
  proc: ChildProcess | null;
  /** The master's pid here (outside its pid namespace, with `pidNamespace`). */
  masterPid: number;
  /** The master's pid as its own log and pidfile show it: 1 with `pidNamespace`. */
  logPid: number;
  /** Wait for a log line matching `re` (from `pid` if given) that was not seen before `after` lines. */
  waitLog(re: RegExp, opts?: { pid?: number; after?: number; timeoutMs?: number }): Promise<LogLine>;
  /**
   * Wait for an outcome (src/outcomes.ts) in the log, read back from its line, whose fields
   * include `fields`: tests match events, not the wording of the line.
   */
  waitEvent<E extends OutcomeEvent>(event: E, fields?: Partial<Omit<OutcomeOf<E>, 'event'>>, opts?: { pid?: number; after?: number; timeoutMs?: number }): Promise<OutcomeOf<E> & { line: LogLine }>;
  /** The outcomes the log tells so far, from `after` lines on. */
  events(after?: number): Array<Outcome & { line: LogLine }>;
  lines(): LogLine[];
  cli(args: string[], opts?: { timeoutMs?: number }): Promise<CliResult>;
  signal(sig: NodeJS.Signals, pid?: number): void;
  /** Every pid this instance started, as seen in its log. */
  pids(): number[];
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], opts: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv; cli?: string; wrap?: string[] } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const argv = [...(opts.wrap ?? []), process.execPath, opts.cli ?? cli, ...args];
    const child = spawn(argv[0]!, argv.slice(1), { cwd: opts.cwd ?? root, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tsmaster ${args.join(' ')} did not finish in ${opts.timeoutMs ?? 60_000}ms\n${stdout}\n${stderr}`));
    }, opts.timeoutMs ?? 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Kill every pid a test started, whatever state it is in. */
export function killAll(pids: Iterable<number>): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

export interface StartOptions {
  /** Config body; `{{dir}}` is replaced by the temp dir. pid and error_log are added when absent. */
  conf: string;
  /** Run with `daemon on` through the launcher instead of in the foreground. */
  daemon?: boolean;
  extraArgs?: string[];
  /** Wait for this many workers to be ready (default: until "generation 1: all"). */
  waitReady?: boolean;
  dir?: string;
  env?: NodeJS.ProcessEnv;
  /** Where to write the config (default: tsmaster.conf in the temp dir). */
  confFile?: string;
  /** The script to run instead of dist/cli/main.js (e.g. a release behind a symlink). */
  cli?: string;
  /**
   * Run the master as PID 1 of a new pid namespace (`unshare --pid --fork --mount-proc`), as
   * in a container; `cli()` then runs inside it too, where the pidfile's pids mean something.
   */
  pidNamespace?: boolean;
}

/** A process's pid in its own pid namespace (the last NSpid of /proc/PID/status). */
export function nsPid(pid: number): number {
  const line = /^NSpid:\s*(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? String(pid);
  return Number(line.trim().split(/\s+/).pop());
}

export async function startMaster(t: Teardown, opts: StartOptions): Promise<Instance> {
  const dir = opts.dir ?? tempDir(t);
  const log = path.join(dir, 'error.log');
  const pidFile = path.join(dir, 'tsmaster.pid');
  let body = opts.conf.replaceAll('{{dir}}', dir);
  if (!/^\s*pid\s/m.test(body)) body = `pid ${pidFile};\n${body}`;
  if (!/^\s*error_log\s/m.test(body)) body = `error_log ${log} info;\n${body}`;
  if (!/^\s*daemon\s/m.test(body)) body = `daemon ${opts.daemon ? 'on' : 'off'};\n${body}`;
  const conf = opts.confFile ?? path.join(dir, 'tsmaster.conf');
  fs.writeFileSync(conf, body);
  const script = opts.cli ?? cli;
  const seen = new Set<number>();
  const args = ['-p', dir, '-c', conf, ...(opts.extraArgs ?? [])];
  let proc: ChildProcess | null = null;
  let masterPid = 0;
  const lines = () => readLog(log);
  const pids = () => {
    // Pids in the log of a master in its own namespace are not ours: killing the master ends them all.
    for (const l of opts.pidNamespace ? [] : lines()) {
      seen.add(l.pid);
      const m = /^start (?:worker|new master) process (\d+)/.exec(l.text);
      if (m) seen.add(Number(m[1]));
    }
    if (masterPid) {
      seen.add(masterPid);
      for (const c of allChildrenOf(masterPid)) seen.add(c);
    }
    return [...seen].filter((p) => p !== process.pid);
  };
  t.teardown(() => {
    // Descendants first, as seen now, then everything the log ever named.
    const all = new Set(pids());
    for (const p of [...all]) for (const c of allChildrenOf(p)) all.add(c);
    killAll(all);
  });
  if (opts.daemon) {
    const r = await runCli(args, { cli: script, ...(opts.env ? { env: opts.env } : {}) });
    if (r.code !== 0) throw new Error(`daemon start failed (${r.code}): ${r.stdout}${r.stderr}`);
    masterPid = Number(r.stdout.split('\n')[0]);
  } else {
    const argv = [...(opts.pidNamespace ? ['unshare', '--pid', '--fork', '--mount-proc', '--kill-child'] : []), process.execPath, script, ...args];
    proc = spawn(argv[0]!, argv.slice(1), { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
    proc.stdout!.resume();
    proc.stderr!.resume();
    const unshare = proc.pid!;
    seen.add(unshare);
    masterPid = opts.pidNamespace ? await waitFor('the master in its pid namespace', () => allChildrenOf(unshare)[0], 10_000) : unshare;
  }
  const wrap = opts.pidNamespace ? ['nsenter', '-t', String(masterPid), '-p', '-m', '--'] : undefined;
  const inst: Instance = {
    dir,
    conf,
    log,
    pidFile,
    proc,
    masterPid,
    logPid: opts.pidNamespace ? 1 : masterPid,
    lines,
    pids,
    signal: (sig, pid = masterPid) => process.kill(pid, sig),
    cli: (a, o) => runCli([...args, ...a], { cli: script, ...(wrap ? { wrap } : {}), ...o }),
    async waitLog(re, o = {}) {
      return waitFor(`log line ${re}`, () => lines().slice(o.after ?? 0).find((l) => re.test(l.text) && (o.pid === undefined || l.pid === o.pid)), o.timeoutMs ?? 15_000);
    },
    events: (after = 0) => eventsOf(lines().slice(after)),
    async waitEvent(event, fields = {}, o = {}) {
      const want = Object.entries(fields);
      const found = () =>
        inst.events(o.after).find((e) => e.event === event && (o.pid === undefined || e.line.pid === o.pid) && want.every(([k, v]) => (e as unknown as Record<string, unknown>)[k] === v));
      return waitFor(`event ${event} ${JSON.stringify(fields)}`, found, o.timeoutMs ?? 15_000) as Promise<never>;
    },
  };
  if (opts.waitReady !== false) {
    // A master that exits instead (a port another test took meanwhile) fails at once, with its log.
    await waitFor('generation 1 ready', () => {
      if (proc && proc.exitCode !== null) throw new Error(`the master exited with ${proc.exitCode} before it was ready:\n${lines().map((l) => l.text).join('\n')}`);
      return inst.events().some((e) => e.line.pid === inst.logPid && e.event === 'generation-ready' && e.generation === 1);
      // Generous: a test file beside the one that starts 64 workers shares 2 busy CPUs with it.
    }, 60_000);
  }
  return inst;
}

/** One GET; `socketPath` for unix sockets. Never retries. */
export function get(target: { port?: number; socketPath?: string; path?: string; keepAlive?: boolean }): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  return import('node:http').then(
    (http) =>
      new Promise((resolve, reject) => {
        const req = http.request(
          {
            host: '127.0.0.1',
            ...(target.socketPath ? { socketPath: target.socketPath } : { port: target.port }),
            path: target.path ?? '/',
            agent: false,
            headers: { connection: 'close' },
          },
          (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (d: string) => (body += d));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
          },
        );
        req.setTimeout(20_000, () => req.destroy(new Error('request timed out')));
        req.on('error', reject);
        req.end();
      }),
  );
}
