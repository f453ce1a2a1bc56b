import fs from 'node:fs';
import type { Config } from '../config/types.js';
import { isAlive, isLiveMaster, oldbinPath, readPid } from '../master/pidfile.js';
import { childrenOf } from '../proc.js';
import { waitFor } from './log-watch.js';
import { logWatch, masterPid, problemLines, type Outcome } from './signal.js';

/**
 * The whole binary upgrade, safely: USR2, wait until the new master is ready, WINCH, wait
 * until the old workers are gone, QUIT. Any failure leaves the old master serving (it
 * rolls back by itself) and reports the new master's own error lines.
 */
export async function upgrade(config: Config): Promise<Outcome> {
  const oldPid = masterPid(config.pid);
  const out: string[] = [];
  const watch = logWatch(config);
  const bound = config.readyTimeoutMs + 15_000;
  let newPid = 0;
  const failure = (why: string): Outcome => {
    const lines = watch ? problemLines(watch.lines, newPid ? [oldPid, newPid] : [oldPid]) : [];
    return { code: 1, out, err: [`[error] upgrade failed: ${why}`, ...lines, `master process ${oldPid} keeps serving`] };
  };
  /** The old master's word that it gave up or rolled back. */
  const rolledBack = (): string | undefined => {
    for (const l of watch?.poll() ?? []) {
      if (l.pid !== oldPid) continue;
      const started = /^start new master process (\d+)/.exec(l.text);
      if (started) newPid = Number(started[1]);
      if (l.text.includes('rolling back') || l.text.startsWith('USR2 ignored') || l.text.startsWith('upgrade failed')) return l.text;
    }
    return undefined;
  };

  process.kill(oldPid, 'SIGUSR2');
  out.push(`sent USR2 to master process ${oldPid}`);
  const ready = await waitFor(() => {
    const bad = rolledBack();
    if (bad) return { bad };
    const pid = readPid(config.pid);
    // The new master writes `pid` only once its workers are ready.
    if (pid !== null && pid !== oldPid && isLiveMaster(pid) && fs.existsSync(oldbinPath(config.pid))) return { pid };
    return undefined;
  }, bound);
  if (!ready) return failure(`no new master was ready within ${bound}ms`);
  if ('bad' in ready) return failure(ready.bad!);
  newPid = ready.pid!;
  out.push(`new master process ${newPid} is ready`);

  process.kill(oldPid, 'SIGWINCH');
  out.push(`sent WINCH to master process ${oldPid}`);
  const drained = await waitFor(() => {
    const bad = rolledBack();
    if (bad) return bad;
    // The old master's children other than the new master are its workers.
    return childrenOf(oldPid).filter((p) => p !== newPid).length === 0 ? '' : undefined;
  }, config.workerShutdownTimeoutMs + 10_000);
  if (drained === undefined) return failure(`the old workers did not exit within ${config.workerShutdownTimeoutMs + 10_000}ms`);
  if (drained) return failure(drained);
  out.push(`old workers have exited`);

  process.kill(oldPid, 'SIGQUIT');
  out.push(`sent QUIT to master process ${oldPid}`);
  const gone = await waitFor(() => (isAlive(oldPid) ? undefined : true), 10_000);
  if (!gone) return failure(`master process ${oldPid} did not exit`);
  out.push(`upgrade finished: master process ${newPid} serves`);
  return { code: 0, out, err: [] };
}
