// How a reload ends, decided from a snapshot as plans.ts's are: its generation takes over
// once whole, or it fails and the master is back where the reload started (a batched reload
// that fails part-way first moves its slots back: rollout.ts). Made by execute.ts; tested
// in-process in test/plans.test.ts.
import type { Effect } from './plans.js';
import type { Phase } from './phase.js';

export interface ReloadView {
  /** The reload's generation. */
  generation: number;
  /** The generation serving until the reload finishes. */
  current: number;
  phase: Phase;
  /** A batched reload under way (rollout.ts), forward or moving its slots back. */
  rollout: { to: number; back: boolean } | null;
  /** The generations beside it that still serve (not retiring). */
  others: number[];
}

export function planReloadFinished(v: ReloadView): Effect[] {
  return [
    { do: 'activate-generation', generation: v.generation },
    ...v.others.map((generation): Effect => ({ do: 'stop-generation', generation })),
    { do: 'set-phase', phase: { name: 'running' } },
    // Last, and on its own: the switch above is whole even if the new log's stdio cannot follow.
    { do: 'take-over-log', generation: v.generation },
    { do: 'tell', outcome: { event: 'reload-finished', generation: v.generation, previous: v.current } },
  ];
}

export function planReloadFailed(v: ReloadView, reason: string): Effect[] {
  // A batched reload that failed part-way moves its slots back first; it is told when that is done.
  if (v.rollout && !v.rollout.back && v.rollout.to === v.generation) return [{ do: 'roll-back', generation: v.generation, reason }];
  return planReloadSettled(v, v.generation, reason);
}

/**
 * The reload has failed (`failed`: its generation, if any is left, which stops): back to
 * where it started, unless a stop came meanwhile, and told.
 */
export function planReloadSettled(v: Pick<ReloadView, 'current' | 'phase'>, failed: number | null, reason: string): Effect[] {
  return [
    // Before the generation may be forgotten: which reuseport members only it was to serve.
    { do: 'release-unserved', generation: failed },
    ...(failed === null ? [] : [{ do: 'stop-generation', generation: failed } satisfies Effect]),
    ...(v.phase.name === 'reloading' ? [{ do: 'set-phase', phase: { name: v.phase.returnTo } } satisfies Effect] : []),
    { do: 'tell', outcome: { event: 'reload-failed', reason, serving: v.current } },
  ];
}
