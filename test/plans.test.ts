// The decisions of plans.ts in-process, for every master phase and upgrade state: what each
// allowed command and each event of an upgrade makes the master do, in which order. No
// process is started: the effects are data (the real processes are in upgrade.test.ts,
// shutdown.test.ts, systemd-real.test.ts).
import t from 'tap';
import { UPGRADE_KILL_MS, planCommand, planUpgrade, type Effect, type UpgradeEvent, type View } from '../src/master/plans.js';
import { planReloadFailed, planReloadFinished, planReloadSettled } from '../src/master/reload-plans.js';
import type { MasterPhase } from '../src/master/phase.js';

const PHASES: MasterPhase[] = ['starting', 'running', 'reloading', 'draining', 'stopping-graceful', 'stopping-fast'];
const UPGRADES: Array<View['upgrade']> = [null, { pid: 77, ready: false, killing: false }, { pid: 77, ready: true, killing: false }, { pid: 77, ready: false, killing: true }];

function view(phase: MasterPhase, upgrade: View['upgrade']): View {
  return { phase, upgrade, current: 3, readyTimeoutMs: 30_000, pid: 9 };
}

const kinds = (effects: Effect[]) => effects.map((e) => e.do);
const name = (v: View) => `${v.phase}, upgrade ${v.upgrade ? (v.upgrade.killing ? 'killing' : v.upgrade.ready ? 'ready' : 'starting') : 'none'}`;

t.test('stops: systemd hears STOPPING=1 unless a ready new master is its main process now', async (t) => {
  for (const phase of PHASES) for (const up of UPGRADES) {
    const v = view(phase, up);
    for (const [go, graceful] of [['graceful-stop', true], ['fast-stop', false]] as const) {
      const plan = planCommand(v, go, 1);
      const notify = up?.ready ? [] : [{ do: 'notify', fields: ['STOPPING=1'] }];
      t.same(
        plan,
        [...notify, { do: 'set-phase', phase: { name: 'stopping', mode: graceful ? 'graceful' : 'fast', code: graceful ? 0 : 1 } }, { do: 'stop-workers', graceful }, { do: 'check-exit' }],
        `${go} in ${name(v)}`,
      );
    }
  }
});

t.test('the other commands: one effect each, or the manual rollback (HUP after WINCH during an upgrade)', async (t) => {
  const v = view('draining', UPGRADES[2]!);
  t.same(planCommand(v, 'reload'), [{ do: 'reload' }]);
  t.same(planCommand(v, 'upgrade'), [{ do: 'start-upgrade' }]);
  t.same(planCommand(v, 'drain'), [{ do: 'set-phase', phase: { name: 'draining' } }, { do: 'drain-workers' }]);
  t.same(planCommand(v, 'reopen'), [{ do: 'reopen-logs' }]);
  t.same(planCommand(v, 'add-worker'), [{ do: 'worker-count', delta: 1 }]);
  t.same(planCommand(v, 'remove-worker'), [{ do: 'worker-count', delta: -1 }]);
  t.same(planCommand(v, 'restart-workers'), [
    { do: 'set-phase', phase: { name: 'running' } },
    { do: 'restart-workers' },
    { do: 'tell', outcome: { event: 'workers-restarted', generation: 3 } },
  ]);
});

t.test('an event of no upgrade, or of another new master, does nothing', async (t) => {
  for (const phase of PHASES) for (const up of UPGRADES) {
    for (const pid of up ? [78] : [77]) {
      const events: UpgradeEvent[] = [{ type: 'ready', pid }, { type: 'timeout', pid }, { type: 'exit', pid, how: 'exited with code 1' }, { type: 'batch-ready', pid, slots: [0], step: 1, steps: 4 }];
      for (const ev of events) {
        t.same(planUpgrade(view(phase, up), ev), [], `${ev.type} of ${pid} in ${name(view(phase, up))}`);
      }
    }
  }
});

t.test('the new master is ready: once, handing the metrics over to it (it becomes main for systemd only when this master exits)', async (t) => {
  for (const phase of PHASES) for (const up of UPGRADES.slice(1)) {
    const plan = planUpgrade(view(phase, up), { type: 'ready', pid: 77 });
    if (up!.ready) {
      t.same(plan, [], `again in ${name(view(phase, up))}: nothing`);
      continue;
    }
    t.same(plan, [
      { do: 'upgrade-progress', ready: true },
      { do: 'upgrade-timer', ms: null },
      { do: 'serve-metrics', on: false },
      { do: 'tell', outcome: { event: 'upgrade-ready', pid: 77, self: 9 } },
    ], name(view(phase, up)));
  }
});

