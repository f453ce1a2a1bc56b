import * as native from '../native/index.js';

/**
 * sd_notify to the service manager, when NOTIFY_SOCKET names one. NOTIFY_SOCKET stays in
 * the master's environment so a new master started by USR2 reaches systemd too; workers
 * never see it (their environment comes from the config).
 */
export class Notifier {
  private readonly socket: string | null;

  constructor(
    socket = process.env.NOTIFY_SOCKET,
    private readonly onError: (message: string) => void = () => undefined,
  ) {
    this.socket = socket && socket.length > 0 ? socket : null;
  }

  get enabled(): boolean {
    return this.socket !== null;
  }

  send(...fields: string[]): void {
    if (!this.socket) return;
    try {
      native.sdNotify(this.socket, fields.join('\n'));
    } catch (err) {
      this.onError(`sd_notify(${JSON.stringify(fields.join(' '))}) failed: ${(err as Error).message}`);
    }
  }

  /** systemd's Type=notify-reload wants the reload start stamped with CLOCK_MONOTONIC. */
  reloading(status: string): void {
    this.send('RELOADING=1', `MONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`, `STATUS=${status}`);
  }
}
