// HUP / -s reload: zero failed requests under load, fail-safe on every kind of bad reload.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { MasterStatus } from '../src/control/protocol.js';
import { startLoad, type Load } from './helpers/load.js';
import { app, eventsOf, freePort, get, readLog, startMaster, waitFor, workersOf } from './helpers/master.js';

/** Wait until each load has served `n` more requests: reloads happen while traffic flows. */
async function moreRequests(loads: Load[], n: number): Promise<void> {
  const start = loads.map((l) => l.result.ok);
  await waitFor(`${n} more requests`, () => loads.every((l, i) => l.result.ok >= start[i]! + n));
}


t.test('5 reloads under keep-alive and Connection: close load: zero failures, all workers new', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 2;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n` });
  const first = workersOf(m.masterPid);
  const keep = startLoad({ port, keepAlive: true, concurrency: 4 });
  const close = startLoad({ port, keepAlive: false, concurrency: 4 });
  t.teardown(() => Promise.all([keep.stop(), close.stop()]));
  for (let i = 0; i < 5; i++) {
    await moreRequests([keep, close], 100);
    const r = await m.cli(['-s', 'reload']);
    t.equal(r.code, 0, `reload ${i + 1}: ${r.stderr}`);
  }
  await moreRequests([keep, close], 100);
  const [k, c] = await Promise.all([keep.stop(), close.stop()]);
  t.ok(k.ok > 100 && c.ok > 100, `requests served: keep-alive ${k.ok}, close ${c.ok}`);
  t.same({ failed: k.failed, non2xx: k.non2xx, errors: k.errors }, { failed: 0, non2xx: 0, errors: [] }, 'keep-alive: zero failed');
  t.same({ failed: c.failed, non2xx: c.non2xx, errors: c.errors }, { failed: 0, non2xx: 0, errors: [] }, 'close: zero failed');
  await waitFor('old generations gone', () => workersOf(m.masterPid).length === 2);
  const last = workersOf(m.masterPid);
  t.same(last.filter((p) => first.includes(p)), [], 'every worker is new');
  t.ok(m.events().some((e) => e.event === 'generation-ready' && e.generation === 6), 'six generations');
});

t.test('slow requests of the old generation all complete', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 2;\nlisten 127.0.0.1:${port};\napp ${app('slow.mjs')};\n` });
  const keep = startLoad({ port, keepAlive: true, concurrency: 8, path: '/?ms=200' });
  const close = startLoad({ port, keepAlive: false, concurrency: 4, path: '/?ms=200' });
  t.teardown(() => Promise.all([keep.stop(), close.stop()]));
  for (let i = 0; i < 3; i++) {
    await moreRequests([keep, close], 20);
    t.equal((await m.cli(['-s', 'reload'])).code, 0);
  }
  await moreRequests([keep, close], 20);
  const [k, c] = await Promise.all([keep.stop(), close.stop()]);
  t.ok(k.ok > 20 && c.ok > 20, `served ${k.ok} + ${c.ok}`);
  t.equal(k.failed + k.non2xx + c.failed + c.non2xx, 0, `zero failed: ${[...k.errors, ...c.errors].join('; ')}`);
});

