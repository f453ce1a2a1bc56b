// worker_reload_batch: reloads that replace workers a few at a time. The rollout's decisions
// in-process first, then real masters under load that never retries.
import fs from 'node:fs';
import t, { type Test } from 'tap';
import { askStatus } from '../src/control/client.js';
import { isAlive } from '../src/proc.js';
import { parseText } from '../src/config/parser.js';
import { buildConfig } from '../src/config/build.js';
import type { Generation } from '../src/master/generation.js';
import { advanceRollout, batchSize, startRollout, type Rollout, type RolloutEffects } from '../src/master/rollout.js';
import { startLoad, type Load } from './helpers/load.js';
import { app, childrenOf, freePort, startMaster, waitFor, workersOf, type Instance } from './helpers/master.js';

function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\\0', ' ');
  } catch {
    return '';
  }
}

function config(directives: string) {
  const file = '/etc/tsmaster/test.conf';
  return buildConfig(parseText(`${directives}\nlisten 8080;\nexec /bin/true;\n`, file, { includeBase: '/etc/tsmaster' }), { file, prefix: '/etc/tsmaster' });
}

t.test('batchSize: a count, a share of the workers (rounded up), or all at once', async (t) => {
  t.equal(batchSize(config(''), 4), null, 'off by default');
  t.equal(batchSize(config('worker_reload_batch off;'), 4), null);
  t.equal(batchSize(config('worker_reload_batch 1;'), 4), 1);
  t.equal(batchSize(config('worker_reload_batch 4;'), 4), null, 'a batch of all the workers is no batch');
  t.equal(batchSize(config('worker_reload_batch 25%;'), 4), 1);
  t.equal(batchSize(config('worker_reload_batch 30%;'), 4), 2, 'rounded up');
  t.equal(batchSize(config('worker_reload_batch 1%;'), 4), 1, 'at least one');
  for (const bad of ['0', '101%', 'x', '%', '-1']) {
    t.throws(() => config(`worker_reload_batch ${bad};`), /invalid value/, `refused: ${bad}`);
  }
});

/** Two generations and the workers in their slots, as the master's table would have them. */
function world(fromTarget: number, toTarget: number) {
  const gen = (id: number, target: number) => ({ id, target, slots: null }) as unknown as Generation;
  const from = gen(1, fromTarget);
  const to = gen(2, toTarget);
  const workers = new Map<string, 'ready' | 'other'>();
  for (let s = 0; s < fromTarget; s++) workers.set(`1/${s}`, 'ready');
  const calls: string[] = [];
  let finished: Rollout | null = null;
  const fx: RolloutEffects = {
    spawn: (g) => {
      for (let s = 0; s < g.target; s++) if (g.slots!.has(s) && !workers.has(`${g.id}/${s}`)) workers.set(`${g.id}/${s}`, 'other');
      calls.push(`spawn ${g.id}`);
    },
    drain: (g, slots) => calls.push(`drain ${g.id} ${slots.join(',')}`),
    armReadyTimer: (g) => calls.push(`timer ${g.id}`),
    log: () => undefined,
    finished: (r) => (finished = r),
  };
  const alive = (g: number, s: number) => workers.get(`${g}/${s}`) ?? 'none';
  return { from, to, workers, calls, fx, alive, finished: () => finished };
}

t.test('a rollout moves slots a batch at a time: start, ready, drain, exit, next', async (t) => {
  const w = world(4, 4);
  let r: Rollout | null = null;
  startRollout(w.from, w.to, 1, w.fx, (x) => (r = x));
  t.same([...w.to.slots!], [0], 'batch 1: the new generation may run slot 0 only');
  t.same(w.calls, ['timer 2', 'spawn 2']);
  const step = () => advanceRollout(r!, w.from, w.to, w.alive, w.fx);
  step();
  t.same(w.calls.length, 2, 'nothing drains before the new worker is ready');
  w.workers.set('2/0', 'ready');
  step();
  t.same(w.calls.slice(2), ['drain 1 0'], 'ready: the old slot 0 drains');
  t.notOk(w.from.slots!.has(0), 'and is no longer the old generation\'s to respawn');
  step();
  t.same(w.calls.length, 3, 'the next batch waits until the old worker has exited');
  w.workers.delete('1/0');
  step();
  t.same(w.calls.slice(3), ['timer 2', 'spawn 2'], 'batch 2 starts');
  t.same([...w.to.slots!].sort(), [0, 1]);
  for (const s of [1, 2]) {
    w.workers.set(`2/${s}`, 'ready');
    step();
    w.workers.delete(`1/${s}`);
    step();
  }
  t.equal(r!.step, 4, 'batch 4 of 4 under way');
  w.workers.set('2/3', 'ready');
  step();
  t.notOk(w.calls.includes('drain 1 3'), 'the last batch of a reload is left to the reload\'s own finish');
});

