// A master's worker processes as the executor starts, signals and hears them: a generation
// prepared (what can fail before anything changes), one worker started with its limits, a
// signal to one (its whole group for an exec worker), and the facts its messages carry.
import fs from 'node:fs';
import * as native from '../native/index.js';
import type { Logger } from '../log/logger.js';
import { logLoss } from '../log/loss.js';
import type { Config } from '../config/types.js';
import { START_ERROR_CHARS, asCount, isObject, printable, type LoopDelay, type WorkerMessage } from '../protocol.js';
import { rssBytes } from '../proc.js';
import { socketsForSlot, type SocketGroup } from '../sockets/listen.js';
import { openWorkerLog, type Generation, type GenerationRole } from './generation.js';
import type { Master } from './master.js';
import type { WorkerRecord } from './process-table.js';
import { releaseWorker } from './spawn-worker.js';

/** Faster than any worker serves (a million requests a second): the most a heartbeat may add to a worker's count. */
const MAX_REQUESTS_PER_MS = 1000;

/**
 * A generation runs the code its config named when it started: the app path is resolved
 * through symlinks now, so respawns and a rollback after a deploy switched `current` run
 * this generation's release, not the new one.
 */
function pinApp(config: Config): Config {
  if (config.worker.kind !== 'app') return config;
  return { ...config, worker: { kind: 'app', path: fs.realpathSync(config.worker.path) } };
}

/**
 * Everything a generation needs that can fail (the app's path, its worker log), opened
 * before any state of the master changes: a failure here changes nothing. `slots`: an
 * empty set for a batched reload, whose rollout then says which slots may run;
 * `masterLog`: the master's log for this config, already open (a reload that changes it).
 */
export function prepareGeneration(config: Config, sockets: SocketGroup[], role: GenerationRole, slots: Set<number> | null = null, masterLog: Logger | null = null): Generation {
  const pinned = pinApp(config);
  return {
    id: 0,
    config: pinned,
    sockets,
    role,
    target: config.workerProcesses,
    slots,
    masterLog,
    ...openWorkerLog(config),
    backoffMs: 0,
    everReady: false,
    groupSizes: Object.fromEntries(sockets.map((g) => [g.key, g.members.length])),
    slotRestarts: [],
    memoryWarned: false,
  };
}

/** Start one worker of a generation in `slot`; why it could not be, or null. */
export function spawnOne(m: Master, gen: Generation, slot: number): string | null {
  let started: ReturnType<Master['seam']['spawnWorker']>;
  try {
    started = m.seam.spawnWorker({
    config: gen.config,
    sockets: socketsForSlot(gen.sockets, slot, gen.target),
    generation: gen.id,
    slot,
    logFd: gen.logFd,
    logPath: gen.logPath,
    queue: m.queue,
    ...(gen.config.worker.kind === 'exec' ? { notifySocket: m.workerNotifySocket(gen.config), hold: m.groups.contained } : {}),
    warn: (msg) => m.log.warn(msg),
    metricsBudget: (pid) => m.metrics?.answerBudget(pid) ?? 0,
    });
  } catch (err) {
    // Thrown by spawn() itself (EPERM, E2BIG) or the channel's setup: no process to wait for.
    return `could not start a worker process for generation ${gen.id}: ${(err as Error).message}`;
  }
  const { child, channel } = started;
  const now = m.seam.now();
  // spawn() failed with EMFILE, EAGAIN, ENOENT...: its 'error' event says which, as a warning.
  if (child.pid === undefined) return `could not start a worker process for generation ${gen.id}`;
  // An exec worker leads a process group of its own (spawnWorker starts it with setsid).
  const group = gen.config.worker.kind === 'exec';
  m.table.add({
    pid: child.pid,
    slot,
    generation: gen.id,
    state: 'starting',
    child,
    channel,
    group,
    startedAt: now,
    readyAt: null,
    lastPong: now,
    connections: 0,
    requests: 0,
    rss: 0,
    heapUsed: null,
    loopDelay: null,
    scrapeLoopDelay: null,
    startRss: null,
    recycling: false,
    handlers: false,
    notified: false,
    killedFor: null,
    startError: null,
    killReason: null,
    stopDeadline: null,
  });
  if (group) m.groups.add(child.pid);
  applyLimits(m, gen, child.pid, slot);
  releaseWorker(child);
  m.log.notice(`start worker process ${child.pid} (generation ${gen.id}, slot ${slot})`);
  return null;
}

