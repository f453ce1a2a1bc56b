import fs from 'node:fs';
import { loadConfig } from '../config/index.js';
import { unsafeDirectories } from '../config/strict-modes.js';
import type { Config } from '../config/types.js';
import { Logger } from '../log/logger.js';
import { version } from '../version.js';
import * as native from '../native/index.js';
import { isObject, oldbinPath, type InheritEnv, type ParentMessage } from '../protocol.js';
import { ControlServer } from '../control/server.js';
import { addHandedOver, handOverTotals } from '../control/handover.js';
import { activatedSockets } from '../sockets/activation.js';
import { SocketSet, describe, type OpenSocket } from '../sockets/listen.js';
import { Notifier } from '../systemd/notify.js';
import { Watchdog } from '../systemd/watchdog.js';
import { WorkerNotifySockets } from '../systemd/worker-notify.js';
import type { MasterMetrics } from '../metrics/master-metrics.js';
import { MetricsServer } from '../metrics/server.js';
import { EventQueue, type MasterEvent, type UpgradeWaiter } from './event-queue.js';
import type { Batches } from './batches.js';
import type { Generation } from './generation.js';
import { batchesStatus, rolloutText } from './batches.js';
import { closeStrayFds, takeInheritEnv } from './inherited.js';
import * as pidfile from './pidfile.js';
import { ProcessTable } from './process-table.js';
import { ProcessGroups } from './process-groups.js';
import { Reaper } from './reap.js';
import { upgradePhase, type MasterState, type Phase, type UpgradePhase } from './phase.js';
import type { ReloadOutcome } from '../outcomes.js';
import { execute } from './execute.js';
import { modelOf } from './model.js';
import { prepare } from './prepare.js';
import { realSeam, type Seam } from './seam.js';
import { settle } from './settle.js';
import { step } from './step.js';
import { prepareGeneration, recordWorkerMessage, recordWorkerNotify } from './supervise.js';
import type { Upgrade } from './upgrade.js';

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
  /** What the master does to the world through (seam.ts); the real one unless a test swaps it. */
  seam?: Seam;
}

/** More passes of settle for one event than any master needs: one settles a worker start at most. */
const MAX_PASSES = 10_000;

const TICK_MS = 1000;

/**
 * The master: one loop takes events from the queue, and each event is one step: the model of
 * the master (model.ts) and the event make a plan (step.ts: through the table of phase.ts for
 * an operator's command, after preparing what a reload or an upgrade needs, prepare.ts), the
 * executor makes its effects (execute.ts), then settle.ts looks at the master in a fixed order
 * until there is nothing left to do. handle() is the executor's only caller.
 */
export class Master {
  /** The one value that says where the master is (phase.ts); set by plans only. */
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
  /** Batches under way (worker_reload_batch): a reload's, its rollback's, or a new master's upgrade. */
  batches: Batches | null = null;
  /** The timers of effects.ts, by name: each posts its event when it fires. */
  readonly timers = new Map<string, { cancel(): void }>();
  readonly seam: Seam;
  /** The last upgrade that rolled back, for status. */
  lastRollback: { newPid: number; reason: string; at: number } | null = null;
  /** The last USR2 this master ignored, and why, for status. */
  lastRefusal: { reason: string; at: number } | null = null;
  /** Set when this master was started by USR2: the old master's pid. */
  readonly oldMaster: number | null;
  /** The old master was seen gone and what it left was seen to (remembered: its pid may be reused later). */
  oldMasterForgotten = false;
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
  /** Control clients waiting for the whole upgrade. */
  upgradeWaiters: UpgradeWaiter[] = [];
  /** Where exec workers send sd_notify datagrams; opened on first use. */
  private readonly workerNotify = new WorkerNotifySockets((msg, pid) => this.queue.push({ type: 'worker-notify', pid, msg }));
  private readonly reaper = new Reaper();
  /** Exec workers' process groups, and the keeper that ends them if the master is killed. */
  readonly groups = new ProcessGroups((msg) => this.log.warn(msg));
  private ticker: NodeJS.Timeout | null = null;
  /** The fds it was given to keep (inherited listeners, systemd's, the IPC channel): the others it closes when it runs. */
  private readonly inheritedFds: ReadonlySet<number>;
  private announced = false;
  /** The first generation has been whole once: the master is ready (pidfile, READY=1, the launcher). */
  ready = false;