t.test('the new master is not ready in time: TERM, then KILL; never once it is ready', async (t) => {
  for (const phase of PHASES) {
    t.same(planUpgrade(view(phase, UPGRADES[2]!), { type: 'timeout', pid: 77 }), [], `${phase}: ready, a stale timer`);
    t.same(planUpgrade(view(phase, UPGRADES[3]!), { type: 'timeout', pid: 77 }), [{ do: 'signal-new-master', signal: 'SIGKILL' }], `${phase}: killing`);
    t.same(kinds(planUpgrade(view(phase, UPGRADES[1]!), { type: 'timeout', pid: 77 })), ['log', 'upgrade-progress', 'signal-new-master', 'upgrade-timer'], `${phase}: starting`);
  }
  t.match(planUpgrade(view('running', UPGRADES[1]!), { type: 'timeout', pid: 77 }), [
    { level: 'alert', line: 'new master process 77 was not ready within 30000ms, stopping it' },
    { killing: true },
    { signal: 'SIGTERM' },
    { ms: UPGRADE_KILL_MS },
  ]);
});

t.test('the new master exits: a rollback in every phase, the old workers back where they had drained', async (t) => {
  for (const phase of PHASES) for (const up of UPGRADES.slice(1)) {
    const v = view(phase, up);
    const plan = planUpgrade(v, { type: 'exit', pid: 77, how: 'exited on signal SIGKILL' });
    const back =
      phase === 'stopping-graceful' ? ['log', 'set-phase', 'restart-workers'] : phase === 'draining' ? ['set-phase', 'restart-workers'] : [];
    t.same(kinds(plan), ['tell', 'end-upgrade', 'restore-slots', ...back, 'serve-metrics', 'tell'], name(v));
    t.same(plan[0], { do: 'tell', outcome: { event: 'upgrade-rolling-back', pid: 77, how: 'exited on signal SIGKILL' } });
    t.same(plan.at(-1), { do: 'tell', outcome: { event: 'rolled-back', self: 9 } });
    const set = plan.find((e) => e.do === 'set-phase');
    if (phase === 'draining') t.same(set, { do: 'set-phase', phase: { name: 'running' } }, 'serving again');
    if (phase === 'stopping-graceful') t.same(set, { do: 'set-phase', phase: { name: 'running' } }, 'the graceful stop is cancelled: serving again');
  }
});

t.test('a reload ends: its generation takes over whole, or the master goes back to where the reload started', async (t) => {
  const reloading = (returnTo: 'running' | 'draining') => ({ name: 'reloading', returnTo }) as const;
  t.same(planReloadFinished({ generation: 5, current: 4, phase: reloading('running'), rollout: null, others: [4] }), [
    { do: 'activate-generation', generation: 5 },
    { do: 'stop-generation', generation: 4 },
    { do: 'set-phase', phase: { name: 'running' } },
    { do: 'take-over-log', generation: 5 },
    { do: 'tell', outcome: { event: 'reload-finished', generation: 5, previous: 4 } },
  ]);
  for (const returnTo of ['running', 'draining'] as const) {
    t.same(planReloadFailed({ generation: 5, current: 4, phase: reloading(returnTo), rollout: null, others: [4] }, 'worker process 9 exited with code 1 before it was ready'), [
      { do: 'release-unserved', generation: 5 },
      { do: 'stop-generation', generation: 5 },
      { do: 'set-phase', phase: { name: returnTo } },
      { do: 'tell', outcome: { event: 'reload-failed', reason: 'worker process 9 exited with code 1 before it was ready', serving: 4 } },
    ], `back to ${returnTo}`);
  }
  t.same(
    planReloadFailed({ generation: 5, current: 4, phase: { name: 'stopping', mode: 'graceful', code: 0 }, rollout: null, others: [4] }, 'x').map((e) => e.do),
    ['release-unserved', 'stop-generation', 'tell'],
    'a stop that came meanwhile stays a stop',
  );
  t.same(planReloadFailed({ generation: 5, current: 4, phase: reloading('running'), rollout: { to: 5, back: false }, others: [4] }, 'x'), [{ do: 'roll-back', generation: 5, reason: 'x' }], 'a batched reload moves its slots back first');
  t.same(planReloadFailed({ generation: 4, current: 4, phase: reloading('running'), rollout: { to: 4, back: true }, others: [5] }, 'x').map((e) => e.do), ['release-unserved', 'stop-generation', 'set-phase', 'tell'], 'its rollback failing too ends it');
  t.same(planReloadSettled({ current: 4, phase: reloading('running') }, null, 'x')[0], { do: 'release-unserved', generation: null }, 'nothing of it left: every group is checked');
});

t.test("a batched upgrade: the new master's batch is ready, the old one gives up and drains those slots", async (t) => {
  for (const phase of PHASES) for (const up of UPGRADES.slice(1)) {
    const plan = planUpgrade(view(phase, up), { type: 'batch-ready', pid: 77, slots: [2, 3], step: 2, steps: 4 });
    if (up!.ready) {
      t.same(plan, [], `${name(view(phase, up))}: the upgrade is past its batches`);
      continue;
    }
    t.same(plan, [
      { do: 'give-up-slots', slots: [2, 3] },
      { do: 'upgrade-timer', ms: 30_000 },
      { do: 'log', level: 'notice', line: 'upgrade: new master process 77 has batch 2 of 4 ready; draining slot(s) 2, 3' },
      { do: 'drain-slots', slots: [2, 3] },
      { do: 'check-batch-drained' },
    ], name(view(phase, up)));
  }
});
