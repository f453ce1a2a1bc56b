import fs from 'node:fs';
import type { Config } from '../config/types.js';
import type { SocketGroup } from '../sockets/listen.js';
import { openLogFile, type Logger } from '../log/logger.js';

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
 * Where a generation's workers write stdout/stderr: their own file, opened by the master.
 * A file of the worker user is opened (or created) with its rights, so that workers can
 * reopen it by path on USR1; the master's own error_log is opened with the master's rights
 * and is never the worker user's: workers then keep the descriptor they started with.
 */
export function openWorkerLog(config: Config): { logFd: Generation['logFd']; logPath: string | null } {
  const target = config.workerLog;
  if (target === null) return { logFd: 'ignore', logPath: null };
  if (target === 'stderr') return { logFd: 'inherit', logPath: null };
  const theirs = workerOwnsLog(config);
  return { logFd: openLogFile(target, theirs ? config.user! : undefined), logPath: theirs || !config.user ? target : null };
}

/** With `user`, a worker_log other than the error_log belongs to the worker user. */
function workerOwnsLog(config: Config): boolean {
  return config.user !== null && config.workerLog !== config.errorLog.path;
}

/** A generation that is gone: the files it held, the master's prepared log included. */
export function closeGenerationLogs(gen: Generation): void {
  if (typeof gen.logFd === 'number') fs.closeSync(gen.logFd);
  gen.logFd = 'ignore';
  gen.masterLog?.close();
  gen.masterLog = null;
}

/** USR1: the next workers of this generation write to the file at its path now. */
export function reopenWorkerLog(gen: Generation): void {
  if (typeof gen.logFd !== 'number' || typeof gen.config.workerLog !== 'string') return;
  const fd = openLogFile(gen.config.workerLog, workerOwnsLog(gen.config) ? gen.config.user! : undefined);
  fs.closeSync(gen.logFd);
  gen.logFd = fd;
}
