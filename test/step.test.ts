// step + settle + the executor in-process, over a fake seam (test/helpers/fake-seam.ts):
// a whole reload, a batched reload, an upgrade that rolls back, a worker crash loop, each
// driven event by event through Master.handle as the loop would. No process is started; the
// same behaviours with real processes are in reload.test.ts, rollout.test.ts, upgrade.test.ts
// and supervise.test.ts.
import t from 'tap';
import { fakeMaster, type FakeMaster } from './helpers/fake-seam.js';

const events = (f: FakeMaster) => f.outcomes().map((o) => o.event);
const byGeneration = (f: FakeMaster, g: number) => f.workers().filter((w) => w.generation === g);

t.test('a whole reload: the new generation starts beside the old, serves once all ready, the old one drains and goes', async (t) => {
  const f = fakeMaster(t, 'worker_processes 2;');
  t.same(f.workers().map((w) => [w.generation, w.slot, w.state]), [[1, 0, 'starting'], [1, 1, 'starting']], 'the first generation starts');
  for (const w of f.workers()) f.ready(w.pid);
  t.same(events(f), ['generation-ready'], 'ready');
  t.equal(f.m.state, 'running');
  f.send({ type: 'signal', signal: 'SIGHUP' });
  t.equal(f.m.state, 'reloading');
  const fresh = byGeneration(f, 2);
  t.equal(fresh.length, 2, 'two new workers beside the two old ones');
  f.ready(fresh[0]!.pid);
  t.equal(f.m.current, 1, 'one ready is not enough');
  t.same(f.world.signals, [], 'nobody is told to go yet');
  f.ready(fresh[1]!.pid);
  t.equal(f.m.current, 2, 'generation 2 serves');
  t.equal(f.m.state, 'running');
  t.same(events(f).slice(-2), ['generation-ready', 'reload-finished']);
  const old = byGeneration(f, 1);
  t.same(f.world.signals.map((s) => s.signal), ['SIGQUIT', 'SIGQUIT'], 'the old workers drain');
  t.same(old.map((w) => w.state), ['draining', 'draining']);
  for (const w of old) f.exit(w.pid);
  t.notOk(f.m.generations.has(1), 'generation 1 is forgotten once its workers are gone');
  t.match(f.log(), /generation 1 has exited/);
  t.equal(f.workers().length, 2);
});

t.test('a listen a reload removes closes as the reload finishes, while the old workers still drain', async (t) => {
  const f = fakeMaster(t, 'worker_processes 1;');
  const extra = `unix:${f.dir}/extra.sock`;
  f.configure(`worker_processes 1;\nlisten ${extra};`);
  for (const w of f.workers()) f.ready(w.pid);
  f.send({ type: 'signal', signal: 'SIGHUP' });
  for (const w of byGeneration(f, 2)) f.ready(w.pid);
  const keys = () => f.m.sockets.groups().map((g) => g.key);
  t.ok(keys().includes(extra), 'generation 2 listens on it too');
  f.configure('worker_processes 1;');
  f.send({ type: 'signal', signal: 'SIGHUP' });
  for (const w of byGeneration(f, 3)) f.ready(w.pid);
  t.same(events(f).slice(-1), ['reload-finished']);
  t.same(byGeneration(f, 2).map((w) => w.state), ['draining'], 'the old worker drains');
  t.notOk(keys().includes(extra), 'the removed listen is closed already: nobody accepts on it any more');
  t.ok(keys().some((k) => k.endsWith('/s.sock')), 'the one generation 3 has stays');
});

t.test('a batched reload: one slot at a time, never more than workers + batch alive, never fewer ready', async (t) => {
  const f = fakeMaster(t, 'worker_processes 3;\nworker_reload_batch 1;');
  for (const w of f.workers()) f.ready(w.pid);
  f.send({ type: 'signal', signal: 'SIGHUP' });
  let most = 0;
  for (let slot = 0; slot < 3; slot++) {
    const starting = byGeneration(f, 2).filter((w) => w.state === 'starting');
    t.same(starting.map((w) => w.slot), [slot], `batch ${slot + 1}: generation 2 starts slot ${slot} only`);
    most = Math.max(most, f.workers().length);
    f.ready(starting[0]!.pid);
    if (slot < 2) {
      const leaving = byGeneration(f, 1).filter((w) => w.state === 'draining');
      t.same(leaving.map((w) => w.slot), [slot], `generation 1 drains slot ${slot}`);
      t.equal(f.workers().filter((w) => w.state === 'ready').length, 3, 'three ready serve meanwhile');
      f.exit(leaving[0]!.pid);
    }
  }
  t.ok(most <= 4, `at most 4 workers alive (${most})`);
  t.equal(f.m.current, 2, 'the last batch ready: the reload finishes');
  t.same(events(f).slice(-2), ['generation-ready', 'reload-finished']);
  t.equal(f.m.batches, null);
  t.same(byGeneration(f, 1).map((w) => [w.slot, w.state]), [[2, 'draining']], 'the last old worker drains');
});

