// The root master and what other processes can send it or leave it: datagrams on the exec
// workers' notify socket, control-socket clients, inherited fds and environment, forged log
// lines, a NOTIFY_SOCKET that never reads, signals without permission. Attacks run as nobody.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { ask } from '../src/control/client.js';
import { app, childrenOf, cli, fixtures, freePort, get, killAll, eventsOf, readLog, startMaster, tempDir, told, waitFor, waitForAnswer, workersOf } from './helpers/master.js';
import { PYTHON, asNobody, cannotAttack, daemonAsNobody, pythonAsNobody } from './helpers/nobody.js';

const execFixture = (name: string) => path.join(fixtures, 'exec', name);

function openDir(t: Parameters<typeof tempDir>[0]): string {
  const dir = tempDir(t, 'tsm-sec-');
  fs.chmodSync(dir, 0o755);
  return dir;
}

/** A logs/ directory in `dir` that the worker user (nobody) owns, for its worker_log. */
function logsOfNobody(dir: string): string {
  const logs = path.join(dir, 'logs');
  fs.mkdirSync(logs);
  fs.chownSync(logs, 65534, 65534);
  return logs;
}

/** Python: send READY=1 to the datagram socket argv[1]; prints `sent` or the error. */
const SEND_READY = `import socket,sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
try:
    s.sendto(b"READY=1", sys.argv[1]); print("sent")
except OSError as e: print(e.strerror)`;

function environ(pid: number): Record<string, string> {
  return Object.fromEntries(
    fs
      .readFileSync(`/proc/${pid}/environ`, 'utf8')
      .split('\0')
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );
}

/** The master's loop answers a ping within `ms` (a blocked loop does not). */
async function loopAnswers(sock: string, pid: number, ms = 5000): Promise<boolean> {
  try {
    const res = await ask(sock, { cmd: 'ping' }, ms);
    return res.ok && 'pong' in res && res.pong === pid;
  } catch {
    return false;
  }
}

t.test('notify socket: other users can neither reach nor squat it', { skip: cannotAttack }, async (t) => {
  // Squat the old predictable abstract names for the next pids first.
  const last = Number(fs.readFileSync('/proc/sys/kernel/ns_last_pid', 'utf8'));
  await daemonAsNobody(
    t,
    `import socket,sys,time
held = []
for p in range(int(sys.argv[1]), int(sys.argv[1]) + 400):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.bind("\\0tsmaster/%d/notify" % p); held.append(s)
    except OSError: pass
print("ready")
time.sleep(120)`,
    String(last),
  );
  const dir = openDir(t);
  const port = await freePort();
  // A plain LISTEN_FDS worker (no python3-systemd needed): it gets the NOTIFY_SOCKET all the same.
  const m = await startMaster(t, { dir, conf: `worker_processes 1;\nlisten 127.0.0.1:${port};\nexec ${PYTHON} ${execFixture('py_plain_worker.py')};\n` });
  t.equal((await get({ port })).status, 200, 'the master started despite the squatted names');
  const [w] = childrenOf(m.masterPid);
  const notify = environ(w!).NOTIFY_SOCKET!;
  t.match(notify, /^\/.+\/notify$/, 'a filesystem path, not an abstract name');
  const st = fs.statSync(path.dirname(notify));
  t.equal(st.mode & 0o777, 0o700, 'in a directory only root may enter (workers run as root here)');
  const send = pythonAsNobody(SEND_READY, notify);
  t.equal(send.stdout.trim(), 'Permission denied', 'nobody cannot send to it');
});

