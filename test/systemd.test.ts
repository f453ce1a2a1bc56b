// systemd: sd_notify messages over a real datagram socket, socket activation through the
// LISTEN_FDS protocol, and the shipped units checked by systemd-analyze.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import * as native from '../src/native/index.js';
import { cli, fixtures, freePort, get, isGone, readLog, root, sleep, startMaster, tempDir, waitFor, workersOf } from './helpers/master.js';

const hello = path.join(fixtures, 'apps', 'hello.mjs');

interface Received {
  pid: number;
  fields: string[];
}

function notifySink(t: Test, dir: string): { path: string; got: Received[] } {
  const got: Received[] = [];
  const sock = native.openNotifySocket(path.join(dir, 'notify.sock'), (msg, pid) => got.push({ pid, fields: msg.split('\n') }));
  t.teardown(() => sock.close());
  return { path: sock.path, got };
}

const has = (r: Received, field: string | RegExp) => r.fields.some((f) => (typeof field === 'string' ? f === field : field.test(f)));

/** A master whose NOTIFY_SOCKET is a datagram socket the test reads. */
async function notifiedMaster(t: Test, workers: number, env: NodeJS.ProcessEnv = {}) {
  const dir = tempDir(t);
  const sink = notifySink(t, dir);
  const port = await freePort();
  const m = await startMaster(t, {
    dir,
    env: { ...process.env, NOTIFY_SOCKET: sink.path, ...env },
    conf: `worker_processes ${workers};\nlisten 127.0.0.1:${port};\napp ${hello};\n`,
  });
  return { sink, m };
}

t.test('READY, RELOADING with MONOTONIC_USEC, MAINPID on upgrade, STOPPING', async (t) => {
  const { sink, m } = await notifiedMaster(t, 2);
  const ready = await waitFor('READY=1', () => sink.got.find((r) => has(r, 'READY=1')));
  t.equal(ready.pid, m.masterPid, 'from the master');
  t.ok(has(ready, /^STATUS=running, generation 1, 2\/2 workers ready$/), 'with a STATUS line');

  const before = sink.got.length;
  const r = await m.cli(['-s', 'reload']);
  t.equal(r.code, 0);
  const after = () => sink.got.slice(before);
  const reloading = await waitFor('RELOADING=1', () => after().find((x) => has(x, 'RELOADING=1')));
  const usec = Number(reloading.fields.find((f) => f.startsWith('MONOTONIC_USEC='))!.split('=')[1]);
  const now = Number(process.hrtime.bigint() / 1000n);
  t.ok(usec > 0 && usec <= now && now - usec < 60_000_000, 'MONOTONIC_USEC is CLOCK_MONOTONIC in µs');
  const readyAgain = await waitFor('READY=1 after reload', () => after().find((x) => has(x, 'READY=1')));
  t.ok(after().indexOf(readyAgain) > after().indexOf(reloading), 'READY=1 follows RELOADING=1');

  const up = await m.cli(['-s', 'upgrade'], { timeoutMs: 60_000 });
  t.equal(up.code, 0, up.stderr);
  const newPid = Number(fs.readFileSync(m.pidFile, 'utf8'));
  const mainpid = sink.got.find((x) => has(x, `MAINPID=${newPid}`));
  t.ok(mainpid, 'the new master announced MAINPID=');
  t.equal(mainpid?.pid, newPid, 'from the new master itself');
  t.ok(mainpid && has(mainpid, 'READY=1'));
  t.notOk(sink.got.some((x) => x.pid === m.masterPid && has(x, 'STOPPING=1')), 'the old master did not say STOPPING after handing over');

  process.kill(newPid, 'SIGQUIT');
  await waitFor('new master exit', () => isGone(newPid));
  t.ok(sink.got.some((x) => x.pid === newPid && has(x, 'STOPPING=1')), 'STOPPING=1 on shutdown');
});

t.test('rollback hands MAINPID back to the old master', async (t) => {
  const { sink, m } = await notifiedMaster(t, 1);
  m.signal('SIGUSR2');
  await m.waitEvent('upgrade-ready', {}, { pid: m.masterPid });
  const m2 = Number(fs.readFileSync(m.pidFile, 'utf8'));
  process.kill(m2, 'SIGKILL');
  await m.waitEvent('rolled-back', {}, { pid: m.masterPid });
  const back = await waitFor('MAINPID back', () => sink.got.find((x) => x.pid === m.masterPid && has(x, `MAINPID=${m.masterPid}`)));
  t.ok(has(back, 'READY=1'));
});

