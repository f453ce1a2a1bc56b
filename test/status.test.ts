// `tsmaster -s status [--json]`: what it shows in steady state, during a reload and during an
// upgrade; request totals that survive upgrades; speed with 64 workers.
import fs from 'node:fs';
import t, { type Test } from 'tap';
import { render, terminalPaint } from '../src/cli/status.js';
import { askStatus } from '../src/control/client.js';
import type { MasterStatus } from '../src/control/protocol.js';
import { app, childrenOf, cmdline, freePort, get, type Instance, isGone, readLog, startMaster, waitFor, workersOf } from './helpers/master.js';


// 64 Node workers take a while to start on a small machine that runs other tests too.
t.setTimeout(300_000);

async function statusJson(m: Instance): Promise<MasterStatus[]> {
  const r = await m.cli(['-s', 'status', '--json']);
  if (r.code !== 0) throw new Error(`-s status failed (${r.code}): ${r.stderr}`);
  return (JSON.parse(r.stdout) as { masters: MasterStatus[] }).masters;
}

/** Poll status until `check` accepts it (heartbeats come every second: wait, do not sleep). */
async function statusUntil(m: Instance, what: string, check: (ms: MasterStatus[]) => boolean, timeoutMs = 15_000): Promise<MasterStatus[]> {
  const deadline = Date.now() + timeoutMs;
  let last: MasterStatus[] = [];
  while (Date.now() < deadline) {
    last = await statusJson(m);
    if (check(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}; last status: ${JSON.stringify(last)}`);
}

function procPpid(pid: number): number {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]);
}

function procRss(pid: number): number {
  return Number(fs.readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * 4096;
}

/** No [error]/[alert]/[crit]/[emerg] in the log beyond what a test expects. */
function cleanLog(t: Test, m: Instance, allowed: RegExp[] = []): void {
  const bad = readLog(m.log).filter((l) => ['error', 'alert', 'crit', 'emerg'].includes(l.level) && !allowed.some((re) => re.test(l.text)));
  t.same(bad, [], 'no unexpected error lines in the log');
}

t.test('steady state: --json matches /proc, the table is plain off a terminal', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 3;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n` });
  const r = await m.cli(['-s', 'status', '--json']);
  t.equal(r.code, 0);
  t.equal(r.stderr, '');
  t.equal(r.stdout.trim().split('\n').length, 1, '--json prints one JSON document on one line');
  const masters = (JSON.parse(r.stdout) as { masters: MasterStatus[] }).masters;
  t.equal(masters.length, 1, 'one master');
  const master = masters[0]!;
  t.equal(master.pid, m.masterPid);
  t.match(cmdline(master.pid), /^tsmaster: master process /, 'the master is what /proc calls a master');
  t.equal(master.state, 'running');
  t.equal(master.generation, 1);
  t.same(master.upgrade, { phase: 'none' });
  t.ok(master.uptimeMs > 0 && master.uptimeMs < 60_000, 'master uptime');
  t.same(master.workers.map((w) => w.pid).sort(), workersOf(m.masterPid).sort(), 'the workers are the children /proc shows');
  t.same(master.workers.map((w) => w.slot).sort(), [0, 1, 2], 'one worker per slot');
  for (const w of master.workers) {
    t.equal(procPpid(w.pid), m.masterPid, `worker ${w.pid} is a child of the master`);
    t.match(cmdline(w.pid), /^tsmaster: worker process/, 'with a worker title');
    t.equal(w.state, 'ready');
    t.equal(w.generation, 1);
    t.equal(w.restarts, 0);
    t.ok(w.uptimeMs <= master.uptimeMs, 'a worker is younger than its master');
    const rss = procRss(w.pid);
    t.ok(w.rss! > rss / 2 && w.rss! < rss * 2, `RSS ${w.rss} near /proc's ${rss}`);
    t.type(w.cpu, 'number');
    t.ok(w.cpu! >= 0, 'CPU %');
  }

  // The loop delay comes with the first heartbeat (a second after ready); until then the table shows '-'.
  await waitFor('a heartbeat from every worker', async () => (await askStatus(`${m.pidFile}.sock`)).workers.every((w) => w.loopDelayMs !== null));
  const human = await m.cli(['-s', 'status']);
  t.equal(human.code, 0);
  t.notMatch(human.stdout, /\x1b\[/, 'no colour codes when stdout is not a terminal');
  t.match(human.stdout, new RegExp(`^master ${m.masterPid}  generation 1  running  up \\d+s  upgrade none  requests 0  restarts 0$`, 'm'));
  t.match(human.stdout, /^PID +GEN +SLOT +STATE +UPTIME +RESTARTS +CPU% +RSS +CONNS +REQUESTS +LOOP p50\/p99$/m, 'a header');
  for (const w of master.workers) t.match(human.stdout, new RegExp(`^${w.pid} +1 +${w.slot} +ready +\\d+s +0 +[\\d.]+ +[\\d.]+M +0 +0 +[\\d.]+\/[\\d.]+ms$`, 'm'), `a row for ${w.pid}`);
  cleanLog(t, m);
});