t.test('notify socket: the worker user may send, but passed fds never block the loop', { skip: cannotAttack }, async (t) => {
  const dir = openDir(t);
  const port = await freePort();
  const logs = logsOfNobody(dir);
  const m = await startMaster(t, {
    dir,
    conf: `user nobody;\nworker_processes 1;\nworker_log ${logs}/worker.log;\nlisten 127.0.0.1:${port};\nexec ${PYTHON} ${execFixture('linger_attack.py')};\n`,
  });
  const [w] = childrenOf(m.masterPid);
  const notify = environ(w!).NOTIFY_SOCKET!;
  const dirSt = fs.statSync(path.dirname(notify));
  t.same([dirSt.mode & 0o777, dirSt.uid], [0o711, 0], "root's directory: others may pass through, not list or change it");
  const sockSt = fs.lstatSync(notify);
  t.same([sockSt.mode & 0o777, sockSt.uid], [0o600, 65534], "the socket is the worker user's alone");
  // Another account in the worker's group (nogroup) may not send to it.
  const other = spawnSync('/usr/bin/env', ['-i', '/usr/bin/setpriv', '--reuid=65533', '--regid=65534', '--clear-groups', '--', PYTHON, '-c', SEND_READY, notify], { encoding: 'utf8', timeout: 30_000 });
  t.equal(other.stdout.trim(), 'Permission denied', 'uid 65533 of group 65534 cannot send to it');
  const said = fs.readFileSync(`${logs}/worker.log`, 'utf8');
  t.match(said, /^attack: (fd sent|refused)/m, `the attack ran: ${said.split('\n')[0]}`);
  for (let i = 0; i < 5; i++) {
    t.ok(await loopAnswers(`${m.pidFile}.sock`, m.masterPid), `ping ${i + 1}: the loop answers while the passed socket would linger 60 s`);
  }
  t.equal((await get({ port })).status, 200);
});

t.test('worker channel: fds and endless lines a Node worker sends never reach the master or block its loop', { skip: cannotAttack }, async (t) => {
  const dir = openDir(t);
  const port = await freePort();
  const logs = logsOfNobody(dir);
  const m = await startMaster(t, { dir, conf: `user nobody;\nworker_processes 1;\nworker_log ${logs}/worker.log;\nlisten 127.0.0.1:${port};\napp ${app('pass-fds.mjs')};\n` });
  const fdsOf = (pid: number) => fs.readdirSync(`/proc/${pid}/fd`).length;
  const before = fdsOf(m.masterPid);
  const r = await get({ port, path: '/attack' });
  const said = JSON.parse(r.body) as { uid: number; sent: { ok?: number; failed?: number } };
  t.equal(said.uid, 65534, 'the attack ran as nobody');
  t.equal((said.sent.ok ?? 0) + (said.sent.failed ?? 0), 100, `100 sockets sent with SCM_RIGHTS: ${JSON.stringify(said.sent)}`);
  for (let i = 0; i < 3; i++) t.ok(await loopAnswers(`${m.pidFile}.sock`, m.masterPid), `ping ${i + 1}: the loop answers`);
  // A heartbeat may hold an fd for a moment; 100 passed sockets would show.
  t.ok(fdsOf(m.masterPid) < before + 10, `the master holds ${fdsOf(m.masterPid)} fds, ${before} before the attack`);

  const after = m.lines().length;
  t.equal((await get({ port, path: '/flood' })).status, 200);
  // Lines are bounded by their type (a heartbeat needs 1 KiB); one without a type gets as much.
  await m.waitLog(/^worker process \d+: a (?:"pong" )?message longer than 1024 bytes(?: without a known type)?: channel closed$/, { after });
  t.ok(await loopAnswers(`${m.pidFile}.sock`, m.masterPid), 'the loop answers after the flood');
  // The worker lost its master's channel and leaves; supervision starts another.
  await m.waitLog(/^start worker process \d+ \(generation 1, slot 0\)/, { after });
  await waitForAnswer(port);
  t.equal((await get({ port })).status, 200, 'the service answers');
});

