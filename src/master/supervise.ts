import fs from 'node:fs';
import * as native from '../native/index.js';
import type { Logger } from '../log/logger.js';
import { logLoss } from '../log/loss.js';
import type { Config } from '../config/types.js';
import { asCount, isObject, type WorkerMessage } from '../protocol.js';
import { rssBytes } from '../proc.js';
import { socketsForSlot, type SocketGroup } from '../sockets/listen.js';
import type { MasterEvent } from './event-queue.js';
import { closeGenerationLogs, openWorkerLog, type Generation, type GenerationRole } from './generation.js';
import type { Master } from './master.js';
import type { RestartReason, WorkerRecord } from './process-table.js';
import { failReload, replaceGeneration, stepRollout } from './reload.js';
import { checkExit } from './shutdown.js';
import { releaseWorker, spawnWorker } from './spawn-worker.js';
import { execute } from './execute.js';
import { planCheck, planGenerationReady, planNotStarted, planWorkerExit, planWorkerReady } from './worker-plans.js';
import { checkBatchDrained, onIncomingReady } from './upgrade-batches.js';

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 30_000;
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
    respawnTimer: null,
    readyTimer: null,
    everReady: false,
    groupSizes: Object.fromEntries(sockets.map((g) => [g.key, g.members.length])),
    slotRestarts: [],
    memoryWarned: false,
  };
}

/** Commit a prepared generation: number it, register it and start its workers. */
export function startGeneration(m: Master, gen: Generation): Generation {
  gen.id = m.nextGeneration++;
  m.generations.set(gen.id, gen);
  if (gen.role === 'active') m.current = gen.id;
  if (gen.logAlert) m.log.alert(gen.logAlert);
  armReadyTimer(m, gen);
  maintainWorkerCount(m, gen);
  return gen;
}

function spawnOne(m: Master, gen: Generation, slot: number): void {
  let started: ReturnType<typeof spawnWorker>;
  try {
    started = spawnWorker({
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
    return notStarted(m, gen, `could not start a worker process for generation ${gen.id}: ${(err as Error).message}`);
  }
  const { child, channel } = started;
  const now = Date.now();
  // spawn() failed with EMFILE, EAGAIN, ENOENT...: its 'error' event says which, as a warning.
  if (child.pid === undefined) return notStarted(m, gen, `could not start a worker process for generation ${gen.id}`);
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
    startRss: null,
    recycling: false,
    handlers: false,
    notified: false,
    killedFor: null,
    killReason: null,
    stopDeadline: null,
    killTimer: null,
  });
  if (group) m.groups.add(child.pid);
  applyLimits(m, gen, child.pid, slot);
  releaseWorker(child);
  m.log.notice(`start worker process ${child.pid} (generation ${gen.id}, slot ${slot})`);
}

/** Start workers for the free slots of a generation that should be serving. */
export function maintainWorkerCount(m: Master, gen: Generation): void {
  const used = new Set(m.table.serving(gen.id).map((w) => w.slot));
  for (let slot = 0; slot < gen.target; slot++) {
    // Checked for each: a failed start may fail the reload (or the new master) on the way.
    if (!spawning(m, gen)) return;
    if (!used.has(slot) && (gen.slots === null || gen.slots.has(slot))) spawnOne(m, gen, slot);
  }
}

function spawning(m: Master, gen: Generation): boolean {
  return gen.role !== 'retiring' && m.state !== 'stopping' && gen.respawnTimer === null;
}

