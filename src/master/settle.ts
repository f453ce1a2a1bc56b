// After each event, as nginx checks its flags after each wake-up: the master looks at itself
// in a fixed order and does the first thing it finds to do; Master.handle makes it and asks
// again, until there is nothing left. The order is the documentation:
//
//   1. the old master that started this one is gone: what it left behind goes, and this
//      master, ready, is systemd's main process now
//   2. the batches under way take their next step (batch-plans.ts)
//   3. the old master of a batched upgrade: a batch it gave up has drained
//   4. a listen only retiring generations have closes; a retired generation without
//      workers is forgotten
//   5. a generation is whole: a reload finishes, a master is ready
//   6. a generation misses a worker in a slot it may run: one starts
//   7. an upgrade a control client asked for whole, its new master ready: drain, then stop
//   8. stopping and no worker left: exit
import { planBatches, planGivenUpDrained } from './batch-plans.js';
import type { Effect } from './effects.js';
import { servingOf, workersOf, type Model } from './model.js';
import { planCommand } from './plans.js';
import { planGenerationReady } from './worker-plans.js';

function oldMasterGone(m: Model): Effect[] {
  const old = m.oldMaster;
  if (!old || old.alive) return [];
  // What it could not remove itself (killed with SIGKILL), unless this master is in an upgrade of its own and uses those names.
  if (!old.forgotten) return [{ do: 'forget-old-master', clean: m.upgrade === null }];
  // Its last word made this one systemd's main process (a ready new master only): it says so.
  if (m.ready && !m.systemdMain) return [{ do: 'systemd-main', takeOver: true }];
  return [];
}

/**
 * The listens only retiring generations have: their workers stopped accepting on them, so
 * they close now, not once those workers are gone (a client is refused, not queued on a
 * socket that nobody accepts from, then reset).
 */
function unlistened(m: Model): Effect[] {
  if (m.phase.name === 'stopping') return [];
  const keep = new Set(m.generations.filter((g) => g.role !== 'retiring').flatMap((g) => g.sockets.map((s) => s.key)));
  if (m.metricsKey) keep.add(m.metricsKey);
  return m.socketGroups.some((g) => !keep.has(g.key)) ? [{ do: 'close-sockets', which: { notIn: [...keep] } }] : [];
}

function retired(m: Model): Effect[] {
  const gen = m.generations.find((g) => g.role === 'retiring' && workersOf(m, g.id).length === 0);
  if (!gen) return [];
  return [{ do: 'forget-generation', generation: gen.id }, { do: 'log', level: 'info', line: `generation ${gen.id} has exited` }];
}

function whole(m: Model): Effect[] {
  for (const g of m.generations) {
    const fx = planGenerationReady(m, g);
    if (fx.length > 0) return fx;
  }
  return [];
}

/** One worker at a time: a start that fails may fail the reload (or the new master) before the next. */
function missing(m: Model): Effect[] {
  if (m.phase.name === 'stopping') return [];
  for (const g of m.generations) {
    if (g.role === 'retiring' || g.respawning) continue;
    const used = new Set(servingOf(m, g.id).map((w) => w.slot));
    for (let slot = 0; slot < g.target; slot++) {
      if (!used.has(slot) && (g.slots === null || g.slots.includes(slot))) return [{ do: 'spawn', generation: g.id, slot }];
    }
  }
  return [];
}

/** `-s upgrade` on the control socket: what the CLI does with WINCH and QUIT over signals, the master does itself. */
function finishUpgrade(m: Model): Effect[] {
  const up = m.upgrade;
  if (!up?.ready || !m.upgradeAsked) return [];
  if (m.phase.name === 'running') return planCommand(m, 'drain');
  if (m.phase.name !== 'draining' || m.workers.length > 0) return [];
  return [{ do: 'tell', outcome: { event: 'upgrade-finished', pid: up.pid, self: m.pid } }, ...planCommand(m, 'graceful-stop')];
}

function exitWhenEmpty(m: Model): Effect[] {
  if (m.phase.name !== 'stopping' || m.workers.length > 0) return [];
  const up = m.upgrade;
  return [
    // A client still waiting for the upgrade (a stop came first): it is over either way.
    ...(m.upgradeAsked
      ? [{ do: 'answer', upgrade: up?.ready ? { event: 'upgrade-finished', pid: up.pid, self: m.pid } : { event: 'upgrade-failed', reason: 'the master exited' } } satisfies Effect]
      : []),
    // A new master that inherited our unix sockets still serves on those paths.
    { do: 'close-sockets', which: { all: true, unlink: m.upgrade === null } },
    // A reload still under way never ends: its waiting clients hear why, nothing else does.
    { do: 'answer', reload: { event: 'reload-failed', reason: 'the master exited', serving: m.current } },
    { do: 'pidfile', op: 'remove' },
    { do: 'pidfile', op: 'remove-oldbin' },
    // The old master of a finished upgrade stays systemd's main process to the end: its last
    // word makes the new one main (notify.ts), the only MAINPID= NotifyAccess=main lets through.
    ...(up?.ready ? [{ do: 'systemd-main', handOver: up.pid } satisfies Effect] : []),
    { do: 'log', level: 'notice', line: 'exit' },
    { do: 'exit', code: m.phase.code },
  ];
}

const CHECKS = [oldMasterGone, planBatches, planGivenUpDrained, unlistened, retired, whole, missing, finishUpgrade, exitWhenEmpty];

/** The first thing to do now, in the order above; none: the master is settled. */
export function settle(m: Model): Effect[] {
  if (m.exiting) return [];
  for (const check of CHECKS) {
    const fx = check(m);
    if (fx.length > 0) return fx;
  }
  return [];
}