t.test('bad reloads keep the old workers serving', async (t) => {
  const port = await freePort();
  const base = `worker_processes 2;\nready_timeout 2s;\nlisten 127.0.0.1:${port};\n`;
  const m = await startMaster(t, { conf: `${base}app ${app('hello.mjs')};\n` });
  const workers = workersOf(m.masterPid).sort();
  const load = startLoad({ port, keepAlive: true, concurrency: 2 });
  t.teardown(() => load.stop());
  const body = fs.readFileSync(m.conf, 'utf8');
  const cases: Array<[string, string, RegExp]> = [
    ['syntax error', body.replace('worker_processes 2;', 'worker_processes 2 3;'), /invalid number of arguments in "worker_processes" directive in .*tsmaster\.conf:\d+/],
    ['app that throws on import', body.replace(app('hello.mjs'), app('throws.mjs')), /exited with code 1 before it was ready: Error: this release is broken on import \(at .*throws\.mjs:1:7\)/],
    ['app that never becomes ready', body.replace(app('hello.mjs'), app('never-ready.mjs')), /were not ready within 2000ms/],
  ];
  for (const [what, conf, why] of cases) {
    fs.writeFileSync(m.conf, conf);
    const before = m.lines().length;
    const r = await m.cli(['-s', 'reload']);
    t.equal(r.code, 1, `${what}: -s reload reports the failure`);
    t.match(r.stderr, why, `${what}: the reason is printed`);
    // Like nginx, -s reload checks the config itself before signalling; a plain HUP makes
    // the master find out on its own.
    if (what === 'syntax error') m.signal('SIGHUP');
    await m.waitEvent('reload-failed', {}, { after: before });
    t.ok(m.lines().slice(before).some((l) => why.test(l.text)), `${what}: the log has the reason`);
    t.same(workersOf(m.masterPid).filter((p) => workers.includes(p)).sort(), workers, `${what}: the old workers still run`);
    t.equal((await get({ port })).status, 200);
  }
  await waitFor('failed generations gone', () => workersOf(m.masterPid).length === 2);
  const r = await load.stop();
  t.ok(r.ok > 50);
  t.equal(r.failed + r.non2xx, 0, `zero failed requests: ${r.errors.join('; ')}`);
});

t.test('worker_processes, env, app and listen changes take effect', async (t) => {
  const [p1, p2] = [await freePort(), await freePort()];
  const m = await startMaster(t, { conf: `worker_processes 1;\nlisten 127.0.0.1:${p1};\napp ${app('hello.mjs')};\n` });
  t.match((await get({ port: p1 })).body, /^v1: /);
  fs.writeFileSync(
    m.conf,
    fs.readFileSync(m.conf, 'utf8').replace('worker_processes 1;', 'worker_processes 3;\nenv APP_VERSION=v2;').replace(`listen 127.0.0.1:${p1};`, `listen 127.0.0.1:${p2};\nlisten unix:{{dir}}/s.sock;`.replace('{{dir}}', m.dir)),
  );
  const r = await m.cli(['-s', 'reload']);
  t.equal(r.code, 0, r.stderr);
  await waitFor('3 workers', () => workersOf(m.masterPid).length === 3);
  t.match((await get({ port: p2 })).body, /^v2: /, 'new port, new env');
  t.match((await get({ socketPath: path.join(m.dir, 's.sock') })).body, /^v2: /, 'new unix socket');
  await t.rejects(get({ port: p1 }), { code: 'ECONNREFUSED' }, 'the removed listen is closed');
  fs.writeFileSync(m.conf, fs.readFileSync(m.conf, 'utf8').replace(app('hello.mjs'), app('express.mjs')));
  t.equal((await m.cli(['-s', 'reload'])).code, 0);
  t.match((await get({ port: p2 })).body, /^express: /, 'new app');
  t.ok(m.events().some((e) => e.event === 'generation-ready' && e.generation === 3 && e.workers === 3), 'generation 3 with 3 workers');
});

