// The core daemon: serve through workers on TCP and unix sockets, titles, app forms,
// daemon mode and the pidfile.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { app, childrenOf, cmdline, freePort, get, isGone, startMaster, tcpSockets, waitFor, workersOf } from './helpers/master.js';


t.test('serves on TCP and a unix socket through worker processes', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, {
    conf: `worker_processes 2;\nlisten 127.0.0.1:${port};\nlisten unix:{{dir}}/app.sock mode=0660;\napp ${app('hello.mjs')};\n`,
  });
  const workers = workersOf(m.masterPid);
  t.equal(workers.length, 2, 'two workers');
  t.match(cmdline(m.masterPid), /^tsmaster: master process /, 'master title');
  for (const w of workers) t.match(cmdline(w), /^tsmaster: worker process/, 'worker title');
  const seen = new Set<number>();
  for (let i = 0; i < 20; i++) {
    const r = await get({ port });
    t.equal(r.status, 200);
    seen.add(Number(r.body.split(': ')[1]));
    const u = await get({ socketPath: path.join(m.dir, 'app.sock') });
    t.equal(u.status, 200);
    seen.add(Number(u.body.split(': ')[1]));
  }
  for (const pid of seen) t.ok(workers.includes(pid), `answered by worker ${pid}, not the master`);
  t.equal(fs.statSync(path.join(m.dir, 'app.sock')).mode & 0o777, 0o660, 'unix socket mode');
  t.equal(tcpSockets(m.masterPid, '01').length, 0, 'the master holds no accepted connection');
  t.equal(Number(fs.readFileSync(m.pidFile, 'utf8')), m.masterPid, 'pidfile names the master');
  m.signal('SIGTERM');
  await waitFor('master exit', () => isGone(m.masterPid));
  for (const w of workers) t.ok(isGone(w), `worker ${w} gone after TERM`);
  t.notOk(fs.existsSync(m.pidFile), 'pidfile removed');
  t.notOk(fs.existsSync(path.join(m.dir, 'app.sock')), 'unix socket file removed');
});

for (const kind of ['express', 'fastify', 'start-ctx'] as const) {
  t.test(`serves a ${kind} app`, async (t) => {
    const port = await freePort();
    const m = await startMaster(t, { conf: `worker_processes 1;\nlisten 127.0.0.1:${port};\napp ${app(`${kind}.mjs`)};\n` });
    const r = await get({ port });
    t.equal(r.status, 200);
    t.match(r.body, new RegExp(`^${kind === 'start-ctx' ? 'ctx' : kind}: ${workersOf(m.masterPid)[0]}`));
  });
}

t.test('daemon on: the launcher prints the pid and returns; -s stop ends it', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { daemon: true, conf: `worker_processes 2;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n` });
  t.ok(m.masterPid > 0, 'pid printed first');
  t.equal(Number(fs.readFileSync(m.pidFile, 'utf8')), m.masterPid);
  t.equal(workersOf(m.masterPid).length, 2);
  t.equal((await get({ port })).status, 200);
  const r = await m.cli(['-s', 'stop']);
  t.equal(r.code, 0, r.stderr);
  t.ok(isGone(m.masterPid), 'master gone once -s stop returns');
  t.notOk(fs.existsSync(m.pidFile));
});

t.test('SIGKILL of the master: the workers leave by themselves, the port is free again', async (t) => {
  const port = await freePort();
  const conf = `worker_processes 2;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n`;
  const m = await startMaster(t, { conf });
  const workers = workersOf(m.masterPid);
  m.signal('SIGKILL');
  const t0 = Date.now();
  // Nobody signals them: they see the master gone and leave (within a second when the CPUs
  // are free; the bound here is for a busy machine, the time is only reported).
  await waitFor('workers gone', () => workers.every(isGone), 15_000);
  t.comment(`workers gone after ${Date.now() - t0}ms`);
  const again = await startMaster(t, { conf });
  t.equal((await get({ port })).status, 200, 'a new tsmaster binds the same port');
  t.not(again.masterPid, m.masterPid);
});

t.test('WINCH drains the workers and keeps master and sockets; TTIN/TTOU change the count', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 2;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n` });
  m.signal('SIGTTIN');
  await waitFor('3 workers', () => workersOf(m.masterPid).length === 3);
  await m.waitLog(/^worker process \d+ is ready/, { after: m.lines().length - 1 });
  // Two signals of one kind sent at once may arrive as one: wait in between.
  m.signal('SIGTTOU');
  await waitFor('2 workers', () => workersOf(m.masterPid).length === 2);
  m.signal('SIGTTOU');
  await waitFor('1 worker', () => workersOf(m.masterPid).length === 1);
  const before = m.lines().length;
  m.signal('SIGWINCH');
  await waitFor('no workers', () => workersOf(m.masterPid).length === 0);
  await m.waitLog(/exited with code 0/, { after: before });
  t.notOk(isGone(m.masterPid), 'master stays');
  // Nobody accepts, but the socket is still bound: connect() lands in the backlog.
  const net = await import('node:net');
  const connected = await new Promise<boolean>((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
  t.ok(connected, 'connect() is not refused after WINCH');
  t.same(childrenOf(m.masterPid), [], 'no children left');
});
