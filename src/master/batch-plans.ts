// The batch machine (batches.ts) as effects: its first batch when a new master of a batched
// upgrade starts, each step settle.ts finds it ready for, and the old master's word that it
// drained a batch. The giver is one of this master's generations or the old master.
import { batchSize, nextBatch, openBatches, slotRange, type Batches } from './batches.js';
import type { Effect } from './effects.js';
import { generationOf, slotState, workersOf, type Model } from './model.js';
import { planReloadSettled, startBatch } from './reload-plans.js';
import { stopWorker } from './stops.js';

/**
 * A new master's first generation, numbered `id`: the batches of a batched upgrade (the old
 * master drains as many of its own for each), or none (no batch configured, no old master
 * waiting on the channel): then all its slots start at once.
 */
export function planIncoming(m: Model, id: number): { slots: number[] | null; effects: Effect[] } {
  const workers = m.config.workerProcesses;
  const batch = m.oldMaster !== null && m.parentListens ? batchSize(m.config, workers) : null;
  if (!batch) return { slots: null, effects: [] };
  const b = nextBatch(openBatches('old-master', id, batch, slotRange(0, workers)))!;
  return {
    slots: b.moving,
    effects: [{ do: 'set', set: { batches: b } }, { do: 'log', level: 'notice', line: `upgrade: batch 1 of ${b.steps}: starting slot(s) ${b.moving.join(', ')}` }],
  };
}

/** The next step of the batches under way, if their batch is through the one before. */
export function planBatches(m: Model): Effect[] {
  const b = m.batches;
  if (!b) return [];
  const taker = generationOf(m, b.taker);
  if (!taker) return [{ do: 'set', set: { batches: null } }];
  if (b.stage === 'starting') {
    const needed = b.moving.filter((s) => s < taker.target);
    if (!needed.every((s) => slotState(m, taker.id, s) === 'ready')) return [];
    // The last batch going forward: the taker is whole, and that ends it as an unbatched one would.
    if (!b.back && b.left.length === 0) return [];
    const drained: Batches = { ...b, stage: 'draining' };
    if (b.giver === 'old-master') {
      return [
        { do: 'set', set: { batches: drained } },
        { do: 'log', level: 'notice', line: `upgrade: batch ${b.step} of ${b.steps} ready; the old master drains slot(s) ${b.moving.join(', ')}` },
        { do: 'send', to: 'parent', msg: { t: 'batch-ready', pid: m.pid, slots: b.moving, step: b.step, steps: b.steps } },
      ];
    }
    const giver = generationOf(m, b.giver);
    return [
      { do: 'set', set: { batches: drained } },
      ...(giver?.slots ? [{ do: 'set-generation', generation: giver.id, set: { slots: giver.slots.filter((s) => !b.moving.includes(s)) } } satisfies Effect] : []),
      { do: 'log', level: 'notice', line: `${b.back ? 'rollback' : 'reload'}: batch ${b.step} of ${b.steps} ready; generation ${b.giver} drains slot(s) ${b.moving.join(', ')}` },
      ...(giver ? workersOf(m, giver.id).filter((w) => b.moving.includes(w.slot)).flatMap((w) => stopWorker(m, w, 'graceful')) : []),
    ];
  }
  // The old master says when it has drained a batch (planBatchDrained).
  if (b.giver === 'old-master' || b.moving.some((s) => slotState(m, b.giver, s) !== 'none')) return [];
  return startBatch(b, taker.slots ?? [], taker.config.readyTimeoutMs) ?? finished(m, b);
}

/** Every slot has moved: forward, the taker is whole; back, the reload has failed now. */
function finished(m: Model, b: Batches): Effect[] {
  const fx: Effect[] = [{ do: 'set', set: { batches: null } }, { do: 'set-generation', generation: b.taker, set: { slots: null } }];
  if (!b.back || b.giver === 'old-master') return fx;
  return [...fx, ...planReloadSettled(m, generationOf(m, b.giver) ? b.giver : null, b.reason)];
}

/** New master: the old master's workers of the last batch have exited: the next batch starts. */
export function planBatchDrained(m: Model): Effect[] {
  const b = m.batches;
  if (!b || b.giver !== 'old-master' || b.stage !== 'draining') return [];
  const taker = generationOf(m, b.taker);
  const next = nextBatch(b);
  if (!taker || !next) return [];
  const line: Effect = { do: 'log', level: 'notice', line: `upgrade: batch ${next.step} of ${next.steps}: starting slot(s) ${next.moving.join(', ')}` };
  // The last batch: the generation is whole once it is ready, and `ready` ends the upgrade.
  if (next.left.length === 0) return [line, { do: 'set', set: { batches: null } }, { do: 'set-generation', generation: taker.id, set: { slots: null } }];
  return [line, { do: 'set', set: { batches: next } }, { do: 'set-generation', generation: taker.id, set: { slots: [...(taker.slots ?? []), ...next.moving] } }];
}

/** Old master of a batched upgrade: once the slots it gave up are empty, the new master hears it. */
export function planGivenUpDrained(m: Model): Effect[] {
  const slots = m.upgrade?.draining;
  if (!slots || slots.some((s) => slotState(m, m.current, s) !== 'none')) return [];
  return [{ do: 'upgrade-progress', set: { draining: null } }, { do: 'send', to: 'new-master', msg: { t: 'batch-drained' } }];
}
