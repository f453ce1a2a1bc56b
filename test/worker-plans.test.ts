// What a worker's exit (or a failed spawn) makes the master do, in-process, for each kind of
// worker and generation: no process is started (the real ones are in supervise.test.ts,
// reload.test.ts, upgrade.test.ts and the chaos test).
import t from 'tap';
import type { GenerationRole } from '../src/master/generation.js';
import type { Effect } from '../src/master/plans.js';
import { EXEC_ALIVE_READY_MS, STABLE_MS, planCheck, planGenerationReady, planNotStarted, planWorkerExit, planWorkerReady, type CheckView, type ExitView } from '../src/master/worker-plans.js';

const NOW = 1_000_000;

function exit(over: { state?: ExitView['worker']['state']; role?: GenerationRole | null; everReady?: boolean; newMaster?: boolean; recycling?: boolean; readyAt?: number | null; killedFor?: string; killReason?: 'heartbeat' }): ExitView {
  return {
    worker: { pid: 42, slot: 1, state: over.state ?? 'ready', recycling: over.recycling ?? false, readyAt: over.readyAt === undefined ? NOW - 1000 : over.readyAt, killedFor: over.killedFor ?? null, killReason: over.killReason ?? null },
    gen: over.role === null ? null : { id: 2, role: over.role ?? 'active', everReady: over.everReady ?? true },
    how: 'exited with code 1',
    newMaster: over.newMaster ?? false,
    now: NOW,
  };
}

const after: Effect = { do: 'after-worker-exit', generation: 2 };

t.test('a worker that was asked to go, or whose generation is leaving or gone: said, nothing else', async (t) => {
  for (const newMaster of [false, true]) {
    t.same(planWorkerExit(exit({ state: 'draining', newMaster })), [{ do: 'log', level: 'notice', line: 'worker process 42 exited with code 1' }, after]);
    t.same(planWorkerExit(exit({ role: 'retiring', everReady: false, newMaster })), [{ do: 'log', level: 'notice', line: 'worker process 42 exited with code 1' }, after]);
    t.same(planWorkerExit(exit({ role: null, newMaster })), [{ do: 'log', level: 'notice', line: 'worker process 42 exited with code 1' }, { do: 'after-worker-exit', generation: null }]);
  }
});

t.test("a reload's worker that dies before its generation was ready fails the reload, with the reason", async (t) => {
  for (const state of ['starting', 'ready'] as const) {
    t.same(planWorkerExit(exit({ state, role: 'pending', everReady: false, killedFor: 'not ready within 30000ms' })), [
      { do: 'log', level: 'alert', line: 'worker process 42 exited with code 1 (not ready within 30000ms)' },
      { do: 'fail-reload', generation: 2, reason: 'worker process 42 of generation 2 exited with code 1 before it was ready' },
      after,
    ], state);
  }
});

t.test("a new master's worker that dies before its first generation was ready stops it, so the old master rolls back", async (t) => {
  t.same(planWorkerExit(exit({ state: 'starting', everReady: false, newMaster: true })), [
    { do: 'log', level: 'emerg', line: 'worker process 42 exited with code 1 before it was ready' },
    { do: 'tell-parent-failed', lines: ['worker process 42 exited with code 1 before it was ready'] },
    { do: 'command', command: 'fast-stop', code: 1 },
    after,
  ]);
});

t.test('a serving worker that dies: counted, and respawned (at once when it had been up long enough)', async (t) => {
  t.same(planWorkerExit(exit({ readyAt: NOW - STABLE_MS })), [
    { do: 'count-restart', generation: 2, slot: 1, reason: 'crash' },
    { do: 'respawn', generation: 2, stable: true, why: 'worker process 42 exited with code 1' },
    after,
  ], 'stable');
  t.match(planWorkerExit(exit({ readyAt: NOW - STABLE_MS + 1 })), [{}, { do: 'respawn', stable: false }], 'crashed soon after it was ready: backoff');
  t.match(planWorkerExit(exit({ readyAt: null, state: 'starting' })), [{}, { do: 'respawn', stable: false }], 'never ready: backoff');
  t.same(planWorkerExit(exit({ killedFor: 'no heartbeat for 31000ms', killReason: 'heartbeat' })).slice(0, 2), [
    { do: 'count-restart', generation: 2, slot: 1, reason: 'heartbeat' },
    { do: 'respawn', generation: 2, stable: false, why: 'worker process 42 exited with code 1 (no heartbeat for 31000ms)' },
  ], 'killed by the master: the reason is the metric label');
  t.same(planWorkerExit(exit({ recycling: true })), [
    { do: 'count-restart', generation: 2, slot: 1, reason: null },
    { do: 'log', level: 'alert', line: 'worker process 42 exited with code 1 while being replaced' },
    after,
  ], 'one being replaced: its replacement is already starting');
});