/** A worker could not be started: a generation that never served fails; one that did retries. */
function notStarted(m: Master, gen: Generation, why: string): void {
  execute(m, planNotStarted(gen, m.oldMaster !== null, why));
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

/**
 * QUIT (graceful) or TERM (fast), and KILL if it is still there after the timeout: by
 * default the worker_shutdown_timeout of its own generation's config.
 */
export function stopWorker(m: Master, w: WorkerRecord, graceful: boolean, timeoutMs?: number): void {
  if (w.state === 'draining' && graceful) return;
  w.state = 'draining';
  const gen = m.generations.get(w.generation);
  timeoutMs ??= gen?.config.workerShutdownTimeoutMs ?? m.config.workerShutdownTimeoutMs;
  const exec = gen?.config.worker.kind === 'exec';
  const signal = !graceful || (!exec && !w.handlers) ? 'SIGTERM' : exec ? gen!.config.workerStopSignal : 'SIGQUIT';
  signalWorker(m, w, signal);
  if (w.killTimer) clearTimeout(w.killTimer);
  w.killTimer = m.queue.after(timeoutMs, { type: 'kill-timeout', pid: w.pid });
  w.stopDeadline = Date.now() + timeoutMs;
}

export function stopGeneration(m: Master, gen: Generation): void {
  gen.role = 'retiring';
  clearGenerationTimers(gen);
  for (const w of m.table.ofGeneration(gen.id)) stopWorker(m, w, true);
  forgetGenerationIfEmpty(m, gen);
}

/** ready_timeout from now for the workers a generation starts (each batch of a batched reload). */
export function armReadyTimer(m: Master, gen: Generation): void {
  if (gen.readyTimer) clearTimeout(gen.readyTimer);
  gen.readyTimer = m.queue.after(gen.config.readyTimeoutMs, { type: 'ready-timeout', generation: gen.id });
}

/** Gracefully stop a generation's workers in these slots (a batch moving to another generation). */
export function stopSlots(m: Master, gen: Generation, slots: readonly number[]): void {
  for (const w of m.table.ofGeneration(gen.id)) if (slots.includes(w.slot)) stopWorker(m, w, true);
}

/** Whether a generation has a ready worker in `slot`, another one (starting, draining), or none. */
export function slotState(m: Master, generation: number, slot: number): 'ready' | 'other' | 'none' {
  const ws = m.table.ofGeneration(generation).filter((w) => w.slot === slot);
  if (ws.some((w) => w.state === 'ready' && !w.recycling)) return 'ready';
  return ws.length > 0 ? 'other' : 'none';
}

export function clearGenerationTimers(gen: Generation): void {
  if (gen.respawnTimer) clearTimeout(gen.respawnTimer);
  if (gen.readyTimer) clearTimeout(gen.readyTimer);
  gen.respawnTimer = gen.readyTimer = null;
}

/** A retired generation without workers: close the sockets no live generation uses. */
function forgetGenerationIfEmpty(m: Master, gen: Generation): void {
  if (gen.role !== 'retiring' || m.table.ofGeneration(gen.id).length > 0) return;
  m.generations.delete(gen.id);
  closeGenerationLogs(gen);
  if (m.state !== 'stopping') closeSocketsNoGenerationUses(m);
  m.log.info(`generation ${gen.id} has exited`);
}

/** Close the listens that no generation's config has any more. */
export function closeSocketsNoGenerationUses(m: Master): void {
  const keep = new Set([...m.generations.values()].flatMap((g) => g.sockets.map((s) => s.key)));
  if (m.metricsKey) keep.add(m.metricsKey);
  m.sockets.closeUnused(keep);
}

/**
 * After a failed reload or count change: reuseport members that only the failed generation
 * was to serve would queue connections no worker accepts, so they are closed (queued
 * connections on them are reset; serving groups are never shrunk).
 */
export function releaseUnservedSockets(m: Master, failed: Generation | null): void {
  for (const group of failed?.sockets ?? m.sockets.groups()) {
    if (!group.spec.reuseport) continue;
    let keep = 0;
    for (const g of m.generations.values()) if (g !== failed) keep = Math.max(keep, g.groupSizes[group.key] ?? 0);
    if (keep > 0) m.sockets.trim(group.key, keep);
  }
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `exited on signal ${signal}` : `exited with code ${code}`;
}

export function onWorkerExit(m: Master, ev: Extract<MasterEvent, { type: 'worker-exit' }>): void {
  const w = m.table.remove(ev.pid);
  if (!w) return;
  // A shell that left on its stop signal may have children still finishing: they keep the stop's deadline.
  if (w.group) m.groups.end(w.pid, w.state === 'draining' && w.stopDeadline !== null ? w.stopDeadline - Date.now() : 0);
  const gen = m.generations.get(w.generation);
  execute(
    m,
    planWorkerExit({
      worker: { pid: w.pid, slot: w.slot, state: w.state, recycling: w.recycling, readyAt: w.readyAt, killedFor: w.killedFor, killReason: w.killReason },
      gen: gen ? { id: gen.id, role: gen.role, everReady: gen.everReady } : null,
      how: describeExit(ev.code, ev.signal),
      newMaster: m.oldMaster !== null,
      now: Date.now(),
    }),
  );
}

/** After a worker's exit, whatever it meant: its generation may be gone, a batch may move on, a stop may end. */
export function afterWorkerExit(m: Master, generation: number | null): void {
  const gen = generation === null ? undefined : m.generations.get(generation);
  if (gen) forgetGenerationIfEmpty(m, gen);
  stepRollout(m);
  checkBatchDrained(m);
  checkExit(m);
}

/** An unexpected exit of a serving generation's worker, counted (`reason` null: one being replaced). */
export function countRestart(m: Master, generation: number, slot: number, reason: RestartReason | null): void {
  m.totals.restarts++;
  if (reason) m.metrics?.restarted(reason);
  const gen = m.generations.get(generation);
  if (gen) gen.slotRestarts[slot] = (gen.slotRestarts[slot] ?? 0) + 1;
}

/**
 * Exponential backoff per generation: crashes while a respawn is already scheduled join
 * that step, so a crash loop logs one line per step, not one per crash.
 */
export function scheduleRespawn(m: Master, gen: Generation, stable: boolean, why?: string): void {
  const scheduled = gen.respawnTimer !== null;
  if (scheduled) {
    if (why) m.log.debug(`${why}; respawn already scheduled`);
  } else {
    gen.backoffMs = stable ? 0 : Math.min(Math.max(gen.backoffMs * 2, BACKOFF_MIN_MS), BACKOFF_MAX_MS);
    if (why) m.log.alert(`${why}; respawning in ${gen.backoffMs}ms`);
  }
  // Also when the last one died after the step was scheduled (several workers crashing).
  if (m.table.serving(gen.id).length === 0) {
    m.log.alert(`no worker process of generation ${gen.id} is running; the listening sockets stay open`);
  }
  if (scheduled) return;
  if (gen.backoffMs === 0) maintainWorkerCount(m, gen);
  else gen.respawnTimer = m.queue.after(gen.backoffMs, { type: 'respawn', generation: gen.id });
}

function isSeconds(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 && v < 1e6;
}

export function onWorkerMessage(m: Master, pid: number, msg: WorkerMessage): void {
  const w = m.table.get(pid);
  if (!w) return;
  if (msg.t === 'pong') {
    const now = Date.now();
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
    const d = msg.loopDelay;
    if (isObject(d) && isSeconds(d.p50) && isSeconds(d.p99)) w.loopDelay = { p50: d.p50, p99: d.p99 };
    logLoss.fromWorker(w, `worker process ${pid}`, msg.logLost, msg.logError);
    m.log.sayLosses();
    return;
  }
  if (msg.t === 'hello') {
    w.handlers = true;
    return;
  }
  if (msg.t === 'metrics') return m.metrics?.onWorkerMetrics(pid, msg.seq, msg.metrics, msg.over);
  if (msg.t === 'ready') {
    // What a fresh worker uses: read once, as it turns ready (a worker may say ready again later).
    if (w.state === 'starting') w.startRss = rssBytes(pid);
    markReady(m, w);
  }
}

/** sd_notify from an exec worker (by sender pid): READY=1 is its readiness. */
export function onWorkerNotify(m: Master, pid: number, msg: string): void {
  const w = m.table.get(pid);
  if (!w) return;
  w.notified = true;
  if (msg.split('\n').includes('READY=1')) markReady(m, w);
}

export function markReady(m: Master, w: WorkerRecord): void {
  const replaced = m.table.ofGeneration(w.generation).filter((o) => o.recycling && o.slot === w.slot).map((o) => o.pid);
  execute(m, planWorkerReady({ worker: { pid: w.pid, generation: w.generation, state: w.state }, replaced }));
}

/** After a worker became ready: a batch may move on, and its generation may be whole. */
export function afterWorkerReady(m: Master, generation: number): void {
  const gen = m.generations.get(generation);
  if (!gen) return;
  stepRollout(m);
  onIncomingReady(m, gen);
  checkGenerationReady(m, gen);
}

export function checkGenerationReady(m: Master, gen: Generation): void {
  const serving = m.table.serving(gen.id).map((w) => w.state);
  execute(m, planGenerationReady({ gen: { id: gen.id, role: gen.role, everReady: gen.everReady, target: gen.target }, serving, first: gen.id === m.firstGeneration }));
}

/** A generation's backoff step is over: start the workers it is missing. */
export function onRespawn(m: Master, generation: number): void {
  const gen = m.generations.get(generation);
  if (!gen) return;
  gen.respawnTimer = null;
  maintainWorkerCount(m, gen);
}

/** ready_timeout of a generation: a reload whose workers are not all ready by now fails. */
export function onReadyTimeout(m: Master, generation: number): void {
  const gen = m.generations.get(generation);
  if (gen?.role === 'pending' && !gen.everReady) {
    failReload(m, gen, `the workers of generation ${gen.id} were not ready within ${gen.config.readyTimeoutMs}ms`);
  }
}

/**
 * The periodic arm of the loop: missing workers, heartbeats, hung workers, memory limits,
 * workers that are not ready in time.
 */
export function checkWorkers(m: Master): void {
  const now = Date.now();
  for (const gen of m.generations.values()) maintainWorkerCount(m, gen);
  for (const w of m.table.all()) {
    const gen = m.generations.get(w.generation);
    if (!gen) continue;
    const cfg = gen.config;
    execute(
      m,
      planCheck({
        worker: {
          pid: w.pid,
          state: w.state,
          exec: cfg.worker.kind === 'exec',
          notified: w.notified,
          startedAt: w.startedAt,
          lastPong: w.lastPong,
          connected: w.channel?.connected ?? false,
          rss: w.rss,
          startRss: w.startRss,
          recycling: w.recycling,
        },
        gen: { id: gen.id, role: gen.role, memoryWarned: gen.memoryWarned, readyTimeoutMs: cfg.readyTimeoutMs, heartbeatTimeoutMs: cfg.workerHeartbeatTimeoutMs, maxMemory: cfg.workerMaxMemory },
        now,
      }),
    );
  }
}

export function ping(w: WorkerRecord): void {
  w.channel?.send({ t: 'ping', seq: Date.now() });
}

/** Over worker_max_memory: replaced by a new worker in its slot (markReady stops it then). */
export function recycle(m: Master, w: WorkerRecord): void {
  const gen = m.generations.get(w.generation);
  if (!gen) return;
  w.recycling = true;
  m.metrics?.restarted('memory');
  maintainWorkerCount(m, gen);
}

export function killWorker(m: Master, w: WorkerRecord, why: string, reason: RestartReason): void {
  if (w.killedFor) return;
  w.killedFor = why;
  w.killReason = reason;
  m.log.alert(`worker process ${w.pid}: ${why}, killing it`);
  signalWorker(m, w, 'SIGKILL');
}

/** TTIN / TTOU: one worker more or fewer in the serving generation (at least one). */
export function changeWorkerCount(m: Master, delta: number): void {
  const gen = m.generations.get(m.current);
  if (!gen) return;
  const target = Math.max(1, gen.target + delta);
  if (target === gen.target) {
    m.log.notice(`worker count stays ${target}: at least one worker serves`);
    return;
  }
  if (gen.sockets.some((g) => g.spec.reuseport)) {
    // A worker's share of a reuseport group is fixed when it starts: a new count is a new generation.
    m.log.notice(`worker count becomes ${target}: starting a new generation (reuseport)`);
    replaceGeneration(m, { ...gen.config, workerProcesses: target });
    return;
  }
  gen.target = target;
  m.log.notice(`worker count of generation ${gen.id} is now ${target}`);
  for (const w of m.table.serving(gen.id)) if (w.slot >= target) stopWorker(m, w, true);
  maintainWorkerCount(m, gen);
}
