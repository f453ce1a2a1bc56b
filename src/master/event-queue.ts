import type { ParentMessage, Totals, WorkerMessage } from '../protocol.js';
import type { ReloadOutcome, UpgradeOutcome } from '../outcomes.js';
import type { Generation } from './generation.js';

/** Every signal the master reacts to. */
export const MASTER_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH', 'SIGTTIN', 'SIGTTOU'] as const;
export type MasterSignal = (typeof MASTER_SIGNALS)[number];

export type MasterEvent =
  /** The master's first generation, prepared before the loop. */
  | { type: 'start'; gen: Generation }
  /** A worker could not be started (the executor's spawn). */
  | { type: 'spawn-failed'; generation: number; why: string }
  | { type: 'signal'; signal: MasterSignal }
  | { type: 'worker-exit'; pid: number; code: number | null; signal: NodeJS.Signals | null }
  | { type: 'worker-message'; pid: number; msg: WorkerMessage }
  | { type: 'worker-notify'; pid: number; msg: string }
  | { type: 'tick' }
  | { type: 'reap' }
  | { type: 'watchdog' }
  | { type: 'respawn'; generation: number }
  | { type: 'control-reload'; done: (o: ReloadOutcome) => void }
  | { type: 'control-upgrade'; waiter: UpgradeWaiter }
  | { type: 'control-handover'; pid: number; totals: Totals; done: () => void }
  | { type: 'ready-timeout'; generation: number }
  | { type: 'kill-timeout'; pid: number }
  | { type: 'upgrade-exit'; pid: number; code: number | null; signal: NodeJS.Signals | null; error?: string }
  | { type: 'upgrade-ready'; pid: number }
  | { type: 'upgrade-timeout'; pid: number }
  /** A batched upgrade: the new master has a batch ready (old master), the old one drained it (new master). */
  | { type: 'upgrade-batch'; msg: Extract<ParentMessage, { t: 'batch-ready' }> }
  | { type: 'batch-drained' };

/** A control client waiting for the whole upgrade: each outcome as it happens; the last ends it. */
export type UpgradeWaiter = (o: UpgradeOutcome) => void;

/**
 * The master's only inbox. Signal handlers, child exits, IPC and timers push here and do
 * nothing else; one loop takes events out in order.
 */
export class EventQueue {
  private readonly items: MasterEvent[] = [];
  private waiter: ((ev: MasterEvent) => void) | null = null;

  push(ev: MasterEvent): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w(ev);
    } else {
      this.items.push(ev);
    }
  }

  next(): Promise<MasterEvent> {
    const ev = this.items.shift();
    if (ev) return Promise.resolve(ev);
    return new Promise((resolve) => {
      this.waiter = resolve;
    });
  }

  subscribeSignals(): void {
    for (const signal of MASTER_SIGNALS) process.on(signal, () => this.push({ type: 'signal', signal }));
  }

  unsubscribeSignals(): void {
    for (const signal of MASTER_SIGNALS) process.removeAllListeners(signal);
  }
}