t.test('colours only on a terminal', async (t) => {
  const st: MasterStatus = {
    pid: 10,
    generation: 2,
    state: 'running',
    rollout: null,
    uptimeMs: 3_723_000,
    upgrade: { phase: 'starting', partner: 11 },
    totals: { requests: 5, restarts: 1 },
    workers: [{ pid: 12, generation: 2, slot: 0, state: 'draining', uptimeMs: 61_000, restarts: 1, cpu: 12.34, rss: 50 * 1024 * 1024, connections: 3, requests: 4, loopDelayMs: { p50: 0.5, p99: 2.25 } }],
  };
  const plain = render([st]).join('\n');
  t.notMatch(plain, /\x1b\[/);
  t.match(plain, /^master 10  generation 2  running  up 1h02m  upgrade: new master 11 starting  requests 5  restarts 1$/m);
  t.match(plain, /^12 +2 +0 +draining +1m01s +1 +12\.3 +50\.0M +3 +4 +0\.5\/2\.3ms$/m, 'event-loop delay p50/p99 per worker');
  const coloured = render([st], await terminalPaint()).join('\n');
  t.match(coloured, /\x1b\[/, 'escape codes on a terminal');
  t.equal(coloured.replace(/\x1b\[\d+m/g, ''), plain, 'the same text under the colours');
  const batched = render([{ ...st, state: 'reloading', rollout: { batch: 2, of: 4, back: false } }]).join('\n');
  t.match(batched, /^master 10  generation 2  reloading \(batch 2 of 4\)  up/m, 'a batched reload shows its progress');
  const back = render([{ ...st, state: 'reloading', rollout: { batch: 1, of: 2, back: true } }]).join('\n');
  t.match(back, /reloading \(rollback batch 1 of 2\)/, 'and its rollback');
  const up = (upgrade: unknown) => render([{ ...st, upgrade: upgrade as MasterStatus['upgrade'] }]).join('\n');
  t.match(up({ phase: 'killing', partner: 11 }), /upgrade: new master 11 being stopped \(not ready in time\)/);
  t.match(up({ phase: 'new', partner: 9 }), /upgrade: old master 9 running/);
  // The old master of an upgrade to this release answers in the words of the one before.
  t.match(up({ role: 'old', newPid: 11, newReady: true }), /upgrade: new master 11 ready/, 'an earlier release\'s old master');
  t.match(up({ role: 'new', oldPid: 9 }), /upgrade: old master 9 running/);
  t.match(up({ role: 'none' }), /upgrade none /);
});

t.test('during a reload: the old generation ready, the new one starting, then the new one alone', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 2;\nready_timeout 20s;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n` });
  fs.writeFileSync(m.conf, fs.readFileSync(m.conf, 'utf8').replace(app('hello.mjs'), app('slow-start.mjs')).replace('ready_timeout 20s;', 'ready_timeout 20s;\nenv READY_DELAY_MS=4000;'));
  const after = m.lines().length;
  m.signal('SIGHUP');
  await m.waitLog(/^reload: generation 2 starting/, { after });
  const [during] = await statusUntil(m, 'two generations', ([s]) => s!.workers.length === 4);
  t.equal(during!.state, 'reloading');
  t.equal(during!.generation, 1, 'generation 1 still serves');
  t.same(
    during!.workers.map((w) => `${w.generation}:${w.state}`).sort(),
    ['1:ready', '1:ready', '2:starting', '2:starting'],
    'old ready, new starting',
  );
  t.equal((await get({ port })).status, 200, 'served meanwhile');

  await m.waitEvent('reload-finished', {}, { after });
  const [done] = await statusJson(m);
  t.equal(done!.state, 'running');
  t.equal(done!.generation, 2);
  t.same(done!.workers.filter((w) => w.generation === 2).map((w) => w.state), ['ready', 'ready'], 'the new generation is ready');
  t.ok(done!.workers.filter((w) => w.generation === 1).every((w) => w.state === 'draining'), 'what is left of the old one is draining');
  const [settled] = await statusUntil(m, 'old generation gone', ([s]) => s!.workers.every((w) => w.generation === 2));
  t.same(settled!.workers.map((w) => w.pid).sort(), workersOf(m.masterPid).sort(), 'and /proc agrees');
  cleanLog(t, m);
});

t.test('during an upgrade both masters answer, the old one first', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 2;\nready_timeout 20s;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n` });
  const oldWorkers = workersOf(m.masterPid).sort();
  // The new master's workers start slowly (8 s), so its `starting` state can be seen on a busy machine too.
  fs.writeFileSync(m.conf, fs.readFileSync(m.conf, 'utf8').replace('ready_timeout 20s;', 'ready_timeout 20s;\nenv READY_DELAY_MS=8000;').replace(app('hello.mjs'), app('slow-start.mjs')));
  m.signal('SIGUSR2');
  const newPid = (await m.waitEvent('upgrade-started')).pid;
  const during = await statusUntil(m, 'both masters', (ms) => ms.length === 2 && ms[1]!.workers.length === 2);
  const [old, fresh] = during as [MasterStatus, MasterStatus];
  t.equal(old.pid, m.masterPid, 'the old master answers on .oldbin');
  t.same(old.upgrade, { phase: 'starting', partner: newPid }, 'the old master: a new master is starting');
  t.same(old.workers.map((w) => w.pid).sort(), oldWorkers, 'with its own workers');
  t.ok(old.workers.every((w) => w.state === 'ready'));
  t.equal(fresh.pid, newPid, 'the new master answers on the path');
  t.same(fresh.upgrade, { phase: 'new', partner: m.masterPid });
  t.ok(fresh.workers.every((w) => w.state === 'starting'), 'its workers are starting');
  t.same(fresh.workers.map((w) => w.pid).sort(), childrenOf(newPid).sort(), "the new master's workers are its children in /proc");
  t.ok(fs.statSync(`${m.pidFile}.sock.oldbin`).isSocket(), 'PATH.oldbin is the old master');
  const human = await m.cli(['-s', 'status']);
  t.match(human.stdout, new RegExp(`^master ${m.masterPid} .* upgrade: new master ${newPid} starting`, 'm'));
  t.match(human.stdout, new RegExp(`^master ${newPid} .* upgrade: old master ${m.masterPid} running`, 'm'));

  const ready = await statusUntil(m, 'new master ready', (ms) => ms[0]!.upgrade.phase === 'ready');
  t.ok(ready[1]!.workers.every((w) => w.state === 'ready'), "the new master's workers are ready");
  m.signal('SIGWINCH');
  await statusUntil(m, 'old workers gone', (ms) => ms[0]!.pid === m.masterPid && ms[0]!.workers.length === 0);
  t.pass('the old master shows no workers after WINCH');
  m.signal('SIGQUIT');
  await waitFor('old master gone', () => isGone(m.masterPid));
  const [only, ...more] = await statusUntil(m, 'one master', (ms) => ms.length === 1);
  t.equal(more.length, 0);
  t.equal(only!.pid, newPid);
  t.same(only!.upgrade, { phase: 'none' }, 'the upgrade is over');
  t.notOk(fs.existsSync(`${m.pidFile}.sock.oldbin`), 'PATH.oldbin is gone with the old master');
  cleanLog(t, m);
});

