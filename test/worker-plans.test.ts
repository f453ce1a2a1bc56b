// What a worker's exit (or a failed spawn), its readiness and the periodic check make the
// master do, in-process, for each kind of worker and generation, as primitive effects: no
// process is started (runs over a fake seam are in step.test.ts; the real ones in
// supervise.test.ts, reload.test.ts, upgrade.test.ts and the chaos test).
import t from 'tap';
import type { Effect } from '../src/master/effects.js';
import type { GenerationRole } from '../src/master/generation.js';
import type { Model } from '../src/master/model.js';
import { EXEC_ALIVE_READY_MS, STABLE_MS, planCheck, planGenerationReady, planNotStarted, planWorkerExit, planWorkerReady } from '../src/master/worker-plans.js';
import { NOW, config, generation, model, ping, stopping, worker } from './helpers/model.js';

const kinds = (effects: Effect[]) => effects.map((e) => e.do);

/** Worker 42 in slot 1 of generation 2 (beside worker 41), and how it left. */
function exitOf(over: { state?: 'starting' | 'ready' | 'draining'; role?: GenerationRole | null; everReady?: boolean; newMaster?: boolean; recycling?: boolean; readyAt?: number | null; killedFor?: string; killReason?: 'heartbeat'; respawning?: boolean; backoffMs?: number; alone?: boolean }): Effect[] {
  const w = worker({ pid: 42, slot: 1, generation: 2, state: over.state ?? 'ready', recycling: over.recycling ?? false, readyAt: over.readyAt === undefined ? NOW - 1000 : over.readyAt, killedFor: over.killedFor ?? null, killReason: over.killReason ?? null });
  const m = model({
    current: 2,
    generations: over.role === null ? [] : [generation({ id: 2, role: over.role ?? 'active', everReady: over.everReady ?? true, respawning: over.respawning ?? false, backoffMs: over.backoffMs ?? 0 })],
    workers: over.alone ? [w] : [worker({ pid: 41, slot: 0, generation: 2 }), w],
    oldMaster: over.newMaster ? { pid: 5, alive: true, forgotten: false } : null,
  });
  return planWorkerExit(m, 42, 1, null);
}

const gone: Effect = { do: 'forget-worker', pid: 42, groupMs: null };

t.test('a worker that was asked to go, or whose generation is leaving or gone: said, nothing else', async (t) => {
  for (const newMaster of [false, true]) {
    const said = [gone, { do: 'log', level: 'notice', line: 'worker process 42 exited with code 1' }];
    t.same(exitOf({ state: 'draining', newMaster }), said);
    t.same(exitOf({ role: 'retiring', everReady: false, newMaster }), said);
    t.same(exitOf({ role: null, newMaster }), said);
  }
  t.same(planWorkerExit(model(), 99, 0, null), [], 'not ours (any more): nothing');
});

t.test('an exec worker that leaves its process group: the group ends with it, after the stop deadline if it was stopping', async (t) => {
  const m = model({ workers: [worker({ pid: 42, group: true, state: 'draining', stopDeadline: NOW + 3000 })] });
  t.same(planWorkerExit(m, 42, 0, null)[0], { do: 'forget-worker', pid: 42, groupMs: 3000 });
  t.same(planWorkerExit(model({ workers: [worker({ pid: 42, group: true })] }), 42, null, 'SIGKILL')[0], { do: 'forget-worker', pid: 42, groupMs: 0 });
  t.match(planWorkerExit(model({ workers: [worker({ pid: 42, state: 'draining' })] }), 42, null, 'SIGKILL')[1], { line: 'worker process 42 exited on signal SIGKILL' });
});

t.test("a reload's worker that dies before its generation was ready fails the reload, with the reason", async (t) => {
  for (const state of ['starting', 'ready'] as const) {
    const plan = exitOf({ state, role: 'pending', everReady: false, killedFor: 'not ready within 30000ms' });
    t.same(plan.slice(0, 2), [gone, { do: 'log', level: 'alert', line: 'worker process 42 exited with code 1 (not ready within 30000ms)' }], state);
    t.same(plan.at(-1), { do: 'tell', outcome: { event: 'reload-failed', reason: 'worker process 42 of generation 2 exited with code 1 before it was ready (not ready within 30000ms)', serving: 2 } }, 'why it was killed');
  }
});