t.test('WATCHDOG=1 from the master that is main, handed over with MAINPID=', async (t) => {
  // 400 ms: a ping every 200 ms.
  const { sink, m } = await notifiedMaster(t, 1, { WATCHDOG_USEC: '400000' });
  const pings = (pid: number, from = 0) => sink.got.slice(from).filter((x) => x.pid === pid && has(x, 'WATCHDOG=1')).length;
  await waitFor('pings', () => pings(m.masterPid) >= 2);
  m.signal('SIGUSR2');
  await m.waitEvent('upgrade-ready', {}, { pid: m.masterPid });
  const m2 = Number(fs.readFileSync(m.pidFile, 'utf8'));
  const handedOver = sink.got.length;
  await waitFor('pings from the new master', () => pings(m2, handedOver) >= 2);
  const later = sink.got.length;
  await sleep(600);
  t.equal(pings(m.masterPid, later), 0, 'the old master stopped pinging');
  t.ok(pings(m2, later) >= 2, 'the new one goes on');
  process.kill(m2, 'SIGKILL');
  await m.waitEvent('rolled-back', {}, { pid: m.masterPid });
  const back = sink.got.length;
  await waitFor('pings from the old master again', () => pings(m.masterPid, back) >= 2);
});

t.test('no WATCHDOG=1 when WATCHDOG_PID names another process', async (t) => {
  const { sink, m } = await notifiedMaster(t, 1, { WATCHDOG_USEC: '400000', WATCHDOG_PID: '1' });
  await sleep(1000);
  t.notOk(sink.got.some((x) => x.pid === m.masterPid && has(x, 'WATCHDOG=1')));
});

t.test('socket activation: LISTEN_FDS/LISTEN_PID sockets are used instead of binding', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  // The test owns the bound socket; without reuseport a second bind would fail, so serving proves reuse.
  const fd = native.listenTcp({ host: '127.0.0.1', port, backlog: 64 });
  t.teardown(() => native.closeFd(fd));
  const conf = path.join(dir, 'tsmaster.conf');
  fs.writeFileSync(conf, `daemon off;\npid ${dir}/tsmaster.pid;\nerror_log ${dir}/error.log info;\nworker_processes 2;\nlisten 127.0.0.1:${port};\napp ${hello};\n`);
  // systemd sets LISTEN_PID to the service's own pid: a shell sets it and execs tsmaster.
  const child = spawn('/bin/sh', ['-c', 'LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=web exec "$@"', 'sh', process.execPath, cli, '-c', conf], {
    stdio: ['ignore', 'ignore', 'pipe', fd],
  });
  t.teardown(() => {
    for (const p of [child.pid!, ...workersOf(child.pid!)]) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone
      }
    }
  });
  await waitFor('ready', () => readLog(path.join(dir, 'error.log')).some((l) => /generation 1: all 2/.test(l.text)));
  const r = await get({ port });
  t.equal(r.status, 200);
  t.ok(workersOf(child.pid!).includes(Number(r.body.split(': ')[1])));
  t.ok(readLog(path.join(dir, 'error.log')).some((l) => l.text === `listening on 127.0.0.1:${port} (fd 3)`), 'the passed fd 3 is the listener');
  process.kill(child.pid!, 'SIGTERM');
  await waitFor('exit', () => isGone(child.pid!));
});

const hasAnalyze = !spawnSync('systemd-analyze', ['--version']).error;

t.test('systemd-analyze verify accepts the shipped units', { skip: hasAnalyze ? false : 'systemd-analyze is not installed' }, async (t) => {
  const dir = tempDir(t);
  const cliPath = path.join(root, 'dist', 'cli', 'main.js');
  fs.chmodSync(cliPath, 0o755);
  for (const unit of ['tsmaster.service', 'tsmaster.socket']) {
    // verify checks that ExecStart= exists: point it at this checkout's CLI.
    const text = fs.readFileSync(path.join(root, 'scripts', unit), 'utf8').replaceAll('/usr/local/bin/tsmaster', cliPath);
    fs.writeFileSync(path.join(dir, unit), text);
  }
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', path.join(dir, 'tsmaster.service'), path.join(dir, 'tsmaster.socket')], { encoding: 'utf8' });
  const complaints = `${r.stdout}${r.stderr}`
    .split('\n')
    .filter((l) => l.includes('tsmaster'));
  t.same(complaints, [], 'no complaint about the units');
  t.equal(r.status, 0, r.stderr);
});
