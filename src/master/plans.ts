// What the master does for each command the table of phase.ts lets through, and for each
// event of an upgrade: decisions only. A plan reads the model (model.ts) and returns the
// primitive effects to make, in order (effects.ts); execute.ts makes them, then settle.ts
// looks again. No plan touches a process, a file or a timer, so every (phase, event) pair is
// tested in-process (test/plans.test.ts). A reload's start and end are reload-plans.ts's,
// single workers' worker-plans.ts's.
import type { Effect } from './effects.js';
import type { UpgradeWaiter } from './event-queue.js';
import { FAST_KILL_MS, clearTimers, stopWorker } from './stops.js';
import { generationOf, servingOf, situationOf, workersOf, type Model } from './model.js';
import type { ReloadOutcome } from '../outcomes.js';
import { decide, type Command, type Phase, type Transition } from './phase.js';
import { planReloadStart, type PreparedReload } from './reload-plans.js';
import type { PreparedUpgrade } from './prepare.js';

/** How long a new master gets to exit after TERM before KILL. */
export const UPGRADE_KILL_MS = 5000;

/** Tell systemd we stop, unless a new master has taken over as its main process; nothing of a batched reload or upgrade goes on. */
function stopping(m: Model, mode: 'fast' | 'graceful', code: number): Effect[] {
  const graceful = mode === 'graceful';
  return [
    ...(m.upgrade?.ready ? [] : [{ do: 'notify', fields: ['STOPPING=1'] } satisfies Effect]),
    { do: 'set', set: { phase: { name: 'stopping', mode, code }, batches: null } },
    ...m.generations.flatMap((g) => clearTimers(g.id)),
    ...m.workers.flatMap((w) => stopWorker(m, w, mode, graceful ? undefined : FAST_KILL_MS)),
  ];
}

const RUNNING: Phase = { name: 'running' };

/** After WINCH: the serving generation's workers again, with its own config (settle starts them). */
function restartWorkers(m: Model): Effect[] {
  const gen = generationOf(m, m.current);
  return gen ? [{ do: 'set-generation', generation: gen.id, set: { target: gen.config.workerProcesses } }] : [];
}

/** TTIN / TTOU: the serving generation's new worker count (at least one), and whether that needs a new generation. */
export function countChange(m: Model, delta: 1 | -1): { target: number; reuseport: boolean } | null {
  const gen = generationOf(m, m.current);
  if (!gen) return null;
  // A worker's share of a reuseport group is fixed when it starts: a new count is a new generation.
  return { target: Math.max(1, gen.target + delta), reuseport: gen.sockets.some((s) => s.reuseport) };
}

function changeWorkerCount(m: Model, delta: 1 | -1, prepared: PreparedReload | null): Effect[] {
  const gen = generationOf(m, m.current);
  const c = countChange(m, delta);
  if (!gen || !c) return [];
  if (c.target === gen.target) return [{ do: 'log', level: 'notice', line: `worker count stays ${c.target}: at least one worker serves` }];
  if (c.reuseport) {
    return [{ do: 'log', level: 'notice', line: `worker count becomes ${c.target}: starting a new generation (reuseport)` }, ...(prepared ? planReloadStart(m, prepared) : [])];
  }
  return [
    { do: 'set-generation', generation: gen.id, set: { target: c.target } },
    { do: 'log', level: 'notice', line: `worker count of generation ${gen.id} is now ${c.target}` },
    ...servingOf(m, gen.id)
      .filter((w) => w.slot >= c.target)
      .flatMap((w) => stopWorker(m, w, 'graceful')),
  ];
}

/** What preparing a command gave (prepare.ts): a reload's generation, or the new master of an upgrade. */
export type Prepared = { reload: PreparedReload } | { upgrade: PreparedUpgrade };

