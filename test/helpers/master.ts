// Start real tsmaster processes for tests and make sure every pid they start is gone at
// teardown, also when a test fails. The tests import every helper from here; the pieces the
// bench uses too live in their own modules (wait, http, log, proc, run, tmp, paths).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { KEEPER_TITLE } from '../../src/master/process-groups.js';
import { childrenOf as allChildrenOf, isAlive } from '../../src/proc.js';
import { eventsOf, readLog, type LogLine } from './log.js';
import type { Outcome, OutcomeEvent, OutcomeOf } from '../../src/outcomes.js';
import { cmdline } from './proc.js';
import { run } from './run.js';
import { cli, root } from './paths.js';
import { tempDir, type Teardown } from './tmp.js';
import { waitFor } from './wait.js';

export { cli, root } from './paths.js';
export { sleep, waitFor } from './wait.js';
export { freePort, get, waitForAnswer } from './http.js';
export { eventsOf, readLog, told, type LogLine } from './log.js';
export { cmdline, cpuBurners, nsPid, socketInodes, tcpSockets } from './proc.js';
export { tempDir } from './tmp.js';
export { isAlive } from '../../src/proc.js';

export const fixtures = path.join(root, 'test', 'fixtures');

/** A fixture app by file name. */
export function app(name: string): string {
  return path.join(fixtures, 'apps', name);
}

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

/** Worker pids of a master: its children whose title says so. */
export function workersOf(masterPid: number): number[] {
  return childrenOf(masterPid).filter((p) => cmdline(p).startsWith('tsmaster: worker process'));
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
  cli(args: string[], opts?: { timeoutMs?: number; env?: NodeJS.ProcessEnv }): Promise<CliResult>;
  signal(sig: NodeJS.Signals, pid?: number): void;
  /** Every pid this instance started, as seen in its log. */
  pids(): number[];
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export async function runCli(args: string[], opts: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv; cli?: string; command?: string[]; wrap?: string[] } = {}): Promise<CliResult> {
  const argv = [...(opts.wrap ?? []), ...(opts.command ?? [process.execPath, opts.cli ?? cli]), ...args];
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const r = await run(argv[0]!, argv.slice(1), { cwd: opts.cwd ?? root, env: opts.env ?? process.env, timeoutMs });
  if (r.timedOut) throw new Error(`tsmaster ${args.join(' ')} did not finish in ${timeoutMs}ms\n${r.stdout}\n${r.stderr}`);
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
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
  /** The command instead of `node <cli>`, e.g. an installed `node_modules/.bin/tsmaster`. */
  command?: string[];
  /**
   * Run the master as PID 1 of a new pid namespace (`unshare --pid --fork --mount-proc`), as
   * in a container; `cli()` then runs inside it too, where the pidfile's pids mean something.
   */
  pidNamespace?: boolean;
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
    const r = await runCli(args, { cli: script, ...(opts.command ? { command: opts.command } : {}), ...(opts.env ? { env: opts.env } : {}) });
    if (r.code !== 0) throw new Error(`daemon start failed (${r.code}): ${r.stdout}${r.stderr}`);
    masterPid = Number(r.stdout.split('\n')[0]);
  } else {
    const argv = [...(opts.pidNamespace ? ['unshare', '--pid', '--fork', '--mount-proc', '--kill-child'] : []), ...(opts.command ?? [process.execPath, script]), ...args];
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
    cli: (a, o) => runCli([...args, ...a], { cli: script, ...(opts.command ? { command: opts.command } : {}), ...(wrap ? { wrap } : {}), ...o }),
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
