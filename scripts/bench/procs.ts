// Processes the benchmark starts, and the guarantee that every one of them is stopped:
// servers run in their own process group (detached), so a group kill also reaches the
// workers they fork and a new tsmaster master started by USR2; load generators are plain
// children. On a normal end, an error, Ctrl-C or SIGTERM everything is stopped, gently
// first, and the temporary directory is removed.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { procStat, processes } from '../../src/proc.js';
import { run as runToEnd, type RunResult } from '../../test/helpers/run.js';
import { tempDir as ownedTempDir } from '../../test/helpers/tmp.js';
import { sleep, waitUntil } from '../../test/helpers/wait.js';

/** pgid -> label of every detached server group still (possibly) alive. */
const groups = new Map<number, string>();
/** Non-detached children (load generators, one-shot commands). */
const children = new Set<ChildProcess>();
/** Async stop steps (pm2 kill, tsmaster -s stop), run before the group kills, newest first. */
const stoppers: Array<() => unknown> = [];
/** Synchronous steps for the end of cleanup and the 'exit' handler (no event loop there). */
const syncStoppers: Array<() => unknown> = [];
let tmpRoot: string | null = null;
let cleaning: Promise<void> | null = null;

function remove<T>(list: T[], x: T): void {
  const i = list.indexOf(x);
  if (i >= 0) list.splice(i, 1);
}

export function onStop(fn: () => unknown): () => void {
  stoppers.push(fn);
  return () => remove(stoppers, fn);
}

export function onExitSync(fn: () => unknown): () => void {
  syncStoppers.push(fn);
  return () => remove(syncStoppers, fn);
}

/** One temp dir for the whole run, removed with the last synchronous steps. */
export function tempRoot(): string {
  tmpRoot ??= ownedTempDir({ teardown: (fn) => void onExitSync(fn) }, 'tsmaster-bench-');
  return tmpRoot;
}

export function tempDir(name: string): string {
  const dir = path.join(tempRoot(), name);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

function keepChild(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
}

/** spawn(), remembered for cleanup. `detached` children get their own process group. */
export function track(cmd: string, args: string[], opts: SpawnOptions, label = cmd): ChildProcess {
  const child = spawn(cmd, args, opts);
  child.on('error', () => undefined);
  if (!opts.detached) keepChild(child);
  else if (child.pid) groups.set(child.pid, label);
  return child;
}

export type Ran = RunResult & { code: number };

/** Run a command to completion; a command that did not exit by itself counts as exit code 1. */
export async function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Ran> {
  const r = await runToEnd(cmd, args, { timeoutMs: 120_000, ...opts, onSpawn: keepChild });
  return { ...r, code: r.code ?? 1 };
}

export function groupPids(pgid: number): number[] {
  return processes().filter((p) => {
    const s = procStat(p);
    return s !== null && s.state !== 'Z' && s.state !== 'X' && s.pgrp === pgid;
  });
}

function signalGroup(pgid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pgid, sig);
  } catch {
    // already gone
  }
}

/** TERM the group, KILL what is left after `graceMs`. */
export async function stopGroup(pgid: number, graceMs = 3000): Promise<void> {
  if (!groups.has(pgid)) return;
  const empty = () => groupPids(pgid).length === 0;
  signalGroup(pgid, 'SIGTERM');
  if (!(await waitUntil(empty, graceMs, 50))) {
    signalGroup(pgid, 'SIGKILL');
    await waitUntil(empty, 2000, 50);
  }
  groups.delete(pgid);
}

/** A process group started by someone else (PM2's daemon) that cleanup must also stop. */
export function adoptGroup(pgid: number, label: string): void {
  groups.set(pgid, label);
}

function runSync(fns: Array<() => unknown>): void {
  for (const fn of fns) {
    try {
      fn();
    } catch {
      // best effort
    }
  }
}

/** Stop everything: async steps, then the groups, then the children, then the sync steps. */
export function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const fn of [...stoppers].reverse()) {
      try {
        await Promise.race([fn(), sleep(15_000)]);
      } catch {
        // The group kill below is the fallback.
      }
    }
    stoppers.length = 0;
    await Promise.all([...groups.keys()].map((g) => stopGroup(g)));
    for (const c of children) c.kill('SIGKILL');
    runSync(syncStoppers);
    syncStoppers.length = 0;
  })();
  return cleaning;
}

/** Last resort in process.on('exit'): no awaiting, KILL whatever is left. */
function exitSync(): void {
  for (const g of groups.keys()) signalGroup(g, 'SIGKILL');
  for (const c of children) c.kill('SIGKILL');
  runSync(syncStoppers);
}

let interrupted = false;
export function installHandlers(): void {
  process.on('exit', exitSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      if (interrupted) {
        process.stderr.write(`\nbench: ${sig} again, killing everything now\n`);
        process.exit(130);
      }
      interrupted = true;
      process.stderr.write(`\nbench: ${sig} received, stopping every process it started...\n`);
      void cleanup().finally(() => process.exit(130));
    });
  }
}

export function wasInterrupted(): boolean {
  return interrupted;
}

export type Log = (msg: string) => void;

/** A stage run as a program of its own (`node .../deploy.js`): its result as JSON, then cleanup. */
export async function runAlone(moduleUrl: string, stage: (log: Log) => Promise<unknown>): Promise<void> {
  if (moduleUrl !== `file://${process.argv[1]}`) return;
  installHandlers();
  try {
    console.log(JSON.stringify(await stage((m) => process.stderr.write(`${m}\n`)), null, 2));
  } finally {
    await cleanup();
  }
}