t.test('workers start with fds 0-2, their listeners and their channel to the master only', { skip: cannotAttack }, async (t) => {
  const dir = openDir(t);
  const secretPath = path.join(dir, 'secret');
  fs.writeFileSync(secretPath, 'root only\n', { mode: 0o600 });
  const secret = fs.openSync(secretPath, 'r');
  t.teardown(() => fs.closeSync(secret));
  const port = await freePort();
  const execPort = await freePort();
  const pidFile = path.join(dir, 'app.pid');
  const confs = {
    app: `daemon off;\npid ${pidFile};\nerror_log ${dir}/app.log info;\nuser nobody;\nworker_processes 1;\nlisten 127.0.0.1:${port};\napp ${app('fd-probe.mjs')};\n`,
    exec: `daemon off;\npid ${dir}/exec.pid;\nerror_log ${dir}/exec.log info;\ncontrol_socket off;\nworker_processes 1;\nlisten 127.0.0.1:${execPort};\nexec /bin/sleep 600;\n`,
  };
  // As a shell would leave it: fd 200 open on a root-only file, without close-on-exec.
  const stdio: Array<'ignore' | number> = Array.from({ length: 201 }, () => 'ignore');
  stdio[200] = secret;
  const masters = Object.entries(confs).map(([name, body]) => {
    fs.writeFileSync(path.join(dir, `${name}.conf`), body);
    const p = spawn(process.execPath, [cli, '-p', dir, '-c', `${name}.conf`], { stdio });
    t.teardown(() => {
      killAll(childrenOf(p.pid!));
      p.kill('SIGKILL');
    });
    return p;
  });
  for (const name of ['app', 'exec']) await waitFor(`${name} ready`, () => eventsOf(readLog(path.join(dir, `${name}.log`))).find((e) => e.event === 'generation-ready'), 20_000);

  const probe = JSON.parse((await get({ port })).body) as { uid: number; fds: Record<string, string>; fd200: string };
  t.equal(probe.uid, 65534, 'the app runs as nobody');
  t.equal(probe.fd200, 'EBADF', 'fd 200 is not open in the worker');
  t.notOk(Object.values(probe.fds).includes(secretPath), 'no fd of the Node worker reaches the file');
  const sockets = Object.values(probe.fds).filter((l) => l.startsWith('socket:'));
  t.equal(sockets.length, 3, 'its sockets: the listener, the IPC channel and this request');
  for (const [fd, target] of Object.entries(probe.fds)) {
    t.ok(/^(socket|pipe|anon_inode):|^\/dev\/null$|\.log$/.test(target), `Node worker fd ${fd} -> ${target}`);
  }

  const [execWorker] = childrenOf(masters[1]!.pid!);
  const execFds = fs.readdirSync(`/proc/${execWorker}/fd`).map(Number).sort((a, b) => a - b);
  t.same(execFds, [0, 1, 2, 3], 'the exec worker has fds 0-2 and its listener, nothing else');
  t.ok(readLog(path.join(dir, 'exec.log')).some((l) => l.text.startsWith(`closed fd 200 (${secretPath})`)), 'the master says it closed the stray fd');
});

t.test('control socket: other users cannot connect; stuck and flooding clients never lock out the operator', { skip: cannotAttack }, async (t) => {
  const dir = openDir(t);
  const port = await freePort();
  const m = await startMaster(t, { dir, conf: `worker_processes 1;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n` });
  const sock = `${m.pidFile}.sock`;
  const other = pythonAsNobody(
    `import socket,sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1]); print("connected")
except OSError as e: print(e.strerror)`,
    sock,
  );
  t.equal(other.stdout.trim(), 'Permission denied', 'nobody cannot connect');

  // Pipelining without reading: refused at once, and the connection is closed.
  const flood = net.connect(sock);
  t.teardown(() => flood.destroy());
  await new Promise((r) => flood.once('connect', r));
  flood.write('{"cmd":"status"}\n'.repeat(200));
  flood.pause();
  const closed = new Promise<void>((r) => flood.once('close', () => r()));

  flood.resume();
  await closed;
  t.pass('the pipelining client was closed');

  // Every client slot taken by connections that never send a thing, and some that trickle a
  // byte at a time (each byte used to restart their idle timer).
  const idle: net.Socket[] = [];
  t.teardown(() => idle.forEach((s) => s.destroy()));
  for (let i = 0; i < 40; i++) idle.push(net.connect(sock).on('error', () => undefined).resume());
  await Promise.all(idle.map((s) => new Promise((r) => (s.connecting ? s.once('connect', r) : r(null)))));
  const trickle = setInterval(() => idle.forEach((s) => s.writable && s.write(' ')), 1000);
  t.teardown(() => clearInterval(trickle));
  const first = await m.cli(['-s', 'status']);
  t.equal(first.code, 0, `the operator gets in while 40 clients hold the socket: ${first.stderr}`);
  // No request line within 10 s, trickling or not: all of them are gone.
  await waitFor('every stuck client closed', () => idle.every((s) => s.destroyed), 20_000);
  const after = await m.cli(['-s', 'status']);
  t.equal(after.code, 0, after.stderr);
});

