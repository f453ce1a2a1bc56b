import fs from 'node:fs';
import type { Config } from '../config/types.js';
import { TsmError } from '../errors.js';
import { levels } from '../log/logger.js';
import { isAlive, isLiveMaster } from '../master/pidfile.js';
import { answers, ask } from '../control/client.js';
import { LogWatch, waitFor, type LogLine } from './log-watch.js';

/** Output of a command: lines for stdout and stderr, and the exit code. */
export interface Outcome {
  code: number;
  out: string[];
  err: string[];
}

/** The pid of the running master named by the pidfile, or a clear error. */
export function masterPid(pidPath: string): number {
  let text: string;
  try {
    text = fs.readFileSync(pidPath, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new TsmError('TSM_ERR_NO_MASTER', `open() "${pidPath}" failed (${e.errno === undefined ? '' : -e.errno + ': '}${e.code}): is tsmaster running?`);
  }
  const pid = Number.parseInt(text.trim(), 10);
  if (!Number.isInteger(pid) || pid <= 0) throw new TsmError('TSM_ERR_NO_MASTER', `invalid PID number "${text.trim()}" in "${pidPath}"`);
  if (!isLiveMaster(pid)) throw new TsmError('TSM_ERR_NO_MASTER', `no tsmaster master process ${pid}: stale pid file "${pidPath}"`);
  return pid;
}

/** The master's log, when it is a file that has the notice lines a command waits for. */
export function logWatch(config: Config): LogWatch | null {
  const quiet = levels.indexOf(config.errorLog.level) > levels.indexOf('notice');
  return config.errorLog.path === 'stderr' || quiet ? null : new LogWatch(config.errorLog.path);
}

/** The master's own account of a failure: its emerg/alert/crit/error lines. */
export function problemLines(lines: readonly LogLine[], pids: readonly number[]): string[] {
  return lines.filter((l) => pids.includes(l.pid) && ['emerg', 'alert', 'crit', 'error'].includes(l.level)).map((l) => `[${l.level}] ${l.text}`);
}

/** stop / quit: signal, then wait until the master has exited (bounded). */
export async function stopMaster(config: Config, graceful: boolean): Promise<Outcome> {
  const pid = masterPid(config.pid);
  process.kill(pid, graceful ? 'SIGQUIT' : 'SIGTERM');
  const bound = (graceful ? config.workerShutdownTimeoutMs : 0) + 10_000;
  const gone = await waitFor(() => (isAlive(pid) ? undefined : true), bound);
  if (gone) return { code: 0, out: [], err: [] };
  return { code: 1, out: [], err: [`master process ${pid} is still running after ${bound}ms`] };
}

export function reopen(config: Config): Outcome {
  process.kill(masterPid(config.pid), 'SIGUSR1');
  return { code: 0, out: [], err: [] };
}

/**
 * Reload and wait for the real outcome: over the control socket when there is one,
 * otherwise HUP and the master's verdict in its log.
 */
export async function reload(config: Config): Promise<Outcome> {
  const pid = masterPid(config.pid);
  if (config.controlSocket && (await answers(config.controlSocket, pid))) {
    const res = await ask(config.controlSocket, { cmd: 'reload' }, config.readyTimeoutMs + 10_000);
    if (res.ok) return { code: 0, out: [], err: [] };
    return { code: 1, out: [], err: [`[error] ${res.error.startsWith('reload ') ? res.error : `reload failed: ${res.error}`}`] };
  }
  const watch = logWatch(config);
  process.kill(pid, 'SIGHUP');
  if (!watch) return { code: 0, out: [], err: [] };
  const verdict = await waitFor(() => {
    for (const l of watch.poll()) {
      if (l.pid !== pid) continue;
      if (l.text.startsWith('reload finished')) return 'ok';
      if (l.text.startsWith('reload failed') || l.text.startsWith('reload ignored')) return 'failed';
    }
    return undefined;
  }, config.readyTimeoutMs + 10_000);
  if (verdict === 'ok') return { code: 0, out: [], err: [] };
  const why = verdict ? problemLines(watch.lines, [pid]) : [`no answer from master process ${pid} within ${config.readyTimeoutMs + 10_000}ms`];
  const ignored = watch.lines.find((l) => l.pid === pid && l.text.startsWith('reload ignored'));
  return { code: 1, out: [], err: ignored ? [ignored.text] : why };
}
