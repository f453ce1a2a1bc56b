import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { oldbinPath } from '../protocol.js';
import { TsmError, openFailed } from '../errors.js';
import * as native from '../native/index.js';
import { processes } from '../proc.js';
import { isLiveMaster } from './identity.js';

export { isAlive } from '../proc.js';
export { isLiveMaster } from './identity.js';

/** A pid and a newline; anything longer is not a pidfile. */
const MAX_PIDFILE_BYTES = 32;

/**
 * This master's pidfile, open and flock()ed for as long as it lives: a second master with
 * the same pidfile sees the lock. Moved along by rename (pid.oldbin), replaced on rollback.
 */
let held: number | null = null;

/**
 * The pid in a pidfile. The file is opened without following a symlink and must be a
 * regular file owned by root or by us, of a few bytes: a user who can write the directory
 * cannot make root signal a process of its choosing. Throws the open error, or TsmError.
 */
export function readPidFile(file: string): number {
  const fd = native.openFile(file, fs.constants.O_RDONLY, 0);
  try {
    const st = fs.fstatSync(fd);
    if (st.uid !== 0 && st.uid !== process.geteuid?.()) throw new TsmError('TSM_ERR_PIDFILE', `pid file "${file}" belongs to uid ${st.uid}, not to root: ignored`);
    const buf = Buffer.alloc(MAX_PIDFILE_BYTES + 1);
    const text = buf.toString('utf8', 0, fs.readSync(fd, buf, 0, buf.length, 0)).trim();
    const pid = /^\d{1,10}$/.test(text) ? Number(text) : 0;
    if (!Number.isSafeInteger(pid) || pid <= 0) throw new TsmError('TSM_ERR_PIDFILE', `invalid PID number "${text.slice(0, MAX_PIDFILE_BYTES)}" in "${file}"`);
    return pid;
  } finally {
    fs.closeSync(fd);
  }
}

export function readPid(file: string): number | null {
  try {
    return readPidFile(file);
  } catch {
    return null;
  }
}

/**
 * The pidfile's mode: root's (or the master user's) alone. Whoever can open a file can
 * flock() it, even through a read-only descriptor, and hold it open: a pidfile others may
 * read would let any local user take the lock of a master killed with SIGKILL, or keep the
 * file open after it was replaced. Tools that read it (systemd's PIDFile=) run as root.
 */
const PIDFILE_MODE = 0o600;

/**
 * Written to a temporary file and renamed, so a reader never sees a half-written pid. The
 * temporary name is random and created with O_EXCL (never through a symlink); the new file
 * is locked before it appears under `file`, and stays locked.
 */
export function writePid(file: string, pid = process.pid): void {
  const tmp = `${file}.${randomBytes(8).toString('hex')}.tmp`;
  let fd: number | null = null;
  try {
    fd = fs.openSync(tmp, 'wx', PIDFILE_MODE);
    if (!native.flock(fd, true)) throw new Error('lock taken');
    fs.writeSync(fd, `${pid}\n`);
    fs.renameSync(tmp, file);
  } catch (err) {
    if (fd !== null) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw openFailed('TSM_ERR_PIDFILE', file, err);
  }
  if (held !== null) fs.closeSync(held);
  held = fd;
}

/**
 * Refuse to start over a live master: the one the pidfile names, one that holds its lock, or
 * one that still holds a pidfile that was deleted or replaced under it (a user who can write
 * the directory must not get a second master past the lock). Who holds a file is a master
 * only by the kernel's word (isLiveMaster): a lock or an open descriptor of any other
 * process does not count, and a stale file is simply replaced later, by rename.
 */
export function checkNotRunning(file: string): void {
  const pid = readPid(file);
  if (pid !== null && pid !== process.pid && isLiveMaster(pid)) {
    throw new TsmError('TSM_ERR_PIDFILE', `pid file "${file}" is locked by a running tsmaster master (pid ${pid})`);
  }
  if (isLocked(file)) {
    const holder = masterHolding(file, false);
    if (holder !== null) throw new TsmError('TSM_ERR_PIDFILE', `pid file "${file}" is locked by a running tsmaster master (pid ${holder})`);
  }
  const holder = masterHolding(file, true);
  if (holder !== null) throw new TsmError('TSM_ERR_PIDFILE', `pid file "${file}" was deleted or replaced, but tsmaster master process ${holder} still runs with it`);
}

/** Someone holds an flock on the file at `file` (false when there is none, or no regular file). */
function isLocked(file: string): boolean {
  try {
    const fd = native.openFile(file, fs.constants.O_RDONLY, 0);
    try {
      return !native.flock(fd, false);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // None, or a symlink or other non-file that the rename of writePid replaces.
    return false;
  }
}

/** The path as the kernel names open files: its directory with symlinks resolved (/var/run is /run). */
function kernelPath(file: string): string {
  const abs = path.resolve(file);
  try {
    return path.join(fs.realpathSync(path.dirname(abs)), path.basename(abs));
  } catch {
    return abs;
  }
}

/**
 * A live master that holds `file` open (as fuser would find it): the file there now, or with
 * `moved` one that was unlinked or replaced, or renamed to .oldbin by an upgrade under way.
 */
function masterHolding(file: string, moved: boolean): number | null {
  const abs = kernelPath(file);
  const targets = new Set(moved ? [`${abs} (deleted)`, oldbinPath(abs), `${oldbinPath(abs)} (deleted)`] : [abs]);
  for (const pid of processes()) {
    if (pid === process.pid || !isLiveMaster(pid)) continue;
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (targets.has(fs.readlinkSync(`/proc/${pid}/fd/${fd}`))) return pid;
      } catch {
        // closed meanwhile
      }
    }
  }
  return null;
}

/** Remove the file only if it still names us: a new master may own it by now. */
export function removeIfOurs(file: string, pid = process.pid): void {
  if (readPid(file) === pid) fs.rmSync(file, { force: true });
}

export { oldbinPath };

export function moveToOldbin(file: string): void {
  fs.renameSync(file, oldbinPath(file));
}

/** Rollback: the old master names itself in `pid` again. */
export function restoreFromOldbin(file: string, pid = process.pid): void {
  writePid(file, pid);
  removeIfOurs(oldbinPath(file), pid);
}
