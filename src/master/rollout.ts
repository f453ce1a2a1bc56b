// worker_reload_batch: a reload that replaces workers a few at a time instead of doubling
// them. Worker slots move from the generation that gives them up to the one that takes them,
// one batch at a time: the taker's workers for the batch start and become ready, then the
// giver's workers in those slots drain and exit, then the next batch starts. So at most
// worker_processes + batch workers are alive, and never fewer than worker_processes ready
// ones serve (as PM2's one-at-a-time reload, without its dropped requests).
//
// A reload that fails part-way moves the slots back the same way (the old generation takes
// them back batch by batch; each new worker stops once the old one for its slot is ready),
// so the rule on failure is: the old code serves again on every slot, with the same bounds.
//
//     replaceGeneration ── taker.slots = {} ──> batch k: taker starts its workers
//        ^                                        │ all ready
//        │ next batch                             v
//        └──────── giver's workers exited <── giver drains the batch's slots
//     last batch ready: finishReload (forward), or the reload is told it failed (back)
import type { Config } from '../config/types.js';
import type { RolloutStatus } from '../control/protocol.js';
import type { Generation } from './generation.js';

export interface Rollout {
  /** The generation giving up its slots, and the one taking them. */
  from: number;
  to: number;
  batch: number;
  /** Slots still to move, in order. */
  left: number[];
  /** The batch under way; `draining` once the taker's workers for it are ready. */
  moving: number[];
  draining: boolean;
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

/** What the rollout needs to do next; effects are passed in, so the decisions stay testable. */
export interface RolloutEffects {
  /** Start the taker's missing workers (its `slots` say which). */
  spawn(gen: Generation): void;
  /** Gracefully stop the giver's workers in these slots. */
  drain(gen: Generation, slots: number[]): void;
  /** Arm the taker's ready timeout for this batch. */
  armReadyTimer(gen: Generation): void;
  log(msg: string): void;
  /** Every slot has moved. */
  finished(r: Rollout): void;
}

/**
 * Plan moving every slot of `from` (and any new one of `to`) to `to`; `register` keeps the
 * plan before its first batch starts (which may already be its last).
 */
export function startRollout(from: Generation, to: Generation, batch: number, fx: RolloutEffects, register: (r: Rollout) => void, back = false, reason = ''): void {
  const all = slotRange(0, Math.max(from.target, to.target));
  if (!back) {
    to.slots = new Set();
    from.slots = new Set(slotRange(0, from.target));
  }
  const left = all.filter((s) => !to.slots!.has(s));
  const r: Rollout = { from: from.id, to: to.id, batch, left, moving: [], draining: false, step: 0, steps: Math.ceil(left.length / batch), back, reason };
  register(r);
  nextBatch(r, to, fx);
}

function nextBatch(r: Rollout, to: Generation, fx: RolloutEffects): void {
  if (r.left.length === 0) {
    fx.finished(r);
    return;
  }
  r.moving = r.left.splice(0, r.batch);
  r.draining = false;
  r.step++;
  for (const s of r.moving) to.slots!.add(s);
  fx.log(`${r.back ? 'rollback' : 'reload'}: batch ${r.step} of ${r.steps}: generation ${to.id} starts slot(s) ${r.moving.join(', ')}`);
  if (!r.back) fx.armReadyTimer(to);
  fx.spawn(to);
}

/**
 * A worker became ready or exited: move on if the batch under way is through its step.
 * `from` is undefined once the giver has no worker left at all.
 */
export function advanceRollout(
  r: Rollout,
  from: Generation | undefined,
  to: Generation,
  alive: (generation: number, slot: number) => 'ready' | 'other' | 'none',
  fx: RolloutEffects,
): void {
  if (!r.draining) {
    const needed = r.moving.filter((s) => s < to.target);
    if (!needed.every((s) => alive(to.id, s) === 'ready')) return;
    // The last batch of a reload: the taker is whole, and the reload finishes as one that was not batched.
    if (!r.back && r.left.length === 0) return;
    for (const s of r.moving) from?.slots?.delete(s);
    r.draining = true;
    fx.log(`${r.back ? 'rollback' : 'reload'}: batch ${r.step} of ${r.steps} ready; generation ${r.from} drains slot(s) ${r.moving.join(', ')}`);
    if (from) fx.drain(from, r.moving);
  }
  if (r.moving.some((s) => alive(r.from, s) !== 'none')) return;
  nextBatch(r, to, fx);
}

/** What status and STATUS= show of a rollout. */
export function rolloutStatus(r: Rollout): RolloutStatus {
  return { batch: r.step, of: r.steps, back: r.back };
}

/** `batch 2 of 4`, or `rollback batch 1 of 2`. */
export function rolloutText(r: RolloutStatus): string {
  return `${r.back ? 'rollback ' : ''}batch ${r.batch} of ${r.of}`;
}
