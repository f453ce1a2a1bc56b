import os from 'node:os';
import { LOG_LEVELS, type Config } from '../config/types.js';
import { TsmError } from '../errors.js';
import { isAlive, isLiveMaster, readPid, readPidFile } from '../master/pidfile.js';
import { childrenOf, procStat } from '../proc.js';
import { oldbinPath } from '../protocol.js';
import { answers, ask } from '../control/client.js';
import { formatOutcome } from '../outcomes.js';
import { LogWatch, waitFor, type LogLine } from './log-watch.js';

/**
 * How long past the master's own bound for a step (ready_timeout, worker_shutdown_timeout)
 * the CLI waits before it calls the step failed: the master decides, this only waits.
 */
export const CLI_GRACE_MS = 10_000;

/** Output of a command: lines for stdout and stderr, and the exit code. */
export interface Outcome {
  code: number;
  out: string[];
  err: string[];
}

/**
 * The pid of the running master named by the pidfile, or a clear error. Run by systemd as
 * ExecStop= or ExecReload=, the unit's main process ($MAINPID) is the master when the
 * pidfile names none: an edited `pid` (a reload does not move the pidfile) still finds it.
 */
export function masterPid(pidPath: string): number {
  try {
    return pidFileMaster(pidPath);
  } catch (err) {
    const main = Number(process.env.MAINPID);
    if (Number.isInteger(main) && main > 1 && isLiveMaster(main)) return main;
    throw err;
  }
}

function pidFileMaster(pidPath: string): number {
  let pid: number;
  try {
    pid = readPidFile(pidPath);
  } catch (err) {
    if (err instanceof TsmError) throw new TsmError('TSM_ERR_NO_MASTER', err.message, { cause: err });
    const e = err as NodeJS.ErrnoException;
    // The pidfile is root's (or the master user's) alone: so is signalling the master.
    const why = e.code === 'EACCES' ? "only root or the master's user may signal the master" : 'is tsmaster running?';
    throw new TsmError('TSM_ERR_NO_MASTER', `open() "${pidPath}" failed (${e.errno === undefined ? '' : `${Math.abs(e.errno)}: `}${e.code}): ${why}`, { cause: err });
  }
  if (!isLiveMaster(pid)) throw new TsmError('TSM_ERR_NO_MASTER', `no tsmaster master process ${pid}: stale pid file "${pidPath}"`);
  return pid;
}

/** kill(2) with nginx's one-line failure: `kill(1234, 15) failed (1: Operation not permitted)`. */
export function signalMaster(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const text = e.code === 'EPERM' ? 'Operation not permitted' : e.code === 'ESRCH' ? 'No such process' : (e.code ?? String(err));
    throw new TsmError('TSM_ERR_NO_MASTER', `kill(${pid}, ${os.constants.signals[signal]}) failed (${Math.abs(e.errno ?? 0)}: ${text})`, { cause: err });
  }
}

/** The master's log, when it is a file that has the notice lines a command waits for. */
export function logWatch(config: Config): LogWatch | null {
  const quiet = LOG_LEVELS.indexOf(config.errorLog.level) > LOG_LEVELS.indexOf('notice');
  return config.errorLog.path === 'stderr' || quiet ? null : new LogWatch(config.errorLog.path);
}

/** The master's own account of a failure: its emerg/alert/crit/error lines. */
export function problemLines(lines: readonly LogLine[], pids: readonly number[]): string[] {
  return lines.filter((l) => pids.includes(l.pid) && ['emerg', 'alert', 'crit', 'error'].includes(l.level)).map((l) => `[${l.level}] ${l.text}`);
}

/**
 * The masters a stop must end, in order. During an upgrade (PATH.oldbin names a live master)
 * that is the new master first, then the old one: the old master would take the service
 * back if the new one went alone, and would cancel its own graceful stop if it went first.
 */
export function mastersToStop(config: Config): number[] {
  const old = readPid(oldbinPath(config.pid));
  if (old === null || !isLiveMaster(old)) return [masterPid(config.pid)];
  const current = readPid(config.pid);
  // Before it is ready the new master has not written the pidfile: it is the old one's child.
  const fresh = new Set([...(current !== null && current !== old && isLiveMaster(current) ? [current] : []), ...childrenOf(old).filter(isLiveMaster)]);
  return [...fresh, old];
}

/**
 * stop / quit: signal, then wait until the master has exited (bounded), each master of an
 * upgrade under way in turn. Under `term_shutdown graceful` TERM is the graceful stop, so
 * `stop` sends INT, still the fast one.
 */
export async function stopMaster(config: Config, graceful: boolean): Promise<Outcome> {
  const bound = (graceful ? config.workerShutdownTimeoutMs : 0) + CLI_GRACE_MS;
  const masters = mastersToStop(config);
  for (const [i, pid] of masters.entries()) {
    signalMaster(pid, graceful ? 'SIGQUIT' : config.termShutdown === 'graceful' ? 'SIGINT' : 'SIGTERM');
    // A new master is the old one's child: once it is reaped (not only a zombie) the old master
    // has seen it go and rolled back, so it takes the signal that follows as a stop, not as one
    // to cancel because no new master took over.
    const last = i === masters.length - 1;
    const gone = await waitFor(() => (last ? !isAlive(pid) : procStat(pid) === null) || undefined, bound);
    if (!gone) return { code: 1, out: [], err: [`master process ${pid} is still running after ${bound}ms`] };
  }
  return { code: 0, out: [], err: [] };
}

export function reopen(config: Config): Outcome {
  signalMaster(masterPid(config.pid), 'SIGUSR1');
  return { code: 0, out: [], err: [] };
}

/**
 * Reload and wait for the real outcome over the control socket. Without one there is no
 * channel the workers cannot write (they may share the error log): HUP only, as nginx.
 */
export async function reload(config: Config): Promise<Outcome> {
  const pid = masterPid(config.pid);
  if (config.controlSocket && (await answers(config.controlSocket, pid))) {
    const res = await ask(config.controlSocket, { cmd: 'reload' }, config.readyTimeoutMs + CLI_GRACE_MS);
    if (res.ok) return { code: 0, out: [], err: [] };
    // The master's own line for the outcome; an error before any (a busy socket) is said as a failed reload.
    return { code: 1, out: [], err: [`[error] ${res.outcome ? formatOutcome(res.outcome) : `reload failed: ${res.error}`}`] };
  }
  signalMaster(pid, 'SIGHUP');
  return { code: 0, out: [], err: [`[notice] sent HUP to master process ${pid}; without a control socket its outcome is only in the error log`] };
}