/** The effects of a command the table let through. `code`: a fast stop's exit code. */
export function planCommand(m: Model, go: Transition, code = 0, prepared: Prepared | null = null): Effect[] {
  const reload = prepared && 'reload' in prepared ? prepared.reload : null;
  switch (go) {
    case 'reload':
      return [{ do: 'notify', fields: ['RELOADING=1', 'STATUS=reloading configuration'] }, ...(reload ? planReloadStart(m, reload) : [])];
    case 'restart-workers':
      // nginx's manual rollback: the old master serves again with the config it has.
      return [{ do: 'set', set: { phase: RUNNING } }, ...restartWorkers(m), { do: 'tell', outcome: { event: 'workers-restarted', generation: m.current } }];
    case 'upgrade':
      return prepared && 'upgrade' in prepared ? planUpgradeStart(m, prepared.upgrade) : [];
    case 'drain':
      return [
        { do: 'set', set: { phase: { name: 'draining' } } },
        ...m.generations.flatMap((g): Effect[] => [
          { do: 'set-generation', generation: g.id, set: { target: 0 } },
          { do: 'timer', timer: { kind: 'respawn', generation: g.id }, ms: null },
        ]),
        ...m.workers.flatMap((w) => stopWorker(m, w, 'graceful')),
      ];
    case 'graceful-stop':
      return stopping(m, 'graceful', 0);
    case 'fast-stop':
      return stopping(m, 'fast', code);
    case 'reopen':
      // A Node worker without its handlers yet would take USR1 as Node's own (the inspector).
      return [
        { do: 'reopen-logs' },
        ...m.workers.filter((w) => w.handlers && generationOf(m, w.generation)?.config.worker.kind === 'app').map((w): Effect => ({ do: 'signal', pid: w.pid, signal: 'SIGUSR1' })),
      ];
    case 'add-worker':
      return changeWorkerCount(m, 1, reload);
    case 'remove-worker':
      return changeWorkerCount(m, -1, reload);
  }
}

/** USR2, prepared: the new master started (our child), or why not. */
function planUpgradeStart(m: Model, p: PreparedUpgrade): Effect[] {
  if ('error' in p) return [{ do: 'tell', outcome: { event: 'upgrade-failed', reason: p.error } }];
  const upgrade = { pid: p.pid, child: p.child, ready: false, killing: false, draining: null, totalsAtStart: p.totalsAtStart };
  // Not started at all (spawn's 'error' comes as the new master's exit): a rollback at once.
  if (p.pid === 0) return [{ do: 'set', set: { upgrade } }];
  return [{ do: 'set', set: { upgrade } }, { do: 'timer', timer: { kind: 'upgrade', pid: p.pid }, ms: m.config.readyTimeoutMs }, { do: 'tell', outcome: { event: 'upgrade-started', pid: p.pid } }];
}

/** An event of the upgrade this master started: what the new master said or did. */
export type UpgradeEvent =
  | { type: 'ready'; pid: number }
  /** A batched upgrade: the new master's batch `step` of `steps` is ready in these slots. */
  | { type: 'batch-ready'; pid: number; slots: number[]; step: number; steps: number }
  | { type: 'timeout'; pid: number }
  | { type: 'exit'; pid: number; how: string };

