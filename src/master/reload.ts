import type { Config } from '../config/types.js';
import type { Generation } from './generation.js';
import { Logger } from '../log/logger.js';
import type { Master } from './master.js';
import { restartWorkers } from './shutdown.js';
import { closeSocketsNoGenerationUses, releaseUnservedSockets, startGeneration, stopGeneration } from './supervise.js';

/**
 * HUP: read the config again; if it is valid, bind the new sockets and start a new
 * generation. The old one keeps serving until every new worker is ready (finishReload);
 * any failure leaves it serving as if nothing happened (failReload).
 */
export function startReload(m: Master): void {
  if (m.state === 'stopping' || m.state === 'reloading') {
    m.log.notice(`reload ignored: the master is ${m.state}`);
    return;
  }
  if (m.state === 'draining' && m.upgrade) {
    // nginx's manual rollback: the old master serves again with the config it has.
    m.log.notice('starting the workers again with the current configuration');
    restartWorkers(m);
    m.settleReload(null);
    return;
  }
  m.notifier.reloading('reloading configuration');
  let config;
  try {
    config = m.readConfig();
  } catch (err) {
    rejectReload(m, err);
    return;
  }
  replaceGeneration(m, config);
}

function rejectReload(m: Master, err: unknown): void {
  const why = err instanceof Error ? err.message : String(err);
  m.log.emerg(why);
  m.log.alert(`reload failed: generation ${m.current} keeps serving`);
  m.settleReload(why);
  m.metrics?.changed('reload', 'failed');
  m.notifier.send('READY=1', `STATUS=${m.statusLine()}, last reload failed`);
}

/**
 * Start a generation from `config` beside the serving one; it takes over once all its
 * workers are ready. Also how TTIN/TTOU change the count when reuseport sockets are shared
 * out per worker.
 */
export function replaceGeneration(m: Master, config: Config): void {
  // The master's own metrics socket never goes to workers, whatever a new config says.
  const clash = config.listens.find((l) => l.key === m.metricsKey);
  if (clash) {
    rejectReload(m, new Error(`listen "${clash.name}" is this master's metrics_listen socket in ${clash.source.file}:${clash.source.line}`));
    return;
  }
  let sockets;
  try {
    sockets = m.sockets.acquire(config.listens, config.workerProcesses);
  } catch (err) {
    rejectReload(m, err);
    return;
  }
  m.stateBeforeReload = m.state;
  m.state = 'reloading';
  try {
    const gen = startGeneration(m, config, sockets, 'pending');
    m.log.notice(`reload: generation ${gen.id} starting with ${gen.target} worker(s)`);
  } catch (err) {
    // e.g. the worker_log cannot be opened: nothing was started, the old generation serves.
    m.state = m.stateBeforeReload;
    closeSocketsNoGenerationUses(m);
    releaseUnservedSockets(m, null);
    rejectReload(m, err);
  }
}

export function finishReload(m: Master, gen: Generation): void {
  const previous = m.current;
  gen.role = 'active';
  m.current = gen.id;
  const oldLog = m.config.errorLog;
  m.config = gen.config;
  if (oldLog.path !== gen.config.errorLog.path || oldLog.level !== gen.config.errorLog.level) {
    m.log.close();
    m.log = new Logger(gen.config.errorLog.path, gen.config.errorLog.level);
    m.redirectStdio();
  }
  for (const old of [...m.generations.values()]) if (old.id !== gen.id && old.role !== 'retiring') stopGeneration(m, old);
  m.state = 'running';
  m.log.notice(`reload finished: generation ${gen.id} serves, generation ${previous} is stopping`);
  m.notifier.send('READY=1', `STATUS=${m.statusLine()}`);
  m.settleReload(null);
  m.metrics?.changed('reload', 'ok');
}

export function failReload(m: Master, gen: Generation, reason: string): void {
  m.log.alert(`reload failed: ${reason}; generation ${m.current} keeps serving`);
  stopGeneration(m, gen);
  releaseUnservedSockets(m, gen);
  m.state = m.stateBeforeReload;
  m.notifier.send('READY=1', `STATUS=${m.statusLine()}, last reload failed`);
  m.settleReload(reason);
  m.metrics?.changed('reload', 'failed');
}
