// The control socket: who may connect (mode 0600, SO_PEERCRED), hostile input, reload over
// the socket, stale and live sockets at start, the .oldbin path during an upgrade.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t, { type Test } from 'tap';
import { ask, askFollowing, askStatus } from '../src/control/client.js';
import { parseOutcome } from '../src/outcomes.js';
import { app, freePort, get, type Instance, isGone, readLog, socketInodes, startMaster, waitFor, workersOf } from './helpers/master.js';

const hello = (port: number, workers = 1) => `worker_processes ${workers};\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n`;

/** Send raw bytes to the control socket and collect whatever comes back until it closes. */
function raw(sock: string, send: (s: net.Socket) => void): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(sock, () => send(s));
    let got = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (got += d));
    s.on('close', () => resolve(got));
    s.on('error', () => undefined);
    s.setTimeout(20_000, () => s.destroy());
  });
}

/** The answers in a raw reply, one JSON object per line. */
function lines(reply: string): unknown[] {
  return reply
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as unknown);
}

/** Inode of the unix socket bound at `file` (/proc/net/unix). */
function unixInode(file: string): string | undefined {
  for (const line of fs.readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[7] === file) return f[6];
  }
  return undefined;
}

/** Poll an async check until it holds. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function cleanLog(t: Test, m: Instance, allowed: RegExp[] = []): void {
  const bad = readLog(m.log).filter((l) => ['error', 'alert', 'crit', 'emerg'].includes(l.level) && !allowed.some((re) => re.test(l.text)));
  t.same(bad, [], 'no unexpected error lines in the log');
}

t.test('the socket: mode 0600, the master only, not inherited by its workers', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: hello(port, 2) });
  const sock = `${m.pidFile}.sock`;
  const st = fs.statSync(sock);
  t.ok(st.isSocket());
  t.equal(st.mode & 0o777, 0o600, 'mode 0600');
  t.equal(st.uid, process.getuid!(), "owned by the master's uid");
  const inode = unixInode(sock);
  t.ok(inode, 'bound');
  t.ok(socketInodes(m.masterPid).has(inode!), 'held by the master');
  for (const w of workersOf(m.masterPid)) t.notOk(socketInodes(w).has(inode!), `not by worker ${w}`);
  t.same(await ask(sock, { cmd: 'ping' }), { ok: true, pong: m.masterPid });
});

t.test('another uid is refused, by the file mode and by SO_PEERCRED', { skip: process.getuid?.() !== 0 ? 'needs root to run a client as another uid' : false }, async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: hello(port) });
  const sock = `${m.pidFile}.sock`;
  fs.chmodSync(m.dir, 0o755);
  const client = `const s=require('net').connect(${JSON.stringify(sock)},()=>s.write('{"cmd":"status"}\\n'));let d='';s.on('data',x=>d+=x);let e='';s.on('error',x=>e=x.code);s.on('close',()=>console.log(d.trim()||e||'closed'));`;
  const asNobody = () =>
    new Promise<string>((resolve) => {
      const c = spawn(process.execPath, ['-e', client], { uid: 65534, gid: 65534, cwd: '/' });
      let out = '';
      c.stdout.on('data', (d: Buffer) => (out += d));
      c.on('close', () => resolve(out.trim()));
    });
  t.equal(await asNobody(), 'EACCES', 'mode 0600 keeps others out');
  // Open the file up: SO_PEERCRED is the second wall.
  fs.chmodSync(sock, 0o666);
  t.same(JSON.parse(await asNobody()), { ok: false, error: 'permission denied: uid 65534' }, 'SO_PEERCRED refuses them too');
  t.ok(
    m.lines().some((l) => l.level === 'warn' && /^control socket: refused a client with uid 65534 \(pid \d+\)$/.test(l.text)),
    'the refusal is logged',
  );
  t.same(await ask(sock, { cmd: 'ping' }), { ok: true, pong: m.masterPid }, 'root still gets in');
  cleanLog(t, m);
});

t.test('hostile input gets an error or a close, and the master keeps serving', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: hello(port) });
  const sock = `${m.pidFile}.sock`;
  const one = async (bytes: string | Buffer) => lines(await raw(sock, (s) => s.end(bytes)));

  t.same(await one('this is not json\n'), [{ ok: false, error: 'malformed JSON' }]);
  t.same(await one(Buffer.from([0xff, 0xfe, 0x7b, 0x0a])), [{ ok: false, error: 'malformed JSON' }], 'not UTF-8');
  t.same(await one('[1,2]\n'), [{ ok: false, error: 'a request is a JSON object with "cmd"' }]);
  t.same(await one('null\n'), [{ ok: false, error: 'a request is a JSON object with "cmd"' }]);
  t.same(await one('{"cmd":"rm -rf"}\n'), [{ ok: false, error: 'unknown command "rm -rf"' }]);
  t.same(await one('{}\n'), [{ ok: false, error: 'unknown command null' }]);
  t.same(await one('{"cmd":"handover","totals":{"requests":1e9,"restarts":0}}\n'), [{ ok: false, error: 'handover refused: only the old master, once' }], 'nobody else hands over counts');
  t.same(await one('{"cmd":"handover"}\n'), [{ ok: false, error: 'handover needs totals {requests, restarts}' }]);
  t.same(await one(''), [], 'a half-closed connection with nothing is just closed');
  t.same(await one('\n\n\n'), [], 'blank lines are no requests');
  t.same(await one('{"cmd":"ping"'), [{ ok: false, error: 'incomplete request: no newline before the end of input' }], 'a line cut short by EOF');
  t.same(await one('{"cmd":"ping"}\n'), [{ ok: true, pong: m.masterPid }], 'a request then a half-close is still answered');
  const piped = await one('{"cmd":"ping"}\nnope\n{"cmd":"status"}\n');
  t.equal(piped.length, 3, 'pipelined requests get an answer each');
  t.match(piped, [{ ok: true, pong: m.masterPid }, { ok: false, error: 'malformed JSON' }, { ok: true, status: { pid: m.masterPid } }], 'in order');

  const huge = await raw(sock, (s) => s.write('x'.repeat(1024 * 1024)));
  t.same(lines(huge), [{ ok: false, error: 'request longer than 65536 bytes' }], 'a 1 MiB line is refused, then closed');
  const hugeLine = await raw(sock, (s) => s.end(`{"cmd":"status","pad":"${'y'.repeat(1024 * 1024)}"}\n`));
  t.same(lines(hugeLine), [{ ok: false, error: 'request longer than 65536 bytes' }], 'also when it ends in a newline');
  const fine = await raw(sock, (s) => s.end(`{"cmd":"ping","pad":"${'z'.repeat(60_000)}"}\n`));
  t.same(lines(fine), [{ ok: true, pong: m.masterPid }], 'a long line under the limit is fine');

  // A crowd of clients that never say anything: the extra ones are closed, nothing breaks.
  const idle = await Promise.all(
    Array.from({ length: 40 }, () => new Promise<net.Socket>((resolve) => {
      const s = net.connect(sock, () => resolve(s));
      s.on('error', () => undefined);
    })),
  );
  t.equal((await get({ port })).status, 200, 'serving while 40 clients sit on the socket');
  for (const s of idle) s.destroy();
  await until('status answers again', async () => (await askStatus(sock).catch(() => null)) !== null);
  // A client that goes away while its answer is being prepared.
  await raw(sock, (s) => {
    s.write('{"cmd":"status"}\n');
    s.destroy();
  });

  t.equal((await get({ port })).status, 200, 'still serving');
  const st = await askStatus(sock);
  t.equal(st.pid, m.masterPid, 'still answering status');
  t.equal(st.totals.restarts, 0, 'no worker was disturbed');
  t.equal(workersOf(m.masterPid).length, 1);
  cleanLog(t, m);
});

t.test('reload over the socket: answered with the outcome', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `ready_timeout 30s;\n${hello(port)}` });
  const sock = `${m.pidFile}.sock`;
  t.same(await ask(sock, { cmd: 'reload' }, 30_000), { ok: true, reload: 'finished', outcome: { event: 'reload-finished', generation: 2, previous: 1 } });
  t.equal((await askStatus(sock)).generation, 2, 'generation 2 serves when the answer comes');

  // A config the master cannot apply: a second listen on a port someone else holds.
  const good = fs.readFileSync(m.conf, 'utf8');
  const holder = net.createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  t.teardown(() => holder.close());
  const busy = (holder.address() as net.AddressInfo).port;
  fs.writeFileSync(m.conf, `${good}listen 127.0.0.1:${busy};\n`);
  const bad = await ask(sock, { cmd: 'reload' }, 30_000);
  t.match(bad, { ok: false, outcome: { event: 'reload-failed', serving: 2, reason: new RegExp(`EADDRINUSE.*127\\.0\\.0\\.1:${busy}`) } }, 'the outcome comes back, with its reason');
  const cli = await m.cli(['-s', 'reload']);
  t.equal(cli.code, 1);
  const said = /^tsmaster: \[error\] (.*)\n$/.exec(cli.stderr)?.[1] ?? '';
  t.match(parseOutcome(said), { event: 'reload-failed', serving: 2, reason: new RegExp(`EADDRINUSE.*127\\.0\\.0\\.1:${busy}`) }, '-s reload prints the outcome on one line and exits 1');
  t.equal((await askStatus(sock)).generation, 2, 'nothing changed');
  holder.close();

  // Workers that take longer to be ready than a control client may sit idle: still answered.
  fs.writeFileSync(m.conf, good.replace(app('hello.mjs'), app('slow-start.mjs')).replace('ready_timeout 30s;', 'ready_timeout 30s;\nenv READY_DELAY_MS=11500;'));
  const t0 = Date.now();
  const [slow, second] = await Promise.all([
    m.cli(['-s', 'reload'], { timeoutMs: 60_000 }),
    (async () => {
      await m.waitLog(/^reload: generation 3 starting/);
      return ask(sock, { cmd: 'reload' });
    })(),
  ]);
  t.equal(slow.code, 0, slow.stderr);
  t.ok(Date.now() - t0 >= 11_000, '-s reload waited for the slow workers');
  t.match(second, { ok: false, outcome: { event: 'reload-refused', reason: 'the master is reloading' } }, 'a reload during a reload is ignored, and says so');
  const st = await askStatus(sock);
  t.equal(st.generation, 3);
  t.ok(st.workers.filter((w) => w.generation === 3).every((w) => w.state === 'ready'));
  cleanLog(t, m, [/EADDRINUSE/]);
});

t.test('at start: a stale socket file is replaced, a live one is refused', async (t) => {
  const port = await freePort();
  const a = await startMaster(t, { conf: hello(port) });
  const sock = `${a.pidFile}.sock`;
  const workers = workersOf(a.masterPid);
  a.signal('SIGKILL');
  await waitFor('master and workers gone', () => isGone(a.masterPid) && workers.every(isGone));
  t.ok(fs.statSync(sock).isSocket(), 'a SIGKILLed master leaves its socket file behind');
  await t.rejects(askStatus(sock), /ECONNREFUSED/, 'and nobody answers there');

  const b = await startMaster(t, { conf: hello(port), dir: a.dir });
  t.equal((await askStatus(sock)).pid, b.masterPid, 'a new master takes the path over');

  // Another master (own pidfile, own port) pointed at the same control socket.
  const port2 = await freePort();
  const other = path.join(a.dir, 'other');
  fs.mkdirSync(other);
  const c = await startMaster(t, { conf: `pid ${other}/tsmaster.pid;\ncontrol_socket ${sock};\n${hello(port2)}`, dir: other, waitReady: false });
  const code = await new Promise<number | null>((resolve) => c.proc!.once('exit', resolve));
  t.equal(code, 1, 'refuses to start');
  t.match(
    c.lines().find((l) => l.level === 'emerg')?.text ?? '',
    new RegExp(`^control socket "${sock.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}": in use: another master answers there$`),
    'and says why',
  );
  t.equal((await askStatus(sock)).pid, b.masterPid, 'the live master keeps its socket');
  t.equal((await get({ port })).status, 200);
  t.notOk(fs.existsSync(`${other}/tsmaster.pid`), 'the refused master left no pidfile');
});

t.test('upgrade: the old master answers on PATH.oldbin, and back on PATH after a rollback', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `ready_timeout 60s;\n${hello(port)}` });
  const sock = `${m.pidFile}.sock`;
  fs.writeFileSync(m.conf, fs.readFileSync(m.conf, 'utf8').replace(app('hello.mjs'), app('slow-start.mjs')).replace('ready_timeout 60s;', 'ready_timeout 60s;\nenv READY_DELAY_MS=60000;'));
  m.signal('SIGUSR2');
  const newPid = (await m.waitEvent('upgrade-started')).pid;
  await until('the new master on PATH', async () => (await ask(sock, { cmd: 'ping' }).catch(() => null)) !== null);
  t.same(await ask(`${sock}.oldbin`, { cmd: 'ping' }), { ok: true, pong: m.masterPid }, 'PATH.oldbin: the old master');
  t.same(await ask(sock, { cmd: 'ping' }), { ok: true, pong: newPid }, 'PATH: the new master');
  t.equal(fs.statSync(`${sock}.oldbin`).mode & 0o777, 0o600, 'the renamed socket keeps its mode');

  // -s upgrade now would start a second one: it says so instead.
  const twice = await m.cli(['-s', 'upgrade']);
  t.equal(twice.code, 1);
  t.match(twice.stderr, new RegExp(`^tsmaster: \\[error\\] upgrade not started: an upgrade is under way \\(new master process ${newPid}\\)`));

  process.kill(newPid, 'SIGKILL');
  await m.waitEvent('rolled-back');
  t.notOk(fs.existsSync(`${sock}.oldbin`), 'PATH.oldbin is gone');
  const st = await askStatus(sock);
  t.equal(st.pid, m.masterPid, 'PATH is the old master again');
  t.match(st.upgrade, { phase: 'none', lastRollback: { newPid, reason: `new master process ${newPid} exited on signal SIGKILL` } }, 'and it says what happened');
  t.equal((await get({ port })).status, 200);
  cleanLog(t, m, [/^new master process \d+ exited on signal SIGKILL; rolling back$/]);
});

t.test('-s upgrade with no log to follow (error_log stderr) sees a rollback on the socket', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `error_log stderr notice;\nready_timeout 60s;\n${hello(port)}`, waitReady: false });
  const sock = `${m.pidFile}.sock`;
  await until('ready', async () => (await askStatus(sock).catch(() => null))?.workers.every((w) => w.state === 'ready') === true);
  fs.writeFileSync(m.conf, fs.readFileSync(m.conf, 'utf8').replace(app('hello.mjs'), app('crash.mjs')));
  const t0 = Date.now();
  const r = await m.cli(['-s', 'upgrade'], { timeoutMs: 60_000 });
  t.equal(r.code, 1);
  t.ok(Date.now() - t0 < 20_000, 'well before ready_timeout (60s)');
  t.match(r.stderr, /^tsmaster: \[error\] upgrade failed: new master process \d+ exited with code 1; rolled back$/m);
  t.match(r.stderr, new RegExp(`^tsmaster: master process ${m.masterPid} keeps serving$`, 'm'));
  const st = await askStatus(sock);
  t.equal(st.pid, m.masterPid);
  t.equal((await get({ port })).status, 200);
});

t.test('the upgrade command: each outcome a line as it happens, then the old master finishes the upgrade itself and exits', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: hello(port) });
  const sock = `${m.pidFile}.sock`;
  const lines: unknown[] = [];
  const end = await askFollowing(sock, { cmd: 'upgrade' }, (res) => lines.push(res), 60_000);
  t.match(lines, [
    { ok: true, more: true, outcome: { event: 'upgrade-started' } },
    { ok: true, more: true, outcome: { event: 'upgrade-ready', self: m.masterPid } },
  ]);
  const newPid = (lines[0] as { outcome: { pid: number } }).outcome.pid;
  t.same(end, { ok: true, upgrade: 'finished', outcome: { event: 'upgrade-finished', pid: newPid, self: m.masterPid } }, 'finished: the old workers are gone');
  await waitFor('the old master gone', () => isGone(m.masterPid) || undefined);
  t.equal((await askStatus(sock)).pid, newPid, 'the new master answers on PATH');
  t.equal((await get({ port })).status, 200);
  t.equal(Number(fs.readFileSync(m.pidFile, 'utf8')), newPid);
});
