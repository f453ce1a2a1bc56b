// How a reload starts and ends, decided from the model as plans.ts's are. It starts from what
// preparing it gave (prepare.ts: the config read, the sockets bound, the logs opened, or why
// not); its generation takes over once whole, or it fails and the master is back where the
// reload started (a batched reload that fails part-way first moves its slots back, batch by
// batch). Tested in-process in test/plans.test.ts.
import { batchSize, batchesStatus, nextBatch, openBatches, rolloutText, slotRange, type Batches } from './batches.js';
import type { Effect } from './effects.js';
import type { Generation } from './generation.js';
import { generationOf, workersOf, type Model } from './model.js';
import { clearTimers, stopGeneration, stopWorker } from './stops.js';

/** A reload's generation, prepared; or why there is none (`bound`: sockets may have been bound on the way). */
export type PreparedReload = { gen: Generation } | { error: string; bound: boolean };

/** Close what a reload that failed before it started had bound, and reuseport members only it was to serve. */
function unbind(m: Model): Effect[] {
  const keep = new Set(m.generations.flatMap((g) => g.sockets.map((s) => s.key)));
  if (m.metricsKey) keep.add(m.metricsKey);
  return [{ do: 'close-sockets', which: { notIn: [...keep] } }, ...releaseUnserved(m, null)];
}

/**
 * After a failed reload or count change: reuseport members that only the failed generation
 * (null: any) was to serve would queue connections no worker accepts, so they are closed
 * (queued connections on them are reset; serving groups are never shrunk).
 */
function releaseUnserved(m: Model, failed: number | null): Effect[] {
  const groups = failed === null ? m.socketGroups : (generationOf(m, failed)?.sockets ?? []);
  const fx: Effect[] = [];
  for (const group of groups) {
    if (!group.reuseport) continue;
    let keep = 0;
    for (const g of m.generations) if (g.id !== failed) keep = Math.max(keep, g.groupSizes[group.key] ?? 0);
    if (keep > 0) fx.push({ do: 'close-sockets', which: { trim: group.key, keep } });
  }
  return fx;
}

/**
 * The next batch of `b` under way (none left: null): the taker, which runs `has` now, may
 * run its slots too; going forward, each batch gets ready_timeout of its own.
 */
export function startBatch(b: Batches, has: number[], readyTimeoutMs: number): Effect[] | null {
  const next = nextBatch(b);
  if (!next) return null;
  return [
    { do: 'set', set: { batches: next } },
    { do: 'set-generation', generation: next.taker, set: { slots: [...has, ...next.moving] } },
    { do: 'log', level: 'notice', line: `${next.back ? 'rollback' : 'reload'}: batch ${next.step} of ${next.steps}: generation ${next.taker} starts slot(s) ${next.moving.join(', ')}` },
    ...(next.back ? [] : [{ do: 'timer', timer: { kind: 'ready', generation: next.taker }, ms: readyTimeoutMs } satisfies Effect]),
  ];
}

/**
 * A generation from the prepared config beside the serving one; it takes over once all its
 * workers are ready (settle starts them). Nothing was prepared: the serving generation
 * serves on, as if there had been no reload.
 */
export function planReloadStart(m: Model, p: PreparedReload): Effect[] {
  if ('error' in p) return [...(p.bound ? unbind(m) : []), { do: 'tell', outcome: { event: 'reload-failed', reason: p.error, serving: m.current } }];
  const config = p.gen.config;
  const old = generationOf(m, m.current);
  const batch = old && old.target > 0 ? batchSize(config, Math.max(old.target, config.workerProcesses)) : null;
  const id = m.nextGeneration;
  const fx: Effect[] = [
    // Committed: from here a worker that cannot start fails the reload like one that exits.
    { do: 'set', set: { phase: { name: 'reloading', returnTo: m.phase.name === 'draining' ? 'draining' : 'running' } } },
    { do: 'add-generation', gen: p.gen, id, role: 'pending', slots: batch ? [] : null },
    ...(p.gen.logAlert ? [{ do: 'log', level: 'alert', line: p.gen.logAlert } satisfies Effect] : []),
    { do: 'timer', timer: { kind: 'ready', generation: id }, ms: config.readyTimeoutMs },
    { do: 'log', level: 'notice', line: `reload: generation ${id} starting with ${config.workerProcesses} worker(s)${batch ? `, ${batch} at a time` : ''}` },
  ];
  if (!batch || !old) return fx;
  const b = openBatches(old.id, id, batch, slotRange(0, Math.max(old.target, config.workerProcesses)));
  return [
    ...fx,
    { do: 'set-generation', generation: old.id, set: { slots: slotRange(0, old.target) } },
    ...startBatch(b, [], config.readyTimeoutMs)!,
  ];
}

