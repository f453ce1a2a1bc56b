// The decisions of plans.ts and reload-plans.ts in-process, for every master phase and
// upgrade state: what each allowed command and each event of an upgrade makes the master
// do, in which order, as primitive effects. No process is started: the effects are data
// (whole runs over a fake seam are in step.test.ts; the real processes in upgrade.test.ts,
// shutdown.test.ts, systemd-real.test.ts).
import t from 'tap';
import type { Effect } from '../src/master/effects.js';
import type { Model } from '../src/master/model.js';
import { UPGRADE_KILL_MS, planCommand, planUpgrade, type UpgradeEvent } from '../src/master/plans.js';
import type { MasterPhase } from '../src/master/phase.js';
import { planReloadFailed, planReloadFinished, planReloadSettled, planReloadStart } from '../src/master/reload-plans.js';
import { FAST_KILL_MS } from '../src/master/stops.js';
import type { Generation } from '../src/master/generation.js';
import { config, generation, model, phase, stopping, worker } from './helpers/model.js';

const PHASES: MasterPhase[] = ['starting', 'running', 'reloading', 'draining', 'stopping-graceful', 'stopping-fast'];
const UPGRADES: Array<Model['upgrade']> = [
  null,
  { pid: 77, ready: false, killing: false, draining: null },
  { pid: 77, ready: true, killing: false, draining: null },
  { pid: 77, ready: false, killing: true, draining: null },
];

function view(p: MasterPhase, upgrade: Model['upgrade']): Model {
  return model({ phase: phase(p), upgrade });
}

const kinds = (effects: Effect[]) => effects.map((e) => e.do);
const name = (p: MasterPhase, up: Model['upgrade']) => `${p}, upgrade ${up ? (up.killing ? 'killing' : up.ready ? 'ready' : 'starting') : 'none'}`;

t.test('stops: systemd hears STOPPING=1 unless a ready new master is its main process now; every worker is told', async (t) => {
  for (const p of PHASES) for (const up of UPGRADES) {
    const v = view(p, up);
    for (const [go, graceful] of [['graceful-stop', true], ['fast-stop', false]] as const) {
      const plan = planCommand(v, go, 1);
      const notify = up?.ready ? [] : [{ do: 'notify', fields: ['STOPPING=1'] }];
      t.same(
        plan,
        [
          ...notify,
          { do: 'set', set: { phase: { name: 'stopping', mode: graceful ? 'graceful' : 'fast', code: graceful ? 0 : 1 }, batches: null } },
          { do: 'timer', timer: { kind: 'respawn', generation: 3 }, ms: null },
          { do: 'timer', timer: { kind: 'ready', generation: 3 }, ms: null },
          ...[41, 42].flatMap((pid) => stopping(pid, graceful ? 'SIGQUIT' : 'SIGTERM', graceful ? 10_000 : FAST_KILL_MS)),
        ],
        `${go} in ${name(p, up)}`,
      );
    }
  }
});

t.test('a graceful stop of a worker already leaving changes nothing; a fast one makes it TERM; a Node worker without its handlers gets TERM', async (t) => {
  const m = model({ workers: [worker({ pid: 41, state: 'draining' }), worker({ pid: 42, slot: 1, handlers: false })] });
  const stops = (plan: Effect[]) => plan.filter((e) => e.do === 'signal' || (e.do === 'timer' && e.timer.kind === 'kill') || (e.do === 'set-worker' && e.set.state === 'draining'));
  t.same(stops(planCommand(m, 'graceful-stop')), [
    { do: 'set-worker', pid: 42, set: { state: 'draining', stopDeadline: m.now + 10_000 } },
    { do: 'signal', pid: 42, signal: 'SIGTERM' },
    { do: 'timer', timer: { kind: 'kill', pid: 42 }, ms: 10_000 },
  ]);
  t.same(planCommand(m, 'fast-stop').filter((e) => e.do === 'signal').length, 2);
});

t.test('the other commands, and the manual rollback (HUP after WINCH during an upgrade)', async (t) => {
  const v = view('draining', UPGRADES[2]!);
  t.same(planCommand(v, 'reload'), [{ do: 'notify', fields: ['RELOADING=1', 'STATUS=reloading configuration'] }], 'nothing prepared: RELOADING=1 only');
  t.same(planCommand(v, 'upgrade'), [], 'nothing prepared: nothing');
  t.same(planCommand(v, 'upgrade', 0, { upgrade: { error: 'rename() failed' } }), [{ do: 'tell', outcome: { event: 'upgrade-failed', reason: 'rename() failed' } }]);
  t.same(planCommand(v, 'drain'), [
    { do: 'set', set: { phase: { name: 'draining' } } },
    { do: 'set-generation', generation: 3, set: { target: 0 } },
    { do: 'timer', timer: { kind: 'respawn', generation: 3 }, ms: null },
    ...stopping(41, 'SIGQUIT', 10_000),
    ...stopping(42, 'SIGQUIT', 10_000),
  ]);
  t.same(planCommand(v, 'reopen'), [{ do: 'reopen-logs' }, { do: 'signal', pid: 41, signal: 'SIGUSR1' }, { do: 'signal', pid: 42, signal: 'SIGUSR1' }]);
  t.same(planCommand(v, 'restart-workers'), [
    { do: 'set', set: { phase: { name: 'running' } } },
    { do: 'set-generation', generation: 3, set: { target: 2 } },
    { do: 'tell', outcome: { event: 'workers-restarted', generation: 3 } },
  ]);
});