for (const control of [true, false]) {
  t.test(`forged log lines do not decide -s upgrade (control socket ${control ? 'on' : 'off'})`, async (t) => {
    const port = await freePort();
    // Without user the app writes to the error log: it is the default worker_log (with
    // user the workers get a file of their own, test/security-logs.test.ts).
    const m = await startMaster(t, { conf: `worker_processes 1;\n${control ? '' : 'control_socket off;\n'}listen 127.0.0.1:${port};\napp ${app('forge-log.mjs')};\n` });
    // The app's forgeries are in the log, in the master's name, before the upgrade starts.
    await m.waitEvent('upgrade-failed', { reason: 'forged by the app, rolling back' }, { pid: m.masterPid });
    const up = await m.cli(['-s', 'upgrade'], { timeoutMs: 60_000 });
    t.equal(up.code, 0, `upgrade despite the forged lines: ${up.stderr}`);
    t.match(up.stdout, /upgrade finished: master process \d+ serves/);
    t.equal((await get({ port })).status, 200);
  });
}

t.test('a failed reload is reported as failed, whatever the app writes (control socket)', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 1;\nlisten 127.0.0.1:${port};\napp ${app('forge-log.mjs')};\n` });
  fs.appendFileSync(m.conf, 'bogus_directive on;\n');
  const r = await m.cli(['-s', 'reload']);
  t.equal(r.code, 1);
  t.match(r.stderr, /unknown directive "bogus_directive"/);
});

t.test('inherited sockets are checked: a UDP socket in LISTEN_FDS, a handover naming fd 2', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const conf = path.join(dir, 'tsmaster.conf');
  fs.writeFileSync(conf, `daemon off;\npid ${dir}/tsmaster.pid;\nerror_log stderr info;\nworker_processes 1;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n`);
  // A UDP socket on fd 3 and LISTEN_PID set to the master's own pid: python binds it and execs
  // the master in the same process (Node keeps a dgram socket's fd behind private fields that
  // moved in Node 26).
  const activate = [
    'import os, socket, sys',
    's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
    "s.bind(('127.0.0.1', int(sys.argv[1])))",
    'if s.fileno() != 3: os.dup2(s.fileno(), 3)',
    'os.set_inheritable(3, True)',
    "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1')",
    'os.execv(sys.argv[2], sys.argv[2:])',
  ].join('\n');
  const activated = spawn('/usr/bin/python3', ['-c', activate, String(port), process.execPath, cli, '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => {
    killAll(workersOf(activated.pid!));
    activated.kill('SIGKILL');
  });
  let err = '';
  activated.stderr!.on('data', (d: Buffer) => (err += d));
  await waitFor('ready', () => told(err, 'generation-ready') || /emerg/.test(err), 20_000);
  t.match(err, /LISTEN_FDS: fd 3 is a IPv4 dgram socket, not listening: not used/);
  t.equal((await get({ port })).status, 200, 'the master bound the TCP port itself');
  activated.kill('SIGTERM');
  await new Promise((r) => activated.once('exit', r));

  const handover = JSON.stringify({ parentPid: process.pid, fds: [{ fd: 2, name: 'x', key: 'tcp:127.0.0.1:1' }], totals: { requests: -5, restarts: 'many' } });
  const inherit = spawn(process.execPath, [cli, '-c', conf], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env: { ...process.env, TSMASTER_INHERIT: handover } });
  t.teardown(() => {
    killAll(workersOf(inherit.pid!));
    inherit.kill('SIGKILL');
  });
  let err2 = '';
  inherit.stderr!.on('data', (d: Buffer) => (err2 += d));
  await waitFor('ready', () => told(err2, 'generation-ready') || /emerg/.test(err2), 20_000);
  t.match(err2, /TSMASTER_INHERIT: fd 2 is not a descriptor above stderr: ignored/);
  t.equal((await get({ port })).status, 200, 'stderr is still open: the log goes on');
  const st = await ask(`${dir}/tsmaster.pid.sock`, { cmd: 'status' });
  t.ok(st.ok && 'status' in st && st.status.totals.requests >= 0 && st.status.totals.restarts === 0, 'bad totals read as counts');

  const strangerConf = path.join(dir, 'stranger.conf');
  fs.writeFileSync(strangerConf, `daemon off;\npid ${dir}/x.pid;\nerror_log stderr info;\nworker_processes 1;\nlisten 127.0.0.1:0;\napp ${app('hello.mjs')};\n`);
  const stranger = spawn(process.execPath, [cli, '-c', strangerConf], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, TSMASTER_INHERIT: JSON.stringify({ parentPid: 1, fds: [], totals: { requests: 9, restarts: 9 } }) },
  });
  t.teardown(() => stranger.kill('SIGKILL'));
  let err3 = '';
  stranger.stderr!.on('data', (d: Buffer) => (err3 += d));
  await waitFor('stranger logs', () => /TSMASTER_INHERIT/.test(err3), 20_000);
  t.match(err3, /TSMASTER_INHERIT names master process 1, but our parent is \d+: ignored/);
});

t.test('a full NOTIFY_SOCKET cannot stop the master; READY=1 goes out once it reads again', { skip: cannotAttack }, async (t) => {
  const dir = openDir(t);
  fs.mkdirSync(path.join(dir, 'nobody'));
  fs.chownSync(path.join(dir, 'nobody'), 65534, 65534);
  const notify = path.join(dir, 'nobody', 'notify');
  const drain = path.join(dir, 'nobody', 'drain');
  // As nobody: a datagram socket whose queue is full and is not read until \`drain\` exists.
  const reader = await daemonAsNobody(
    t,
    `import os,socket,sys,time
r = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); r.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
w = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); w.setblocking(False)
try:
    while True: w.sendto(b"x" * 1024, sys.argv[1])