/** A reload's generation is whole: it serves, the others stop. */
export function planReloadFinished(m: Model, generation: number): Effect[] {
  return [
    { do: 'set-generation', generation, set: { role: 'active', slots: null } },
    { do: 'set', set: { batches: null } },
    { do: 'set-current', generation },
    ...m.generations.filter((g) => g.id !== generation && g.role !== 'retiring').flatMap((g) => stopGeneration(m, g.id)),
    { do: 'set', set: { phase: { name: 'running' } } },
    // Last, and on its own: the switch above is whole even if the new log's stdio cannot follow.
    { do: 'take-over-log', generation },
    { do: 'tell', outcome: { event: 'reload-finished', generation, previous: m.current } },
  ];
}

/** A reload's generation failed (`reason`): back, or first the slots a batched reload moved. */
export function planReloadFailed(m: Model, generation: number, reason: string): Effect[] {
  const b = m.batches;
  if (b && !b.back && b.taker === generation && b.giver !== 'old-master') return planRollBack(m, generation, b, reason);
  return planReloadSettled(m, generation, reason);
}

/**
 * A batched reload failed part-way: the new workers that do not serve yet stop now, and the
 * old generation takes its slots back batch by batch, each new worker stopping once the old
 * one for its slot is ready. The reload's outcome is told when that is done.
 */
function planRollBack(m: Model, generation: number, b: Batches, reason: string): Effect[] {
  const why = `${reason} (in ${rolloutText(batchesStatus(b))})`;
  const gen = generationOf(m, generation);
  const old = typeof b.giver === 'number' ? generationOf(m, b.giver) : undefined;
  const fx: Effect[] = [
    { do: 'set-generation', generation, set: { role: 'retiring' } },
    ...clearTimers(generation),
    ...workersOf(m, generation)
      .filter((w) => w.state !== 'ready')
      .flatMap((w) => stopWorker(m, w, 'graceful')),
  ];
  if (!old || !gen) return [...fx, { do: 'set', set: { batches: null } }, ...planReloadSettled(m, generation, why)];
  const has = new Set(old.slots ?? slotRange(0, old.target));
  const back = openBatches(generation, old.id, b.batch, slotRange(0, Math.max(gen.target, old.target)).filter((s) => !has.has(s)), true, why);
  return [...fx, { do: 'tell', outcome: { event: 'reload-rolling-back', reason: why, serving: old.id, batch: b.batch } }, ...(startBatch(back, [...has], old.config.readyTimeoutMs) ?? [{ do: 'set', set: { batches: back } } satisfies Effect])];
}

/**
 * The reload has failed (`failed`: its generation, if any is left, which stops): back to
 * where it started, unless a stop came meanwhile, and told.
 */
export function planReloadSettled(m: Model, failed: number | null, reason: string): Effect[] {
  return [
    // Before the generation may be forgotten: which reuseport members only it was to serve.
    ...releaseUnserved(m, failed),
    ...(failed === null ? [] : stopGeneration(m, failed)),
    ...(m.phase.name === 'reloading' ? [{ do: 'set', set: { phase: { name: m.phase.returnTo } } } satisfies Effect] : []),
    { do: 'tell', outcome: { event: 'reload-failed', reason, serving: m.current } },
  ];
}
