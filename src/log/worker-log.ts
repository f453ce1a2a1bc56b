import fs from 'node:fs';
import { openFailed } from '../errors.js';
import * as native from '../native/index.js';
import { openLogFile } from './logger.js';

type User = { uid: number; gid: number };

/** A workers' log file as the master hands it over, or discarded output and why. */
export type WorkerLogFile = { fd: number; alert: string | null } | { fd: 'ignore'; alert: string };

/** What the worker user can plant at its own log's path: a symlink (ELOOP), a FIFO or device (EINVAL). */
const PLANTED = new Set(['ELOOP', 'EINVAL']);

function codeOf(err: unknown): string {
  const e = err as { code?: unknown; cause?: { code?: unknown } };
  return String(e.cause?.code ?? e.code ?? err);
}

/**
 * Opens the worker user's log with that user's rights, so workers only ever hold what they
 * could open themselves. An entry the user planted there is replaced (unlinked with the
 * user's rights: nothing it could not remove itself), and if that fails too the workers'
 * output is discarded with an alert: the release goes on either way (issue 21.10).
 */
export function openWorkerFile(path: string, user: User): WorkerLogFile {
  let replaced: string | null = null;
  for (;;) {
    try {
      return { fd: openAsWorker(path, user), alert: replaced };
    } catch (err) {
      const code = codeOf(err);
      if (!PLANTED.has(code)) throw err;
      const discard = (why: string) => ({ fd: 'ignore' as const, alert: `worker_log "${path}" is not a regular file (${code}) and ${why}: workers' output is discarded until the next reopen or reload` });
      if (replaced) return discard('was planted again at once');
      try {
        native.unlinkFile(path, user);
      } catch (e) {
        return discard(`cannot be replaced (${codeOf(e)})`);
      }
      replaced = `worker_log "${path}" was not a regular file (${code}): replaced with a new file`;
    }
  }
}

function openAsWorker(path: string, user: User): number {
  try {
    return openLogFile(path, user);
  } catch (err) {
    if (codeOf(err) !== 'EACCES') throw err;
    // A directory the user cannot write (the error_log's, for the default): the master
    // creates the file, never through a link, and gives it to the user by its descriptor.
    const { O_WRONLY, O_APPEND, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
    let fd: number;
    try {
      fd = fs.openSync(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644);
    } catch (e) {
      // There already is a file the user may not write: it is not the user's to have.
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw err;
      throw openFailed('TSM_ERR_LOG', path, e);
    }
    try {
      fs.fchownSync(fd, user.uid, user.gid);
    } catch (e) {
      fs.closeSync(fd);
      throw openFailed('TSM_ERR_LOG', path, e);
    }
    return fd;
  }
}

/**
 * `worker_log stderr` with `user`: the master's standard error is handed over only if it is
 * not a file the worker user could not open itself (daemon on points it at the error_log).
 */
export function stderrForWorkers(user: User): string | null {
  let st: fs.Stats;
  try {
    st = fs.fstatSync(2);
  } catch {
    return null;
  }
  if (!st.isFile() || st.uid === user.uid) return null;
  return "worker_log stderr: the master's standard error is a file of uid " + `${st.uid}, not the worker user's: workers' output is discarded`;
}
