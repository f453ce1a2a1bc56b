import fs from 'node:fs';
import { TsmError } from '../errors.js';
import type { Config } from '../config/types.js';
import { ask, askFollowing, isSocket } from '../control/client.js';
import type { ControlResponse } from '../control/protocol.js';
import { isAlive, isLiveMaster, oldbinPath, readPid } from '../master/pidfile.js';
import { batchSize } from '../master/batches.js';
import type { UpgradeOutcome } from '../outcomes.js';
import { childrenOf } from '../proc.js';
import { waitFor } from './log-watch.js';
import { CLI_GRACE_MS, logWatch, masterPid, problemLines, signalMaster, type Outcome } from './signal.js';

/**
 * The whole binary upgrade, safely. With a control socket the master does it itself and
 * answers with each outcome as it happens (started, ready, then finished, or refused,
 * failed, rolled back); without one, USR2, wait until the new master is ready, WINCH,
 * wait until the old workers are gone, QUIT, following the pidfiles and /proc. Any failure
 * leaves the old master serving (it rolls back by itself) and reports the new master's own
 * error lines.
 */
export async function upgrade(config: Config): Promise<Outcome> {
  const socket = config.controlSocket ? await answering(config.controlSocket) : null;
  const oldPid = socket?.pid ?? masterPid(config.pid);
  try {
    return socket ? await upgradeOverControl(config, socket) : await upgradeBySignals(config, oldPid);
  } catch (err) {
    // Mid-upgrade, an error is one more failure to report: with the masters that run now.
    return { code: 1, out: [], err: [`[error] upgrade failed: ${err instanceof Error ? err.message : String(err)}`, mastersLeft(config, oldPid)] };
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

/**
 * The socket of the master to ask, and its pid: during an upgrade the old master answers
 * on PATH.oldbin (and refuses a second one, saying why), else the master on PATH.
 */
async function answering(path: string): Promise<{ path: string; pid: number } | null> {
  for (const p of [oldbinPath(path), path]) {
    if (!isSocket(p)) continue;
    try {
      const res = await ask(p, { cmd: 'ping' }, 2000);
      if (res.ok && 'pong' in res) return { path: p, pid: res.pong };
    } catch (err) {
      // Another process listens where a master should: the command stops there.
      if (err instanceof TsmError && err.code === 'TSM_ERR_CONTROL_PEER') throw err;
      // Nobody there (a master killed with SIGKILL left it): the next one, or signals.
    }
  }
  return null;
}

/** How long the whole upgrade may take: ready_timeout for each batch, the old workers' drain, and a grace for each. */
function upgradeBound(config: Config): { readyMs: number; drainMs: number } {
  const batch = batchSize(config, config.workerProcesses);
  return { readyMs: config.readyTimeoutMs * (batch ? Math.ceil(config.workerProcesses / batch) : 1) + CLI_GRACE_MS, drainMs: config.workerShutdownTimeoutMs + CLI_GRACE_MS };
}

/** Each wait says how long it took: where an upgrade spends its time. */
function stopwatch(): { took(): string; total(): number } {
  const start = Date.now();
  let at = start;
  return {
    took() {
      const now = Date.now();
      const ms = now - at;
      at = now;
      return `${ms} ms`;
    },
    total: () => Date.now() - start,
  };
}

async function upgradeOverControl(config: Config, master: { path: string; pid: number }): Promise<Outcome> {
  const out: string[] = [];
  const watch = logWatch(config);
  const clock = stopwatch();
  const { readyMs, drainMs } = upgradeBound(config);
  let newPid = 0;
  /** How the new master went, as the rolling-back outcome said. */
  let gone = '';
  const failure = (why: string): Outcome => {
    watch?.poll();
    const lines = watch ? problemLines(watch.lines, newPid ? [master.pid, newPid] : [master.pid]) : [];
    return { code: 1, out, err: [`[error] upgrade failed: ${why}`, ...lines, mastersLeft(config, master.pid)] };
  };
  out.push(`asked master process ${master.pid} to upgrade`);
  const progress = (res: ControlResponse) => {
    const o = 'outcome' in res ? (res.outcome as UpgradeOutcome) : null;
    if (o?.event === 'upgrade-started') {
      newPid = o.pid;
      out.push(`new master process ${o.pid} started`);
    } else if (o?.event === 'upgrade-ready') {
      out.push(`new master process ${o.pid} is ready (${clock.took()})`);
    } else if (o?.event === 'upgrade-rolling-back') {
      gone = `new master process ${o.pid} ${o.how}`;
    }
  };
  let res: ControlResponse;
  try {
    res = await askFollowing(master.path, { cmd: 'upgrade' }, progress, readyMs + drainMs, master.pid);
  } catch (err) {
    return failure((err as Error).message);
  }
  const end = 'outcome' in res ? (res.outcome as UpgradeOutcome) : null;
  if (!end || end.event !== 'upgrade-finished') {
    switch (end?.event) {
      case 'upgrade-refused':
        return { code: 1, out, err: [`[error] upgrade not started: ${end.reason}`] };
      case 'upgrade-failed':
        return failure(end.reason);
      case 'rolled-back':
        return failure(gone ? `${gone}; rolled back` : 'rolled back');
      default:
        return failure(res.ok ? 'no outcome in the answer' : res.error);
    }
  }
  newPid = end.pid;
  out.push(`old workers have exited (${clock.took()})`);
  const exited = await waitFor(() => (isAlive(master.pid) ? undefined : true), CLI_GRACE_MS);
  if (!exited) return failure(`master process ${master.pid} did not exit`);
  out.push(`old master exited (${clock.took()})`);
  out.push(`upgrade finished: master process ${newPid} serves (${clock.total()} ms in all)`);
  return { code: 0, out, err: [] };
}


/** How long a master takes at most to act on USR2 (rename its pidfile) when it accepts it. */
const USR2_ACCEPT_MS = 5000;

/**
 * Without a control socket: the verdicts come from what the workers cannot write, the
 * pidfiles and /proc. Log lines are only shown, on failure.
 */
async function upgradeBySignals(config: Config, oldPid: number): Promise<Outcome> {
  const out: string[] = [];
  const watch = logWatch(config);
  const { readyMs, drainMs } = upgradeBound(config);
  const oldbin = oldbinPath(config.pid);
  let newPid = 0;
  const failure = (why: string): Outcome => {
    const lines = watch ? problemLines(watch.lines, newPid ? [oldPid, newPid] : [oldPid]) : [];
    return { code: 1, out, err: [`[error] upgrade failed: ${why}`, ...lines, mastersLeft(config, oldPid)] };
  };
  const sentAt = Date.now();
  let accepted = false;
  /** Why the upgrade is over without a new master, as the pidfiles and /proc show it. */
  const rolledBack = (): string | undefined => {
    watch?.poll();
    newPid ||= childrenOf(oldPid).find(isLiveMaster) ?? 0;
    if (fs.existsSync(oldbin)) accepted = true;
    else if (!accepted && Date.now() - sentAt > USR2_ACCEPT_MS) return `master process ${oldPid} did not start an upgrade (see its error log)`;
    if (accepted && newPid && !isAlive(newPid)) return `new master process ${newPid} exited; rolled back`;
    if (accepted && !fs.existsSync(oldbin) && readPid(config.pid) === oldPid) return 'rolled back';
    return undefined;
  };

  signalMaster(oldPid, 'SIGUSR2');
  out.push(`sent USR2 to master process ${oldPid}`);
  const clock = stopwatch();
  const ready = await waitFor(() => {
    const bad = rolledBack();
    if (bad) return { bad };
    const pid = readPid(config.pid);
    // The new master writes `pid` only once its workers are ready.
    if (pid !== null && pid !== oldPid && isLiveMaster(pid) && fs.existsSync(oldbin)) return { pid };
    return undefined;
  }, readyMs);
  if (!ready) return failure(`no new master was ready within ${readyMs}ms`);
  if ('bad' in ready) return failure(ready.bad!);
  newPid = ready.pid!;
  out.push(`new master process ${newPid} is ready (${clock.took()})`);

  signalMaster(oldPid, 'SIGWINCH');
  out.push(`sent WINCH to master process ${oldPid}`);
  clock.took();
  const drained = await waitFor(() => {
    const bad = rolledBack();
    if (bad) return bad;
    // The old master's children other than the new master are its workers.
    return childrenOf(oldPid).filter((p) => p !== newPid).length === 0 ? '' : undefined;
  }, drainMs);
  if (drained === undefined) return failure(`the old workers did not exit within ${drainMs}ms`);
  if (drained) return failure(drained);
  out.push(`old workers have exited (${clock.took()})`);

  signalMaster(oldPid, 'SIGQUIT');
  out.push(`sent QUIT to master process ${oldPid}`);
  clock.took();
  const gone = await waitFor(() => (isAlive(oldPid) ? undefined : true), CLI_GRACE_MS);
  if (!gone) return failure(`master process ${oldPid} did not exit`);
  out.push(`old master exited (${clock.took()})`);
  out.push(`upgrade finished: master process ${newPid} serves (${clock.total()} ms in all)`);
  return { code: 0, out, err: [] };
}
