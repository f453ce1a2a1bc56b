// What /proc says about processes. kill(pid, 0) succeeds on a zombie; /proc does not lie.
import fs from 'node:fs';

/** The fields of /proc/PID/stat from the state on (field 3 of stat(5)), or null when there is no such process. */
function statFields(pid: number): string[] | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/**
 * State letter, parent pid, process group, session and start time (clock ticks after boot)
 * from /proc/PID/stat, or null when there is no such process.
 */
export function procStat(pid: number): { state: string; ppid: number; pgrp: number; session: number; start: number } | null {
  const fields = statFields(pid);
  return fields ? { state: fields[0]!, ppid: Number(fields[1]), pgrp: Number(fields[2]), session: Number(fields[3]), start: Number(fields[19]) } : null;
}

/** Kernel clock ticks per second for /proc/PID/stat times (USER_HZ, 100 on Linux). */
const CLK_TCK = 100;

/** Now, in the clock ticks after boot of procStat's `start`. */
export function uptimeTicks(): number {
  return Math.ceil(Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * CLK_TCK);
}

/** User plus system CPU time of a process in seconds (utime and stime, fields 14 and 15), or null. */
export function cpuSeconds(pid: number): number | null {
  const fields = statFields(pid);
  return fields ? (Number(fields[11]) + Number(fields[12])) / CLK_TCK : null;
}

/** Resident set size of a process in bytes (VmRSS of /proc/PID/status, whatever the page size), or null. */
export function rssBytes(pid: number): number | null {
  try {
    const kb = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? null : Number(kb) * 1024;
  } catch {
    return null;
  }
}

/** Alive and not a zombie. */
export function isAlive(pid: number): boolean {
  const state = procStat(pid)?.state;
  return state !== undefined && state !== 'Z' && state !== 'X';
}

/** Every pid in /proc now. */
export function processes(): number[] {
  return fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e)).map(Number);
}

/** Live children of `pid`, by a scan of /proc. */
export function childrenOf(pid: number): number[] {
  const kids: number[] = [];
  for (const child of processes()) {
    const st = procStat(child);
    if (st && st.ppid === pid && st.state !== 'Z') kids.push(child);
  }
  return kids;
}

/** How a process ended, as the log says it: `exited with code 1`, `exited on signal SIGKILL`. */
export function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `exited on signal ${signal}` : `exited with code ${code}`;
}

/** The real, effective, saved and filesystem uids (the Uid: line of /proc/PID/status), or null. */
export function uidsOf(pid: number): number[] | null {
  try {
    const m = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? m.slice(1).map(Number) : null;
  } catch {
    return null;
  }
}

/**
 * The file a process runs, as the kernel names it (/proc/PID/exe, ' (deleted)' when it was
 * replaced since); 'hidden' when we may not look (another user's process and we are not
 * root), null when there is no such process or no executable (a kernel thread, a zombie).
 */
export function exeOf(pid: number): string | 'hidden' | null {
  try {
    return fs.readlinkSync(`/proc/${pid}/exe`);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EACCES' ? 'hidden' : null;
  }
}