/** worker_rlimit_nofile, worker_priority, worker_cpu_affinity, applied from outside right after spawn. */
function applyLimits(m: Master, gen: Generation, pid: number, slot: number): void {
  const cfg = gen.config;
  const attempt = (what: string, fn: () => void) => {
    try {
      fn();
    } catch (err) {
      m.log.alert(`${what} for worker process ${pid} failed: ${(err as Error).message}`);
    }
  };
  if (cfg.workerRlimitNofile !== null) attempt('setrlimit(RLIMIT_NOFILE)', () => native.setRlimitNofile(pid, cfg.workerRlimitNofile!, cfg.workerRlimitNofile!));
  if (cfg.workerPriority !== null) attempt('setpriority()', () => native.setPriority(pid, cfg.workerPriority!));
  const cpus = cfg.workerCpuAffinity;
  if (cpus !== null && cpus.length > 0) attempt('sched_setaffinity()', () => native.setAffinity(pid, cpus[slot % cpus.length]!));
}

/** Every signal to a worker goes through here: an exec worker's whole group gets it. */
export function signalWorker(m: Master, w: WorkerRecord, signal: NodeJS.Signals): void {
  // Collected already (its exit event is queued): its pid, and group id, may be someone else's.
  if (w.child.exitCode !== null || w.child.signalCode !== null) return;
  if (w.group) m.groups.signal(w.pid, signal);
  else w.child.kill(signal);
}

function isSeconds(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 && v < 1e6;
}

/** A worker's event-loop delay as it says it, rebuilt; null when it is not one. */
function loopDelayOf(d: unknown): LoopDelay | null {
  return isObject(d) && isSeconds(d.p50) && isSeconds(d.p99) && isSeconds(d.max) ? { p50: d.p50, p99: d.p99, max: d.max } : null;
}

/** What a worker's message says of it, written down (its readiness is a step of its own). */
export function recordWorkerMessage(m: Master, pid: number, msg: WorkerMessage): void {
  const w = m.table.get(pid);
  if (!w) return;
  if (msg.t === 'pong') {
    const now = m.seam.now();
    // A worker (its user may be hostile) reports these: only counts are taken, each on its
    // own, and its request count grows no faster than a worker can serve.
    const requests = asCount(msg.requests);
    if (requests !== null && requests >= w.requests) {
      const counted = Math.min(requests, w.requests + Math.ceil(Math.max(0, now - w.lastPong) * MAX_REQUESTS_PER_MS));
      m.totals.requests += counted - w.requests;
      w.requests = counted;
    }
    w.lastPong = now;
    w.connections = asCount(msg.connections) ?? w.connections;
    // What the kernel says, not the worker: worker_max_memory decides on it.
    w.rss = rssBytes(pid) ?? w.rss;
    w.heapUsed = asCount(msg.heapUsed) ?? w.heapUsed;
    w.loopDelay = loopDelayOf(msg.loopDelay) ?? w.loopDelay;
    logLoss.fromWorker(w, `worker process ${pid}`, msg.logLost, msg.logError);
    m.log.sayLosses();
    return;
  }
  if (msg.t === 'hello') {
    w.handlers = true;
    return;
  }
  if (msg.t === 'metrics') {
    w.scrapeLoopDelay = loopDelayOf(msg.loopDelay) ?? w.scrapeLoopDelay;
    return m.metrics?.onWorkerMetrics(pid, msg.seq, msg.metrics, msg.over);
  }
  // Its word, for the outcome of the start it failed: one line of printable text, bounded.
  if (msg.t === 'failed' && w.state === 'starting' && typeof msg.error === 'string') {
    w.startError = printable(msg.error).slice(0, START_ERROR_CHARS);
    return;
  }
  // What a fresh worker uses: read once, as it turns ready (a worker may say ready again later).
  if (msg.t === 'ready' && w.state === 'starting') w.startRss = rssBytes(pid);
}


/** An exec worker used NOTIFY_SOCKET: from now on it is ready only when it says READY=1. */
export function recordWorkerNotify(m: Master, pid: number): void {
  const w = m.table.get(pid);
  if (w) w.notified = true;
}