t.test('a batched reload that fails part-way moves its slots back, batch by batch, then fails', async (t) => {
  const f = fakeMaster(t, 'worker_processes 2;\nworker_reload_batch 1;');
  for (const w of f.workers()) f.ready(w.pid);
  f.send({ type: 'signal', signal: 'SIGHUP' });
  f.ready(byGeneration(f, 2)[0]!.pid);
  f.exit(byGeneration(f, 1).find((w) => w.state === 'draining')!.pid);
  // Batch 2: its worker dies before it is ready.
  f.exit(byGeneration(f, 2).find((w) => w.state === 'starting')!.pid, 1);
  t.same(events(f).slice(-1), ['reload-rolling-back']);
  const back = byGeneration(f, 1).filter((w) => w.state === 'starting');
  t.same(back.map((w) => w.slot), [0], 'generation 1 starts slot 0 again');
  f.ready(back[0]!.pid);
  const leaving = byGeneration(f, 2);
  t.same(leaving.map((w) => w.state), ['draining'], "generation 2's ready worker drains once the old one for its slot is ready");
  f.exit(leaving[0]!.pid);
  t.same(events(f).slice(-1), ['reload-failed']);
  t.equal(f.m.current, 1);
  t.equal(f.m.state, 'running');
  t.notOk(f.m.generations.has(2));
  t.same(byGeneration(f, 1).map((w) => w.state), ['ready', 'ready']);
});

t.test('an upgrade that rolls back: USR2, the new master ready, WINCH, then the new master dies: the old one serves again', async (t) => {
  const f = fakeMaster(t, 'worker_processes 2;');
  for (const w of f.workers()) f.ready(w.pid);
  f.send({ type: 'signal', signal: 'SIGUSR2' });
  const child = f.world.newMaster!;
  t.ok(child, 'a new master was started');
  t.same(f.world.pidfileOps, ['to-oldbin pid']);
  t.same(events(f).slice(-1), ['upgrade-started']);
  f.send({ type: 'signal', signal: 'SIGUSR2' });
  t.same(events(f).slice(-1), ['upgrade-refused'], 'a second USR2 is refused');
  f.send({ type: 'upgrade-ready', pid: child.pid });
  t.same(events(f).slice(-1), ['upgrade-ready']);
  t.same(f.world.pending(), [], 'no ready_timeout left for it');
  f.send({ type: 'signal', signal: 'SIGWINCH' });
  t.equal(f.m.state, 'draining');
  for (const w of f.workers()) f.exit(w.pid);
  t.equal(f.workers().length, 0, 'drained');
  f.send({ type: 'upgrade-exit', pid: child.pid, code: null, signal: 'SIGKILL' });
  t.same(events(f).slice(-2), ['upgrade-rolling-back', 'rolled-back']);
  t.same(f.world.pidfileOps.slice(-1), ['from-oldbin pid'], 'the pidfile is ours again');
  t.equal(f.m.state, 'running');
  t.equal(f.m.upgrade, null);
  t.same(f.workers().map((w) => [w.generation, w.slot, w.state]), [[1, 0, 'starting'], [1, 1, 'starting']], 'its workers start again');
  t.equal(f.m.lastRollback?.newPid, child.pid);
});

t.test('an upgrade whose new master is not ready in time: TERM, then KILL, then the rollback', async (t) => {
  const f = fakeMaster(t, 'worker_processes 1;\nready_timeout 5s;');
  for (const w of f.workers()) f.ready(w.pid);
  f.send({ type: 'signal', signal: 'SIGUSR2' });
  const child = f.world.newMaster!;
  f.advance(5000);
  f.send({ type: 'tick' });
  t.same(f.world.signals.filter((s) => s.pid === child.pid).map((s) => s.signal), ['SIGTERM']);
  f.advance(5000);
  f.send({ type: 'tick' });
  t.same(f.world.signals.filter((s) => s.pid === child.pid).map((s) => s.signal), ['SIGTERM', 'SIGKILL']);
  f.send({ type: 'upgrade-exit', pid: child.pid, code: null, signal: 'SIGKILL' });
  t.same(events(f).slice(-2), ['upgrade-rolling-back', 'rolled-back']);
  t.same(f.workers().map((w) => w.state), ['ready'], 'its worker never stopped serving');
});