t.test("a new master's worker that dies before its first generation was ready stops it, so the old master rolls back", async (t) => {
  const plan = exitOf({ state: 'starting', everReady: false, newMaster: true });
  t.same(plan.slice(0, 3), [
    gone,
    { do: 'log', level: 'emerg', line: 'worker process 42 exited with code 1 before it was ready' },
    { do: 'send', to: 'parent', msg: { t: 'failed', pid: 9, lines: ['worker process 42 exited with code 1 before it was ready'] } },
  ]);
  t.match(plan.slice(3), [{ do: 'notify', fields: ['STOPPING=1'] }, { do: 'set', set: { phase: { name: 'stopping', mode: 'fast', code: 1 } } }], 'a fast stop with code 1, through the table');
});

t.test('a serving worker that dies: counted, and respawned (at once when it had been up long enough)', async (t) => {
  t.same(exitOf({ readyAt: NOW - STABLE_MS }), [
    gone,
    { do: 'count-restart', restart: { generation: 2, slot: 1 }, metric: 'crash' },
    { do: 'set-generation', generation: 2, set: { backoffMs: 0 } },
    { do: 'log', level: 'alert', line: 'worker process 42 exited with code 1; respawning in 0ms' },
  ], 'stable: settle starts its replacement at once');
  t.same(exitOf({ readyAt: NOW - STABLE_MS + 1 }).slice(2), [
    { do: 'set-generation', generation: 2, set: { backoffMs: 100 } },
    { do: 'log', level: 'alert', line: 'worker process 42 exited with code 1; respawning in 100ms' },
    { do: 'timer', timer: { kind: 'respawn', generation: 2 }, ms: 100 },
  ], 'crashed soon after it was ready: a backoff step');
  t.match(exitOf({ readyAt: NOW - 1, backoffMs: 400 }).slice(2), [{ set: { backoffMs: 800 } }, {}, { ms: 800 }], 'the next step doubles');
  t.match(exitOf({ readyAt: NOW - 1, backoffMs: 30_000 }).slice(2), [{ set: { backoffMs: 30_000 } }], 'up to 30 s');
  t.same(exitOf({ respawning: true }).slice(2), [{ do: 'log', level: 'debug', line: 'worker process 42 exited with code 1; respawn already scheduled' }], 'a step under way: it joins it');
  t.same(exitOf({ respawning: true, alone: true }).slice(3), [{ do: 'log', level: 'alert', line: 'no worker process of generation 2 is running; the listening sockets stay open' }], 'the last one: said loudly');
  t.same(exitOf({ killedFor: 'no heartbeat for 31000ms', killReason: 'heartbeat' }).slice(1, 2), [{ do: 'count-restart', restart: { generation: 2, slot: 1 }, metric: 'heartbeat' }], 'killed by the master: the reason is the metric label');
  t.same(exitOf({ recycling: true }), [
    gone,
    { do: 'count-restart', restart: { generation: 2, slot: 1 }, metric: null },
    { do: 'log', level: 'alert', line: 'worker process 42 exited with code 1 while being replaced' },
  ], 'one being replaced: its replacement is already starting');
});

t.test("the first generation of any master that dies before it was ready stops the master, with the app's reason", async (t) => {
  const w = worker({ pid: 42, slot: 1, generation: 2, state: 'starting', readyAt: null, startError: 'Error: DATABASE_URL is not set (at /srv/app/config.mjs:1:38)' });
  const m = model({ current: 2, generations: [generation({ id: 2, role: 'active', everReady: false })], workers: [worker({ pid: 41, slot: 0, generation: 2 }), w] });
  const line = 'worker process 42 exited with code 1 before it was ready: Error: DATABASE_URL is not set (at /srv/app/config.mjs:1:38)';
  const plan = planWorkerExit(m, 42, 1, null);
  t.same(plan.slice(0, 3), [gone, { do: 'log', level: 'emerg', line }, { do: 'send', to: 'parent', msg: { t: 'failed', pid: 9, lines: [line] } }], 'what the CLI prints: the app\'s own error');
  t.match(plan.slice(3), [{ do: 'notify', fields: ['STOPPING=1'] }, { do: 'set', set: { phase: { name: 'stopping', mode: 'fast', code: 1 } } }], 'nothing left: a fast stop with code 1');
  t.notOk(plan.some((e) => e.do === 'timer' && e.timer.kind === 'respawn' && e.ms !== null), 'no retry: systemd\'s Restart= is the retry loop');
  const pending = exitOf({ state: 'starting', role: 'pending', everReady: false });
  t.match(pending.at(-1), { outcome: { event: 'reload-failed' } }, 'a reload: the old generation serves on');
});