except BlockingIOError: pass
print("ready")
while not os.path.exists(sys.argv[2]): time.sleep(0.05)
r.settimeout(15)
while True:
    d = r.recv(4096)
    if b"READY=1" in d: print("got READY=1"); break
time.sleep(120)`,
    notify,
    drain,
  );
  let heard = '';
  reader.stdout!.on('data', (d: Buffer) => (heard += d));
  const port = await freePort();
  const m = await startMaster(t, { dir, conf: `worker_processes 1;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n`, env: { ...process.env, NOTIFY_SOCKET: notify } });
  const said = await m.waitLog(/^sd_notify\("READY=1 .*EAGAIN.*retrying/, { pid: m.masterPid });
  t.equal(said.level, 'warn', 'the master says READY=1 waits, and goes on');
  t.equal((await get({ port })).status, 200, 'serving meanwhile');
  fs.writeFileSync(drain, '');
  await waitFor('READY=1 at the reader', () => heard.includes('got READY=1'), 15_000);
  t.pass('READY=1 arrived once the socket had room');
  const r = await m.cli(['-s', 'reload']);
  t.equal(r.code, 0, 'and a reload works');
});

t.test('-s stop without permission: one line, no stack trace', { skip: cannotAttack }, async (t) => {
  const dir = openDir(t);
  const port = await freePort();
  const m = await startMaster(t, { dir, conf: `worker_processes 1;\ncontrol_socket off;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n` });
  fs.chmodSync(m.conf, 0o644);
  const r = asNobody([process.execPath, cli, '-p', dir, '-c', m.conf, '-s', 'stop']);
  t.equal(r.code, 1);
  // The pidfile is root's alone (0600): nobody learns no pid from it, and signals nothing.
  t.equal(r.stderr, `tsmaster: [error] open() "${m.pidFile}" failed (13: EACCES): only root or the master's user may signal the master\n`);
  t.equal((await get({ port })).status, 200, 'the master serves on');
});
