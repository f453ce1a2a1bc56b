// What the master does for each command the table of phase.ts lets through, and for each
// event of an upgrade: decisions only. A plan reads a snapshot of the master (View) and
// returns the effects to make, in order; execute.ts makes them. No plan touches a process,
// a file or a timer, so every (phase, event) pair is tested in-process (test/plans.test.ts).
// The effects below are also those of worker-plans.ts (single workers) and reload-plans.ts
// (how a reload ends); a batched reload's steps are rollout.ts's, with effects passed in.
import type { LogLevel } from '../config/types.js';
import type { Outcome } from '../outcomes.js';
import type { Command, MasterPhase, Phase, Transition } from './phase.js';
import type { RestartReason } from './process-table.js';

/** How long a new master gets to exit after TERM before KILL. */
export const UPGRADE_KILL_MS = 5000;

/** What a plan reads: the master's phase and its upgrade, nothing that can change under it. */
export interface View {
  phase: MasterPhase;
  /** This master's upgrade as the old master: the new one's pid and how far it got. */
  upgrade: { pid: number; ready: boolean; killing: boolean } | null;
  /** The serving generation. */
  current: number;
  readyTimeoutMs: number;
  pid: number;
}

export type Effect =
  | { do: 'log'; level: LogLevel; line: string }
  | { do: 'tell'; outcome: Outcome }
  | { do: 'notify'; fields: string[] }
  | { do: 'set-phase'; phase: Phase }
  /** Every worker: QUIT (graceful, each with its generation's timeout) or TERM, then KILL. */
  | { do: 'stop-workers'; graceful: boolean }
  /** WINCH: no generation keeps a worker count; every worker drains. */
  | { do: 'drain-workers' }
  /** The serving generation's workers again, with its own config. */
  | { do: 'restart-workers' }
  | { do: 'check-exit' }
  | { do: 'reload' }
  | { do: 'reopen-logs' }
  | { do: 'worker-count'; delta: 1 | -1 }
  | { do: 'start-upgrade' }
  | { do: 'upgrade-progress'; ready?: true; killing?: true }
  /** Arm the upgrade's timer (ready_timeout, or the time a stopping new master gets), or clear it. */
  | { do: 'upgrade-timer'; ms: number | null }
  | { do: 'signal-new-master'; signal: 'SIGTERM' | 'SIGKILL' }
  /** The new master is gone: forget it, and take the pidfile and control socket names back. */
  | { do: 'end-upgrade' }
  | { do: 'restore-slots' }
  /** A batched upgrade: the serving generation no longer fills these slots; the upgrade waits for them to empty. */
  | { do: 'give-up-slots'; slots: number[] }
  /** Gracefully stop the serving generation's workers in these slots. */
  | { do: 'drain-slots'; slots: number[] }
  /** Tell the new master once the slots given up are empty. */
  | { do: 'check-batch-drained' }
  | { do: 'serve-metrics'; on: boolean }
  // Of single workers (worker-plans.ts):
  | { do: 'fail-reload'; generation: number; reason: string }
  /** The launcher or the old master waiting for this (new) master hears it failed. */
  | { do: 'tell-parent-failed'; lines: string[] }
  /** A command through the table, as if an operator had sent it (a new master that cannot start stops). */
  | { do: 'command'; command: Command; code: number }
  /** An unexpected exit: the totals, the slot's restarts and (unless `reason` is null: a replacement) the metric. */
  | { do: 'count-restart'; generation: number; slot: number; reason: RestartReason | null }
  /** Start the generation's missing workers, now or after its next backoff step. */
  | { do: 'respawn'; generation: number; stable: boolean; why?: string }
  | { do: 'after-worker-exit'; generation: number | null }
  | { do: 'ping'; pid: number }
  /** An exec worker alive long enough without NOTIFY_SOCKET is ready. */
  | { do: 'worker-ready'; pid: number }
  /** KILL, once, saying why; `reason` is the metric's label of the restart that follows. */
  | { do: 'kill-worker'; pid: number; why: string; reason: RestartReason }
  | { do: 'memory-warned'; generation: number }
  /** Over worker_max_memory: a replacement starts in its slot, and it goes once that is ready. */
  | { do: 'recycle'; pid: number }
  | { do: 'mark-ready'; pid: number }
  /** Gracefully, with its generation's worker_shutdown_timeout. */
  | { do: 'stop-worker'; pid: number }
  /** A batched reload or upgrade may move on, and the generation may be whole now. */
  | { do: 'after-worker-ready'; generation: number }
  /** All its workers have been ready once: its ready_timeout is over. */
  | { do: 'generation-ever-ready'; generation: number }
  /** A reload's generation is whole: it serves, the others stop. */
  | { do: 'finish-reload'; generation: number }
  /** The master's first generation is whole: the master is ready (pidfile, READY=1, the launcher). */
  | { do: 'first-ready' }
  // Of a reload (reload-plans.ts):
  /** The generation serves: it is the current one, its config the master's. */
  | { do: 'activate-generation'; generation: number }
  /** Its workers stop gracefully, and no respawn or ready timeout of it is left. */
  | { do: 'stop-generation'; generation: number }
  /** The master writes to the error_log the generation's reload prepared, if it changed. */
  | { do: 'take-over-log'; generation: number }
  /** Close reuseport members that only this failed generation (null: a count change) was to serve. */
  | { do: 'release-unserved'; generation: number | null }
  /** A batched reload failed part-way: the old generation takes its slots back (rollout.ts). */
  | { do: 'roll-back'; generation: number; reason: string };

