import fs from 'node:fs';
import { LOG_LEVELS, type LogLevel } from '../config/types.js';
import { openFailed } from '../errors.js';
import * as native from '../native/index.js';


function pad(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** nginx's time format: 2026/11/21 19:15:00 */
export function timestamp(d = new Date()): string {
  return `${d.getFullYear()}/${pad(d.getMonth() + 1)}/${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function formatLine(level: LogLevel, message: string, pid = process.pid): string {
  return `${timestamp()} [${level}] ${pid}#0: ${message}\n`;
}

/**
 * Opens a log file for appending, as the root master does in directories others may write:
 * never through a symlink, only a regular file. With `as`, with that user's rights (a file
 * the worker user writes is its own, never chowned). Throws TSM_ERR_LOG.
 */
export function openLogFile(path: string, as?: { uid: number; gid: number }): number {
  try {
    return native.openFile(path, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o644, as);
  } catch (err) {
    throw openFailed('TSM_ERR_LOG', path, err, as ? `as uid ${as.uid}` : undefined);
  }
}

/**
 * One log function with the nginx line format. Writes are synchronous and O_APPEND, so
 * lines from the master and its workers sharing a file never interleave mid-line.
 */
export class Logger {
  private fd: number;
  private readonly min: number;

  constructor(readonly path: string | 'stderr', level: LogLevel) {
    this.min = LOG_LEVELS.indexOf(level);
    this.fd = Logger.open(path);
  }

  static open(path: string | 'stderr'): number {
    return path === 'stderr' ? 2 : openLogFile(path);
  }

  /** The fd lines go to; the master points its own stderr at it once daemonized. */
  get target(): number {
    return this.fd;
  }

  log(level: LogLevel, message: string): void {
    if (LOG_LEVELS.indexOf(level) < this.min) return;
    try {
      fs.writeSync(this.fd, formatLine(level, message));
    } catch {
      // A full disk or a vanished log must never take the master down.
    }
  }

  debug(m: string): void { this.log('debug', m); }
  info(m: string): void { this.log('info', m); }
  notice(m: string): void { this.log('notice', m); }
  warn(m: string): void { this.log('warn', m); }
  error(m: string): void { this.log('error', m); }
  crit(m: string): void { this.log('crit', m); }
  alert(m: string): void { this.log('alert', m); }
  emerg(m: string): void { this.log('emerg', m); }

  /** USR1: open the path again (logrotate moved the old file away), then close the old fd. */
  reopen(): void {
    if (this.path === 'stderr') return;
    const next = Logger.open(this.path);
    const prev = this.fd;
    this.fd = next;
    fs.closeSync(prev);
  }

  close(): void {
    if (this.fd !== 2) fs.closeSync(this.fd);
    this.fd = 2;
  }
}
