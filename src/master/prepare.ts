// What a reload or an upgrade needs that can fail, done before any plan is made: the config
// read, its sockets bound, its logs opened; the pidfile moved and the new master started.
// The plan (reload-plans.ts, plans.ts) then starts from what this gave, or says why not.
import type { ChildProcess, StdioOptions } from 'node:child_process';
import type { Config } from '../config/types.js';
import { Logger } from '../log/logger.js';
import { INHERIT_ENV, isObject, type InheritEnv, type ParentMessage } from '../protocol.js';
import type { MasterEvent } from './event-queue.js';
import type { Master } from './master.js';
import { countChange, transitionOf, type Prepared } from './plans.js';
import { meaningOf } from './signals.js';
import type { Model } from './model.js';
import type { PreparedReload } from './reload-plans.js';
import { prepareGeneration } from './supervise.js';

/** The new master of an upgrade, started; or why not (nothing was changed then). */
export type PreparedUpgrade = { pid: number; child: ChildProcess; totalsAtStart: InheritEnv['totals'] } | { error: string };

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The new generation's config (read again unless given), sockets, logs and pinned app. */
export function prepareReload(m: Master, given?: Config): PreparedReload {
  let config: Config;
  try {
    config = given ?? m.readConfig();
  } catch (err) {
    return { error: message(err), bound: false };
  }
  let masterLog: Logger | null = null;
  try {
    // The master's own metrics socket never goes to workers, whatever a new config says.
    const clash = config.listens.find((l) => l.key === m.metricsKey);
    if (clash) throw new Error(`listen "${clash.name}" is this master's metrics_listen socket in ${clash.source.file}:${clash.source.line}`);
    const sockets = m.sockets.acquire(config.listens, config.workerProcesses);
    const was = m.config.errorLog;
    // Opened now: a log that cannot be opened fails the reload before anything changed.
    if (was.path !== config.errorLog.path || was.level !== config.errorLog.level) masterLog = new Logger(config.errorLog.path, config.errorLog.level);
    return { gen: prepareGeneration(config, sockets, 'pending', null, masterLog) };
  } catch (err) {
    masterLog?.close();
    return { error: message(err), bound: true };
  }
}

/**
 * USR2: move the pidfile to .oldbin and start a new master (the same command line, so a
 * switched `current` symlink runs the new release) with the listening fds at 3.. and their
 * description in TSMASTER_INHERIT. It is our child; its exit before we quit is a rollback.
 */
export function prepareUpgrade(m: Master): PreparedUpgrade {
  try {
    m.seam.pidfile.moveToOldbin(m.config.pid);
  } catch (err) {
    return { error: `rename() "${m.config.pid}" failed: ${message(err)}` };
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
    child = m.seam.spawnMaster(node!, args, { stdio, env: { ...process.env, [INHERIT_ENV]: JSON.stringify(inherit) } });
  } catch (err) {
    // Thrown by spawn() itself (E2BIG, EPERM): the names back, nothing else was changed.
    try {
      m.seam.pidfile.restoreFromOldbin(m.config.pid);
    } catch (e) {
      m.log.alert(`rollback: ${message(e)}`);
    }
    m.moveControl(false);
    return { error: `could not start a new master: ${message(err)}` };
  }
  const totalsAtStart = { ...m.totals };
  const pid = child.pid;
  const push = (ev: MasterEvent) => m.queue.push(ev);
  if (pid === undefined) {
    child.once('error', (err) => push({ type: 'upgrade-exit', pid: 0, code: null, signal: null, error: err.message }));
    return { pid: 0, child, totalsAtStart };
  }
  child.once('exit', (code, signal) => push({ type: 'upgrade-exit', pid, code, signal }));
  child.on('error', () => undefined);
  child.on('message', (msg: unknown) => {
    if (!isObject(msg)) return;
    const pm = msg as ParentMessage;
    if (pm.t === 'ready') push({ type: 'upgrade-ready', pid });
    if (pm.t === 'batch-ready') push({ type: 'upgrade-batch', msg: { ...pm, pid } });
    if (pm.t === 'failed') for (const line of pm.lines) m.log.alert(`new master process ${pid}: ${line}`);
  });
  return { pid, child, totalsAtStart };
}

/** What an event's command needs prepared, if the table lets it through now; null: nothing to prepare. */
export function prepare(m: Master, modelNow: () => Model, ev: MasterEvent): Prepared | null {
  if (ev.type !== 'control-reload' && ev.type !== 'control-upgrade' && ev.type !== 'signal') return null;
  const model = modelNow();
  const cmd = ev.type === 'control-reload' ? 'reload' : ev.type === 'control-upgrade' ? 'upgrade' : ev.signal === 'SIGWINCH' && model.onTerminal ? null : meaningOf(ev.signal, model.config.termShutdown).command;
  if (!cmd) return null;
  const go = transitionOf(model, cmd);
  if (go === 'reload') return { reload: prepareReload(m) };
  if (go === 'upgrade') return { upgrade: prepareUpgrade(m) };
  if (go === 'add-worker' || go === 'remove-worker') {
    const c = countChange(model, go === 'add-worker' ? 1 : -1);
    const gen = m.generations.get(model.current);
    if (!c || !gen || !c.reuseport || c.target === gen.target) return null;
    return { reload: prepareReload(m, { ...gen.config, workerProcesses: c.target }) };
  }
  return null;
}
