// One model of the master, built once per event (and again for each pass of settle): what
// every plan reads. Plain values copied out of the master's records, so a plan can neither
// change them nor see them change under it; queries only (the one /proc read: whether the
// old master of this one still lives).
import type { Config } from '../config/types.js';
import type { SocketGroup } from '../sockets/listen.js';
import type { Batches } from './batches.js';
import { timerName } from './effects.js';
import type { GenerationRole } from './generation.js';
import type { Master } from './master.js';
import { phaseKey, upgradePhase, type Phase, type Situation } from './phase.js';
import type { RestartReason, WorkerState } from './process-table.js';

export interface WorkerModel {
  pid: number;
  slot: number;
  generation: number;
  state: WorkerState;
  /** Being replaced (worker_max_memory): its replacement starts beside it. */
  recycling: boolean;
  startedAt: number;
  readyAt: number | null;
  lastPong: number;
  killedFor: string | null;
  killReason: RestartReason | null;
  /** An exec worker, leading its own process group. */
  group: boolean;
  /** A Node worker with its QUIT handler in place. */
  handlers: boolean;
  /** An exec worker that used NOTIFY_SOCKET. */
  notified: boolean;
  /** A Node worker's channel is open. */
  connected: boolean;
  rss: number;
  startRss: number | null;
  stopDeadline: number | null;
  /** Why it could not start, as it said (supervise.ts). */
  startError: string | null;
}

export interface GenerationModel {
  id: number;
  role: GenerationRole;
  target: number;
  /** The slots it may run (batches); null: all below target. */
  slots: number[] | null;
  everReady: boolean;
  backoffMs: number;
  /** A respawn step is scheduled: nothing starts before it ends. */
  respawning: boolean;
  memoryWarned: boolean;
  config: Config;
  /** Its listening socket groups: address key, and whether reuseport shares them out per worker. */
  sockets: Array<{ key: string; reuseport: boolean }>;
  groupSizes: Record<string, number>;
}

export interface Model {
  now: number;
  pid: number;
  phase: Phase;
  /** The master's config (the serving generation's). */
  config: Config;
  current: number;
  firstGeneration: number;
  nextGeneration: number;
  generations: GenerationModel[];
  workers: WorkerModel[];
  /** This master's upgrade, as the old master. */
  upgrade: { pid: number; ready: boolean; killing: boolean; draining: number[] | null } | null;
  /** A control client waits for the whole upgrade: the master drains and exits by itself once the new one is ready. */
  upgradeAsked: boolean;
  batches: Batches | null;
  /** Started by USR2: the old master, whether it lives, and whether its leftovers were seen to. */
  oldMaster: { pid: number; alive: boolean; forgotten: boolean } | null;
  /** The launcher or the old master still listens on the IPC channel. */
  parentListens: boolean;
  /** The master has been ready once. */
  ready: boolean;
  /** It is systemd's main process (notify.ts): the one whose messages systemd takes. */
  systemdMain: boolean;
  /** Every socket group the master holds, and the metrics socket no generation may take. */
  socketGroups: Array<{ key: string; reuseport: boolean }>;
  metricsKey: string | null;
  /** Running in the foreground on a terminal (WINCH is a window resize). */
  onTerminal: boolean;
  /** It has decided to exit: nothing more is settled. */
  exiting: boolean;
}

export function modelOf(m: Master): Model {
  const timers = m.timers;
  return {
    now: m.seam.now(),
    pid: process.pid,
    phase: m.phase,
    config: m.config,
    current: m.current,
    firstGeneration: m.firstGeneration,
    nextGeneration: m.nextGeneration,
    generations: [...m.generations.values()].map((g) => ({
      id: g.id,
      role: g.role,
      target: g.target,
      slots: g.slots === null ? null : [...g.slots],
      everReady: g.everReady,
      backoffMs: g.backoffMs,
      respawning: timers.has(timerName({ kind: 'respawn', generation: g.id })),
      memoryWarned: g.memoryWarned,
      config: g.config,
      sockets: g.sockets.map((s: SocketGroup) => ({ key: s.key, reuseport: s.spec.reuseport })),
      groupSizes: g.groupSizes,
    })),
    workers: m.table.all().map((w) => ({
      pid: w.pid,
      slot: w.slot,
      generation: w.generation,
      state: w.state,
      recycling: w.recycling,
      startedAt: w.startedAt,
      readyAt: w.readyAt,
      lastPong: w.lastPong,
      killedFor: w.killedFor,
      startError: w.startError,
      killReason: w.killReason,
      group: w.group,
      handlers: w.handlers,
      notified: w.notified,
      connected: w.channel?.connected ?? false,
      rss: w.rss,
      startRss: w.startRss,
      stopDeadline: w.stopDeadline,
    })),
    upgrade: m.upgrade ? { pid: m.upgrade.pid, ready: m.upgrade.ready, killing: m.upgrade.killing, draining: m.upgrade.draining } : null,
    upgradeAsked: m.upgradeWaiters.length > 0,
    batches: m.batches,
    oldMaster: m.oldMaster === null ? null : { pid: m.oldMaster, alive: m.oldMasterAlive(), forgotten: m.oldMasterForgotten },
    parentListens: m.parentListens(),
    ready: m.ready,
    systemdMain: m.notifier.main,
    socketGroups: m.sockets.groups().map((g) => ({ key: g.key, reuseport: g.spec.reuseport })),
    metricsKey: m.metricsKey,
    onTerminal: m.opts.onTerminal,
    exiting: m.exitCode !== null,
  };
}

export function generationOf(m: Model, id: number): GenerationModel | undefined {
  return m.generations.find((g) => g.id === id);
}

export function workerOf(m: Model, pid: number): WorkerModel | undefined {
  return m.workers.find((w) => w.pid === pid);
}

export function workersOf(m: Model, generation: number): WorkerModel[] {
  return m.workers.filter((w) => w.generation === generation);
}

/** Workers that count toward a generation's worker_processes. */
export function servingOf(m: Model, generation: number): WorkerModel[] {
  return workersOf(m, generation).filter((w) => w.state !== 'draining' && !w.recycling);
}

/** Whether a generation has a ready worker in `slot`, another one (starting, draining), or none. */
export function slotState(m: Model, generation: number | 'old-master', slot: number): 'ready' | 'other' | 'none' {
  const ws = m.workers.filter((w) => w.generation === generation && w.slot === slot);
  if (ws.some((w) => w.state === 'ready' && !w.recycling)) return 'ready';
  return ws.length > 0 ? 'other' : 'none';
}

/** Where the master is, as the table of phase.ts reads it. */
export function situationOf(m: Model): Situation {
  const phase = phaseKey(m.phase);
  const pid1 = m.pid === 1;
  const upgrade = upgradePhase(m.upgrade, m.oldMaster?.alive ?? false);
  const partner = m.upgrade?.pid ?? (upgrade === 'new' ? m.oldMaster?.pid : undefined);
  return { phase, upgrade, ...(partner === undefined ? {} : { partner }), pid1 };
}
