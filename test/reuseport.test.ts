// listen ... reuseport: one socket per worker slot so the kernel spreads connections, and
// no socket is ever closed under a running listen (a closed SO_REUSEPORT socket drops its
// queue): reloads, upgrades and count changes lose nothing.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { startLoad } from './helpers/load.js';
import { fixtures, freePort, get, isGone, sleep, startMaster, tcpSockets, waitFor, workersOf } from './helpers/master.js';

const hello = path.join(fixtures, 'apps', 'hello.mjs');

const listeningInodes = (pid: number) => tcpSockets(pid, '0A');

t.test('each worker gets its own SO_REUSEPORT socket and the kernel spreads connections', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 2;\nlisten 127.0.0.1:${port} reuseport;\napp ${hello};\n` });
  const listening = m.lines().filter((l) => l.text.startsWith(`listening on 127.0.0.1:${port}`));
  t.equal(listening.length, 2, 'the master bound two sockets on one address');
  const [a, b] = workersOf(m.masterPid).map(listeningInodes);
  t.equal(a!.length, 1);
  t.equal(b!.length, 1);
  t.not(a![0], b![0], 'the workers hold different sockets');
  const seen = new Map<string, number>();
  for (let i = 0; i < 200; i++) {
    const pid = (await get({ port })).body.split(': ')[1]!.trim();
    seen.set(pid, (seen.get(pid) ?? 0) + 1);
  }
  t.equal(seen.size, 2, `both workers answered: ${[...seen.values()].join(' / ')}`);
});

t.test('reloads, TTIN/TTOU and an upgrade under load with reuseport: zero failures', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 2;\nlisten 127.0.0.1:${port} reuseport;\napp ${hello};\n` });
  const loads = [startLoad({ port, keepAlive: true, concurrency: 4 }), startLoad({ port, keepAlive: false, concurrency: 4 })];
  t.teardown(() => Promise.all(loads.map((l) => l.stop())));
  for (let i = 0; i < 2; i++) {
    await sleep(400);
    t.equal((await m.cli(['-s', 'reload'])).code, 0, `reload ${i + 1}`);
  }
  const beforeTtin = m.lines().length;
  m.signal('SIGTTIN');
  await waitFor('3 workers of a new generation', () => workersOf(m.masterPid).length === 3);
  await m.waitEvent('reload-finished', {}, { after: beforeTtin });
  t.equal(m.lines().filter((l) => l.text.startsWith(`listening on 127.0.0.1:${port}`)).length, 2, 'the group grew...');
  t.ok(m.lines().some((l) => /^reload: generation \d+ starting with 3 worker/.test(l.text)));
  const before = m.lines().length;
  m.signal('SIGTTOU');
  await m.waitEvent('reload-finished', {}, { after: before });
  await waitFor('2 workers', () => workersOf(m.masterPid).length === 2);
  const shares = workersOf(m.masterPid).map((w) => listeningInodes(w).length).sort();
  t.same(shares, [1, 2], 'three sockets stay open, shared out over two workers');
  const up = await m.cli(['-s', 'upgrade'], { timeoutMs: 60_000 });
  t.equal(up.code, 0, up.stderr);
  t.ok(isGone(m.masterPid));
  await sleep(500);
  const results = await Promise.all(loads.map((l) => l.stop()));
  for (const r of results) {
    t.ok(r.ok > 100, `served ${r.ok}`);
    t.same([r.failed, r.non2xx, r.errors], [0, 0, []], 'zero failed requests');
  }
  const m2 = Number(fs.readFileSync(m.pidFile, 'utf8'));
  const inherited = workersOf(m2).flatMap(listeningInodes);
  t.equal(new Set(inherited).size, 3, 'the new master inherited all three sockets');
});

t.test('a failed reload that would add workers leaves no reuseport socket without a worker', async (t) => {
  const port = await freePort();
  const hello = path.join(fixtures, 'apps', 'hello.mjs');
  const m = await startMaster(t, { conf: `worker_processes 2;\nready_timeout 2s;\nlisten 127.0.0.1:${port} reuseport;\napp ${hello};\n` });
  t.equal(listeningInodes(m.masterPid).length, 2);
  fs.writeFileSync(m.conf, fs.readFileSync(m.conf, 'utf8').replace('worker_processes 2;', 'worker_processes 4;').replace(hello, path.join(fixtures, 'apps', 'never-ready.mjs')));
  const r = await m.cli(['-s', 'reload']);
  t.equal(r.code, 1, 'the reload fails');
  await waitFor('the failed generation is gone', () => workersOf(m.masterPid).length === 2);
  t.equal(listeningInodes(m.masterPid).length, 2, 'the two sockets only the failed generation served are closed');
  // Every new connection lands on a socket a worker accepts on: none waits in a dead queue.
  const answers = await Promise.all(Array.from({ length: 64 }, () => get({ port })));
  t.ok(answers.every((a) => a.status === 200), '64 new connections all answered');
});
