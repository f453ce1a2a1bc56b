// What crosses a process boundary: environment variables and IPC messages between the
// master, its workers and a new master started by USR2. Kept in one place so both ends agree.

/** Counters that survive an upgrade (handed to the new master at USR2, and the rest at exit). */
export interface Totals {
  requests: number;
  restarts: number;
}

/** The name of a file or socket while its master is the old one of an upgrade (nginx's `.oldbin`). */
export function oldbinPath(path: string): string {
  return `${path}.oldbin`;
}

/** A count another process sent: a safe non-negative integer, or null for anything else. */
export function asCount(v: unknown): number | null {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : null;
}

/** The longest reason for a failed start a worker sends (the master keeps no more of it). */
export const START_ERROR_CHARS = 600;

/** Text another process sent, as one line of printable characters: it cannot start a line of a log. */
export function printable(text: string): string {
  return text.replace(/[\x00-\x1f\x7f\u2028\u2029]+/g, ' ');
}

/** One inherited listening socket: the fd number in the receiving process and its address key. */
export interface FdDescription {
  fd: number;
  name: string;
  key: string;
  /** Passed by systemd: its FileDescriptorName= may match a listen's name=. */
  activated?: boolean;
  /** Position in a reuseport group, kept across an upgrade. */
  index?: number;
}

/** TSM_WORKER: everything a Node worker needs to know about itself. */
export interface WorkerEnv {
  app: string;
  generation: number;
  id: number;
  masterPid: number;
  listeners: FdDescription[];
  /** File the worker's fd 1 and 2 point at, reopened on USR1; null when not a file. */
  log: string | null;
  /** worker_shutdown_timeout: the deadline drain handlers are told. */
  shutdownTimeoutMs: number;
  /** worker_log_prefix: each line the app writes starts with time, stream, pid and slot. */
  logPrefix: boolean;
  /** The worker's end of its channel to the master (see channel.ts). */
  channelFd: number;
}

export const WORKER_ENV = 'TSM_WORKER';
/** Set by an old master for the new one it starts on USR2: the listening fds it hands over. */
export const INHERIT_ENV = 'TSMASTER_INHERIT';

export interface InheritEnv {
  parentPid: number;
  fds: FdDescription[];
  totals: Totals;
  /** The new master's first generation number: logs, status and metrics never go backwards. */
  generation: number;
}

/** Event-loop delay since the previous heartbeat (or scrape round), in seconds (perf_hooks.monitorEventLoopDelay). */
export interface LoopDelay {
  p50: number;
  p99: number;
  /** The longest: a single stall moves no percentile of a window of hundreds of samples. */
  max: number;
}

export type WorkerMessage =
  /** Its signal handlers are in place: from now on QUIT is a graceful stop, not a core dump. */
  | { t: 'hello' }
  | { t: 'ready' }
  /** It could not start: why, in one line (worker/start-error.ts); it exits 1 next. */
  | { t: 'failed'; error: string }
  /** Its word only: the master takes RSS from the kernel and bounds how fast `requests` grows. */
  | { t: 'pong'; seq: number; connections: number; requests: number; heapUsed?: number; loopDelay?: LoopDelay; logLost?: number; logError?: string }
  /**
   * The app's prom-client metrics (Registry#getMetricsAsJSON), for the master to aggregate;
   * none and their size in `over` when they are longer than the `max` the master asked for;
   * `loopDelay` since the previous scrape round.
   */
  | { t: 'metrics'; seq: number; metrics: unknown[]; over?: number; loopDelay?: LoopDelay };

/** `max`: the longest metrics answer the master takes from this worker in this scrape. */
export type MasterToWorker = { t: 'ping'; seq: number } | { t: 'metrics'; seq: number; max: number };

/**
 * The longest line of each message a worker sends (channel.ts reads no more of it), but the
 * metrics answer: that one is taken only while a scrape waits for it, within its share of
 * the scrape's budget (metrics/master-metrics.ts).
 */
export const WORKER_MESSAGE_BYTES: Readonly<Record<Exclude<WorkerMessage['t'], 'metrics'>, number>> = { hello: 64, ready: 256, failed: 2048, pong: 1024 };
/** The longest line of each message a master sends its workers. */
export const MASTER_MESSAGE_BYTES: Readonly<Record<MasterToWorker['t'], number>> = { ping: 256, metrics: 256 };

/** The bound of a line of a type in `bytes`, or null when that is no type of it. */
export function boundOf(bytes: Readonly<Record<string, number>>, type: string): number | null {
  return Object.hasOwn(bytes, type) ? bytes[type]! : null;
}

/**
 * From a master to the process that started it and waits for the outcome: the `tsmaster`
 * launcher of a daemon, or the old master of a USR2 upgrade.
 */
export type ParentMessage =
  | { t: 'started'; pid: number }
  | { t: 'ready'; pid: number }
  /** A batched upgrade (worker_reload_batch): these slots of the new master are ready. */
  | { t: 'batch-ready'; pid: number; slots: number[]; step: number; steps: number }
  | { t: 'failed'; pid: number; lines: string[] };

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

/** The slots of a batch-ready message from the new master, as numbers that can be slots. */
export function batchSlots(msg: Extract<ParentMessage, { t: 'batch-ready' }>): number[] {
  return Array.isArray(msg.slots) ? msg.slots.filter((s): s is number => Number.isInteger(s) && s >= 0 && s < 1024) : [];
}