t.test('a worker crash loop: respawns back off step by step, one line per step, and a stable worker resets it', async (t) => {
  const f = fakeMaster(t, 'worker_processes 2;');
  for (const w of f.workers()) f.ready(w.pid);
  const steps: number[] = [];
  for (let i = 0; i < 5; i++) {
    const w = f.workers()[0]!;
    f.exit(w.pid, 1);
    t.equal(f.workers().length, 1, `crash ${i + 1}: nothing starts before the backoff step ends`);
    const [ms] = f.world.pending().filter((x) => x >= 100);
    steps.push(ms!);
    f.advance(ms!);
    t.equal(f.workers().length, 2, 'then its replacement starts');
    f.ready(f.workers().find((x) => x.state === 'starting')!.pid);
  }
  t.same(steps, [100, 200, 400, 800, 1600], 'exponential backoff');
  // Two crashes within one step: the second joins it.
  const [a, b] = f.workers();
  f.exit(a!.pid, 1);
  f.exit(b!.pid, 1);
  t.match(f.log(), /respawn already scheduled/);
  t.match(f.log(), /no worker process of generation 1 is running; the listening sockets stay open/);
  t.equal(f.world.pending().filter((x) => x >= 100).length, 1, 'one step for both');
  f.advance(3200);
  t.equal(f.workers().length, 2, 'both start again after it');
  for (const w of f.workers()) f.ready(w.pid);
  f.advance(10_000);
  f.exit(f.workers()[0]!.pid, 1);
  t.equal(f.workers().length, 2, 'a worker that served 10 s crashes: replaced at once');
  t.equal(f.m.totals.restarts, 8);
});

t.test('workers that cannot even be started: a reload fails at once, the serving generation retries after a step', async (t) => {
  const f = fakeMaster(t, 'worker_processes 2;');
  for (const w of f.workers()) f.ready(w.pid);
  f.world.failSpawns = true;
  f.send({ type: 'signal', signal: 'SIGHUP' });
  t.same(events(f).slice(-1), ['reload-failed']);
  t.equal(f.world.spawned.length, 2, 'no worker of generation 2 was started');
  t.equal(f.m.state, 'running');
  f.exit(f.workers()[0]!.pid, 1);
  t.same(f.world.pending().filter((x) => x >= 100 && x < 30_000), [100], 'a crash: a backoff step');
  f.advance(100);
  t.match(f.log(), /could not start a worker process for generation 1: spawn EMFILE/);
  t.same(f.world.pending().filter((x) => x >= 100 && x < 30_000), [200], 'retried after the next step, not in a loop');
  f.world.failSpawns = false;
  f.advance(200);
  t.equal(f.workers().length, 2);
});

t.test('a stop: QUIT to every worker, exit once the last is gone, the pidfile removed', async (t) => {
  const f = fakeMaster(t, 'worker_processes 2;');
  for (const w of f.workers()) f.ready(w.pid);
  f.send({ type: 'signal', signal: 'SIGQUIT' });
  t.equal(f.m.state, 'stopping');
  f.exit(f.workers()[0]!.pid);
  t.equal(f.m.exitCode, null, 'not while a worker is left');
  f.exit(f.workers()[0]!.pid);
  t.equal(f.m.exitCode, 0);
  t.same(f.world.pidfileOps, ['remove pid', 'remove pid.oldbin']);
});

t.test('a batched reload whose first batch fails: nothing to move back, it fails at once', async (t) => {
  const f = fakeMaster(t, 'worker_processes 2;\nworker_reload_batch 1;');
  for (const w of f.workers()) f.ready(w.pid);
  f.send({ type: 'signal', signal: 'SIGHUP' });
  f.exit(byGeneration(f, 2)[0]!.pid, 1);
  t.same(events(f).slice(-2), ['reload-rolling-back', 'reload-failed']);
  t.equal(f.m.batches, null);
  t.equal(f.m.state, 'running');
  t.same(byGeneration(f, 1).map((w) => w.state), ['ready', 'ready'], 'the old workers never stopped');
});

