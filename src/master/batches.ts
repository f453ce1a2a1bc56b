// worker_reload_batch: the one batch machine of reloads and upgrades. Worker slots move from
// a giver to a taker generation a batch at a time: the taker's workers for the batch start
// and become ready, then the giver's workers in those slots drain and exit, then the next
// batch starts. So at most worker_processes + batch workers are alive, and never fewer than
// worker_processes ready ones serve (as PM2's one-at-a-time reload, without its dropped
// requests). The giver is one of this master's generations (a batched reload, or the
// rollback of one that failed part-way: the old generation takes its slots back the same
// way), or the old master of an upgrade (this is the new master: the old one drains each
// batch over the IPC channel between the two and says when it is done).
//
//     start ── batch k: taker starts its workers ── all ready ──> giver drains the slots
//       ^                                                              │ exited (own giver)
//       └──────────── next batch <──────────────────────────────────────┘ or batch-drained
//     last batch: the taker is whole (reload finished, new master ready), or, moving back,
//     the reload is told it failed
//
// A value and pure functions: batch-plans.ts turns them into effects.
import type { Config } from '../config/types.js';
import type { RolloutStatus } from '../control/protocol.js';

export interface Batches {
  /** The generation giving up its slots, or the old master of an upgrade. */
  giver: number | 'old-master';
  /** The generation taking them. */
  taker: number;
  batch: number;
  /** Slots still to move, in order. */
  left: number[];
  /** The batch under way. */
  moving: number[];
  /** `starting`: the taker's workers for it start; `draining`: the giver's in those slots go. */
  stage: 'starting' | 'draining';
  /** Batches started, and in all: `batch k of m` in the log and in status. */
  step: number;
  steps: number;
  /** A failed reload moving the slots back; `reason` says why it failed. */
  back: boolean;
  reason: string;
}

/** Workers replaced at a time for `workers` workers; null when all go at once. */
export function batchSize(config: Config, workers: number): number | null {
  const b = config.workerReloadBatch;
  if (!b) return null;
  const n = 'count' in b ? b.count : Math.ceil((workers * b.percent) / 100);
  return n >= workers ? null : Math.max(1, n);
}

/** Slots `from` to `to` - 1. */
export function slotRange(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}

/** Moving `slots` from giver to taker, `batch` at a time; its first batch has not started (nextBatch). */
export function openBatches(giver: Batches['giver'], taker: number, batch: number, slots: number[], back = false, reason = ''): Batches {
  return { giver, taker, batch, left: slots, moving: [], stage: 'starting', step: 0, steps: Math.ceil(slots.length / batch), back, reason };
}

/** The next batch under way, or null when every slot has moved. */
export function nextBatch(b: Batches): Batches | null {
  if (b.left.length === 0) return null;
  return { ...b, moving: b.left.slice(0, b.batch), left: b.left.slice(b.batch), stage: 'starting', step: b.step + 1 };
}

/** What status and STATUS= show of the batches of a reload. */
export function batchesStatus(b: Batches): RolloutStatus {
  return { batch: b.step, of: b.steps, back: b.back };
}

/** `batch 2 of 4`, or `rollback batch 1 of 2`. */
export function rolloutText(r: RolloutStatus): string {
  return `${r.back ? 'rollback ' : ''}batch ${r.batch} of ${r.of}`;
}
