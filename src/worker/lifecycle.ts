// Drain and shutdown hooks for apps in any form, imported from the package
// (`import { onDrain } from 'tsmaster'`). The app may load its own copy of the package, not
// the one the worker runs: both meet in one registry on globalThis.
import type { DrainInfo } from './api.js';

const KEY = Symbol.for('tsmaster.lifecycle');

/** What the worker runtime reads when it stops. */
export interface Lifecycle {
  drainHooks: Array<(drain: DrainInfo) => void | Promise<void>>;
  shutdownHooks: Array<() => void | Promise<void>>;
  closeHooks: Array<() => void | Promise<void>>;
  /** Set by the runtime when the drain starts. */
  drainingSince: number | null;
  /** The runtime's reaction to a drain hook: upgraded connections become the app's to close. */
  onDrainRegistered: (() => void) | null;
}

export function lifecycle(): Lifecycle {
  const g = globalThis as { [KEY]?: Lifecycle };
  return (g[KEY] ??= { drainHooks: [], shutdownHooks: [], closeHooks: [], drainingSince: null, onDrainRegistered: null });
}

/**
 * Call `fn` as soon as this worker starts to drain (reload, upgrade, QUIT), with its
 * deadline: the moment for long-lived connections to say goodbye at their protocol's level.
 * Outside tsmaster it is never called.
 */
export function onDrain(fn: (drain: DrainInfo) => void | Promise<void>): void {
  const l = lifecycle();
  l.drainHooks.push(fn);
  l.onDrainRegistered?.();
}

/** Call `fn` at graceful shutdown, after the listeners stopped accepting. */
export function onShutdown(fn: () => void | Promise<void>): void {
  lifecycle().shutdownHooks.push(fn);
}

/**
 * Call `fn` once the drain is over (every connection ended, the exported framework closed),
 * before the worker exits: the moment to close what requests needed (a database pool, a
 * Next.js app's close()), as Fastify's onClose hooks run after its last request.
 */
export function onClose(fn: () => void | Promise<void>): void {
  lifecycle().closeHooks.push(fn);
}

/** Whether this worker is draining: a handler can refuse new long-lived work. */
export function draining(): boolean {
  return lifecycle().drainingSince !== null;
}