t.test('request totals: N requests count N, and an upgrade keeps them, also what the old workers serve after USR2', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 2;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n` });
  const N = 57;
  for (let i = 0; i < N; i++) if ((await get({ port })).status !== 200) t.fail(`request ${i}`);
  const [counted] = await statusUntil(m, `requests = ${N}`, ([s]) => s!.totals.requests >= N);
  t.equal(counted!.totals.requests, N, 'the heartbeats bring the total to N, not more');
  t.equal(
    counted!.workers.reduce((sum, w) => sum + w.requests, 0),
    N,
    'the workers together served N',
  );

  // Upgrade by hand, with requests while both generations accept on the socket.
  m.signal('SIGUSR2');
  await statusUntil(m, 'new master ready', (ms) => ms[0]!.upgrade.phase === 'ready');
  const M = 40;
  for (let i = 0; i < M; i++) if ((await get({ port })).status !== 200) t.fail(`request ${N + i}`);
  m.signal('SIGWINCH');
  await statusUntil(m, 'old workers gone', (ms) => ms[0]!.pid === m.masterPid && ms[0]!.workers.length === 0);
  m.signal('SIGQUIT');
  await waitFor('old master gone', () => isGone(m.masterPid));
  const [fresh] = await statusUntil(m, `requests = ${N + M}`, ([s]) => s!.pid !== m.masterPid && s!.totals.requests >= N + M);
  t.equal(fresh!.totals.requests, N + M, 'the new master counts everything, also what the old workers served after USR2');
  t.match(m.lines().find((l) => /handed over/.test(l.text))?.text ?? '', /^old master process \d+ handed over \d+ request/, 'the old master handed its last counts over');

  // And once more through -s upgrade: the count stays.
  const up = await m.cli(['-s', 'upgrade'], { timeoutMs: 60_000 });
  t.equal(up.code, 0, up.stderr);
  const [third] = await statusJson(m);
  t.not(third!.pid, fresh!.pid);
  t.equal(third!.totals.requests, N + M, 'a second upgrade keeps it too');
  cleanLog(t, m);
});

t.test('restarts: per slot and in total, and they survive an upgrade', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 2;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n` });
  const [before] = await statusJson(m);
  const victim = before!.workers.find((w) => w.slot === 1)!;
  process.kill(victim.pid, 'SIGKILL');
  const [after] = await statusUntil(m, 'a replacement', ([s]) => s!.workers.length === 2 && s!.workers.every((w) => w.pid !== victim.pid && w.state === 'ready'));
  t.equal(after!.totals.restarts, 1);
  t.equal(after!.workers.find((w) => w.slot === 1)!.restarts, 1, 'slot 1 restarted once');
  t.equal(after!.workers.find((w) => w.slot === 0)!.restarts, 0, 'slot 0 never');
  const up = await m.cli(['-s', 'upgrade'], { timeoutMs: 60_000 });
  t.equal(up.code, 0, up.stderr);
  const [fresh] = await statusJson(m);
  t.equal(fresh!.totals.restarts, 1, 'the new master keeps the total');
  t.same(fresh!.workers.map((w) => w.restarts), [0, 0], 'its own workers have not restarted');
  cleanLog(t, m, [/worker process \d+ exited on signal SIGKILL/]);
});

