// The control socket speaks line-delimited JSON: one request per line, one answer line per
// request, in order. Kept apart from the server so the CLI can share the types.

import type { UpgradePhase } from '../master/phase.js';
import type { WorkerState } from '../master/process-table.js';
import type { ReloadOutcome, UpgradeEnd, UpgradeOutcome } from '../outcomes.js';
import { asCount, type Totals } from '../protocol.js';

export type { Totals, WorkerState };

export type ControlRequest =
  | { cmd: 'status' }
  | { cmd: 'reload' }
  /** The whole binary upgrade, done by the master itself; answered with each outcome as it happens. */
  | { cmd: 'upgrade' }
  | { cmd: 'ping' }
  /** From the old master of an upgrade, as it exits: what its workers did after USR2. */
  | { cmd: 'handover'; totals: Totals };

export interface WorkerStatus {
  pid: number;
  generation: number;
  slot: number;
  state: WorkerState;
  uptimeMs: number;
  /** Restarts of this worker's slot in its generation. */
  restarts: number;
  /**
   * CPU % (100 = one core): since the previous status request when that was less than a
   * minute ago, else since the worker started (as ps). null when the process is gone.
   */
  cpu: number | null;
  /** Resident set size in bytes (pidusage); null when the process is gone. */
  rss: number | null;
  /** From the worker's last heartbeat (every second). */
  connections: number;
  requests: number;
  /** Event-loop delay p50 and p99 in ms over the last heartbeat interval; null for exec workers. */
  loopDelayMs: { p50: number; p99: number } | null;
}

/**
 * The upgrade's phase (phase.ts): `none`, with the last rollback and the last ignored USR2 if
 * any (`at` in ms since the epoch); else `partner` is the other master: the new one this master
 * started (starting, ready, killing), or the old one that started this one (new).
 */
export type UpgradeStatus =
  | { phase: 'none'; lastRollback?: { newPid: number; reason: string; at: number }; lastRefusal?: { reason: string; at: number } }
  | { phase: Exclude<UpgradePhase, 'none'>; partner: number };

/** Batch `batch` of `of` of a batched reload; `back`: moving the slots back after a failure. */
export interface RolloutStatus {
  batch: number;
  of: number;
  back: boolean;
}

export interface MasterStatus {
  pid: number;
  generation: number;
  state: string;
  /** A batched reload (worker_reload_batch) under way, or its rollback. */
  rollout: RolloutStatus | null;
  uptimeMs: number;
  upgrade: UpgradeStatus;
  /** Since the first master of this line started: handed to each new master on upgrade. */
  totals: Totals;
  workers: WorkerStatus[];
}

export type ControlResponse =
  | { ok: true; status: MasterStatus }
  /** A reload's answer carries its outcome (outcomes.ts); `error` is the outcome's log line. */
  | { ok: true; reload: 'finished'; outcome: ReloadOutcome }
  /** An upgrade under way: one line per outcome (`more`), then one line with the outcome that ends it. */
  | { ok: true; more: true; outcome: UpgradeOutcome }
  | { ok: true; upgrade: 'finished'; outcome: UpgradeEnd }
  | { ok: true; pong: number }
  | { ok: true; handover: 'accepted' }
  | { ok: false; error: string; outcome?: ReloadOutcome | UpgradeEnd };

/** Longest request line accepted; a longer one is answered with an error and the connection closed. */
export const MAX_LINE = 64 * 1024;

/** A request line as a request, or why it is not one. */
export function parseRequest(line: string): ControlRequest | string {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return 'malformed JSON';
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'a request is a JSON object with "cmd"';
  const req = v as { cmd?: unknown; totals?: unknown };
  switch (req.cmd) {
    case 'status':
    case 'reload':
    case 'upgrade':
    case 'ping':
      return { cmd: req.cmd };
    case 'handover': {
      const t = req.totals as Partial<Totals> | undefined;
      if (!t || asCount(t.requests) === null || asCount(t.restarts) === null) return 'handover needs totals {requests, restarts}';
      return { cmd: 'handover', totals: { requests: t.requests!, restarts: t.restarts! } };
    }
    default:
      return `unknown command ${JSON.stringify(req.cmd ?? null)}`.slice(0, 200);
  }
}
