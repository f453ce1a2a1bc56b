import type { ChildProcess } from 'node:child_process';
import type { Channel } from '../channel.js';
import type { LoopDelay } from '../protocol.js';

export const WORKER_STATES = ['starting', 'ready', 'draining'] as const;
export type WorkerState = (typeof WORKER_STATES)[number];

/** Why supervision replaced a worker (the `reason` label of tsmaster_worker_restarts_total). */
export const RESTART_REASONS = ['crash', 'heartbeat', 'memory', 'ready_timeout'] as const;
export type RestartReason = (typeof RESTART_REASONS)[number];

/** One worker process. Every decision about children reads and writes this table. */
export interface WorkerRecord {
  pid: number;
  /** Index within its generation: TSM worker id, CPU affinity. */
  slot: number;
  generation: number;
  state: WorkerState;
  child: ChildProcess;
  /** A Node worker's channel (heartbeats, readiness, metrics); null for exec workers. */
  channel: Channel | null;
  /** An exec worker: it leads its own process group, which is signalled and ends with it. */
  group: boolean;
  startedAt: number;
  readyAt: number | null;
  lastPong: number;
  connections: number;
  requests: number;
  rss: number;
  /** Node workers, from the last heartbeat: V8 heap in use and event-loop delay. */
  heapUsed: number | null;
  loopDelay: LoopDelay | null;
  /** The same since the previous metrics scrape round, from its answer to that round: what the gauges show. */
  scrapeLoopDelay: LoopDelay | null;
  /** RSS when it became ready: what a fresh worker of this app needs. */
  startRss: number | null;
  /** Being replaced (memory limit): a new worker takes its slot once ready. */
  recycling: boolean;
  /**
   * A Node worker whose QUIT handler is in place (it said hello). Before that a QUIT would
   * kill it with a core dump; it has served nothing yet, so it is stopped with TERM instead.
   */
  handlers: boolean;
  /** An exec worker that sent anything on NOTIFY_SOCKET: it is ready only on READY=1. */
  notified: boolean;
  /** Killed by the master (hung, not ready in time): its exit is a failure, not a surprise. */
  killedFor: string | null;
  /** What killedFor counts as, when the master killed it. */
  killReason: RestartReason | null;
  /** When a stop that was asked for becomes a KILL (ms since the epoch). */
  stopDeadline: number | null;
  /** A Node worker that could not start: why, as it says (one printable line, bounded). */
  startError: string | null;
}

export class ProcessTable {
  private readonly byPid = new Map<number, WorkerRecord>();

  add(w: WorkerRecord): void {
    this.byPid.set(w.pid, w);
  }

  get(pid: number): WorkerRecord | undefined {
    return this.byPid.get(pid);
  }

  remove(pid: number): WorkerRecord | undefined {
    const w = this.byPid.get(pid);
    this.byPid.delete(pid);
    w?.channel?.close();
    return w;
  }

  all(): WorkerRecord[] {
    return [...this.byPid.values()];
  }

  ofGeneration(generation: number): WorkerRecord[] {
    return this.all().filter((w) => w.generation === generation);
  }

  /** Workers that count toward a generation's worker_processes. */
  serving(generation: number): WorkerRecord[] {
    return this.ofGeneration(generation).filter((w) => w.state !== 'draining' && !w.recycling);
  }

  get size(): number {
    return this.byPid.size;
  }
}
