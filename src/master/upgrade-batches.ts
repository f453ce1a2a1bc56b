// worker_reload_batch during a binary upgrade: the new master starts its workers a batch at a
// time, and the old master drains as many of its own for each batch that is ready, over the
// IPC channel between the two masters (both root's; the new one is the old one's child):
//
//     new master: batch k ready ── batch-ready{slots} ──> old master: drains those slots
//     new master: starts batch k+1 <── batch-drained ──── old master: their workers exited
//
// The last batch is not announced: the new master's `ready` ends the upgrade as before (the
// CLI's WINCH drains what the old master has left). A rollback at any point (the new master
// dies) gives the old master its full worker count back at once.
import { isObject, type ParentMessage } from '../protocol.js';
import type { Generation } from './generation.js';
import type { Master } from './master.js';
import { batchSize, slotRange } from './rollout.js';
import { maintainWorkerCount, slotState } from './supervise.js';

/** The new master's side: slots still to start, the batch under way. */
export interface IncomingBatches {
  batch: number;
  left: number[];
  moving: number[];
  step: number;
  steps: number;
  /** batch-ready was sent; the next batch waits for batch-drained. */
  waiting: boolean;
}

/** From the old master to the new one. */
export type OldMasterMessage = { t: 'batch-drained' };

/**
 * A new master's first generation: the slots of its first batch, or null for all of them
 * (no batch configured, or not started by an old master).
 */
export function firstBatch(m: Master): Set<number> | null {
  const workers = m.config.workerProcesses;
  const batch = m.oldMaster !== null && process.connected ? batchSize(m.config, workers) : null;
  if (!batch) return null;
  const steps = Math.ceil(workers / batch);
  m.incoming = { batch, left: slotRange(batch, workers), moving: slotRange(0, batch), step: 1, steps, waiting: false };
  process.on('message', (msg: unknown) => {
    if (isObject(msg) && msg.t === 'batch-drained') m.queue.push({ type: 'batch-drained' });
  });
  m.log.notice(`upgrade: batch 1 of ${steps}: starting slot(s) ${m.incoming.moving.join(', ')}`);
  return new Set(m.incoming.moving);
}

/** New master, a worker is ready: when its batch is, tell the old master (not for the last). */
export function onIncomingReady(m: Master, gen: Generation): void {
  const b = m.incoming;
  if (!b || b.waiting || gen.id !== m.firstGeneration) return;
  if (!b.moving.every((s) => slotState(m, gen.id, s) === 'ready')) return;
  b.waiting = true;
  m.log.notice(`upgrade: batch ${b.step} of ${b.steps} ready; the old master drains slot(s) ${b.moving.join(', ')}`);
  m.tellParent({ t: 'batch-ready', pid: process.pid, slots: b.moving, step: b.step, steps: b.steps });
}

/** New master: the old master's workers of the last batch have exited: start the next one. */
export function onBatchDrained(m: Master): void {
  const b = m.incoming;
  const gen = m.generations.get(m.firstGeneration);
  if (!b || !b.waiting || !gen) return;
  b.moving = b.left.splice(0, b.batch);
  b.step++;
  b.waiting = false;
  m.log.notice(`upgrade: batch ${b.step} of ${b.steps}: starting slot(s) ${b.moving.join(', ')}`);
  if (b.left.length === 0) {
    // The last batch: the generation is whole once it is ready, and `ready` ends the upgrade.
    gen.slots = null;
    m.incoming = null;
  } else {
    for (const s of b.moving) gen.slots?.add(s);
  }
  maintainWorkerCount(m, gen);
}

/** Old master, a batched upgrade: the serving generation gives up these slots to the new master. */
export function giveUpSlots(m: Master, slots: number[]): void {
  const up = m.upgrade;
  const gen = m.generations.get(m.current);
  if (!up || !gen) return;
  gen.slots ??= new Set(slotRange(0, gen.target));
  for (const s of slots) gen.slots.delete(s);
  up.draining = slots;
}

/** The slots of a batch-ready message from the new master, as numbers that can be slots. */
export function batchSlots(msg: Extract<ParentMessage, { t: 'batch-ready' }>): number[] {
  return Array.isArray(msg.slots) ? msg.slots.filter((s): s is number => Number.isInteger(s) && s >= 0 && s < 1024) : [];
}

/** Old master, after a worker exit: once the batch's workers are gone, tell the new master. */
export function checkBatchDrained(m: Master): void {
  const up = m.upgrade;
  if (!up?.draining) return;
  const slots = up.draining;
  if (slots.some((s) => slotState(m, m.current, s) !== 'none')) return;
  up.draining = null;
  if (up.child.connected) up.child.send({ t: 'batch-drained' } satisfies OldMasterMessage, () => undefined);
}

/** Old master, rollback: every slot is this master's again, started at once. */
export function restoreAllSlots(m: Master): void {
  const gen = m.generations.get(m.current);
  if (!gen || gen.slots === null) return;
  gen.slots = null;
  if (m.state === 'running') maintainWorkerCount(m, gen);
}
