import fs from 'node:fs';
import type { Config } from '../config/types.js';
import { isAlive, isLiveMaster, oldbinPath, readPid } from '../master/pidfile.js';
import { batchSize } from '../master/rollout.js';
import { childrenOf } from '../proc.js';
import { waitFor } from './log-watch.js';
import { logWatch, masterPid, problemLines, signalMaster, type Outcome } from './signal.js';
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
  } catch (err) {
    // Mid-upgrade, an error is one more failure to report: with the masters that run now.
    return { code: 1, out: [], err: [`[error] upgrade failed: ${err instanceof Error ? err.message : String(err)}`, mastersLeft(config, oldPid)] };
  } finally {
    probe?.stop();
  }
}

/** Which masters run now, whatever state the upgrade was left in: the old one and any new one. */
export function mastersLeft(config: Config, oldPid: number): string {
  const fresh = [...new Set([readPid(config.pid), ...childrenOf(oldPid)])].filter((p): p is number => p !== null && p !== oldPid && isLiveMaster(p));
  const old = isLiveMaster(oldPid);
  const news = fresh.map((p) => `new master process ${p}`).join(', ');
  if (old && fresh.length === 0) return `master process ${oldPid} keeps serving`;
  if (old) return `both run: old master process ${oldPid} and ${news}`;
  if (fresh.length > 0) return `${news} runs; old master process ${oldPid} has exited`;
  return 'no master process is running';
}

/** How long a master takes at most to act on USR2 (rename its pidfile) when it accepts it. */
const USR2_ACCEPT_MS = 5000;

/**
 * The verdicts come from channels the workers cannot write: the old master's control
 * socket, or without one the pidfiles and /proc. Log lines are only shown, on failure.
 */
async function dance(config: Config, oldPid: number, probe: OldMasterProbe | null): Promise<Outcome> {
  const out: string[] = [];
  const watch = logWatch(config);
  // A batched upgrade has ready_timeout for each batch.
  const batch = batchSize(config, config.workerProcesses);
  const bound = config.readyTimeoutMs * (batch ? Math.ceil(config.workerProcesses / batch) : 1) + 15_000;
  const oldbin = oldbinPath(config.pid);
  let newPid = 0;
  const failure = (why: string): Outcome => {
    const lines = watch ? problemLines(watch.lines, newPid ? [oldPid, newPid] : [oldPid]) : [];
    return { code: 1, out, err: [`[error] upgrade failed: ${why}`, ...lines, mastersLeft(config, oldPid)] };
  };
  const refused = probe?.refusal();
  if (refused) return { code: 1, out, err: [`[error] upgrade not started: ${refused}`] };
  const sentAt = Date.now();
  let accepted = false;
  /** Why the upgrade is over without a new master: the old master's word, or what the pidfiles and /proc show. */
  const rolledBack = (): string | undefined => {
    watch?.poll();
    if (probe) return probe.rolledBack(sentAt);
    newPid ||= childrenOf(oldPid).find(isLiveMaster) ?? 0;
    if (fs.existsSync(oldbin)) accepted = true;
    else if (!accepted && Date.now() - sentAt > USR2_ACCEPT_MS) return `master process ${oldPid} did not start an upgrade (see its error log)`;
    if (accepted && newPid && !isAlive(newPid)) return `new master process ${newPid} exited; rolled back`;
    if (accepted && !fs.existsSync(oldbin) && readPid(config.pid) === oldPid) return 'rolled back';
    return undefined;
  };

  signalMaster(oldPid, 'SIGUSR2');
  out.push(`sent USR2 to master process ${oldPid}`);
  // Each wait says how long it took: where an upgrade spends its time.
  let stepAt = sentAt;
  const took = () => {
    const now = Date.now();
    const ms = now - stepAt;
    stepAt = now;
    return `${ms} ms`;
  };
  const ready = await waitFor(() => {
    const refused = probe?.refusedSince(sentAt);
    if (refused) return { refused };
    const bad = rolledBack();
    if (bad) return { bad };
    const ready = probe?.newReady();
    if (ready !== undefined) return { pid: ready };
    if (probe) return undefined;
    const pid = readPid(config.pid);
    // The new master writes `pid` only once its workers are ready.
    if (pid !== null && pid !== oldPid && isLiveMaster(pid) && fs.existsSync(oldbin)) return { pid };
    return undefined;
  }, bound);
  if (!ready) return failure(`no new master was ready within ${bound}ms`);
  if ('refused' in ready) return { code: 1, out, err: [`[error] upgrade not started: ${ready.refused}`] };
  if ('bad' in ready) return failure(ready.bad!);
  newPid = ready.pid!;
  out.push(`new master process ${newPid} is ready (${took()})`);

  signalMaster(oldPid, 'SIGWINCH');
  out.push(`sent WINCH to master process ${oldPid}`);
  took();
  const drained = await waitFor(() => {
    const bad = rolledBack();
    if (bad) return bad;
    if (probe) return probe.workersLeft() === 0 ? '' : undefined;
    // The old master's children other than the new master are its workers.
    return childrenOf(oldPid).filter((p) => p !== newPid).length === 0 ? '' : undefined;
  }, config.workerShutdownTimeoutMs + 10_000);
  if (drained === undefined) return failure(`the old workers did not exit within ${config.workerShutdownTimeoutMs + 10_000}ms`);
  if (drained) return failure(drained);
  out.push(`old workers have exited (${took()})`);

  signalMaster(oldPid, 'SIGQUIT');
  out.push(`sent QUIT to master process ${oldPid}`);
  took();
  const gone = await waitFor(() => (isAlive(oldPid) ? undefined : true), 10_000);
  if (!gone) return failure(`master process ${oldPid} did not exit`);
  out.push(`old master exited (${took()})`);
  out.push(`upgrade finished: master process ${newPid} serves (${Date.now() - sentAt} ms in all)`);
  return { code: 0, out, err: [] };
}