t.test('a rollback moves the slots back the same way, and says when it is done', async (t) => {
  const w = world(4, 4);
  // Slots 0 and 1 moved, the new generation's slot 2 failed: the old one holds 2 and 3.
  w.from.slots = new Set([2, 3]);
  for (const s of [0, 1]) w.workers.delete(`1/${s}`);
  let r: Rollout | null = null;
  startRollout(w.to, w.from, 1, w.fx, (x) => (r = x), true, 'why');
  t.same(r!.left, [1], 'batch 1 of 2 takes slot 0 back; slot 1 is left');
  t.same([...w.from.slots].sort(), [0, 2, 3]);
  t.notOk(w.calls.includes('timer 1'), 'no ready timeout for the old generation');
  const step = () => advanceRollout(r!, w.to, w.from, w.alive, w.fx);
  w.workers.set('1/0', 'ready');
  step();
  t.ok(w.calls.includes('drain 2 0'), 'the new worker of slot 0 drains once the old one is ready');
  w.workers.delete('2/0');
  step();
  w.workers.set('1/1', 'ready');
  step();
  w.workers.delete('2/1');
  step();
  t.equal(w.finished(), r, 'finished: every slot is the old generation\'s again');
});

t.test('a rollback with nothing to move back finishes at once', async (t) => {
  const w = world(2, 2);
  w.from.slots = new Set([0, 1]);
  startRollout(w.to, w.from, 1, w.fx, () => undefined, true, 'why');
  t.ok(w.finished(), 'finished without a batch');
});

/**
 * The most processes `count` saw alive at once while `during` ran. A scan of /proc takes a
 * while: a worker that exits during it and its replacement started after it could both be
 * seen, so only those still alive when the scan is over are counted.
 */
/**
 * Worker processes only: a master also has short-lived children of its own (pidusage's
 * getconf on the first status request), which are not workers.
 */
const isWorker = (pid: number) => /tsmaster: worker process|worker\/main\.js/.test(cmdline(pid));

async function peakAlive(count: () => number[], during: () => Promise<void>): Promise<number> {
  let peak = 0;
  const sample = () => (peak = Math.max(peak, count().filter((p) => isAlive(p) && isWorker(p)).length));
  const timer = setInterval(sample, 10);
  try {
    await during();
  } finally {
    clearInterval(timer);
  }
  sample();
  return peak;
}

const peakChildren = (masterPid: number, during: () => Promise<void>) => peakAlive(() => childrenOf(masterPid), during);