t.test('a worker that cannot even be started: a reload or a first generation fails at once, a serving generation retries', async (t) => {
  const why = 'could not start a worker process for generation 2';
  const m = (role: GenerationRole, everReady: boolean, newMaster: boolean): Model =>
    model({ phase: { name: 'reloading', returnTo: 'running' }, generations: [generation(), generation({ id: 2, role, everReady })], oldMaster: newMaster ? { pid: 5, alive: true, forgotten: false } : null });
  t.same(planNotStarted(m('pending', false, false), 2, why).at(-1), { do: 'tell', outcome: { event: 'reload-failed', reason: why, serving: 3 } });
  for (const newMaster of [false, true]) t.same(kinds(planNotStarted(m('active', false, newMaster), 2, why)).slice(0, 2), ['log', 'send'], `a first generation${newMaster ? ' of a new master' : ''}: the master fails`);
  for (const [role, everReady, newMaster] of [['active', true, false], ['active', true, true], ['pending', true, false]] as const) {
    t.same(planNotStarted(m(role, everReady, newMaster), 2, why), [
      { do: 'log', level: 'alert', line: why },
      { do: 'set-generation', generation: 2, set: { backoffMs: 100 } },
      { do: 'log', level: 'alert', line: 'no worker process of generation 2 is running; the listening sockets stay open' },
      { do: 'timer', timer: { kind: 'respawn', generation: 2 }, ms: 100 },
    ], `${role}, ${everReady ? 'served' : 'never ready'}${newMaster ? ', new master' : ''}`);
  }
  t.same(planNotStarted(m('retiring', false, false), 2, why), [{ do: 'log', level: 'alert', line: why }], 'a generation leaving: said only');
});

const CFG = config('worker_processes 2;\nworker_max_memory 60000000;\nworker_heartbeat_timeout 30s;');

function check(over: { state?: 'starting' | 'ready' | 'draining'; exec?: boolean; notified?: boolean; age?: number; silent?: number; connected?: boolean; rss?: number; startRss?: number | null; recycling?: boolean; role?: GenerationRole; warned?: boolean; heartbeat?: null; max?: null }): Effect[] {
  const directives = ['worker_processes 2;', over.max === null ? '' : 'worker_max_memory 60000000;', over.heartbeat === null ? 'worker_heartbeat_timeout off;' : 'worker_heartbeat_timeout 30s;'].join('\n');
  const cfg = over.exec ? { ...config(directives), worker: { kind: 'exec' as const, argv: ['/bin/true'] } } : over.max === null || over.heartbeat === null ? config(directives) : CFG;
  const w = worker({
    pid: 42,
    state: over.state ?? 'ready',
    notified: over.notified ?? false,
    startedAt: NOW - (over.age ?? 60_000),
    lastPong: NOW - (over.silent ?? 500),
    connected: over.connected ?? true,
    rss: over.rss ?? 50e6,
    startRss: over.startRss === undefined ? 40e6 : over.startRss,
    recycling: over.recycling ?? false,
  });
  const m = model({ generations: [generation({ role: over.role ?? 'active', memoryWarned: over.warned ?? false, config: cfg })], workers: [w] });
  return planCheck(m, w);
}

t.test('the periodic check: readiness by age for an exec worker, ready_timeout, heartbeats', async (t) => {
  t.same(check({ state: 'draining', silent: 99_000 }), [ping(42)], 'a draining worker is only pinged, never judged');
  t.same(kinds(check({ state: 'starting', exec: true, age: EXEC_ALIVE_READY_MS })), ['set-worker', 'log'], 'an exec worker alive 2 s without NOTIFY_SOCKET is ready');
  t.same(check({ state: 'starting', exec: true, notified: true, age: EXEC_ALIVE_READY_MS }), [], 'one that uses NOTIFY_SOCKET says READY=1 itself');
  t.same(check({ state: 'starting', age: EXEC_ALIVE_READY_MS }), [], 'a Node worker says ready itself');
  t.same(check({ state: 'starting', age: 30_001 }), [
    { do: 'set-worker', pid: 42, set: { killedFor: 'not ready within 30000ms', killReason: 'ready_timeout' } },
    { do: 'log', level: 'alert', line: 'worker process 42: not ready within 30000ms, killing it' },
    { do: 'signal', pid: 42, signal: 'SIGKILL' },
  ]);
  t.same(check({ state: 'starting', age: 30_000 }), [], 'not before');
  t.same(check({ silent: 30_001 })[0], { do: 'set-worker', pid: 42, set: { killedFor: 'no heartbeat for 30001ms', killReason: 'heartbeat' } });
  t.same(check({ silent: 99_000, heartbeat: null }), [ping(42)], 'worker_heartbeat_timeout off');
  t.same(check({ silent: 99_000, connected: false }), [], 'no channel (exec): nothing to ping or judge');
  const killed = worker({ pid: 42, killedFor: 'x', lastPong: NOW - 99_000 });
  t.same(planCheck(model({ workers: [killed] }), killed), [], 'killed once only');
});

