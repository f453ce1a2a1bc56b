import fs from 'node:fs';
import os from 'node:os';
import { loadConfig } from '../config/index.js';
import { unsafeDirectories } from '../config/strict-modes.js';
import type { Config } from '../config/types.js';
import { Logger } from '../log/logger.js';
import { version } from '../version.js';
import * as native from '../native/index.js';
import { oldbinPath, type InheritEnv, type ParentMessage } from '../protocol.js';
import { ControlServer } from '../control/server.js';
import { addHandedOver, handOverTotals } from '../control/handover.js';
import { activatedSockets } from '../sockets/activation.js';
import { SocketSet, describe, type OpenSocket } from '../sockets/listen.js';
import { Notifier } from '../systemd/notify.js';
import { Watchdog } from '../systemd/watchdog.js';
import { WorkerNotifySockets } from '../systemd/worker-notify.js';
import type { MasterMetrics } from '../metrics/master-metrics.js';
import { MetricsServer } from '../metrics/server.js';
import { EventQueue, type MasterEvent, type MasterSignal } from './event-queue.js';
import type { Generation } from './generation.js';
import { closeStrayFds, takeInheritEnv } from './inherited.js';
import * as pidfile from './pidfile.js';
import { ProcessTable } from './process-table.js';
import { ProcessGroups } from './process-groups.js';
import { Reaper } from './reap.js';
import { rolloutStatus, rolloutText, type Rollout } from './rollout.js';
import { decide, phaseKey, type Command, type Decision, type MasterState, type Phase, type Situation } from './phase.js';
import type { ReloadOutcome } from '../outcomes.js';
import { tell } from './tell.js';
import { meaningOf } from './signals.js';
import { execute } from './execute.js';
import { planCommand, planUpgrade, type View } from './plans.js';
import { checkWorkers, onReadyTimeout, onRespawn, onWorkerExit, onWorkerMessage, onWorkerNotify, prepareGeneration, signalWorker, startGeneration } from './supervise.js';
import { howItExited, type Upgrade } from './upgrade.js';
import { batchSlots, firstBatch, onBatchDrained, type IncomingBatches } from './upgrade-batches.js';


export interface MasterOptions {
  configFile: string;
  prefix: string;
  globals?: string;
  /** The command line to start a new master with on USR2 (node, its flags, script, args), resolved at start-up. */
  argv: string[];
  /** Shown by ps: `tsmaster: master process ...`. */
  title: string;
  /** Running in the foreground on a terminal: WINCH is a window resize there. */
  onTerminal: boolean;
  /** Daemonized: point stdout/stderr at the error log once it is open. */
  daemon: boolean;
}

const TICK_MS = 1000;

/**
 * The master: one loop takes events from the queue and makes one transition each. What an
 * operator's command (a signal, a control reload) may do in the master's phase is decided
 * by the table of phase.ts, refusals included (signals.ts maps signals to commands); what an
 * allowed command and each event of an upgrade then do is a plan of effects (plans.ts) that
 * execute.ts makes; an outcome's consequences are tell.ts's. Single workers are decided by
 * worker-plans.ts, how a reload ends by reload-plans.ts, a batched reload's steps by
 * rollout.ts; supervise.ts and reload.ts hold the effects those plans name.
 */