t.test("the first generation of a master that was not started by an upgrade keeps retrying, and tells the launcher", async (t) => {
  t.same(planWorkerExit(exit({ state: 'starting', everReady: false, readyAt: null })), [
    { do: 'count-restart', generation: 2, slot: 1, reason: 'crash' },
    { do: 'tell-parent-failed', lines: ['worker process 42 exited with code 1 before it was ready; the master keeps its sockets and retries'] },
    { do: 'respawn', generation: 2, stable: false, why: 'worker process 42 exited with code 1' },
    after,
  ]);
});

t.test('a worker that cannot even be started: a reload or a new master fails at once, a serving generation retries', async (t) => {
  const why = 'could not start a worker process for generation 2';
  t.same(planNotStarted({ id: 2, role: 'pending', everReady: false }, false, why), [{ do: 'fail-reload', generation: 2, reason: why }]);
  t.same(planNotStarted({ id: 2, role: 'active', everReady: false }, true, why).map((e) => e.do), ['log', 'tell-parent-failed', 'command']);
  for (const [role, everReady, newMaster] of [['active', true, false], ['active', true, true], ['active', false, false], ['pending', true, false]] as const) {
    t.same(planNotStarted({ id: 2, role, everReady }, newMaster, why), [{ do: 'log', level: 'alert', line: why }, { do: 'respawn', generation: 2, stable: false }], `${role}, ${everReady ? 'served' : 'never ready'}${newMaster ? ', new master' : ''}`);
  }
});

function check(over: { state?: CheckView['worker']['state']; exec?: boolean; notified?: boolean; age?: number; silent?: number; connected?: boolean; rss?: number; startRss?: number | null; recycling?: boolean; role?: GenerationRole; warned?: boolean; heartbeat?: number | null; max?: number | null }): CheckView {
  return {
    worker: {
      pid: 42,
      state: over.state ?? 'ready',
      exec: over.exec ?? false,
      notified: over.notified ?? false,
      startedAt: NOW - (over.age ?? 60_000),
      lastPong: NOW - (over.silent ?? 500),
      connected: over.connected ?? true,
      rss: over.rss ?? 50e6,
      startRss: over.startRss === undefined ? 40e6 : over.startRss,
      recycling: over.recycling ?? false,
    },
    gen: { id: 2, role: over.role ?? 'active', memoryWarned: over.warned ?? false, readyTimeoutMs: 30_000, heartbeatTimeoutMs: over.heartbeat === undefined ? 30_000 : over.heartbeat, maxMemory: over.max === undefined ? null : over.max },
    now: NOW,
  };
}

t.test('the periodic check: readiness by age for an exec worker, ready_timeout, heartbeats', async (t) => {
  t.same(planCheck(check({ state: 'draining', silent: 99_000 })), [{ do: 'ping', pid: 42 }], 'a draining worker is only pinged, never judged');
  t.same(planCheck(check({ state: 'starting', exec: true, age: EXEC_ALIVE_READY_MS })), [{ do: 'worker-ready', pid: 42 }], 'an exec worker alive 2 s without NOTIFY_SOCKET is ready');
  t.same(planCheck(check({ state: 'starting', exec: true, notified: true, age: EXEC_ALIVE_READY_MS })), [], 'one that uses NOTIFY_SOCKET says READY=1 itself');
  t.same(planCheck(check({ state: 'starting', age: EXEC_ALIVE_READY_MS })), [], 'a Node worker says ready itself');
  t.same(planCheck(check({ state: 'starting', age: 30_001 })), [{ do: 'kill-worker', pid: 42, why: 'not ready within 30000ms', reason: 'ready_timeout' }]);
  t.same(planCheck(check({ state: 'starting', age: 30_000 })), [], 'not before');
  t.same(planCheck(check({ silent: 30_001 })), [{ do: 'kill-worker', pid: 42, why: 'no heartbeat for 30001ms', reason: 'heartbeat' }]);
  t.same(planCheck(check({ silent: 99_000, heartbeat: null })), [{ do: 'ping', pid: 42 }], 'worker_heartbeat_timeout off');
  t.same(planCheck(check({ silent: 99_000, connected: false })), [], 'no channel (exec): nothing to ping or judge');
});