t.test('a failed reload stops a worker that has no signal handlers yet with TERM, not a QUIT that dumps core', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 2;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n` });
  // Slot 0 of the new generation is still booting when slot 1 fails on import.
  const conf = fs.readFileSync(m.conf, 'utf8').replace(app('hello.mjs'), `${app('broken-from-slot.mjs')};\nenv CRASH_FROM_SLOT=1;\nenv "NODE_OPTIONS=--require ${app('slow-boot.cjs')}"`);
  fs.writeFileSync(m.conf, conf);
  const after = m.lines().length;
  const r = await m.cli(['-s', 'reload']);
  t.equal(r.code, 1, r.stderr);
  const booting = await m.waitLog(/^start worker process (\d+) \(generation 2, slot 0\)/, { after });
  const pid = /process (\d+)/.exec(booting.text)![1];
  const exit = await m.waitLog(new RegExp(`^worker process ${pid} exited`), { after });
  t.equal(exit.text, `worker process ${pid} exited on signal SIGTERM`, 'stopped with TERM');
  t.equal((await get({ port })).status, 200, 'generation 1 serves on');
});


t.test('a new error_log that cannot be opened fails the reload before anything starts; the master is not left half-switched', async (t) => {
  const port = await freePort();
  // worker_log off: the new error_log is then opened only for the master itself.
  const m = await startMaster(t, { conf: `worker_processes 1;\nworker_log off;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n` });
  const good = fs.readFileSync(m.conf, 'utf8');
  fs.writeFileSync(m.conf, good.replace(/^error_log .*$/m, `error_log ${path.join(m.dir, 'missing', 'error.log')} info;`));
  const r = await m.cli(['-s', 'reload']);
  t.equal(r.code, 1, 'the reload fails');
  t.match(r.stderr, /open\(\) ".*missing\/error\.log" failed \(ENOENT/, 'with the open error');
  t.notOk(m.lines().some((l) => /^start worker process \d+ \(generation 2/.test(l.text)), 'no worker of the new config was started');
  const st = await m.cli(['-s', 'status', '--json']);
  t.match(st.stdout, /"state":"running"/, 'the master is running, not stuck reloading');
  t.equal((await get({ port })).status, 200, 'generation 1 serves');
  fs.writeFileSync(m.conf, good);
  const again = await m.cli(['-s', 'reload']);
  t.equal(again.code, 0, `a good reload afterwards works: ${again.stderr}`);
  t.ok(m.events().some((e) => e.event === 'reload-finished'), 'and is logged in the error_log that stayed');
});

t.test('a reload whose workers cannot even be started (the master out of fds) fails at once and leaves the master whole', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 2;\nworker_log off;\nready_timeout 60s;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n` });
  const load = startLoad({ port, keepAlive: true, concurrency: 2 });
  t.teardown(() => load.stop());
  await moreRequests([load], 50);
  const open = () => fs.readdirSync(`/proc/${m.masterPid}/fd`).length;
  // The soft limit only (raising a hard limit needs CAP_SYS_RESOURCE), restored after.
  const limit = (n: number) => execFileSync('prlimit', ['--pid', String(m.masterPid), `--nofile=${n}:`]);
  const soft = Number(/^Max open files\s+(\d+)/m.exec(fs.readFileSync(`/proc/${m.masterPid}/limits`, 'utf8'))![1]);
  // Room to read the config, none for a worker's channel and spawn's own pipes.
  limit(open() + 2);
  t.teardown(() => limit(soft));
  const before = m.lines().length;
  m.signal('SIGHUP');
  const failed = await m.waitEvent('reload-failed', { serving: 1 }, { after: before, timeoutMs: 20_000 });
  t.match(failed.reason, /could not start a worker process for generation 2/, `at once, with the reason: ${failed.reason}`);
  limit(soft);
  const st = (JSON.parse((await m.cli(['-s', 'status', '--json'])).stdout) as { masters: MasterStatus[] }).masters[0]!;
  t.match(st, { state: 'running', generation: 1 }, 'running generation 1, not stuck reloading');
  t.same(st.workers.map((w) => w.generation), [1, 1], 'only the old workers');
  const again = await m.cli(['-s', 'reload']);
  t.equal(again.code, 0, `with fds again, a reload works: ${again.stderr}`);
  const r = await load.stop();
  t.same({ failed: r.failed, non2xx: r.non2xx, errors: r.errors }, { failed: 0, non2xx: 0, errors: [] }, 'zero failed requests');
});

t.test('a reload that changes error_log: the master writes to the new file from the switch on', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 1;\nworker_log off;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n` });
  const moved = path.join(m.dir, 'moved.log');
  fs.writeFileSync(m.conf, fs.readFileSync(m.conf, 'utf8').replace(/^error_log .*$/m, `error_log ${moved} info;`));
  const r = await m.cli(['-s', 'reload']);
  t.equal(r.code, 0, r.stderr);
  const fresh = eventsOf(readLog(moved));
  t.ok(fresh.some((e) => e.event === 'reload-finished' && e.generation === 2), 'the reload-finished line is in the new error_log');
  t.notOk(m.events().some((e) => e.event === 'reload-finished'), 'not in the old one');
  m.signal('SIGUSR1');
  await waitFor('the master logs to the new file', () => readLog(moved).some((l) => /SIGUSR1/.test(l.text)));
  t.equal((await get({ port })).status, 200, 'generation 2 serves');
});