  constructor(
    public config: Config,
    readonly opts: MasterOptions,
  ) {
    this.seam = opts.seam ?? realSeam;
    this.log = new Logger(config.errorLog.path, config.errorLog.level);
    const warn = (m: string) => this.log.warn(m);
    const parsed = takeInheritEnv(warn);
    const activated = activatedSockets(warn);
    this.oldMaster = parsed?.parentPid ?? null;
    this.nextGeneration = this.firstGeneration = parsed?.generation ?? 1;
    this.totals = parsed?.totals ?? { requests: 0, restarts: 0 };
    const channel = (process.channel as { fd?: number } | undefined)?.fd;
    this.inheritedFds = new Set([...(parsed?.fds ?? []), ...activated].map((d) => d.fd).concat(channel ?? []));
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
    for (const what of closeStrayFds(this.inheritedFds)) this.log.info(`closed ${what}, inherited but not ours to pass on`);
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
      if (this.oldMaster === null) this.seam.pidfile.writePid(this.config.pid);
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
      // A batched upgrade: the old master says when it has drained each batch.
      if (this.oldMaster !== null && this.seam.parent.connected()) {
        process.on('message', (msg: unknown) => {
          if (isObject(msg) && msg.t === 'batch-drained') this.queue.push({ type: 'batch-drained' });
        });
      }
      this.handle({ type: 'start', gen: prepareGeneration(this.config, sockets, 'active') });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.log.emerg(message);
      this.tellParent({ t: 'failed', pid: process.pid, lines: [message] });
      await this.closeMetrics();
      this.sockets.closeAll(true);
      this.control?.close(true);
      this.seam.pidfile.removeIfOurs(this.config.pid);
      this.queue.unsubscribeSignals();
      this.reaper.unsubscribe();
      return 1;
    }
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
    // The handover to a new master (settle.ts) must reach systemd before we exit.
    await this.notifier.flushed();
    this.queue.unsubscribeSignals();
    this.reaper.unsubscribe();
    this.groups.close();
    await this.closeMetrics();
    await this.closeControl();
    return this.exitCode;
  }

  /**
   * One event: what it records is written down, then its step is planned and made, then the
   * master settles. Events that effects give back (a worker that could not start) are steps
   * of the same event, made before the next settle pass.
   */
  handle(ev: MasterEvent): void {
    this.record(ev);
    const pending: MasterEvent[] = [ev];
    for (let pass = 0; ; pass++) {
      while (pending.length > 0) {
        const e = pending.shift()!;
        const prepared = prepare(this, () => modelOf(this), e);
        pending.push(...execute(this, step(modelOf(this), e, prepared)));
      }
      const fx = settle(modelOf(this));
      if (fx.length === 0) return;
      if (pass >= MAX_PASSES) {
        this.log.alert(`${ev.type}: the master did not settle after ${MAX_PASSES} passes; next: ${fx.map((e) => e.do).join(', ')}`);
        return;
      }
      pending.push(...execute(this, fx));
    }
  }

  /** The facts an event carries, written down before its step: heartbeats, a handover's counts; and what a tick does every time. */
  private record(ev: MasterEvent): void {
    switch (ev.type) {
      case 'tick':
        this.lastTickAt = Date.now();
        // A sweep per tick too: SIGCHLDs that arrive together are delivered as one.
        return this.reap();
      case 'reap':
        return this.reap();
      case 'watchdog':
        return this.watchdog.onEvent();
      case 'worker-message':
        return recordWorkerMessage(this, ev.pid, ev.msg);
      case 'worker-notify':
        return recordWorkerNotify(this, ev.pid);
      case 'control-handover':
        return addHandedOver(this, ev);
    }
  }

  private reap(): void {
    for (const r of this.reaper.sweep()) this.log.debug(`reaped orphan process ${r.pid}: ${r.how}`);
  }

  get state(): MasterState {
    return this.phase.name;
  }

  /** Whether the old master that started this one still lives (asked of /proc until it is seen gone). */
  oldMasterAlive(): boolean {
    if (this.oldMaster === null || this.oldMasterForgotten) return false;
    return this.seam.pidfile.isLiveMaster(this.oldMaster);
  }

  /** The upgrade as status and metrics tell it: the same words as the table's (phase.ts). */
  upgradePhase(): UpgradePhase {
    return upgradePhase(this.upgrade, this.oldMasterAlive());
  }

  /** The launcher or the old master still listens for our outcome on the IPC channel. */
  parentListens(): boolean {
    return !this.announced && this.seam.parent.connected();
  }

  /** The launcher or the old master waits for our outcome on the IPC channel. */
  /**
   * The outcome of a start, for the command that waits on it. In the foreground nobody
   * waits: a failure goes to stderr too (the terminal, or systemd's journal) when the error
   * log is elsewhere, so that the one who started it sees why.
   */
  tellParent(msg: ParentMessage): void {
    if (this.announced) return;
    if (!this.seam.parent.connected()) {
      if (msg.t === 'failed' && this.log.path !== 'stderr') process.stderr.write(msg.lines.map((l) => `tsmaster: [emerg] ${l}\n`).join(''));
      if (msg.t === 'failed') this.announced = true;
      return;
    }
    this.seam.parent.send(msg);
    if (msg.t !== 'started' && msg.t !== 'batch-ready') {
      this.announced = true;
      this.seam.parent.disconnect();
    }
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
    const b = this.batches;
    const batch = b && b.giver !== 'old-master' ? ` (${rolloutText(batchesStatus(b))})` : '';
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