t.test('the periodic check: worker_max_memory replaces a worker, unless a fresh one would be over it too', async (t) => {
  t.same(planCheck(check({ rss: 50e6, max: 60e6 })), [{ do: 'ping', pid: 42 }], 'under the limit');
  t.same(planCheck(check({ rss: 70e6, max: 60e6 })), [
    { do: 'log', level: 'warn', line: 'worker process 42 uses 70000000 bytes, over worker_max_memory 60000000: replacing it' },
    { do: 'recycle', pid: 42 },
    { do: 'ping', pid: 42 },
  ]);
  t.same(planCheck(check({ rss: 70e6, max: 60e6, recycling: true })), [{ do: 'ping', pid: 42 }], 'being replaced already');
  t.same(planCheck(check({ rss: 70e6, max: 60e6, role: 'pending' })), [{ do: 'ping', pid: 42 }], 'only the serving generation is recycled');
  t.same(planCheck(check({ rss: 70e6, max: 60e6, startRss: 65e6 })), [
    { do: 'log', level: 'warn', line: 'worker_max_memory 60000000 is below what a fresh worker uses (65000000 bytes): not replacing workers for memory' },
    { do: 'memory-warned', generation: 2 },
    { do: 'ping', pid: 42 },
  ], 'a limit below a fresh worker: said once');
  t.same(planCheck(check({ rss: 70e6, max: 60e6, startRss: 65e6, warned: true })), [{ do: 'ping', pid: 42 }], 'and not again');
});

t.test('a worker is ready: marked and said once; the worker it replaces goes; a batch and its generation may move on', async (t) => {
  t.same(planWorkerReady({ worker: { pid: 42, generation: 2, state: 'starting' }, replaced: [41] }), [
    { do: 'mark-ready', pid: 42 },
    { do: 'log', level: 'notice', line: 'worker process 42 is ready (generation 2)' },
    { do: 'stop-worker', pid: 41 },
    { do: 'after-worker-ready', generation: 2 },
  ]);
  for (const state of ['ready', 'draining'] as const) t.same(planWorkerReady({ worker: { pid: 42, generation: 2, state }, replaced: [] }), [], `${state}: nothing`);
});

t.test('a generation is whole for the first time: a reload finishes, a first generation makes the master ready', async (t) => {
  const whole = (role: GenerationRole, first: boolean, everReady = false) => planGenerationReady({ gen: { id: 2, role, everReady, target: 2 }, serving: ['ready', 'ready'], first });
  const ready: Effect[] = [{ do: 'generation-ever-ready', generation: 2 }, { do: 'tell', outcome: { event: 'generation-ready', generation: 2, workers: 2 } }];
  t.same(whole('pending', false), [...ready, { do: 'finish-reload', generation: 2 }]);
  t.same(whole('active', true), [...ready, { do: 'first-ready' }]);
  t.same(whole('active', false), ready, 'a TTIN/TTOU generation of reuseport: nothing more');
  t.same(whole('pending', false, true), [], 'once only');
  t.same(planGenerationReady({ gen: { id: 2, role: 'pending', everReady: false, target: 2 }, serving: ['ready'], first: false }), [], 'a worker missing');
  t.same(planGenerationReady({ gen: { id: 2, role: 'pending', everReady: false, target: 2 }, serving: ['ready', 'starting'], first: false }), [], 'a worker not ready');
});
