import type { Notifier } from './notify.js';

/**
 * systemd's WatchdogSec=: WATCHDOG=1 every half WATCHDOG_USEC, sent by the master that is
 * systemd's main process (the Notifier sends nothing for a master that is not).
 *
 * Healthy means the master's loop takes events from its queue and finishes its transitions.
 * So the timer only posts an event and the loop sends the ping when it handles it: a timer
 * that pinged by itself would go on while the loop is wedged (a transition that never gives
 * the loop back, an await that never settles), and systemd would never restart that master.
 */
export class Watchdog {
  /** 0: no watchdog for us. */
  readonly intervalMs: number;
  private timer: NodeJS.Timeout | null = null;
  private posted = false;

  constructor(
    private readonly notifier: Notifier,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    const usec = Number(env.WATCHDOG_USEC);
    const forUs = env.WATCHDOG_PID === undefined || Number(env.WATCHDOG_PID) === process.pid;
    this.intervalMs = notifier.enabled && forUs && Number.isInteger(usec) && usec > 0 ? Math.max(1, Math.floor(usec / 2000)) : 0;
    // A new master started by USR2 inherits our environment: without our pid in it, it may
    // take the watchdog over once it is systemd's main process.
    if (this.intervalMs > 0) delete env.WATCHDOG_PID;
  }

  /** `post` queues the event that calls onEvent(); one at a time, so a wedged loop gets no pile. */
  start(post: () => void): void {
    if (this.intervalMs === 0) return;
    this.timer = setInterval(() => {
      if (this.posted) return;
      this.posted = true;
      post();
    }, this.intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  onEvent(): void {
    this.posted = false;
    this.ping();
  }

  /** Also at once when this master has just become main: the one before it pings no more. */
  ping(): void {
    if (this.intervalMs > 0) this.notifier.send('WATCHDOG=1');
  }
}
