import fs from 'node:fs';
import type { Config } from '../config/types.js';
import { isAlive, isLiveMaster, oldbinPath, readPid } from '../master/pidfile.js';
import { childrenOf } from '../proc.js';
import { waitFor } from './log-watch.js';
import { logWatch, masterPid, problemLines, type Outcome } from './signal.js';
import { OldMasterProbe, upgradeUnderWay } from './upgrade-probe.js';

/**
 * The whole binary upgrade, safely: USR2, wait until the new master is ready, WINCH, wait
 * until the old workers are gone, QUIT. Any failure leaves the old master serving (it
 * rolls back by itself) and reports the new master's own error lines. With a control
 * socket the old master's status says when each step is done; without one, the pidfile,
 * /proc and the error log do.
 */
export async function upgrade(config: Config): Promise<Outcome> {
  const busy = await upgradeUnderWay(config);
  if (busy) return { code: 1, out: [], err: [`[error] upgrade not started: ${busy}`] };
  const oldPid = masterPid(config.pid);
  const probe = await OldMasterProbe.start(config, oldPid);
  try {
    return await dance(config, oldPid, probe);
  } finally {
    probe?.stop();
  }
}

async function dance(config: Config, oldPid: number, probe: OldMasterProbe | null): Promise<Outcome> {
  const out: string[] = [];
  const watch = logWatch(config);
  const bound = config.readyTimeoutMs + 15_000;
  let newPid = 0;
  const failure = (why: string): Outcome => {
    const lines = watch ? problemLines(watch.lines, newPid ? [oldPid, newPid] : [oldPid]) : [];
    return { code: 1, out, err: [`[error] upgrade failed: ${why}`, ...lines, `master process ${oldPid} keeps serving`] };
  };
  const refused = probe?.refusal();
  if (refused) return { code: 1, out, err: [`[error] upgrade not started: ${refused}`] };
  const sentAt = Date.now();
  /** The old master's word that it gave up or rolled back. */
  const rolledBack = (): string | undefined => {
    for (const l of watch?.poll() ?? []) {
      if (l.pid !== oldPid) continue;
      const started = /^start new master process (\d+)/.exec(l.text);
      if (started) newPid = Number(started[1]);
      if (l.text.includes('rolling back') || l.text.startsWith('USR2 ignored') || l.text.startsWith('upgrade failed')) return l.text;
    }
    return probe?.rolledBack(sentAt);
  };

  process.kill(oldPid, 'SIGUSR2');
  out.push(`sent USR2 to master process ${oldPid}`);
  const ready = await waitFor(() => {
    const bad = rolledBack();
    if (bad) return { bad };
    const ready = probe?.newReady();
    if (ready !== undefined) return { pid: ready };
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
    if (probe) return probe.workersLeft() === 0 ? '' : undefined;
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
