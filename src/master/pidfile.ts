import fs from 'node:fs';
import { TsmError, openFailed } from '../errors.js';
import { isAlive } from '../proc.js';

export { isAlive } from '../proc.js';

/** A live process whose title says it is a tsmaster master. */
export function isLiveMaster(pid: number): boolean {
  if (!isAlive(pid)) return false;
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('tsmaster: master process');
  } catch {
    return false;
  }
}

export function readPid(path: string): number | null {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch {
    return null;
  }
  const pid = Number.parseInt(text.trim(), 10);
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

/** Written to a temp file and renamed, so a reader never sees a half-written pid. */
export function writePid(path: string, pid = process.pid): void {
  const tmp = `${path}.${pid}.tmp`;
  try {
    fs.writeFileSync(tmp, `${pid}\n`, { mode: 0o644 });
    fs.renameSync(tmp, path);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw openFailed('TSM_ERR_PIDFILE', path, err);
  }
}

/** Refuse to start over a live master; a stale file is simply replaced later. */
export function checkNotRunning(path: string): void {
  const pid = readPid(path);
  if (pid !== null && pid !== process.pid && isLiveMaster(pid)) {
    throw new TsmError('TSM_ERR_PIDFILE', `pid file "${path}" names a running tsmaster master (pid ${pid})`);
  }
}

/** Remove the file only if it still names us: a new master may own it by now. */
export function removeIfOurs(path: string, pid = process.pid): void {
  if (readPid(path) === pid) fs.rmSync(path, { force: true });
}

export function oldbinPath(path: string): string {
  return `${path}.oldbin`;
}

export function moveToOldbin(path: string): void {
  fs.renameSync(path, oldbinPath(path));
}

/** Rollback: the old master names itself in `pid` again. */
export function restoreFromOldbin(path: string, pid = process.pid): void {
  writePid(path, pid);
  removeIfOurs(oldbinPath(path), pid);
}