t.test('64 workers: status lists every one with its CPU and RSS, also through the CLI', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 64;\nready_timeout 120s;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n`, waitReady: false });
  await m.waitEvent('generation-ready', { generation: 1, workers: 64 }, { timeoutMs: 150_000 });
  const sock = `${m.pidFile}.sock`;
  const times: number[] = [];
  let st: MasterStatus | null = null;
  for (let i = 0; i < 7; i++) {
    const t0 = performance.now();
    st = await askStatus(sock);
    times.push(performance.now() - t0);
  }
  t.equal(st!.workers.length, 64);
  t.ok(st!.workers.every((w) => w.rss !== null && w.cpu !== null), 'CPU and RSS for all of them');
  times.sort((a, b) => a - b);
  // Durations are the bench's business (npm run bench); here they are only reported.
  t.comment(`status with 64 workers: median ${times[3]!.toFixed(1)}ms, max ${times[6]!.toFixed(1)}ms`);
  const t0 = performance.now();
  const r = await m.cli(['-s', 'status']);
  const cliMs = performance.now() - t0;
  t.equal(r.code, 0);
  t.equal(r.stdout.split('\n').filter((l) => /^\d+ +1 +\d+ +ready/.test(l)).length, 64, 'a row per worker');
  t.comment(`tsmaster -s status (a whole node process): ${cliMs.toFixed(0)}ms`);
});

t.test('-s status with no master: one line, exit 1', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 1;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n` });
  m.signal('SIGTERM');
  await waitFor('exit', () => isGone(m.masterPid));
  t.notOk(fs.existsSync(`${m.pidFile}.sock`), 'the socket goes with the master');
  for (const args of [['-s', 'status'], ['-s', 'status', '--json']]) {
    const r = await m.cli(args);
    t.equal(r.code, 1);
    t.equal(r.stdout, '');
    t.match(r.stderr, /^tsmaster: \[error\] control socket ".*\.sock": ENOENT: is tsmaster running\?\n$/);
  }
});

t.test('control_socket off: -s status says so; -s reload and -s upgrade fall back to signals', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 1;\ncontrol_socket off;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n` });
  t.notOk(fs.existsSync(`${m.pidFile}.sock`), 'no socket');
  const st = await m.cli(['-s', 'status']);
  t.equal(st.code, 1);
  t.match(st.stderr, /^tsmaster: \[error\] control_socket is off: -s status needs it\n$/);
  const rl = await m.cli(['-s', 'reload']);
  t.equal(rl.code, 0, rl.stderr);
  t.ok(m.lines().some((l) => l.pid === m.masterPid && /SIGHUP/.test(l.text)), 'reloaded by HUP');
  // -s reload does not wait here (no socket to hear the outcome on): a USR2 during the
  // reload would be refused.
  await m.waitEvent('reload-finished', {}, { pid: m.masterPid });
  const up = await m.cli(['-s', 'upgrade'], { timeoutMs: 60_000 });
  t.equal(up.code, 0, up.stderr);
  t.match(up.stdout, /upgrade finished: master process \d+ serves/);
  t.equal((await get({ port })).status, 200);
  cleanLog(t, m);
});
