import fs from 'node:fs';
import type { Config } from '../config/types.js';
import type { SocketGroup } from '../sockets/listen.js';
import { openLogFile, type Logger } from '../log/logger.js';
import { openWorkerFile, stderrForWorkers } from '../log/worker-log.js';

/**
 * One set of workers started from one config. `active` serves; `pending` is a reload
 * waiting for its workers to be ready; `retiring` is draining after being replaced.
 */
export type GenerationRole = 'active' | 'pending' | 'retiring';

export interface Generation {
  id: number;
  config: Config;
  sockets: SocketGroup[];
  role: GenerationRole;
  /** worker_processes, changed by TTIN/TTOU; 0 after WINCH. */
  target: number;
  /** During batches (batches.ts), the slots below `target` it may run; null: all. */
  slots: Set<number> | null;
  /**
   * A reload that changes error_log: the master's new log, opened before anything started,
   * taken over when the generation serves, closed if it never does.
   */
  masterLog: Logger | null;
  logFd: number | 'inherit' | 'ignore';
  logPath: string | null;
  /** Said when the generation starts: see openWorkerLog. */
  logAlert: string | null;
  backoffMs: number;
  /** All its workers have been ready at least once. */
  everReady: boolean;
  /** Members of each reuseport group when it started: what its workers accept on. */
  groupSizes: Record<string, number>;
  /** Unexpected exits per slot, for status. */
  slotRestarts: number[];
  /** worker_max_memory is below a fresh worker's RSS; said once. */
  memoryWarned: boolean;
}

/**
 * Where a generation's workers write stdout/stderr, opened by the master. With `user` it is
 * the worker user's own file, opened (or created for it) with its rights, so that workers
 * hold nothing they could not open themselves and reopen it by path on USR1. `logAlert`:
 * why their output is discarded, or which planted entry was replaced (src/log/worker-log.ts).
 */
export function openWorkerLog(config: Config): Pick<Generation, 'logFd' | 'logPath' | 'logAlert'> {
  const target = config.workerLog;
  if (target === null) return { logFd: 'ignore', logPath: null, logAlert: null };
  if (target === 'stderr') {
    const alert = config.user && stderrForWorkers(config.user);
    return { logFd: alert ? 'ignore' : 'inherit', logPath: null, logAlert: alert || null };
  }
  if (!config.user) return { logFd: openLogFile(target), logPath: target, logAlert: null };
  const file = openWorkerFile(target, config.user);
  return { logFd: file.fd, logPath: target, logAlert: file.alert };
}

/** A generation that is gone: the files it held, the master's prepared log included. */
export function closeGenerationLogs(gen: Generation): void {
  if (typeof gen.logFd === 'number') fs.closeSync(gen.logFd);
  gen.logFd = 'ignore';
  gen.masterLog?.close();
  gen.masterLog = null;
}

/** USR1: the next workers of this generation write to the file at its path now; what to alert. */
export function reopenWorkerLog(gen: Generation): string | null {
  if (typeof gen.config.workerLog !== 'string' || gen.config.workerLog === 'stderr') return null;
  const next = openWorkerLog(gen.config);
  if (typeof gen.logFd === 'number') fs.closeSync(gen.logFd);
  gen.logFd = next.logFd as number | 'ignore';
  return next.logAlert;
}
