// The master's phase, read from its fields in one place, and the one table that says what
// each phase does with each command (a signal, or a reload asked for on the control socket):
// which transition starts (its effects are plans.ts's), or why it is refused, in the words
// the log gives.
//
//                  HUP (valid config)             all new workers ready
//   starting ──> running ─────────────> reloading ─────────────────────> running
//                 │  ^ │                  │ a new worker fails: back to where it was
//                 │  │ └── WINCH ──> draining ── HUP (an upgrade under way: manual
//                 │  │                  │          rollback, workers again) ──> running
//                 │  └──────────────────┘ HUP (no upgrade): reload
//                 └── QUIT ──> stopping (graceful) ── TERM/INT ──> stopping (fast) ──> exit
//
//   upgrade, beside it:  none ── USR2 ──> starting ── new master ready ──> ready
//                        starting ── not ready in time ──> killing ── exited ──> none
//                        starting | ready ── new master exited ──> none (rolled back; a
//                        graceful stop is cancelled, drained workers start again)
//   A master started by USR2 is `new` while its old master lives: it refuses USR2 then.
import { formatOutcome, type OutcomeOf } from '../outcomes.js';

/**
 * The master's phase, all of it in one value: a reload knows where a failure returns to (a
 * reload after WINCH returns to draining), a stop its mode and exit code.
 */
export type Phase =
  | { name: 'starting' }
  | { name: 'running' }
  | { name: 'reloading'; returnTo: 'running' | 'draining' }
  | { name: 'draining' }
  | { name: 'stopping'; mode: 'fast' | 'graceful'; code: number };

export type MasterState = Phase['name'];

/** The phase as the table reads it: a stop's mode matters, its code and a reload's return do not. */
export type MasterPhase = Exclude<MasterState, 'stopping'> | 'stopping-graceful' | 'stopping-fast';

export function phaseKey(p: Phase): MasterPhase {
  return p.name === 'stopping' ? `stopping-${p.mode}` : p.name;
}
/**
 * The upgrade, in the one vocabulary of the table, status, metrics and the CLI: `none`; this is
 * the old master and its new one is `starting`, `ready` (all its workers ready), or `killing`
 * (being stopped: not ready in time); or this is the `new` master and its old one still runs.
 */
export const UPGRADE_PHASES = ['none', 'starting', 'ready', 'killing', 'new'] as const;
export type UpgradePhase = (typeof UPGRADE_PHASES)[number];

export function upgradePhase(up: { ready: boolean; killing: boolean } | null, oldMasterAlive: boolean): UpgradePhase {
  if (up) return up.killing ? 'killing' : up.ready ? 'ready' : 'starting';
  return oldMasterAlive ? 'new' : 'none';
}

/** What an operator can ask of the master. */
export const COMMANDS = ['reload', 'upgrade', 'drain', 'graceful-stop', 'fast-stop', 'reopen', 'add-worker', 'remove-worker'] as const;
export type Command = (typeof COMMANDS)[number];

/** The transition a command starts; `restart-workers` is a reload after WINCH during an upgrade (nginx's manual rollback). */
export type Transition = Command | 'restart-workers';

/** A refused reload or upgrade is an outcome (outcomes.ts) its waiters and status learn of. */
export type Refusal = { line: string; reason: string; outcome?: OutcomeOf<'reload-refused' | 'upgrade-refused'> };

/** Go, or refuse: `line` for the log, `reason` the bare why. */
export type Decision = { go: Transition } | { refuse: Refusal; quiet?: boolean };

function no(prefix: string, reason: string, quiet = false): Decision {
  return { refuse: { line: prefix ? `${prefix}: ${reason}` : reason, reason }, ...(quiet ? { quiet } : {}) };
}

function refused(event: 'reload-refused' | 'upgrade-refused', reason: string): Decision {
  const outcome = { event, reason };
  return { refuse: { line: formatOutcome(outcome), reason, outcome } };
}

export interface Situation {
  phase: MasterPhase;
  upgrade: UpgradePhase;
  /** The other master of an upgrade: the new one (this is the old), or the old one (this is the new). */
  partner?: number;
  /** PID 1 of its pid namespace: its exit would end the new master of an upgrade too. */
  pid1: boolean;
}

/** Why a master that is PID 1 refuses USR2: when PID 1 exits the kernel ends its whole pid namespace. */
export const PID1_REFUSAL = 'the master is PID 1 of its pid namespace (a container), whose exit would end the new master too; use reload, or run it under an init';

function stateWord(phase: MasterPhase): string {
  return phase.startsWith('stopping') ? 'stopping' : phase;
}

/** The table: every (phase, upgrade phase, command) has one answer. */
export function decide(s: Situation, cmd: Command): Decision {
  const busy = `the master is ${stateWord(s.phase)}`;
  const stopping = s.phase === 'stopping-graceful' || s.phase === 'stopping-fast';
  switch (cmd) {
    case 'reload':
      if (stopping || s.phase === 'reloading') return refused('reload-refused', busy);
      if (s.phase === 'draining' && (s.upgrade === 'starting' || s.upgrade === 'ready' || s.upgrade === 'killing')) return { go: 'restart-workers' };
      return { go: 'reload' };
    case 'upgrade':
      if (s.upgrade === 'starting' || s.upgrade === 'ready' || s.upgrade === 'killing') return refused('upgrade-refused', `an upgrade is under way (new master process ${s.partner ?? '?'})`);
      if (s.upgrade === 'new') return refused('upgrade-refused', `the old master process ${s.partner ?? '?'} is still running`);
      if (s.phase !== 'running' && s.phase !== 'draining') return refused('upgrade-refused', busy);
      if (s.pid1) return refused('upgrade-refused', PID1_REFUSAL);
      return { go: 'upgrade' };
    case 'drain':
      if (stopping || s.phase === 'reloading' || s.phase === 'starting') return no('workers not drained', busy);
      return { go: 'drain' };
    case 'graceful-stop':
      if (s.phase === 'stopping-fast') return no('', 'already exiting');
      if (s.phase === 'stopping-graceful') return no('', 'already shutting down');
      return { go: 'graceful-stop' };
    case 'fast-stop':
      // A second TERM while exiting changes nothing and says nothing.
      if (s.phase === 'stopping-fast') return no('', 'already exiting', true);
      return { go: 'fast-stop' };
    case 'reopen':
      return { go: 'reopen' };
    case 'add-worker':
    case 'remove-worker':
      if (s.phase !== 'running') return no('worker count not changed', busy);
      return { go: cmd };
  }
}
