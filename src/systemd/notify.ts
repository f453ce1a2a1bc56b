import * as native from '../native/index.js';

/** A full NOTIFY_SOCKET (systemd busy) is tried again this often, this many times. */
const RETRY_MS = 200;
const MAX_RETRIES = 50;

/**
 * sd_notify to the service manager, when NOTIFY_SOCKET names one. NOTIFY_SOCKET stays in
 * the master's environment so a new master started by USR2 reaches systemd too; workers
 * never see it (their environment comes from the config). A send never blocks the loop: a
 * full socket keeps the message and tries again on a timer, for 10 s at most.
 *
 * Only systemd's main process speaks: the shipped unit has NotifyAccess=main, so that no
 * other process of the unit (a worker, anything it starts) can send WATCHDOG=trigger,
 * MAINPID= or STATUS= for the service. The rule of the upgrade:
 * - the master systemd started is main; a new master started by USR2 is not, and says
 *   nothing (systemd would refuse it and log a warning for each message);
 * - the old master stays main as long as it lives: a rollback (the new master gone, even
 *   by SIGKILL) needs no word to systemd. Handing over when the new master is ready would
 *   not survive that: systemd 252 does not notice the death of a main process that is not
 *   its child, keeps the dead pid as MainPID, and refuses the old master's MAINPID= back;
 * - an old master that exits while its new master is ready sends MAINPID=<new> as its last
 *   message (handOver); systemd reads its notify socket before SIGCHLD, so it knows the new
 *   main pid before it sees the old one exit. The new master, seeing its old master gone,
 *   takes over (takeOver): READY=1, STATUS=, the watchdog.
 */
export class Notifier {
  private readonly socket: string | null;
  private isMain: boolean;

  constructor(
    socket = process.env.NOTIFY_SOCKET,
    private readonly onError: (message: string) => void = () => undefined,
    main = true,
  ) {
    this.socket = socket && socket.length > 0 ? socket : null;
    this.isMain = main;
  }

  get enabled(): boolean {
    return this.socket !== null;
  }

  /** Whether this master is systemd's main process (the one whose messages systemd takes). */
  get main(): boolean {
    return this.isMain;
  }

  /** The last word of a main process that exits: `pid` is main now. */
  handOver(pid: number): void {
    if (!this.isMain) return;
    this.send(`MAINPID=${pid}`);
    this.isMain = false;
  }

  /** The old master has handed over and exited: this master is main, and says so. */
  takeOver(...fields: string[]): void {
    this.isMain = true;
    this.send(...fields);
  }

  /** Resolves once the backlog is sent or dropped: an exiting master waits for its handover. */
  flushed(): Promise<void> {
    if (this.backlog.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.whenFlushed.push(resolve));
  }

  send(...fields: string[]): void {
    if (!this.socket || !this.isMain) return;
    // systemd's Type=notify-reload wants a reload's start stamped with CLOCK_MONOTONIC.
    const stamp = fields.includes('RELOADING=1') ? [`MONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`] : [];
    const message = [...fields, ...stamp].join('\n');
    // In order: a READY=1 must not overtake the RELOADING=1 waiting before it.
    if (this.backlog.length > 0) {
      this.backlog.push(message);
      return;
    }
    const full = this.attempt(message);
    if (!full) return;
    this.onError(`${said(message)} failed: ${full.message}; retrying for ${(RETRY_MS * MAX_RETRIES) / 1000}s`);
    this.backlog.push(message);
    this.retryLater();
  }

  /** Messages a full socket did not take yet, oldest first, retried on a timer. */
  private backlog: string[] = [];
  private retries = 0;
  private whenFlushed: Array<() => void> = [];

  /** Sent (or failed for good, and said so): null; the socket is full: its EAGAIN error. */
  private attempt(message: string): Error | null {
    try {
      native.sdNotify(this.socket!, message);
    } catch (err) {
      if ((err as { code?: string }).code === 'EAGAIN') return err as Error;
      this.onError(`${said(message)} failed: ${(err as Error).message}`);
    }
    return null;
  }

  private retryLater(): void {
    setTimeout(() => this.flush(), RETRY_MS).unref();
  }

  /** Retry the backlog in order; after MAX_RETRIES the service manager is not reading: drop it. */
  private flush(): void {
    while (this.backlog.length > 0) {
      if (this.attempt(this.backlog[0]!)) {
        if (++this.retries < MAX_RETRIES) return this.retryLater();
        this.onError(`sd_notify: ${this.backlog.length} message(s) dropped: ${this.socket} does not read`);
        this.backlog = [];
        break;
      }
      this.backlog.shift();
    }
    this.retries = 0;
    for (const done of this.whenFlushed.splice(0)) done();
  }
}

/** How a message is named in the log: its fields on one line. */
function said(message: string): string {
  return `sd_notify(${JSON.stringify(message.replaceAll('\n', ' '))})`;
}