/** The effects of an upgrade event; none when it is not about this master's upgrade (any more). */
export function planUpgrade(m: Model, ev: UpgradeEvent): Effect[] {
  const up = m.upgrade;
  if (!up || up.pid !== ev.pid) return [];
  const timer = { kind: 'upgrade', pid: up.pid } as const;
  switch (ev.type) {
    case 'ready':
      if (up.ready) return [];
      return [
        { do: 'upgrade-progress', set: { ready: true } },
        { do: 'timer', timer, ms: null },
        // The new master answers scrapes now. It is not systemd's main process until this one exits (notify.ts).
        { do: 'serve-metrics', on: false },
        { do: 'tell', outcome: { event: 'upgrade-ready', pid: ev.pid, self: m.pid } },
      ];
    case 'batch-ready': {
      if (up.ready) return [];
      // The serving generation no longer fills these slots; the upgrade waits for them to empty (settle.ts).
      const gen = generationOf(m, m.current);
      const kept = (gen?.slots ?? Array.from({ length: gen?.target ?? 0 }, (_, i) => i)).filter((s) => !ev.slots.includes(s));
      return [
        ...(gen ? [{ do: 'set-generation', generation: gen.id, set: { slots: kept } } satisfies Effect] : []),
        { do: 'upgrade-progress', set: { draining: ev.slots } },
        // Each batch gets ready_timeout of its own.
        { do: 'timer', timer, ms: m.config.readyTimeoutMs },
        { do: 'log', level: 'notice', line: `upgrade: new master process ${ev.pid} has batch ${ev.step} of ${ev.steps} ready; draining slot(s) ${ev.slots.join(', ')}` },
        ...(gen ? workersOf(m, gen.id).filter((w) => ev.slots.includes(w.slot)).flatMap((w) => stopWorker(m, w, 'graceful')) : []),
      ];
    }
    case 'timeout':
      if (up.ready) return [];
      if (up.killing) return [{ do: 'signal', newMaster: true, signal: 'SIGKILL' }];
      return [
        { do: 'log', level: 'alert', line: `new master process ${ev.pid} was not ready within ${m.config.readyTimeoutMs}ms, stopping it` },
        { do: 'upgrade-progress', set: { killing: true } },
        { do: 'signal', newMaster: true, signal: 'SIGTERM' },
        { do: 'timer', timer, ms: UPGRADE_KILL_MS },
      ];
    case 'exit': {
      // The new master is gone before this one quit: this master takes the service back.
      const gen = generationOf(m, m.current);
      const back: Effect[] =
        m.phase.name === 'stopping' && m.phase.mode === 'graceful'
          ? [{ do: 'log', level: 'alert', line: 'graceful shutdown cancelled: no new master took over' }, { do: 'set', set: { phase: RUNNING } }, ...restartWorkers(m)]
          : m.phase.name === 'draining'
            ? [{ do: 'set', set: { phase: RUNNING } }, ...restartWorkers(m)]
            : [];
      return [
        { do: 'tell', outcome: { event: 'upgrade-rolling-back', pid: ev.pid, how: ev.how, ready: up.ready } },
        // Forget it, and take the pidfile and control socket names back.
        { do: 'timer', timer, ms: null },
        { do: 'set', set: { upgrade: null } },
        { do: 'pidfile', op: 'from-oldbin' },
        { do: 'move-control', toOldbin: false },
        // Every slot is this master's again (a batched upgrade gave some up).
        ...(gen?.slots ? [{ do: 'set-generation', generation: gen.id, set: { slots: null } } satisfies Effect] : []),
        ...back,
        { do: 'serve-metrics', on: true },
        // This master stayed systemd's main process throughout: no word to systemd but READY=1 (tell.ts).
        { do: 'tell', outcome: { event: 'rolled-back', self: m.pid } },
      ];
    }
  }
}

/**
 * A command, as an operator (a signal, the control socket) or the master itself asks it:
 * decided by the table, a refusal said once; `waiter`: a control client waiting for the
 * reload's outcome, `upgradeWaiter` for the whole upgrade's (a refused one answers only
 * its own client).
 */
export function planAsked(
  m: Model,
  cmd: Command,
  opts: { code?: number; prepared?: Prepared | null; waiter?: (o: ReloadOutcome) => void; upgradeWaiter?: UpgradeWaiter } = {},
): Effect[] {
  const { waiter, upgradeWaiter } = opts;
  const d = decide(situationOf(m), cmd);
  if ('refuse' in d) {
    const o = d.refuse.outcome;
    if (!o) return d.quiet ? [] : [{ do: 'log', level: 'notice', line: d.refuse.line }];
    const answer: Effect[] =
      waiter && o.event === 'reload-refused' ? [{ do: 'answer', reload: o, to: waiter }] : upgradeWaiter && o.event === 'upgrade-refused' ? [{ do: 'answer', upgrade: o, to: upgradeWaiter }] : [];
    return [{ do: 'tell', outcome: o }, ...answer];
  }
  return [
    ...(waiter ? [{ do: 'await', reload: waiter } satisfies Effect] : []),
    ...(upgradeWaiter ? [{ do: 'await', upgrade: upgradeWaiter } satisfies Effect] : []),
    ...planCommand(m, d.go, opts.code ?? 0, opts.prepared ?? null),
  ];
}

/** The transition a command would start now, if the table lets it through (what prepare.ts prepares for). */
export function transitionOf(m: Model, cmd: Command): Transition | null {
  const d = decide(situationOf(m), cmd);
  return 'go' in d ? d.go : null;
}