export class Master {
  /** The one value that says where the master is (phase.ts); set by plans and reloads only. */
  phase: Phase = { name: 'starting' };
  readonly queue = new EventQueue();
  readonly table = new ProcessTable();
  readonly sockets = new SocketSet();
  readonly generations = new Map<number, Generation>();
  log: Logger;
  /** The generation that serves; a reload makes another one current when it is ready. */
  current = 0;
  /** Continues across upgrades: a new master starts at the number its old master reserved. */
  nextGeneration: number;
  readonly firstGeneration: number;
  upgrade: Upgrade | null = null;
  /** A batched reload (worker_reload_batch) under way, or its rollback. */
  rollout: Rollout | null = null;
  /** A new master of a batched upgrade: the batches of its first generation still to come. */
  incoming: IncomingBatches | null = null;
  /** The last upgrade that rolled back, for status. */
  lastRollback: { newPid: number; reason: string; at: number } | null = null;
  /** The last USR2 this master ignored, and why, for status. */
  lastRefusal: { reason: string; at: number } | null = null;
  /** Set when this master was started by USR2: the old master's pid. */
  readonly oldMaster: number | null;
  /** The old master has exited (remembered: its pid may be reused later). */
  private oldMasterExited = false;
  readonly totals: InheritEnv['totals'];
  exitCode: number | null = null;
  readonly startedAt = Date.now();
  readonly notifier: Notifier;
  readonly watchdog: Watchdog;
  control: ControlServer | null = null;
  /** metrics_listen, as the master started with it (a reload does not move it). */
  metrics: MasterMetrics | null = null;
  private metricsSocket: OpenSocket | null = null;
  private metricsServer: MetricsServer | null = null;
  /** When the loop last handled a tick: /healthz. */
  lastTickAt = Date.now();
  /** Control clients waiting for the outcome of a reload. */
  reloadWaiters: Array<(o: ReloadOutcome) => void> = [];
  /** Where exec workers send sd_notify datagrams; opened on first use. */
  private readonly workerNotify = new WorkerNotifySockets((msg, pid) => this.queue.push({ type: 'worker-notify', pid, msg }));
  private readonly reaper = new Reaper();
  /** Exec workers' process groups, and the keeper that ends them if the master is killed. */
  readonly groups = new ProcessGroups((msg) => this.log.warn(msg));
  private ticker: NodeJS.Timeout | null = null;
  private announced = false;
  /** The first generation has been ready (onFirstReady). */
  private firstReady = false;

  constructor(
    public config: Config,
    readonly opts: MasterOptions,
  ) {
    this.log = new Logger(config.errorLog.path, config.errorLog.level);
    const warn = (m: string) => this.log.warn(m);
    const parsed = takeInheritEnv(warn);
    const activated = activatedSockets(warn);
    this.oldMaster = parsed?.parentPid ?? null;
    this.nextGeneration = this.firstGeneration = parsed?.generation ?? 1;
    this.totals = parsed?.totals ?? { requests: 0, restarts: 0 };
    const channel = (process.channel as { fd?: number } | undefined)?.fd;
    const keep = new Set([...(parsed?.fds ?? []), ...activated].map((d) => d.fd).concat(channel ?? []));
    for (const what of closeStrayFds(keep)) this.log.info(`closed ${what}, inherited but not ours to pass on`);
    if (parsed) this.sockets.offer(parsed.fds);
    this.sockets.offer(activated);
    // A new master is systemd's main process only once its old master has exited (notify.ts).
    this.notifier = new Notifier(process.env.NOTIFY_SOCKET, (m) => this.log.warn(m), this.oldMaster === null);
    this.watchdog = new Watchdog(this.notifier);
  }

  /** Re-read the config the master was started with. Throws ConfigError. */
  readConfig(): Config {
    return loadConfig({ file: this.opts.configFile, prefix: this.opts.prefix, ...(this.opts.globals ? { globals: this.opts.globals } : {}) });
  }

