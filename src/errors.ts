// One error type for tsmaster's own failures. Callers branch on `code`, never on message.
export type TsmErrorCode =
  | 'TSM_ERR_CONFIG'
  | 'TSM_ERR_USAGE'
  | 'TSM_ERR_PIDFILE'
  | 'TSM_ERR_LOG'
  | 'TSM_ERR_NO_MASTER'
  | 'TSM_ERR_LISTEN'
  | 'TSM_ERR_APP'
  | 'TSM_ERR_CONTROL'
  | 'TSM_ERR_CONTROL_PEER'
  | 'TSM_ERR_NATIVE_ARG'
  | 'TSM_ERR_NATIVE_LOAD';

export class TsmError extends Error {
  readonly code: TsmErrorCode;
  constructor(code: TsmErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'TsmError';
  }
}

/** A syscall failure as Node reports one: `listen EADDRINUSE: address already in use 127.0.0.1:8080`. */
export interface ErrnoError extends Error {
  code: string;
  errno: number;
  syscall: string;
  address?: string;
  port?: number;
  path?: string;
}

/** nginx's wording for a failed open: `open() "/var/log/x.log" failed (ENOENT: no such file or directory)`. */
export function openFailed(code: TsmErrorCode, path: string, err: unknown, as?: string): TsmError {
  const e = err as NodeJS.ErrnoException;
  // Node's "ENOENT: no such file or directory, open '/x'" and the addon's "open ENOENT: no such file or directory /x".
  let text = e.message.slice(e.message.indexOf(':') + 1).split(',')[0]!.trim();
  if (text.endsWith(` ${path}`)) text = text.slice(0, -path.length - 1);
  const why = e.code ? `${e.code}: ${text}` : String(err);
  return new TsmError(code, `open() "${path}" failed (${why})${as ? ` ${as}` : ''}`, { cause: err });
}

export function isErrno(err: unknown): err is ErrnoError {
  return err instanceof Error && typeof (err as ErrnoError).syscall === 'string' && typeof (err as ErrnoError).code === 'string';
}