/** Tell systemd we stop, unless a new master has taken over as its main process. */
function stopping(v: View, mode: 'fast' | 'graceful', code: number): Effect[] {
  return [
    ...(v.upgrade?.ready ? [] : [{ do: 'notify', fields: ['STOPPING=1'] } satisfies Effect]),
    { do: 'set-phase', phase: { name: 'stopping', mode, code } },
    { do: 'stop-workers', graceful: mode === 'graceful' },
    { do: 'check-exit' },
  ];
}

/** The effects of a command the table let through. `code`: a fast stop's exit code. */
export function planCommand(v: View, go: Transition, code = 0): Effect[] {
  switch (go) {
    case 'reload':
      return [{ do: 'reload' }];
    case 'restart-workers':
      // nginx's manual rollback: the old master serves again with the config it has.
      return [{ do: 'set-phase', phase: { name: 'running' } }, { do: 'restart-workers' }, { do: 'tell', outcome: { event: 'workers-restarted', generation: v.current } }];
    case 'upgrade':
      return [{ do: 'start-upgrade' }];
    case 'drain':
      return [{ do: 'set-phase', phase: { name: 'draining' } }, { do: 'drain-workers' }];
    case 'graceful-stop':
      return stopping(v, 'graceful', 0);
    case 'fast-stop':
      return stopping(v, 'fast', code);
    case 'reopen':
      return [{ do: 'reopen-logs' }];
    case 'add-worker':
      return [{ do: 'worker-count', delta: 1 }];
    case 'remove-worker':
      return [{ do: 'worker-count', delta: -1 }];
  }
}

/** An event of the upgrade this master started: what the new master said or did. */
export type UpgradeEvent =
  | { type: 'ready'; pid: number }
  /** A batched upgrade: the new master's batch `step` of `steps` is ready in these slots. */
  | { type: 'batch-ready'; pid: number; slots: number[]; step: number; steps: number }
  | { type: 'timeout'; pid: number }
  | { type: 'exit'; pid: number; how: string };

/** The effects of an upgrade event; none when it is not about this master's upgrade (any more). */
export function planUpgrade(v: View, ev: UpgradeEvent): Effect[] {
  const up = v.upgrade;
  if (!up || up.pid !== ev.pid) return [];
  switch (ev.type) {
    case 'ready':
      if (up.ready) return [];
      return [
        { do: 'upgrade-progress', ready: true },
        { do: 'upgrade-timer', ms: null },
        // The new master answers scrapes now. It is not systemd's main process until this one exits (notify.ts).
        { do: 'serve-metrics', on: false },
        { do: 'tell', outcome: { event: 'upgrade-ready', pid: ev.pid, self: v.pid } },
      ];
    case 'batch-ready':
      if (up.ready) return [];
      return [
        { do: 'give-up-slots', slots: ev.slots },
        // Each batch gets ready_timeout of its own.
        { do: 'upgrade-timer', ms: v.readyTimeoutMs },
        { do: 'log', level: 'notice', line: `upgrade: new master process ${ev.pid} has batch ${ev.step} of ${ev.steps} ready; draining slot(s) ${ev.slots.join(', ')}` },
        { do: 'drain-slots', slots: ev.slots },
        // Already none there (a slot whose worker had crashed): the new master goes on at once.
        { do: 'check-batch-drained' },
      ];
    case 'timeout':
      if (up.ready) return [];
      if (up.killing) return [{ do: 'signal-new-master', signal: 'SIGKILL' }];
      return [
        { do: 'log', level: 'alert', line: `new master process ${ev.pid} was not ready within ${v.readyTimeoutMs}ms, stopping it` },
        { do: 'upgrade-progress', killing: true },
        { do: 'signal-new-master', signal: 'SIGTERM' },
        { do: 'upgrade-timer', ms: UPGRADE_KILL_MS },
      ];
    case 'exit': {
      // The new master is gone before this one quit: this master takes the service back.
      const back: Effect[] =
        v.phase === 'stopping-graceful'
          ? [
              { do: 'log', level: 'alert', line: 'graceful shutdown cancelled: no new master took over' },
              { do: 'set-phase', phase: { name: 'running' } },
              { do: 'restart-workers' },
            ]
          : v.phase === 'draining'
            ? [{ do: 'set-phase', phase: { name: 'running' } }, { do: 'restart-workers' }]
            : [];
      return [
        { do: 'tell', outcome: { event: 'upgrade-rolling-back', pid: ev.pid, how: ev.how } },
        { do: 'end-upgrade' },
        { do: 'restore-slots' },
        ...back,
        { do: 'serve-metrics', on: true },
        { do: 'tell', outcome: { event: 'rolled-back', self: v.pid } },
      ];
    }
  }
}