  /** Bind, publish the pid, start the first workers, then run the loop until exit. */
  async run(): Promise<number> {
    process.title = this.opts.title;
    this.redirectStdio();
    this.queue.subscribeSignals();
    this.reaper.subscribe(() => this.queue.push({ type: 'reap' }));
    try {
      if (this.oldMaster === null) pidfile.checkNotRunning(this.config.pid);
      for (const w of unsafeDirectories(this.config)) this.log.warn(w);
      const sockets = this.sockets.acquire(this.config.listens, this.config.workerProcesses);
      const metricsSocket = this.config.metricsListen ? this.sockets.acquire([this.config.metricsListen], 1)[0]!.members[0]! : null;
      this.sockets.dropInherited();
      for (const s of this.sockets.all()) this.log.notice(`listening on ${describe(s)} (fd ${s.fd})`);
      // A new master publishes its pid only once its workers are ready.
      if (this.oldMaster === null) pidfile.writePid(this.config.pid);
      if (this.config.controlSocket) this.control = new ControlServer(this, this.config.controlSocket);
      if (metricsSocket) {
        // Loaded only when asked for: prom-client takes ~100 ms to load.
        const { MasterMetrics } = await import('../metrics/master-metrics.js');
        this.metrics = new MasterMetrics(this);
        this.metricsSocket = metricsSocket;
        // A new master answers only once it serves: until then the old one does, alone.
        if (this.oldMaster === null) this.serveMetrics(true);
        this.log.notice(`metrics on ${describe(metricsSocket)}: /metrics, /healthz, /readyz`);
      }
      this.log.notice(`tsmaster/${version} master process started, ${this.config.workerProcesses} worker(s)`);
      this.tellParent({ t: 'started', pid: process.pid });
      startGeneration(this, prepareGeneration(this.config, sockets, 'active', firstBatch(this)));
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.log.emerg(message);
      if (process.connected) this.tellParent({ t: 'failed', pid: process.pid, lines: [message] });
      else if (this.log.path !== 'stderr') process.stderr.write(`tsmaster: [emerg] ${message}\n`);
      await this.closeMetrics();
      this.sockets.closeAll(true);
      this.control?.close(true);
      pidfile.removeIfOurs(this.config.pid);
      this.queue.unsubscribeSignals();
      this.reaper.unsubscribe();
      return 1;
    }
    this.phase = { name: 'running' };
    this.ticker = setInterval(() => this.queue.push({ type: 'tick' }), TICK_MS);
    this.watchdog.start(() => this.queue.push({ type: 'watchdog' }));
    while (this.exitCode === null) {
      const ev = await this.queue.next();
      try {
        this.handle(ev);
      } catch (err) {
        // One failed transition must not take the master and its sockets down.
        this.log.alert(`${ev.type} handling failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      }
    }
    clearInterval(this.ticker);
    this.watchdog.stop();
    // The handover to a new master (shutdown.ts) must reach systemd before we exit.
    await this.notifier.flushed();
    this.queue.unsubscribeSignals();
    this.reaper.unsubscribe();
    this.groups.close();
    await this.closeMetrics();
    await this.closeControl();
    return this.exitCode;
  }

  private handle(ev: MasterEvent): void {
    switch (ev.type) {
      case 'signal':
        return this.onSignal(ev.signal);
      case 'worker-exit':
        return onWorkerExit(this, ev);
      case 'worker-message':
        return onWorkerMessage(this, ev.pid, ev.msg);
      case 'worker-notify':
        return onWorkerNotify(this, ev.pid, ev.msg);
      case 'tick':
        this.lastTickAt = Date.now();
        this.oldMasterGone();
        // A sweep per tick too: SIGCHLDs that arrive together are delivered as one.
        this.reap();
        return checkWorkers(this);
      case 'reap':
        return this.reap();
      case 'watchdog':
        return this.watchdog.onEvent();
      case 'control-reload': {
        // The client waits for the reload it started; an ignored one answers only its own client.
        const d = this.command('reload', () => this.reloadWaiters.push(ev.done));
        if ('refuse' in d && d.refuse.outcome?.event === 'reload-refused') ev.done(d.refuse.outcome);
        return;
      }
      case 'control-handover':
        return addHandedOver(this, ev);
      case 'respawn':
        return onRespawn(this, ev.generation);
      case 'ready-timeout':
        return onReadyTimeout(this, ev.generation);
      case 'kill-timeout': {
        const w = this.table.get(ev.pid);
        if (w) {
          this.log.warn(`worker process ${ev.pid} did not exit in time, killing it`);
          signalWorker(this, w, 'SIGKILL');
        }
        return;
      }
      case 'upgrade-ready':
        return execute(this, planUpgrade(this.view(), { type: 'ready', pid: ev.pid }));
      case 'upgrade-exit':
        return execute(this, planUpgrade(this.view(), { type: 'exit', pid: ev.pid, how: howItExited(ev) }));
      case 'upgrade-timeout':
        return execute(this, planUpgrade(this.view(), { type: 'timeout', pid: ev.pid }));
      case 'upgrade-batch': {
        const { pid, step, steps } = ev.msg;
        return execute(this, planUpgrade(this.view(), { type: 'batch-ready', pid, slots: batchSlots(ev.msg), step: Number(step) || 0, steps: Number(steps) || 0 }));
      }
      case 'batch-drained':
        return onBatchDrained(this);
    }
  }

  private reap(): void {
    for (const r of this.reaper.sweep()) this.log.debug(`reaped orphan process ${r.pid}: ${r.how}`);
  }

  private onSignal(signal: MasterSignal): void {
    const number = os.constants.signals[signal];
    if (signal === 'SIGWINCH' && this.opts.onTerminal) {
      this.log.info(`signal ${number} (${signal}) received, ignored: the master runs in the foreground on a terminal`);
      return;
    }
    const meaning = meaningOf(signal, this.config.termShutdown);
    this.log.notice(`signal ${number} (${signal}) received, ${meaning.action}`);
    this.command(meaning.command);
  }

  /** Where the master is now, as the table of phase.ts reads it. */
  situation(): Situation {
    const phase = phaseKey(this.phase);
    if (this.upgrade) return { phase, upgrade: this.upgrade.killing ? 'killing' : this.upgrade.ready ? 'ready' : 'starting', partner: this.upgrade.pid, pid1: process.pid === 1 };
    if (this.oldMaster !== null && !this.oldMasterGone()) return { phase, upgrade: 'new', partner: this.oldMaster, pid1: process.pid === 1 };
    return { phase, upgrade: 'none', pid1: process.pid === 1 };
  }

  get state(): MasterState {
    return this.phase.name;
  }

  /** What the plans of plans.ts read. */
  view(): View {
    const up = this.upgrade;
    return {
      phase: phaseKey(this.phase),
      upgrade: up ? { pid: up.pid, ready: up.ready, killing: up.killing } : null,
      current: this.current,
      readyTimeoutMs: this.config.readyTimeoutMs,
      pid: process.pid,
    };
  }

  /**
   * One command, decided by the table; a refusal is logged there and then, once. `accepted`
   * runs just before the plan is made (which may settle at once, a config error); `code` is
   * the exit code of a fast stop.
   */
  command(cmd: Command, accepted?: () => void, code = 0): Decision {
    const d = decide(this.situation(), cmd);
    if ('go' in d) {
      accepted?.();
      execute(this, planCommand(this.view(), d.go, code));
      return d;
    }
    if (d.refuse.outcome) tell(this, d.refuse.outcome);
    else if (!d.quiet) this.log.notice(d.refuse.line);
    return d;
  }

  /**
   * Whether the old master that started this one is gone. The first time it is seen gone,
   * what it could not remove itself (killed with SIGKILL) goes: its .oldbin pidfile and
   * control socket, unless this master is in an upgrade of its own and uses those names.
   */
  oldMasterGone(): boolean {
    if (this.oldMaster === null || this.oldMasterExited) return true;
    if (pidfile.isLiveMaster(this.oldMaster)) return false;
    this.oldMasterExited = true;
    this.takeOverSystemd();
    if (!this.upgrade) {
      try {
        pidfile.removeIfOurs(oldbinPath(this.config.pid), this.oldMaster);
        if (this.control) fs.rmSync(oldbinPath(this.control.home), { force: true });
      } catch (err) {
        // Not ours to fix (a directory where the socket was): said once, the master goes on.
        this.log.warn(`the old master's .oldbin files stay: ${(err as Error).message}`);
      }
    }
    return true;
  }

  /** The launcher or the old master waits for our outcome on the IPC channel. */
  tellParent(msg: ParentMessage): void {
    if (this.announced || !process.connected || !process.send) return;
    process.send(msg);
    if (msg.t !== 'started' && msg.t !== 'batch-ready') {
      this.announced = true;
      process.disconnect();
    }
  }

  /** The first generation is ready: publish the pid (new master) and tell whoever waits. */
  onFirstReady(): void {
    this.serveMetrics(true);
    this.firstReady = true;
    if (this.oldMaster !== null) pidfile.writePid(this.config.pid);
    // Said only by the master systemd started; a new master says it when it takes over.
    this.notifier.send('READY=1', `STATUS=${this.statusLine()}`);
    this.takeOverSystemd();
    this.tellParent({ t: 'ready', pid: process.pid });
  }

  /**
   * A new master whose old master has exited is systemd's main process: the old one sent
   * MAINPID= for it as its last message (checkExit), and stayed main until then so that a
   * rollback never needed a word to systemd (notify.ts). Until its first workers are ready
   * the old one cannot have handed over (it hands over to a ready new master only).
   */
  private takeOverSystemd(): void {
    if (this.notifier.main || !this.firstReady || !this.oldMasterExited) return;
    this.notifier.takeOver('READY=1', `STATUS=${this.statusLine()}`);
    this.watchdog.ping();
  }

  /**
   * A daemon has no terminal: its stdout/stderr (uncaught exceptions included) go to the
   * error log, again after each USR1, or nowhere when the log is stderr itself.
   */
  redirectStdio(): void {
    if (!this.opts.daemon) return;
    const fd = this.log.path === 'stderr' ? fs.openSync('/dev/null', 'w') : this.log.target;
    native.dup2(fd, 1);
    native.dup2(fd, 2);
    if (this.log.path === 'stderr') fs.closeSync(fd);
  }

  /** systemd's STATUS=: one line. */
  statusLine(): string {
    const gen = this.generations.get(this.current);
    const ready = this.table.serving(this.current).filter((w) => w.state === 'ready').length;
    const batch = this.rollout ? ` (${rolloutText(rolloutStatus(this.rollout))})` : '';
    return `${this.state}${batch}, generation ${this.current}, ${ready}/${gen?.target ?? 0} workers ready`;
  }

  /** The NOTIFY_SOCKET exec workers of `config` get; their datagrams become queue events. */
  workerNotifySocket(config: Config): string {
    return this.workerNotify.pathFor(config.user);
  }

  /** The control socket path while this master is the old one of an upgrade, and back. */
  moveControl(toOldbin: boolean): void {
    if (!this.control) return;
    try {
      this.control.moveTo(toOldbin ? oldbinPath(this.control.home) : this.control.home);
    } catch (err) {
      this.log.alert(`control socket: rename failed: ${(err as Error).message}`);
    }
  }

  /** Last thing before exit: an old master whose successor took over hands it its last counts. */
  private async closeControl(): Promise<void> {
    if (!this.control) return;
    if (this.upgrade?.ready) await handOverTotals(this, this.upgrade, this.control.home);
    this.control.close(true);
    this.control = null;
  }

  /** The address key of metrics_listen: a socket no generation may take. */
  get metricsKey(): string | null {
    return this.metricsSocket?.key ?? null;
  }

  /**
   * Answer on metrics_listen, or stop (the socket stays open for a rollback): during an
   * upgrade one master at a time answers, so scrapes and probes never alternate between two.
   */
  serveMetrics(on: boolean): void {
    if (on && !this.metricsServer && this.metrics && this.metricsSocket) {
      this.metricsServer = new MetricsServer(this, this.metricsSocket, this.metrics);
    } else if (!on) {
      void this.closeMetrics();
    }
  }

  private async closeMetrics(): Promise<void> {
    const server = this.metricsServer;
    this.metricsServer = null;
    await server?.close();
  }

  exit(code: number): void {
    this.workerNotify.close();
    this.exitCode = code;
    this.queue.push({ type: 'tick' });
  }
}

