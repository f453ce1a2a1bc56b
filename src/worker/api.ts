import type net from 'node:net';
import type { LogLevel } from '../config/types.js';

/** One listening socket the master handed to this worker. */
export interface Listener {
  /** `name=` of the listen directive, or its address. */
  readonly name: string;
  /** Canonical address, e.g. `tcp:127.0.0.1:8080` or `unix:/run/app.sock`. */
  readonly key: string;
  /** The inherited file descriptor (3, 4, ...). */
  readonly fd: number;
}

/** What `start(ctx)` receives: full control over the worker's listeners and life cycle. */
export interface WorkerContext {
  readonly id: number;
  readonly generation: number;
  readonly listeners: readonly Listener[];
  /**
   * Listen `server` on every inherited socket (or the ones named) and let tsmaster drain
   * it on graceful shutdown. Resolves when it is listening.
   */
  serve(server: net.Server, names?: readonly string[]): Promise<void>;
  /** Run `fn` at graceful shutdown, after the listeners stopped accepting. */
  onShutdown(fn: () => void | Promise<void>): void;
  /** Run `fn` once every connection has ended, before the worker exits (see onClose). */
  onClose(fn: () => void | Promise<void>): void;
  /**
   * Call `fn` as soon as the worker starts to drain (a reload, an upgrade, QUIT), with the
   * moment it will be killed: the time for long-lived connections (WebSocket, server-sent
   * events, raw TCP) to say goodbye at their protocol's level, e.g. WebSocket close 1001
   * "going away". Once a drain handler is registered, connections taken over by an
   * `upgrade` handler are left to the app until that deadline.
   */
  onDrain(fn: (drain: DrainInfo) => void | Promise<void>): void;
  /** Write one nginx-format line to the worker log. */
  log(level: LogLevel, message: string): void;
}

/** What a drain handler is told. */
export interface DrainInfo {
  /** When the master kills the worker if it is still there (ms since the epoch). */
  readonly deadline: number;
  /** worker_shutdown_timeout in ms (shorter when the master died: the worker leaves within a second). */
  readonly timeoutMs: number;
}

/** A module whose default export has `start` gets full control; the worker is ready when it resolves. */
export interface WorkerApp {
  start(ctx: WorkerContext): void | Promise<void>;
}
