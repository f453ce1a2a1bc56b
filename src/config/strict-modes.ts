// sshd's StrictModes for tsmaster: the directories where the root master writes its pidfile,
// logs and sockets must not be writable by the worker user or by others, or they can swap in
// a symlink, squat a name or delete a lock. Checked by -t and at start; warnings, not errors.
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from './types.js';

/**
 * Who besides root may write `dir`, or null when nobody may. A sticky directory (/tmp) only
 * matters where our files are: further up, others cannot move our directories in it.
 */
function writers(st: fs.Stats, user: Config['user'], holdsOurFile: boolean): string | null {
  if (user && st.uid === user.uid) return `the worker user ${user.name}`;
  if (user && st.gid === user.gid && st.mode & 0o020) return `the worker user ${user.name} (group)`;
  if (st.mode & 0o002 && !(st.mode & 0o1000)) return 'every user';
  if (st.mode & 0o002 && holdsOurFile) return 'every user (sticky, but names can be taken first)';
  if (st.mode & 0o020 && st.gid !== 0) return `the members of group ${st.gid}`;
  if (st.uid !== 0 && st.uid !== process.geteuid?.()) return `uid ${st.uid}`;
  return null;
}

/** One line per directory (and parent) that someone other than root may write. */
export function unsafeDirectories(config: Config): string[] {
  const paths: Array<[string, string]> = [['pid', config.pid]];
  if (config.errorLog.path !== 'stderr') paths.push(['error_log', config.errorLog.path]);
  if (typeof config.workerLog === 'string' && config.workerLog !== 'stderr' && config.workerLog !== config.errorLog.path && !config.user) {
    paths.push(['worker_log', config.workerLog]);
  }
  if (config.controlSocket) paths.push(['control_socket', config.controlSocket]);
  for (const l of config.listens) if (l.kind === 'unix' && !l.path.startsWith('@')) paths.push([`listen unix:${l.path}`, l.path]);
  const ml = config.metricsListen;
  if (ml?.kind === 'unix' && !ml.path.startsWith('@')) paths.push([`metrics_listen unix:${ml.path}`, ml.path]);
  const seen = new Set<string>();
  const out: string[] = [];
  for (const [what, file] of paths) {
    const dirs = traversed(file);
    for (const dir of dirs) {
      const key = `${what}\0${dir}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const st = fs.statSync(dir, { throwIfNoEntry: false });
      const who = st ? writers(st, config.user, dir === dirs[dirs.length - 1]) : null;
      if (who) out.push(`directory "${dir}" of ${what} "${file}" is writable by ${who}`);
    }
  }
  return out;
}

/** Symbolic links followed on the way to one file, at most (as the kernel's MAXSYMLINKS). */
const MAX_LINKS = 40;

/**
 * Every directory the kernel looks a name up in to reach `file`, in order, the one that holds
 * it last: the parents of the path as written and, through each symbolic link on the way,
 * those of where it leads. Whoever may write any of them can redirect the path. The file
 * itself is not followed: the master never follows a symlink there.
 */
function traversed(file: string): string[] {
  const dirs: string[] = [];
  const names = path.resolve(file).split('/').filter(Boolean);
  let dir = '/';
  let links = 0;
  while (names.length > 0) {
    const name = names.shift()!;
    if (name === '.') continue;
    if (name === '..') {
      dir = path.dirname(dir);
      continue;
    }
    dirs.push(dir);
    const next = path.join(dir, name);
    if (names.length === 0) break;
    let target: string | null = null;
    try {
      if (fs.lstatSync(next).isSymbolicLink()) target = fs.readlinkSync(next);
    } catch {
      // Missing: the rest is created later, in the directories seen so far.
    }
    if (target === null || ++links > MAX_LINKS) {
      dir = next;
      continue;
    }
    names.unshift(...target.split('/').filter(Boolean));
    if (target.startsWith('/')) dir = '/';
  }
  return [...new Set(dirs)];
}