t.test('a batched reload to more workers, and to fewer', async (t) => {
  const f = fakeMaster(t, 'worker_processes 2;\nworker_reload_batch 1;');
  for (const w of f.workers()) f.ready(w.pid);
  f.configure('worker_processes 3;\nworker_reload_batch 1;');
  f.send({ type: 'signal', signal: 'SIGHUP' });
  for (let slot = 0; slot < 3; slot++) {
    const w = byGeneration(f, 2).find((x) => x.state === 'starting')!;
    t.equal(w.slot, slot);
    f.ready(w.pid);
    const leaving = byGeneration(f, 1).find((x) => x.state === 'draining');
    if (leaving) f.exit(leaving.pid);
  }
  t.equal(f.m.current, 2);
  t.equal(byGeneration(f, 2).length, 3);
  f.configure('worker_processes 1;\nworker_reload_batch 1;');
  f.send({ type: 'signal', signal: 'SIGHUP' });
  const w = byGeneration(f, 3)[0]!;
  f.ready(w.pid);
  t.equal(f.m.current, 3, 'one worker is the whole new generation');
  t.same(byGeneration(f, 2).map((x) => x.state), ['draining', 'draining', 'draining']);
});

t.test('WINCH, then HUP with no upgrade under way: a reload starts workers again', async (t) => {
  const f = fakeMaster(t, 'worker_processes 1;');
  for (const w of f.workers()) f.ready(w.pid);
  f.send({ type: 'signal', signal: 'SIGWINCH' });
  for (const w of f.workers()) f.exit(w.pid);
  t.equal(f.workers().length, 0);
  f.send({ type: 'signal', signal: 'SIGHUP' });
  const fresh = byGeneration(f, 2);
  t.equal(fresh.length, 1, 'generation 2 starts');
  f.ready(fresh[0]!.pid);
  t.equal(f.m.current, 2);
  t.equal(f.m.state, 'running', 'serving again');
});

t.test('the upgrade a control client asks for whole: each outcome to it as it happens; ready, the master drains and exits by itself', async (t) => {
  const f = fakeMaster(t, 'worker_processes 2;');
  for (const w of f.workers()) f.ready(w.pid);
  const heard: string[] = [];
  f.send({ type: 'control-upgrade', waiter: (o) => heard.push(o.event) });
  const child = f.world.newMaster!;
  t.same(heard, ['upgrade-started']);
  const other: string[] = [];
  f.send({ type: 'control-upgrade', waiter: (o) => other.push(o.event) });
  t.same(other, ['upgrade-refused'], 'a second client is refused, alone');
  f.send({ type: 'upgrade-ready', pid: child.pid });
  t.same(heard, ['upgrade-started', 'upgrade-ready']);
  t.equal(f.m.state, 'draining', 'the master drains its workers itself (the WINCH of the signal path)');
  t.same(f.world.signals.map((s) => s.signal), ['SIGQUIT', 'SIGQUIT']);
  f.exit(f.workers()[0]!.pid);
  t.equal(f.m.exitCode, null);
  f.exit(f.workers()[0]!.pid);
  t.same(heard, ['upgrade-started', 'upgrade-ready', 'upgrade-finished'], 'its workers gone: finished');
  t.equal(f.m.exitCode, 0, 'and it exits (the QUIT of the signal path)');
});

t.test('the upgrade a control client asks for rolls back: the client hears how, and the master serves on', async (t) => {
  const f = fakeMaster(t, 'worker_processes 1;');
  for (const w of f.workers()) f.ready(w.pid);
  const heard: Array<{ event: string }> = [];
  f.send({ type: 'control-upgrade', waiter: (o) => heard.push(o) });
  const child = f.world.newMaster!;
  f.send({ type: 'upgrade-exit', pid: child.pid, code: 1, signal: null });
  t.same(heard.map((o) => o.event), ['upgrade-started', 'upgrade-rolling-back', 'rolled-back']);
  t.match(heard[1], { pid: child.pid, how: 'exited with code 1', ready: false });
  t.equal(f.m.upgradeWaiters.length, 0, 'answered once');
  t.equal(f.m.state, 'running');
  t.same(f.workers().map((w) => w.state), ['ready']);
});

t.test("systemd's main process across an upgrade: the old master stays main, its last word hands over (notify.ts)", async (t) => {
  const f = fakeMaster(t, 'worker_processes 1;');
  for (const w of f.workers()) f.ready(w.pid);
  const heard: string[] = [];
  f.send({ type: 'control-upgrade', waiter: (o) => heard.push(o.event) });
  const child = f.world.newMaster!;
  const handOver = (f.m.notifier as unknown as { handOver: (pid: number) => void });
  const said: number[] = [];
  handOver.handOver = (pid) => void said.push(pid);
  f.send({ type: 'upgrade-ready', pid: child.pid });
  t.same(said, [], 'not when the new master is ready');
  f.exit(f.workers()[0]!.pid);
  t.same(heard.at(-1), 'upgrade-finished');
  t.same(said, [child.pid], 'as the old master exits: MAINPID= the new one');
});
