// The effects a plan returns: verbs on the world (spawn, signal, write, tell...), each made
// by execute.ts as it is written, none of which looks at the master's state to choose what
// to do: choosing is the plans' (plans.ts, worker-plans.ts, reload-plans.ts, batch-plans.ts,
// settle.ts), from one model of the master (model.ts).
import type { LogLevel } from '../config/types.js';
import type { Outcome, ReloadOutcome, UpgradeEnd } from '../outcomes.js';
import type { UpgradeWaiter } from './event-queue.js';
import type { MasterToWorker, ParentMessage } from '../protocol.js';
import type { Batches } from './batches.js';
import type { Generation, GenerationRole } from './generation.js';
import type { Phase } from './phase.js';
import type { RestartReason, WorkerState } from './process-table.js';
import type { Upgrade } from './upgrade.js';

/** The master's timers: each posts its event when it fires (a generation's respawn step or ready_timeout, a stop's KILL, the upgrade's). */
export type TimerKey = { kind: 'respawn' | 'ready'; generation: number } | { kind: 'kill'; pid: number } | { kind: 'upgrade'; pid: number };

export function timerName(k: TimerKey): string {
  return k.kind === 'kill' || k.kind === 'upgrade' ? `${k.kind}:${k.pid}` : `${k.kind}:${k.generation}`;
}

/** What an effect may change of a worker's record. */
export type WorkerFields = Partial<{
  state: WorkerState;
  readyAt: number;
  lastPong: number;
  recycling: boolean;
  killedFor: string;
  killReason: RestartReason;
  stopDeadline: number;
}>;
/** What an effect may change of a generation. */
export type GenerationFields = Partial<{ role: GenerationRole; target: number; slots: number[] | null; everReady: boolean; backoffMs: number; memoryWarned: boolean }>;
/** What an effect may change of the master itself (`ready`: it has been ready once). */
export type MasterFields = Partial<{ phase: Phase; upgrade: Upgrade | null; batches: Batches | null; ready: true }>;

/** From the old master of an upgrade to the new one. */
export type OldMasterMessage = { t: 'batch-drained' };

/** Which listening sockets to close: those of no address in `notIn`, the reuseport members of `trim` beyond `keep` (a failed reload's), or all. */
export type SocketsToClose = { notIn: string[] } | { trim: string; keep: number } | { all: true; unlink: boolean };

export type Effect =
  | { do: 'log'; level: LogLevel; line: string }
  /** An outcome's line and whom it concerns (tell.ts). */
  | { do: 'tell'; outcome: Outcome }
  /** sd_notify fields (RELOADING=1 goes out stamped, notify.ts); `status`: STATUS= the status line as it is then, with this suffix. */
  | { do: 'notify'; fields: string[]; status?: string }
  | { do: 'set'; set: MasterFields }
  /** Start one worker of the generation in the slot; a failure comes back as a `spawn-failed` event. */
  | { do: 'spawn'; generation: number; slot: number }
  /** A worker of the table, or the new master of this master's upgrade (through its ChildProcess: never a pid reused since). */
  | { do: 'signal'; pid: number; signal: NodeJS.Signals }
  | { do: 'signal'; newMaster: true; signal: 'SIGTERM' | 'SIGKILL' }
  | { do: 'set-worker'; pid: number; set: WorkerFields }
  /** The worker has exited: out of the table; an exec worker's group ends after `groupMs` (null: no group). */
  | { do: 'forget-worker'; pid: number; groupMs: number | null }
  /** Commit a prepared generation under its number. */
  | { do: 'add-generation'; gen: Generation; id: number; role: GenerationRole; slots: number[] | null }
  | { do: 'set-generation'; generation: number; set: GenerationFields }
  /** A retired generation without workers: forgotten, its log files closed. */
  | { do: 'forget-generation'; generation: number }
  /** The generation serves: the current one, its config the master's. */
  | { do: 'set-current'; generation: number }
  /** The master writes to the error_log the generation's reload opened. */
  | { do: 'take-over-log'; generation: number }
  /** Arm (ms) or clear (null) one timer. */
  | { do: 'timer'; timer: TimerKey; ms: number | null }
  /** An unexpected exit of a serving worker (the totals and its slot), and/or the restarts metric. */
  | { do: 'count-restart'; restart: { generation: number; slot: number } | null; metric: RestartReason | null }
  | { do: 'close-sockets'; which: SocketsToClose }
  | { do: 'pidfile'; op: 'write' | 'to-oldbin' | 'from-oldbin' | 'remove' | 'remove-oldbin' }
  /** The control socket at PATH.oldbin while this is the old master of an upgrade, or back at PATH. */
  | { do: 'move-control'; toOldbin: boolean }
  /** The old master is gone: remembered; with `clean`, the .oldbin pidfile and control socket it left go. */
  | { do: 'forget-old-master'; clean: boolean }
  | { do: 'upgrade-progress'; set: Partial<Pick<Upgrade, 'ready' | 'killing' | 'draining'>> }
  /** A message on an IPC channel: to the launcher or the old master waiting on it, to the new master, to a worker. */
  | { do: 'send'; to: 'parent'; msg: ParentMessage }
  | { do: 'send'; to: 'new-master'; msg: OldMasterMessage }
  | { do: 'send'; to: number; msg: MasterToWorker }
  | { do: 'serve-metrics'; on: boolean }
  /** systemd's main process (notify.ts): this master's last word makes `pid` main (handOver), or this master is main now and says so (takeOver). */
  | { do: 'systemd-main'; handOver: number }
  | { do: 'systemd-main'; takeOver: true }
  /** USR1: the master's log and the generations' worker logs (workers are signalled apart). */
  | { do: 'reopen-logs' }
  /** A control client waits for the outcome of the reload it asked for, or for the whole upgrade (the master then completes it itself: settle.ts). */
  | { do: 'await'; reload: (o: ReloadOutcome) => void }
  | { do: 'await'; upgrade: UpgradeWaiter }
  /** The reload's or the upgrade's end, to one client (`to`), or to every one waiting. */
  | { do: 'answer'; reload: ReloadOutcome; to?: (o: ReloadOutcome) => void }
  | { do: 'answer'; upgrade: UpgradeEnd; to?: UpgradeWaiter }
  | { do: 'exit'; code: number };
