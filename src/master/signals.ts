// What each master signal asks for: the word the log uses and the command it is, in one
// table (the names themselves are MASTER_SIGNALS, which the handlers subscribe to). Whether a
// command is allowed now is phase.ts's; what it then does is plans.ts's.
import type { MasterSignal } from './event-queue.js';
import type { Command } from './phase.js';

export interface SignalMeaning {
  /** `signal 1 (SIGHUP) received, <action>` */
  action: string;
  command: Command;
}

export const SIGNAL_TABLE: Record<MasterSignal, SignalMeaning> = {
  SIGTERM: { action: 'exiting', command: 'fast-stop' },
  SIGINT: { action: 'exiting', command: 'fast-stop' },
  SIGQUIT: { action: 'shutting down', command: 'graceful-stop' },
  SIGHUP: { action: 'reconfiguring', command: 'reload' },
  SIGUSR1: { action: 'reopening logs', command: 'reopen' },
  SIGUSR2: { action: 'changing binary', command: 'upgrade' },
  SIGWINCH: { action: 'gracefully stopping workers', command: 'drain' },
  SIGTTIN: { action: 'adding a worker', command: 'add-worker' },
  SIGTTOU: { action: 'removing a worker', command: 'remove-worker' },
};

/** The meaning a signal has for this master now: under `term_shutdown graceful`, TERM is QUIT's. */
export function meaningOf(signal: MasterSignal, termShutdown: 'fast' | 'graceful'): SignalMeaning {
  if (signal === 'SIGTERM' && termShutdown === 'graceful') return { ...SIGNAL_TABLE.SIGQUIT, action: `${SIGNAL_TABLE.SIGQUIT.action} (term_shutdown graceful)` };
  return SIGNAL_TABLE[signal];
}