/** A master with 4 workers and worker_reload_batch 1, under keep-alive and close load that flows. */
async function batchedUnderLoad(t: Test): Promise<{ m: Instance; loads: Load[] }> {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 4;\nworker_reload_batch 1;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n` });
  const loads = [startLoad({ port, keepAlive: true, concurrency: 4 }), startLoad({ port, keepAlive: false, concurrency: 4 })];
  t.teardown(() => Promise.all(loads.map((l) => l.stop())));
  await waitFor('traffic', () => loads.every((l) => l.result.ok > 20));
  return { m, loads };
}

async function zeroFailed(t: Test, loads: Load[]) {
  const [k, c] = await Promise.all(loads.map((l) => l.stop()));
  t.same({ failed: k!.failed, non2xx: k!.non2xx, errors: k!.errors }, { failed: 0, non2xx: 0, errors: [] }, `keep-alive: zero failed of ${k!.ok}`);
  t.same({ failed: c!.failed, non2xx: c!.non2xx, errors: c!.errors }, { failed: 0, non2xx: 0, errors: [] }, `close: zero failed of ${c!.ok}`);
}

t.test('worker_processes 4, worker_reload_batch 1: a reload never has more than 5 workers, fails no request', async (t) => {
  const { m, loads } = await batchedUnderLoad(t);
  const first = workersOf(m.masterPid);
  const peak = await peakChildren(m.masterPid, async () => {
    const r = await m.cli(['-s', 'reload']);
    t.equal(r.code, 0, `reload: ${r.stderr}`);
  });
  t.ok(peak <= 5, `at most 5 workers alive at once (saw ${peak})`);
  await zeroFailed(t, loads);
  await waitFor('4 new workers', () => workersOf(m.masterPid).length === 4 || undefined);
  t.same(workersOf(m.masterPid).filter((p) => first.includes(p)), [], 'every worker is new');
  for (let k = 1; k <= 4; k++) t.ok(m.lines().some((l) => l.text.startsWith(`reload: batch ${k} of 4: generation 2 starts slot(s) ${k - 1}`)), `batch ${k} of 4 in the log`);
});

t.test('a release broken in the third batch: the reload fails, says how far it got, and the old release takes every slot back', async (t) => {
  const { m, loads } = await batchedUnderLoad(t);
  fs.writeFileSync(m.conf, fs.readFileSync(m.conf, 'utf8').replace(app('hello.mjs'), `${app('broken-from-slot.mjs')};\nenv CRASH_FROM_SLOT=2`));
  let r = { code: null as number | null, stderr: '' };
  const peak = await peakChildren(m.masterPid, async () => {
    r = await m.cli(['-s', 'reload']);
  });
  t.equal(r.code, 1, 'the reload exits 1');
  t.match(r.stderr, /worker process \d+ of generation 2 exited with code 1 before it was ready \(in batch 3 of 4\)/, `and says how far it got: ${r.stderr.trim()}`);
  t.ok(peak <= 5, `at most 5 workers alive at once (saw ${peak})`);
  await zeroFailed(t, loads);
  await waitFor('4 workers of generation 1', async () => {
    const st = await askStatus(`${m.pidFile}.sock`).catch(() => null);
    if (!st) return undefined;
    return st.workers.length === 4 && st.workers.every((w) => w.generation === 1 && w.state === 'ready') ? st : undefined;
  });
  t.pass('generation 1 serves on all 4 slots again');
  t.ok(m.events().some((e) => e.event === 'reload-failed' && e.serving === 1 && /\(in batch 3 of 4\)$/.test(e.reason)), 'logged: generation 1 serves, and how far the reload got');
});

/** Every worker of an upgrade's two masters (the new master itself not counted). */
function upgradeWorkers(oldPid: number): number[] {
  const kids = childrenOf(oldPid);
  const masters = kids.filter((p) => /^tsmaster: master process|cli\/main\.js/.test(cmdline(p)));
  return [...kids.filter((p) => !masters.includes(p)), ...masters.flatMap((p) => childrenOf(p))];
}

t.test('a batched upgrade: the new master starts a worker at a time, the old one drains one for each; at most 5 workers', async (t) => {
  const { m, loads } = await batchedUnderLoad(t);
  const oldPid = m.masterPid;
  const peak = await peakAlive(() => upgradeWorkers(oldPid), async () => {
    const r = await m.cli(['-s', 'upgrade'], { timeoutMs: 120_000 });
    t.equal(r.code, 0, `upgrade: ${r.stderr}`);
  });
  t.ok(peak <= 5, `at most 5 workers alive at once (saw ${peak})`);
  await zeroFailed(t, loads);
  for (let k = 1; k <= 3; k++) t.ok(m.lines().some((l) => l.pid === oldPid && new RegExp(`has batch ${k} of 4 ready; draining slot\\(s\\) ${k - 1}$`).test(l.text)), `the old master drained slot ${k - 1} for batch ${k}`);
});

t.test('a batched upgrade rolled back in its third batch: the old master has its 4 workers again', async (t) => {
  const { m, loads } = await batchedUnderLoad(t);
  const oldPid = m.masterPid;
  const after = m.lines().length;
  m.signal('SIGUSR2');
  const third = await m.waitLog(/^upgrade: batch 3 of 4: starting slot\(s\) 2$/, { after });
  process.kill(third.pid, 'SIGKILL');
  await m.waitEvent('rolled-back', {}, { after, pid: oldPid });
  await waitFor('4 workers of the old master, all ready', async () => {
    const st = await askStatus(`${m.pidFile}.sock`).catch(() => null);
    return st && st.pid === oldPid && st.workers.length === 4 && st.workers.every((w) => w.state === 'ready') ? st : undefined;
  }, 30_000);
  t.pass('the old master serves with all 4 workers');
  await zeroFailed(t, loads);
});