t.test('TTIN / TTOU: one worker more or fewer, at least one; reuseport needs a new generation', async (t) => {
  const v = model();
  t.same(planCommand(v, 'add-worker'), [
    { do: 'set-generation', generation: 3, set: { target: 3 } },
    { do: 'log', level: 'notice', line: 'worker count of generation 3 is now 3' },
  ]);
  t.same(planCommand(v, 'remove-worker'), [
    { do: 'set-generation', generation: 3, set: { target: 1 } },
    { do: 'log', level: 'notice', line: 'worker count of generation 3 is now 1' },
    ...stopping(42, 'SIGQUIT', 10_000),
  ]);
  const one = model({ generations: [generation({ target: 1 })], workers: [worker()] });
  t.same(planCommand(one, 'remove-worker'), [{ do: 'log', level: 'notice', line: 'worker count stays 1: at least one worker serves' }]);
  const shared = model({ generations: [generation({ sockets: [{ key: 'tcp:0.0.0.0:8080', reuseport: true }] })] });
  t.match(kinds(planCommand(shared, 'add-worker', 0, { reload: { error: 'x', bound: true } })), ['log', 'close-sockets', 'tell'], 'reuseport: a new generation, prepared (here failing)');
});

t.test('an event of no upgrade, or of another new master, does nothing', async (t) => {
  for (const p of PHASES) for (const up of UPGRADES) {
    for (const pid of up ? [78] : [77]) {
      const events: UpgradeEvent[] = [{ type: 'ready', pid }, { type: 'timeout', pid }, { type: 'exit', pid, how: 'exited with code 1' }, { type: 'batch-ready', pid, slots: [0], step: 1, steps: 4 }];
      for (const ev of events) t.same(planUpgrade(view(p, up), ev), [], `${ev.type} of ${pid} in ${name(p, up)}`);
    }
  }
});

t.test('the new master is ready: once, handing the metrics over to it (it becomes main for systemd only when this master exits)', async (t) => {
  for (const p of PHASES) for (const up of UPGRADES.slice(1)) {
    const plan = planUpgrade(view(p, up), { type: 'ready', pid: 77 });
    if (up!.ready) {
      t.same(plan, [], `again in ${name(p, up)}: nothing`);
      continue;
    }
    t.same(plan, [
      { do: 'upgrade-progress', set: { ready: true } },
      { do: 'timer', timer: { kind: 'upgrade', pid: 77 }, ms: null },
      { do: 'serve-metrics', on: false },
      { do: 'tell', outcome: { event: 'upgrade-ready', pid: 77, self: 9 } },
    ], name(p, up));
  }
});

t.test('the new master is not ready in time: TERM, then KILL; never once it is ready', async (t) => {
  for (const p of PHASES) {
    t.same(planUpgrade(view(p, UPGRADES[2]!), { type: 'timeout', pid: 77 }), [], `${p}: ready, a stale timer`);
    t.same(planUpgrade(view(p, UPGRADES[3]!), { type: 'timeout', pid: 77 }), [{ do: 'signal', newMaster: true, signal: 'SIGKILL' }], `${p}: killing`);
    t.same(kinds(planUpgrade(view(p, UPGRADES[1]!), { type: 'timeout', pid: 77 })), ['log', 'upgrade-progress', 'signal', 'timer'], `${p}: starting`);
  }
  t.match(planUpgrade(view('running', UPGRADES[1]!), { type: 'timeout', pid: 77 }), [
    { level: 'alert', line: 'new master process 77 was not ready within 30000ms, stopping it' },
    { set: { killing: true } },
    { signal: 'SIGTERM' },
    { ms: UPGRADE_KILL_MS },
  ]);
});

