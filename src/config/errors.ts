import { constants as osConstants } from 'node:os';
import { TsmError } from '../errors.js';
import type { Directive } from './parser.js';

/** Name used as the file of directives given with -g. */
export const COMMAND_LINE = 'command line';

/**
 * A configuration error. `message` is the complete nginx-style text the CLI prints after
 * `tsmaster: [emerg] `, location included. `line` is 0 when no line applies.
 */
export class ConfigError extends TsmError {
  readonly file: string;
  readonly line: number;
  constructor(message: string, file: string, line: number, options?: { cause?: unknown }) {
    super('TSM_ERR_CONFIG', message, options);
    this.name = 'ConfigError';
    this.file = file;
    this.line = line;
  }
}

/** `/etc/x.conf:3`, or `command line` for -g directives. */
export function where(file: string, line: number): string {
  return file === COMMAND_LINE ? COMMAND_LINE : `${file}:${line}`;
}

/** Throws `MESSAGE in FILE:LINE`. */
export function fail(message: string, file: string, line: number, cause?: unknown): never {
  throw new ConfigError(`${message} in ${where(file, line)}`, file, line, cause === undefined ? undefined : { cause });
}

/** Throws `MESSAGE in FILE`, for what no single line is to blame (a missing directive). */
export function failFile(message: string, file: string): never {
  throw new ConfigError(`${message} in ${file}`, file, 0);
}

/** Throws `invalid value "VALUE" in "NAME" directive[, REASON] in FILE:LINE`. */
export function invalid(d: Directive, value: string, reason?: string): never {
  fail(`invalid value "${value}" in "${d.name}" directive${reason ? `, ${reason}` : ''}`, d.file, d.line);
}

const STRERROR: Record<string, string> = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  EIO: 'Input/output error',
  EACCES: 'Permission denied',
  EBUSY: 'Device or resource busy',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  EINVAL: 'Invalid argument',
  ENFILE: 'Too many open files in system',
  EMFILE: 'Too many open files',
  EFBIG: 'File too large',
  ENAMETOOLONG: 'File name too long',
  ELOOP: 'Too many levels of symbolic links',
  ENOMEM: 'Cannot allocate memory',
};

/** `open() "/etc/x.conf" failed (2: No such file or directory)` from a Node fs error. */
export function syscallFailure(err: unknown, fallbackSyscall: string, path: string): string {
  const e = err as NodeJS.ErrnoException;
  const code = typeof e?.code === 'string' ? e.code : 'EIO';
  const syscall = typeof e?.syscall === 'string' ? e.syscall : fallbackSyscall;
  const errnos = osConstants.errno as Record<string, number>;
  const num = errnos[code] ?? (typeof e?.errno === 'number' ? Math.abs(e.errno) : 0);
  const text = STRERROR[code] ?? code;
  return `${syscall}() "${path}" failed (${num}: ${text})`;
}
