// Typed result of reading a tsmaster.conf(5) file. Produced by loadConfig() in ./index.ts.

/** nginx's levels, lowest first: the one list the parser, the logger and the CLI use. */
export const LOG_LEVELS = ['debug', 'info', 'notice', 'warn', 'error', 'crit', 'alert', 'emerg'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Where a directive was written: an absolute file path (or "command line" for -g) and a 1-based line. */
export interface Source {
  file: string;
  line: number;
}

/**
 * One `listen` directive.
 * `key` is the canonical address used to match sockets across reloads and upgrades:
 * 'tcp:127.0.0.1:8080', 'tcp:[::1]:8080', 'tcp:0.0.0.0:8080', 'unix:/abs/path'.
 * `name` is the `name=` parameter, or by default the key without its 'tcp:' prefix.
 */
export type ListenSpec =
  | {
      kind: 'tcp';
      host: string;
      port: number;
      ipv6Only: boolean;
      backlog: number;
      reuseport: boolean;
      name: string;
      key: string;
      source: Source;
    }
  | {
      kind: 'unix';
      path: string;
      mode: number | null;
      backlog: number;
      reuseport: false;
      name: string;
      key: string;
      source: Source;
    };

export type WorkerSpec = { kind: 'app'; path: string } | { kind: 'exec'; argv: string[] };

export interface Config {
  /** Absolute path of the main configuration file (or the source name given to parseConfigText). */
  file: string;
  /** Absolute prefix directory; relative paths were resolved against it. */
  prefix: string;
  pid: string;
  errorLog: { path: string | 'stderr'; level: LogLevel };
  daemon: boolean;
  /** Workers run as this user; `home` is its passwd home, their HOME. */
  user: { name: string; uid: number; gid: number; home: string } | null;
  /** `auto` is already resolved to os.availableParallelism() (at most 1024). */
  workerProcesses: number;
  workerShutdownTimeoutMs: number;
  /** What SIGTERM does: 'fast' as nginx, or 'graceful' (QUIT's stop) for orchestrators. */
  termShutdown: 'fast' | 'graceful';
  /** The master's own HTTP socket for /metrics, /healthz, /readyz; null = off. */
  metricsListen: ListenSpec | null;
  /** worker_reload_batch: workers replaced at a time on a reload; null = all at once. */
  workerReloadBatch: { count: number } | { percent: number } | null;
  /** null = off */
  workerHeartbeatTimeoutMs: number | null;
  workerRlimitNofile: number | null;
  /**
   * CPU lists for worker slots, or null when no affinity is configured. Worker i uses
   * entry `i % workerCpuAffinity.length`: the array is at least workerProcesses long and its
   * length is a multiple of the cycle (the number of masks, or the number of usable CPUs for
   * `auto`), so the rule also holds for workers added later with TTIN.
   */
  workerCpuAffinity: number[][] | null;
  workerPriority: number | null;
  /** bytes; null = off */
  workerMaxMemory: number | null;
  /** file path, 'stderr', or null = off (/dev/null) */
  workerLog: string | 'stderr' | null;
  workerStopSignal: NodeJS.Signals;
  /** worker_inspect: the inspector port of slot 0 (slot N: port + N), or null. */
  workerInspect: number | null;
  /** worker_source_maps: Node workers run with --enable-source-maps. */
  workerSourceMaps: boolean;
  workerLogPrefix: boolean;
  readyTimeoutMs: number;
  /** The complete environment workers get (resolved from process.env, the defaults and `env`). */
  env: Record<string, string>;
  listens: ListenSpec[];
  worker: WorkerSpec;
  /** null = off */
  controlSocket: string | null;
}