t.test('the new master exits: a rollback in every phase, the old workers back where they had drained', async (t) => {
  for (const p of PHASES) for (const up of UPGRADES.slice(1)) {
    const plan = planUpgrade(view(p, up), { type: 'exit', pid: 77, how: 'exited on signal SIGKILL' });
    const back = p === 'stopping-graceful' ? ['log', 'set', 'set-generation'] : p === 'draining' ? ['set', 'set-generation'] : [];
    t.same(kinds(plan), ['tell', 'timer', 'set', 'pidfile', 'move-control', ...back, 'serve-metrics', 'tell'], name(p, up));
    t.same(plan[0], { do: 'tell', outcome: { event: 'upgrade-rolling-back', pid: 77, how: 'exited on signal SIGKILL', ready: up!.ready } }, 'the outcome says whether the new master had taken over');
    t.same(plan.slice(2, 5), [{ do: 'set', set: { upgrade: null } }, { do: 'pidfile', op: 'from-oldbin' }, { do: 'move-control', toOldbin: false }]);
    t.same(plan.at(-1), { do: 'tell', outcome: { event: 'rolled-back', self: 9 } }, 'this master stayed systemd\'s main process: nothing to hand back');
    const set = plan.find((e) => e.do === 'set' && e.set.phase !== undefined);
    if (p === 'draining' || p === 'stopping-graceful') t.same(set, { do: 'set', set: { phase: { name: 'running' } } }, 'serving again');
  }
  const gave = model({ upgrade: UPGRADES[1]!, generations: [generation({ slots: [1] })] });
  t.same(planUpgrade(gave, { type: 'exit', pid: 77, how: 'x' }).filter((e) => e.do === 'set-generation'), [{ do: 'set-generation', generation: 3, set: { slots: null } }], 'a batched upgrade: every slot is ours again');
});

t.test("a batched upgrade: the new master's batch is ready, the old one gives up and drains those slots", async (t) => {
  for (const p of PHASES) for (const up of UPGRADES.slice(1)) {
    const v = model({ phase: phase(p), upgrade: up, generations: [generation({ target: 4 })], workers: [0, 1, 2, 3].map((slot) => worker({ pid: 40 + slot, slot })) });
    const plan = planUpgrade(v, { type: 'batch-ready', pid: 77, slots: [2, 3], step: 2, steps: 4 });
    if (up!.ready) {
      t.same(plan, [], `${name(p, up)}: the upgrade is past its batches`);
      continue;
    }
    t.same(plan, [
      { do: 'set-generation', generation: 3, set: { slots: [0, 1] } },
      { do: 'upgrade-progress', set: { draining: [2, 3] } },
      { do: 'timer', timer: { kind: 'upgrade', pid: 77 }, ms: 30_000 },
      { do: 'log', level: 'notice', line: 'upgrade: new master process 77 has batch 2 of 4 ready; draining slot(s) 2, 3' },
      ...stopping(42, 'SIGQUIT', 10_000),
      ...stopping(43, 'SIGQUIT', 10_000),
    ], name(p, up));
  }
});

const prepared = (directives: string) => ({ gen: { config: config(directives) } as unknown as Generation });

t.test('a reload starts from what preparing it gave: a generation beside the serving one, or the reason it failed', async (t) => {
  for (const [from, returnTo] of [['running', 'running'], ['draining', 'draining']] as const) {
    const p = prepared('worker_processes 2;');
    t.same(planReloadStart(model({ phase: phase(from) }), p), [
      { do: 'set', set: { phase: { name: 'reloading', returnTo } } },
      { do: 'add-generation', gen: p.gen, id: 4, role: 'pending', slots: null },
      { do: 'timer', timer: { kind: 'ready', generation: 4 }, ms: 30_000 },
      { do: 'log', level: 'notice', line: 'reload: generation 4 starting with 2 worker(s)' },
    ], `from ${from}`);
  }
  t.same(planReloadStart(model(), { error: 'unknown directive "x" in /etc/tsmaster/test.conf:1', bound: false }), [
    { do: 'tell', outcome: { event: 'reload-failed', reason: 'unknown directive "x" in /etc/tsmaster/test.conf:1', serving: 3 } },
  ]);
  t.same(kinds(planReloadStart(model(), { error: 'x', bound: true })), ['close-sockets', 'tell'], 'what it bound is closed again');
  const batched = planReloadStart(model(), prepared('worker_processes 2;\nworker_reload_batch 1;'));
  t.same(kinds(batched), ['set', 'add-generation', 'timer', 'log', 'set-generation', 'set', 'set-generation', 'log', 'timer']);
  t.match(batched[1], { slots: [] }, 'batched: the new generation runs no slot yet');
  t.same(batched.slice(4, 8), [
    { do: 'set-generation', generation: 3, set: { slots: [0, 1] } },
    { do: 'set', set: { batches: { giver: 3, taker: 4, batch: 1, left: [1], moving: [0], stage: 'starting', step: 1, steps: 2, back: false, reason: '' } } },
    { do: 'set-generation', generation: 4, set: { slots: [0] } },
    { do: 'log', level: 'notice', line: 'reload: batch 1 of 2: generation 4 starts slot(s) 0' },
  ]);
});

