// What /proc says about processes. kill(pid, 0) succeeds on a zombie; /proc does not lie.
import fs from 'node:fs';

/** State letter and parent pid from /proc/PID/stat, or null when there is no such process. */
export function procStat(pid: number): { state: string; ppid: number } | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0]!, ppid: Number(fields[1]) };
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
