import fs from 'node:fs';
import { LOG_LEVELS, type LogLevel } from '../config/types.js';
import { openFailed } from '../errors.js';
import * as native from '../native/index.js';
import { logLoss } from './loss.js';
import { LogSink } from './sink.js';


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
 * lines from the master and its workers sharing a file never interleave mid-line. A write
 * that fails costs that line only (LogSink), counted in logLoss, which the next line that
 * can be written says: to this log, or else to stderr.
 */
export class Logger {
  private fd: number;
  private sink: LogSink;
  private readonly min: number;

  constructor(readonly path: string | 'stderr', level: LogLevel) {
    this.min = LOG_LEVELS.indexOf(level);
    this.fd = Logger.open(path);
    this.sink = sinkFor(this.fd);
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
    this.sayLosses();
    this.write(formatLine(level, message));
  }

  /** Once per REPORT_MS, if lines were lost (here or in workers): say so. */
  sayLosses(): void {
    const due = logLoss.due();
    if (due === null) return;
    const line = formatLine('alert', due);
    if (this.sink.write(line) || (this.fd !== 2 && stderr().write(line))) logLoss.said();
  }

  private write(line: string): void {
    const before = this.sink.lost;
    if (!this.sink.write(line)) logLoss.add(this.sink.lost - before, 'master', this.sink.lastError ?? 'unknown');
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
    this.sink = sinkFor(next);
    fs.closeSync(prev);
  }

  close(): void {
    if (this.fd !== 2) fs.closeSync(this.fd);
    this.fd = 2;
    this.sink = stderr();
  }
}

let stderrSink: LogSink | null = null;

/** The process's stderr as a sink: through process.stderr when it is a pipe or a socket. */
function stderr(): LogSink {
  stderrSink ??= new LogSink(2, LogSink.isStream(2) ? { writable: process.stderr, write: process.stderr.write } : null);
  return stderrSink;
}

function sinkFor(fd: number): LogSink {
  return fd === 2 ? stderr() : new LogSink(fd);
}
