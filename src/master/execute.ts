// The one executor: each effect a plan returned, made in order, none of which decides. An
// effect that fails (a rename, a signal) is said and the plan goes on: the others do not
// depend on it, and a plan left half-made would leave the master in no phase of the table.
// Called by Master.handle only; what comes back (a worker that could not be started) is an
// event for the next step.
import fs from 'node:fs';
import { oldbinPath } from '../protocol.js';
import { closeGenerationLogs, reopenWorkerLog } from './generation.js';
import type { Effect, MasterFields, SocketsToClose, TimerKey } from './effects.js';
import { timerName } from './effects.js';
import type { MasterEvent } from './event-queue.js';
import type { Master } from './master.js';
import { signalWorker, spawnOne } from './supervise.js';
import { answerReloadWaiters, answerUpgradeWaiters, tell } from './tell.js';

export function execute(m: Master, effects: readonly Effect[]): MasterEvent[] {
  const back: MasterEvent[] = [];
  for (const e of effects) {
    try {
      apply(m, e, back);
    } catch (err) {
      m.log.alert(`${e.do} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return back;
}

/** The event a timer posts when it fires. */
function timerEvent(k: TimerKey): MasterEvent {
  switch (k.kind) {
    case 'respawn':
      return { type: 'respawn', generation: k.generation };
    case 'ready':
      return { type: 'ready-timeout', generation: k.generation };
    case 'kill':
      return { type: 'kill-timeout', pid: k.pid };
    case 'upgrade':
      return { type: 'upgrade-timeout', pid: k.pid };
  }
}

function setTimer(m: Master, k: TimerKey, ms: number | null): void {
  const name = timerName(k);
  m.timers.get(name)?.cancel();
  m.timers.delete(name);
  if (ms === null) return;
  const ev = timerEvent(k);
  m.timers.set(
    name,
    m.seam.after(ms, () => {
      m.timers.delete(name);
      m.queue.push(ev);
    }),
  );
}

/** Make one effect; what the world answers (a worker that could not start) goes to `back`. */
function apply(m: Master, e: Effect, back: MasterEvent[]): void {
  switch (e.do) {
    case 'log':
      return m.log.log(e.level, e.line);
    case 'tell':
      return tell(m, e.outcome);
    case 'notify':
      return m.notifier.send(...e.fields, ...(e.status === undefined ? [] : [`STATUS=${m.statusLine()}${e.status}`]));
    case 'set':
      return setMaster(m, e.set);
    case 'spawn': {
      const gen = m.generations.get(e.generation);
      const why = gen ? spawnOne(m, gen, e.slot) : null;
      if (why !== null) back.push({ type: 'spawn-failed', generation: e.generation, why });
      return;
    }
    case 'signal': {
      if ('newMaster' in e) return void m.upgrade?.child.kill(e.signal);
      const w = m.table.get(e.pid);
      if (w) signalWorker(m, w, e.signal);
      return;
    }
    case 'set-worker': {
      const w = m.table.get(e.pid);
      if (w) Object.assign(w, e.set);
      return;
    }
    case 'forget-worker': {
      m.table.remove(e.pid);
      setTimer(m, { kind: 'kill', pid: e.pid }, null);
      if (e.groupMs !== null) m.groups.end(e.pid, e.groupMs);
      return;
    }
    case 'add-generation': {
      const gen = { ...e.gen, id: e.id, role: e.role, slots: e.slots === null ? null : new Set(e.slots) };
      m.nextGeneration = Math.max(m.nextGeneration, e.id + 1);
      m.generations.set(e.id, gen);
      if (e.role === 'active') m.current = e.id;
      return;
    }
    case 'set-generation': {
      const gen = m.generations.get(e.generation);
      if (!gen) return;
      const { slots, ...rest } = e.set;
      Object.assign(gen, rest);
      if (slots !== undefined) gen.slots = slots === null ? null : new Set(slots);
      return;
    }
    case 'forget-generation': {
      const gen = m.generations.get(e.generation);
      if (!gen) return;
      m.generations.delete(e.generation);
      setTimer(m, { kind: 'respawn', generation: e.generation }, null);
      setTimer(m, { kind: 'ready', generation: e.generation }, null);
      closeGenerationLogs(gen);
      return;
    }
    case 'set-current': {
      const gen = m.generations.get(e.generation);
      if (!gen) return;
      m.current = gen.id;
      m.config = gen.config;
      return;
    }
    case 'take-over-log':
      return takeOverLog(m, e.generation);
    case 'timer':
      return setTimer(m, e.timer, e.ms);
    case 'count-restart': {
      if (e.restart) {
        m.totals.restarts++;
        const gen = m.generations.get(e.restart.generation);
        if (gen) gen.slotRestarts[e.restart.slot] = (gen.slotRestarts[e.restart.slot] ?? 0) + 1;
      }
      if (e.metric) m.metrics?.restarted(e.metric);
      return;
    }
    case 'close-sockets':
      return closeSockets(m, e.which);
    case 'pidfile':
      return pidfileOp(m, e.op);
    case 'move-control':
      return m.moveControl(e.toOldbin);
    case 'forget-old-master':
      return forgetOldMaster(m, e.clean);
    case 'upgrade-progress':
      if (m.upgrade) Object.assign(m.upgrade, e.set);
      return;
    case 'send':
      return send(m, e);
    case 'serve-metrics':
      return m.serveMetrics(e.on);
    case 'systemd-main':
      if ('handOver' in e) return m.notifier.handOver(e.handOver);
      m.notifier.takeOver('READY=1', `STATUS=${m.statusLine()}`);
      return m.watchdog.ping();
    case 'reopen-logs':
      return reopenLogs(m);
    case 'await':
      if ('reload' in e) m.reloadWaiters.push(e.reload);
      else m.upgradeWaiters.push(e.upgrade);
      return;
    case 'answer':
      if ('reload' in e) return e.to ? e.to(e.reload) : answerReloadWaiters(m, e.reload);
      return e.to ? e.to(e.upgrade) : answerUpgradeWaiters(m, e.upgrade);
    case 'exit':
      return m.exit(e.code);
  }
}

function setMaster(m: Master, set: MasterFields): void {
  if (set.phase !== undefined) m.phase = set.phase;
  if (set.upgrade !== undefined) m.upgrade = set.upgrade;
  if (set.batches !== undefined) m.batches = set.batches;
  if (set.ready) m.ready = true;
}

function closeSockets(m: Master, which: SocketsToClose): void {
  if ('notIn' in which) return m.sockets.closeUnused(new Set(which.notIn));
  if ('trim' in which) return m.sockets.trim(which.trim, which.keep);
  return m.sockets.closeAll(which.unlink);
}

function send(m: Master, e: Extract<Effect, { do: 'send' }>): void {
  if (e.to === 'parent') return m.tellParent(e.msg);
  if (e.to === 'new-master') {
    const child = m.upgrade?.child;
    if (child?.connected) child.send(e.msg, () => undefined);
    return;
  }
  m.table.get(e.to)?.channel?.send(e.msg);
}

function pidfileOp(m: Master, op: Extract<Effect, { do: 'pidfile' }>['op']): void {
  const p = m.seam.pidfile;
  const file = m.config.pid;
  switch (op) {
    case 'write':
      return p.writePid(file);
    case 'to-oldbin':
      return p.moveToOldbin(file);
    case 'from-oldbin':
      try {
        return p.restoreFromOldbin(file);
      } catch (err) {
        return m.log.alert(`rollback: ${(err as Error).message}`);
      }
    case 'remove':
      return p.removeIfOurs(file);
    case 'remove-oldbin':
      return p.removeIfOurs(oldbinPath(file));
  }
}

/** The old master is gone: its .oldbin pidfile and control socket, if it could not remove them (killed with SIGKILL). */
function forgetOldMaster(m: Master, clean: boolean): void {
  m.oldMasterForgotten = true;
  if (!clean || m.oldMaster === null) return;
  try {
    m.seam.pidfile.removeIfOurs(oldbinPath(m.config.pid), m.oldMaster);
    if (m.control) fs.rmSync(oldbinPath(m.control.home), { force: true });
  } catch (err) {
    // Not ours to fix (a directory where the socket was): said once, the master goes on.
    m.log.warn(`the old master's .oldbin files stay: ${(err as Error).message}`);
  }
}

/** The master writes to the error_log the reload prepared (already open), its stdio too. */
function takeOverLog(m: Master, generation: number): void {
  const gen = m.generations.get(generation);
  const log = gen?.masterLog;
  if (!gen || !log) return;
  gen.masterLog = null;
  m.log.close();
  m.log = log;
  try {
    m.redirectStdio();
  } catch (err) {
    m.log.alert(`stdout and stderr stay where they were: ${(err as Error).message}`);
  }
}

/** USR1: the master's log and the workers' log files; a log that cannot be opened now (a symlink or a FIFO planted there) keeps the old file. */
function reopenLogs(m: Master): void {
  const attempt = (fn: () => void) => {
    try {
      fn();
    } catch (err) {
      m.log.alert(`reopen failed: ${(err as Error).message}`);
    }
  };
  attempt(() => {
    m.log.reopen();
    m.redirectStdio();
  });
  for (const gen of m.generations.values()) {
    attempt(() => {
      const alert = reopenWorkerLog(gen);
      if (alert) m.log.alert(alert);
    });
  }
}
