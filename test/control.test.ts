// The control socket and `tsmaster -s status`: states during steady state, reload and
// upgrade, request totals across an upgrade, SO_PEERCRED, and hostile clients.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import type { MasterStatus } from '../src/control/protocol.js';
import { cmdline, fixtures, freePort, get, isGone, startMaster, waitFor, workersOf, type Instance } from './helpers/master.js';

const app = (name: string) => path.join(fixtures, 'apps', name);

async function statusJson(m: Instance): Promise<MasterStatus[]> {
  const r = await m.cli(['-s', 'status', '--json']);
  if (r.code !== 0) throw new Error(`-s status failed: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { masters: MasterStatus[] }).masters;
}

/** Send raw bytes to the control socket and collect whatever comes back until close. */
function raw(sock: string, send: (s: net.Socket) => void): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(sock, () => send(s));
    let got = '';
    s.on('data', (d) => (got += d));
    s.on('close', () => resolve(got));
    s.on('error', () => resolve(got));
    s.setTimeout(15_000, () => s.destroy());
  });
}

t.test('steady state: --json matches /proc, the human table is plain off a terminal', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 3;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n` });
  const sock = `${m.pidFile}.sock`;
  t.equal(fs.statSync(sock).mode & 0o777, 0o600, 'control socket mode 0600');
  const [master, ...more] = await statusJson(m);
  t.equal(more.length, 0, 'one master');
  t.equal(master!.pid, m.masterPid);
  t.equal(master!.state, 'running');
  t.same(master!.upgrade, { role: 'none' });
  t.same(master!.workers.map((w) => w.pid).sort(), workersOf(m.masterPid).sort(), 'workers are the children /proc shows');
  for (const w of master!.workers) {
    t.match(cmdline(w.pid), /^tsmaster: worker process/);
    t.equal(w.state, 'ready');
    t.equal(w.generation, 1);
    t.ok(w.rss! > 1e6, 'RSS from pidusage');
    t.type(w.cpu, 'number');
  }
  const human = await m.cli(['-s', 'status']);
  t.equal(human.code, 0);
  t.notMatch(human.stdout, /\x1b\[/, 'no colour codes when stdout is not a terminal');
  t.match(human.stdout, new RegExp(`^master ${m.masterPid}  generation 1  running`, 'm'));
  t.equal(human.stdout.split('\n').filter((l) => /^\d+ +1 +\d +ready/.test(l)).length, 3, 'a row per worker');
});

t.test('status during a reload and during an upgrade', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 1;\nready_timeout 20s;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n` });
  fs.writeFileSync(m.conf, fs.readFileSync(m.conf, 'utf8').replace(app('hello.mjs'), app('slow-start.mjs')));
  m.signal('SIGHUP');
  await m.waitLog(/^start worker process \d+ \(generation 2/);
  const [during] = await statusJson(m);
  t.equal(during!.state, 'reloading');
  t.same(
    during!.workers.map((w) => [w.generation, w.state]).sort(),
    [
      [1, 'ready'],
      [2, 'starting'],
    ],
    'old ready, new starting',
  );
  await m.waitLog(/^reload finished/);

  m.signal('SIGUSR2');
  await m.waitLog(/^start new master process/);
  const masters = await statusJson(m);
  t.equal(masters.length, 2, 'both masters answer');
  const [old, fresh] = masters as [MasterStatus, MasterStatus];
  t.equal(old.pid, m.masterPid, 'the old master answers on .oldbin');
  t.match(old.upgrade, { role: 'old', newPid: fresh.pid });
  t.match(fresh.upgrade, { role: 'new', oldPid: m.masterPid, oldAlive: true });
  await m.waitLog(/is ready; WINCH and QUIT/);
  const [old2] = await statusJson(m);
  t.match(old2!.upgrade, { role: 'old', newReady: true });
});

t.test('request totals: N requests count N, and the new master keeps the count', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 2;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n` });
  const N = 57;
  for (let i = 0; i < N; i++) t.equal((await get({ port })).status, 200, `request ${i}`);
  let last = -1;
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
    last = (await statusJson(m))[0]!.totals.requests;
    if (last === N) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  t.equal(last, N, 'the heartbeats brought the count to N');
  const up = await m.cli(['-s', 'upgrade'], { timeoutMs: 60_000 });
  t.equal(up.code, 0, up.stderr);
  const [fresh] = await statusJson(m);
  t.not(fresh!.pid, m.masterPid);
  t.equal(fresh!.totals.requests, N, 'handed over to the new master');
  t.ok(isGone(m.masterPid));
});

t.test('a client with another uid is refused; hostile input leaves the master serving', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 1;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n` });
  const sock = `${m.pidFile}.sock`;
  const client = `const s=require('net').connect(${JSON.stringify(sock)},()=>s.write('{"cmd":"status"}\\n'));let d='';s.on('data',x=>d+=x);let e='';s.on('error',x=>e=x.code);s.on('close',()=>console.log(d.trim()||e||'closed'));`;
  const asNobody = () =>
    new Promise<string>((resolve) => {
      const c = spawn(process.execPath, ['-e', client], { uid: 65534, gid: 65534 });
      let out = '';
      c.stdout.on('data', (d: Buffer) => (out += d));
      c.on('close', () => resolve(out.trim()));
    });
  // The directory lets everyone through: what keeps others out is the socket's own mode...
  fs.chmodSync(m.dir, 0o711);
  t.equal(await asNobody(), 'EACCES', 'mode 0600 keeps others out');
  // ...and behind it the master's SO_PEERCRED check.
  fs.chmodSync(sock, 0o666);
  t.same(JSON.parse(await asNobody()), { ok: false, error: 'permission denied: uid 65534' }, 'SO_PEERCRED refuses them too');

  t.match(JSON.parse(await raw(sock, (s) => s.write('this is not json\n'))), { ok: false, error: 'malformed JSON' });
  t.match(JSON.parse(await raw(sock, (s) => s.write('{"cmd":"rm -rf"}\n'))), { ok: false, error: /unknown command/ });
  const huge = await raw(sock, (s) => s.write('x'.repeat(1024 * 1024)));
  t.match(huge, /request longer than 65536 bytes/, 'a 1 MiB line is refused');
  t.equal(await raw(sock, (s) => s.end()), '', 'a half-closed connection is just closed');
  t.equal(await raw(sock, (s) => s.end('{"cmd":"ping"')), '', 'an unterminated line then EOF');
  t.equal((await get({ port })).status, 200, 'still serving');
  const [st] = await statusJson(m);
  t.equal(st!.pid, m.masterPid, 'still answering status');
});

t.test('-s status with no master: one line, exit 1', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 1;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n` });
  m.signal('SIGTERM');
  await waitFor('exit', () => isGone(m.masterPid));
  const r = await m.cli(['-s', 'status']);
  t.equal(r.code, 1);
  t.match(r.stderr, /^tsmaster: \[error\] control socket ".*\.sock": ENOENT: is tsmaster running\?\n$/);
});
