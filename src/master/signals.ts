// What each master signal does: the word the log uses and the transition it starts, in one
// table (the names themselves are MASTER_SIGNALS, which the handlers subscribe to).
import type { MasterSignal } from './event-queue.js';
import type { Master } from './master.js';
import { startReload } from './reload.js';
import { drainWorkers, fastShutdown, gracefulShutdown, reopenLogs } from './shutdown.js';
import { changeWorkerCount } from './supervise.js';
import { startUpgrade } from './upgrade.js';

export interface SignalMeaning {
  /** `signal 1 (SIGHUP) received, <action>` */
  action: string;
  run(m: Master): void;
}

export const SIGNAL_TABLE: Record<MasterSignal, SignalMeaning> = {
  SIGTERM: { action: 'exiting', run: (m) => fastShutdown(m) },
  SIGINT: { action: 'exiting', run: (m) => fastShutdown(m) },
  SIGQUIT: { action: 'shutting down', run: gracefulShutdown },
  SIGHUP: { action: 'reconfiguring', run: startReload },
  SIGUSR1: { action: 'reopening logs', run: reopenLogs },
  SIGUSR2: { action: 'changing binary', run: startUpgrade },
  SIGWINCH: { action: 'gracefully stopping workers', run: drainWorkers },
  SIGTTIN: { action: 'adding a worker', run: (m) => changeWorkerCount(m, +1) },
  SIGTTOU: { action: 'removing a worker', run: (m) => changeWorkerCount(m, -1) },
};

/** The meaning a signal has for this master now: under `term_shutdown graceful`, TERM is QUIT's. */
export function meaningOf(signal: MasterSignal, termShutdown: 'fast' | 'graceful'): SignalMeaning {
  if (signal === 'SIGTERM' && termShutdown === 'graceful') return { ...SIGNAL_TABLE.SIGQUIT, action: `${SIGNAL_TABLE.SIGQUIT.action} (term_shutdown graceful)` };
  return SIGNAL_TABLE[signal];
}
