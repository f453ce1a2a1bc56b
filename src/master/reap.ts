// As PID 1 of a container the master inherits every orphan of its pid namespace; nobody else
// collects them, so each one it does not wait for stays a zombie (a pid) for ever.
import { ChildProcess } from 'node:child_process';
import os from 'node:os';
import * as native from '../native/index.js';
import { processes, procStat } from '../proc.js';

/** Children Node spawned: libuv waits for each of them by pid and reports its exit. */
const spawned = new Set<number>();

/**
 * Every child Node starts in this process, whoever starts it (the master, or a library such
 * as pidusage running `getconf`), goes through ChildProcess#spawn: noted there, so that the
 * reaper never takes the exit status libuv waits for.
 */
// Not in @types/node: ChildProcess#spawn is what child_process.spawn, exec and fork all call.
const proto = ChildProcess.prototype as unknown as { spawn: (this: ChildProcess, ...args: unknown[]) => unknown };
const nodeSpawn = proto.spawn;
proto.spawn = function spawnNoted(this: ChildProcess, ...args: unknown[]) {
  const result = nodeSpawn.apply(this, args);
  const pid = this.pid;
  if (pid !== undefined) {
    spawned.add(pid);
    this.once('exit', () => spawned.delete(pid));
  }
  return result;
};

export interface ProcEntry {
  pid: number;
  ppid: number;
  state: string;
}

/** The zombie children of `parent` that Node did not spawn: orphans handed to us by the kernel. */
export function orphansToReap(entries: readonly ProcEntry[], parent: number, ours: ReadonlySet<number>): number[] {
  return entries.filter((e) => e.ppid === parent && e.state === 'Z' && !ours.has(e.pid)).map((e) => e.pid);
}

export interface Reaped {
  pid: number;
  how: string;
}

export class Reaper {
  private pending = false;
  private push: (() => void) | null = null;
  /** Our own listener only: another module's SIGCHLD listener stays. */
  private readonly onSigchld = () => {
    if (this.pending) return;
    this.pending = true;
    this.push?.();
  };

  /** Only PID 1 is handed orphans; elsewhere init collects them and there is nothing to do. */
  constructor(readonly enabled = process.pid === 1) {}

  /** SIGCHLD only enqueues, once until the loop has swept. */
  subscribe(push: () => void): void {
    if (!this.enabled) return;
    this.push = push;
    process.on('SIGCHLD', this.onSigchld);
  }

  unsubscribe(): void {
    process.off('SIGCHLD', this.onSigchld);
  }

  /** Collect the orphans that are zombies now. */
  sweep(): Reaped[] {
    this.pending = false;
    if (!this.enabled) return [];
    const entries: ProcEntry[] = [];
    for (const pid of processes()) {
      const st = procStat(pid);
      if (st) entries.push({ pid, ...st });
    }
    const out: Reaped[] = [];
    for (const pid of orphansToReap(entries, process.pid, spawned)) {
      try {
        const st = native.waitpidNohang(pid);
        if (st) out.push({ pid, how: st.signal !== null ? `killed by signal ${signalName(st.signal)}` : `exited with code ${st.code}` });
      } catch {
        // ECHILD: gone meanwhile (a zombie seen in /proc can be collected by nobody else, but be safe).
      }
    }
    return out;
  }
}

function signalName(n: number): string {
  return Object.entries(os.constants.signals).find(([, v]) => v === n)?.[0] ?? String(n);
}