t.test('a reload ends: its generation takes over whole, or the master goes back to where the reload started', async (t) => {
  const two = model({ phase: phase('reloading'), generations: [generation(), generation({ id: 5, role: 'pending', everReady: false })], workers: [worker({ pid: 41 }), worker({ pid: 51, generation: 5, state: 'starting' })] });
  t.same(planReloadFinished(two, 5), [
    { do: 'set-generation', generation: 5, set: { role: 'active', slots: null } },
    { do: 'set', set: { batches: null } },
    { do: 'set-current', generation: 5 },
    { do: 'set-generation', generation: 3, set: { role: 'retiring' } },
    { do: 'timer', timer: { kind: 'respawn', generation: 3 }, ms: null },
    { do: 'timer', timer: { kind: 'ready', generation: 3 }, ms: null },
    ...stopping(41, 'SIGQUIT', 10_000),
    { do: 'set', set: { phase: { name: 'running' } } },
    { do: 'take-over-log', generation: 5 },
    { do: 'tell', outcome: { event: 'reload-finished', generation: 5, previous: 3 } },
  ]);
  for (const returnTo of ['running', 'draining'] as const) {
    t.same(kinds(planReloadFailed({ ...two, phase: { name: 'reloading', returnTo } }, 5, 'why')), ['set-generation', 'timer', 'timer', 'set-worker', 'signal', 'timer', 'set', 'tell'], `back to ${returnTo}`);
    t.same(planReloadFailed({ ...two, phase: { name: 'reloading', returnTo } }, 5, 'why').slice(-2), [
      { do: 'set', set: { phase: { name: returnTo } } },
      { do: 'tell', outcome: { event: 'reload-failed', reason: 'why', serving: 3 } },
    ]);
  }
  t.same(kinds(planReloadFailed({ ...two, phase: phase('stopping-graceful') }, 5, 'x')), ['set-generation', 'timer', 'timer', 'set-worker', 'signal', 'timer', 'tell'], 'a stop that came meanwhile stays a stop');
  const shared = { ...two, socketGroups: [{ key: 'k', reuseport: true }], generations: [generation({ groupSizes: { k: 2 } }), generation({ id: 5, role: 'pending', everReady: false, sockets: [{ key: 'k', reuseport: true }], groupSizes: { k: 4 } })] };
  t.same(planReloadSettled(shared, 5, 'x')[0], { do: 'close-sockets', which: { trim: 'k', keep: 2 } }, 'reuseport members only the failed generation was to serve close');
  t.same(planReloadSettled(shared, null, 'x')[0], { do: 'close-sockets', which: { trim: 'k', keep: 4 } }, 'nothing of it left: every group is checked');
});

t.test('a batched reload that fails part-way moves its slots back first; told when that is done', async (t) => {
  const b = { giver: 3, taker: 5, batch: 1, left: [1], moving: [0], stage: 'draining' as const, step: 1, steps: 2, back: false, reason: '' };
  const m = model({
    phase: phase('reloading'),
    batches: b,
    generations: [generation({ slots: [1] }), generation({ id: 5, role: 'pending', everReady: false, slots: [0] })],
    workers: [worker({ pid: 41, slot: 1 }), worker({ pid: 51, generation: 5, slot: 0 }), worker({ pid: 52, generation: 5, slot: 1, state: 'starting' })],
  });
  const plan = planReloadFailed(m, 5, 'worker process 52 exited');
  t.same(kinds(plan), ['set-generation', 'timer', 'timer', 'set-worker', 'signal', 'timer', 'tell', 'set', 'set-generation', 'log']);
  t.same(plan.slice(3, 6), stopping(52, 'SIGQUIT', 10_000), 'the new worker not serving yet stops now');
  t.same(plan[6], { do: 'tell', outcome: { event: 'reload-rolling-back', reason: 'worker process 52 exited (in batch 1 of 2)', serving: 3, batch: 1 } });
  t.same(plan.slice(7), [
    { do: 'set', set: { batches: { giver: 5, taker: 3, batch: 1, left: [], moving: [0], stage: 'starting', step: 1, steps: 1, back: true, reason: 'worker process 52 exited (in batch 1 of 2)' } } },
    { do: 'set-generation', generation: 3, set: { slots: [1, 0] } },
    { do: 'log', level: 'notice', line: 'rollback: batch 1 of 1: generation 3 starts slot(s) 0' },
  ]);
  t.same(kinds(planReloadFailed({ ...m, batches: { ...b, back: true, giver: 5, taker: 3 } }, 5, 'x')), ['set-generation', 'timer', 'timer', 'set-worker', 'signal', 'timer', 'set-worker', 'signal', 'timer', 'set', 'tell'], 'its rollback failing too ends it');
});
