import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { INHERIT_ENV, isObject, type InheritEnv, type ParentMessage } from '../protocol.js';
import type { MasterEvent } from './event-queue.js';
import type { Master } from './master.js';
import { moveToOldbin, restoreFromOldbin } from './pidfile.js';
import { tell } from './tell.js';

export interface Upgrade {
  pid: number;
  child: ChildProcess;
  ready: boolean;
  timer: NodeJS.Timeout | null;
  killing: boolean;
  /** A batched upgrade: this master's slots draining for the new master's last ready batch. */
  draining: number[] | null;
  /** The totals handed to the new master at USR2; what is counted after is handed over at exit. */
  totalsAtStart: InheritEnv['totals'];
}


/**
 * USR2: move the pidfile to .oldbin and start a new master (the same command line, so a
 * switched `current` symlink runs the new release) with the listening fds at 3.. and their
 * description in TSMASTER_INHERIT. It is our child; its exit before we quit is a rollback.
 */
export function startUpgrade(m: Master): void {
  try {
    moveToOldbin(m.config.pid);
  } catch (err) {
    tell(m, { event: 'upgrade-failed', reason: `rename() "${m.config.pid}" failed: ${(err as Error).message}` });
    return;
  }
  m.moveControl(true);
  const sockets = m.sockets.all();
  const inherit: InheritEnv = {
    parentPid: process.pid,
    fds: sockets.map((s, i) => ({ fd: 3 + i, name: s.name, key: s.key, index: s.index, ...(s.activated ? { activated: true } : {}) })),
    totals: m.totals,
    // Reserved here too, so that after a rollback this master's next reload is numbered above it.
    generation: m.nextGeneration++,
  };
  const stdio: StdioOptions = ['ignore', 'inherit', 'inherit', ...sockets.map((s) => s.fd), 'ipc'];
  const [node, ...args] = m.opts.argv;
  let child: ChildProcess;
  try {
    child = spawn(node!, args, { stdio, env: { ...process.env, [INHERIT_ENV]: JSON.stringify(inherit) } });
  } catch (err) {
    // Thrown by spawn() itself (E2BIG, EPERM): undo the renames, nothing else was changed.
    undoOldbin(m);
    tell(m, { event: 'upgrade-failed', reason: `could not start a new master: ${(err as Error).message}` });
    return;
  }
  const pid = child.pid;
  if (pid === undefined) {
    child.once('error', (err) => m.queue.push({ type: 'upgrade-exit', pid: 0, code: null, signal: null, error: err.message }));
    m.upgrade = { pid: 0, child, ready: false, timer: null, killing: false, draining: null, totalsAtStart: { ...m.totals } };
    return;
  }
  child.once('exit', (code, signal) => m.queue.push({ type: 'upgrade-exit', pid, code, signal }));
  child.on('error', () => undefined);
  child.on('message', (msg: unknown) => {
    if (!isObject(msg)) return;
    const pm = msg as ParentMessage;
    if (pm.t === 'ready') m.queue.push({ type: 'upgrade-ready', pid });
    if (pm.t === 'batch-ready') m.queue.push({ type: 'upgrade-batch', msg: { ...pm, pid } });
    if (pm.t === 'failed') for (const line of pm.lines) m.log.alert(`new master process ${pid}: ${line}`);
  });
  m.upgrade = {
    pid,
    child,
    ready: false,
    timer: null,
    killing: false,
    draining: null,
    totalsAtStart: { ...m.totals },
  };
  armUpgradeTimer(m, m.config.readyTimeoutMs);
  tell(m, { event: 'upgrade-started', pid });
}

/** The pidfile and the control socket back at their own names. */
function undoOldbin(m: Master): void {
  try {
    restoreFromOldbin(m.config.pid);
  } catch (err) {
    m.log.alert(`rollback: ${(err as Error).message}`);
  }
  m.moveControl(false);
}

/** The upgrade's one timer: ready_timeout (for each batch), or the time a stopping new master gets; null clears it. */
export function armUpgradeTimer(m: Master, ms: number | null): void {
  const up = m.upgrade;
  if (!up) return;
  if (up.timer) clearTimeout(up.timer);
  up.timer = ms === null ? null : m.queue.after(ms, { type: 'upgrade-timeout', pid: up.pid });
}

/** How the new master of an upgrade-exit event went, as the rollback's log line says it. */
export function howItExited(ev: Extract<MasterEvent, { type: 'upgrade-exit' }>): string {
  return ev.error ? `could not be started: ${ev.error}` : ev.signal ? `exited on signal ${ev.signal}` : `exited with code ${ev.code}`;
}

/** The new master is gone (plans.ts decided the rest of the rollback): forget it, take the names back. */
export function endUpgrade(m: Master): void {
  armUpgradeTimer(m, null);
  m.upgrade = null;
  undoOldbin(m);
}