t.test('the periodic check: worker_max_memory replaces a worker, unless a fresh one would be over it too', async (t) => {
  t.same(check({ rss: 50e6 }), [ping(42)], 'under the limit');
  t.same(check({ rss: 70e6 }), [
    { do: 'log', level: 'warn', line: 'worker process 42 uses 70000000 bytes, over worker_max_memory 60000000: replacing it' },
    { do: 'set-worker', pid: 42, set: { recycling: true } },
    { do: 'count-restart', restart: null, metric: 'memory' },
    ping(42),
  ]);
  t.same(check({ rss: 70e6, recycling: true }), [ping(42)], 'being replaced already');
  t.same(check({ rss: 70e6, role: 'pending' }), [ping(42)], 'only the serving generation is recycled');
  t.same(check({ rss: 70e6, startRss: 65e6 }), [
    { do: 'log', level: 'warn', line: 'worker_max_memory 60000000 is below what a fresh worker uses (65000000 bytes): not replacing workers for memory' },
    { do: 'set-generation', generation: 3, set: { memoryWarned: true } },
    ping(42),
  ], 'a limit below a fresh worker: said once');
  t.same(check({ rss: 70e6, startRss: 65e6, warned: true }), [ping(42)], 'and not again');
});

t.test('a worker is ready: marked and said once; the worker it replaces goes', async (t) => {
  const m = model({ workers: [worker({ pid: 41, slot: 0, recycling: true }), worker({ pid: 42, slot: 0, state: 'starting' })] });
  t.same(planWorkerReady(m, 42), [
    { do: 'set-worker', pid: 42, set: { state: 'ready', readyAt: NOW, lastPong: NOW } },
    { do: 'log', level: 'notice', line: 'worker process 42 is ready (generation 3)' },
    ...stopping(41, 'SIGQUIT', 10_000),
  ]);
  for (const state of ['ready', 'draining'] as const) t.same(planWorkerReady(model({ workers: [worker({ pid: 42, state })] }), 42), [], `${state}: nothing`);
});

t.test('a generation is whole for the first time: a reload finishes, a first generation makes the master ready', async (t) => {
  const ready: Effect[] = [
    { do: 'set-generation', generation: 3, set: { everReady: true } },
    { do: 'timer', timer: { kind: 'ready', generation: 3 }, ms: null },
    { do: 'tell', outcome: { event: 'generation-ready', generation: 3, workers: 2 } },
  ];
  const whole = (role: GenerationRole, first: boolean, over: Partial<Model> = {}) => {
    const m = model({ firstGeneration: first ? 3 : 1, generations: [generation({ role, everReady: false })], ...over });
    return planGenerationReady(m, m.generations[0]!);
  };
  t.same(kinds(whole('pending', false).slice(3)), ['set-generation', 'set', 'set-current', 'set', 'take-over-log', 'tell'], 'a reload finishes');
  t.same(whole('active', true), [...ready, { do: 'serve-metrics', on: true }, { do: 'set', set: { ready: true } }, { do: 'notify', fields: ['READY=1'], status: '' }, { do: 'send', to: 'parent', msg: { t: 'ready', pid: 9 } }]);
  t.same(whole('active', true, { oldMaster: { pid: 5, alive: true, forgotten: false } }).slice(3), [
    { do: 'serve-metrics', on: true },
    { do: 'set', set: { ready: true } },
    { do: 'pidfile', op: 'write' },
    { do: 'notify', fields: ['READY=1'], status: '' },
    { do: 'send', to: 'parent', msg: { t: 'ready', pid: 9 } },
  ], 'a new master publishes its pid; systemd hears it once it is main (settle)');
  t.same(whole('active', false), ready, 'a TTIN/TTOU generation of reuseport: nothing more');
  const m = model({ generations: [generation({ everReady: false })], workers: [worker({ pid: 41 })] });
  t.same(planGenerationReady(m, m.generations[0]!), [], 'a worker missing');
  const n = model({ generations: [generation({ everReady: false })], workers: [worker({ pid: 41 }), worker({ pid: 42, slot: 1, state: 'starting' })] });
  t.same(planGenerationReady(n, n.generations[0]!), [], 'a worker not ready');
  const drained = model({ generations: [generation({ everReady: false, target: 0 })], workers: [] });
  t.same(planGenerationReady(drained, drained.generations[0]!), [], 'no workers at all (WINCH) is not whole');
});
