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

t.test('READY, RELOADING with MONOTONIC_USEC, MAINPID handed over by the old master as it exits, STOPPING', async (t) => {
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
  const handover = sink.got.findIndex((x) => has(x, `MAINPID=${newPid}`));
  t.ok(handover >= 0, 'MAINPID= names the new master');
  t.same(sink.got[handover], { pid: m.masterPid, fields: [`MAINPID=${newPid}`] }, 'sent by the old master, alone');
  t.equal(sink.got.filter((x) => x.pid === m.masterPid).at(-1), sink.got[handover], 'as its last message');
  t.notOk(sink.got.slice(0, handover).some((x) => x.pid === newPid), 'the new master said nothing before it was main');
  t.notOk(sink.got.some((x) => x.pid === m.masterPid && has(x, 'STOPPING=1')), 'the old master did not say STOPPING: the service goes on');
  const taken = await waitFor('READY=1 from the new master', () => sink.got.slice(handover).find((x) => x.pid === newPid && has(x, 'READY=1')));
  t.ok(has(taken, /^STATUS=running, generation \d+, 2\/2 workers ready$/), 'with its STATUS line');

  process.kill(newPid, 'SIGQUIT');
  await waitFor('new master exit', () => isGone(newPid));
  t.ok(sink.got.some((x) => x.pid === newPid && has(x, 'STOPPING=1')), 'STOPPING=1 on shutdown');
});

t.test('a rollback needs no MAINPID=: the old master stayed main, the dead new one never spoke', async (t) => {
  const { sink, m } = await notifiedMaster(t, 1);
  m.signal('SIGUSR2');
  await m.waitEvent('upgrade-ready', {}, { pid: m.masterPid });
  const m2 = Number(fs.readFileSync(m.pidFile, 'utf8'));
  process.kill(m2, 'SIGKILL');
  await m.waitEvent('rolled-back', {}, { pid: m.masterPid });
  const back = await waitFor('READY=1 after the rollback', () => sink.got.find((x) => x.pid === m.masterPid && has(x, /upgrade rolled back$/)));
  t.ok(has(back, 'READY=1'));
  t.notOk(sink.got.some((x) => x.fields.some((f) => f.startsWith('MAINPID='))), 'no MAINPID= from anyone');
  t.notOk(sink.got.some((x) => x.pid === m2), 'nothing from the new master');
});

t.test('WATCHDOG=1 from the master that is main: the old one until it exits, then the new one', async (t) => {
  // 400 ms: a ping every 200 ms.
  const { sink, m } = await notifiedMaster(t, 1, { WATCHDOG_USEC: '400000' });
  const pings = (pid: number, from = 0) => sink.got.slice(from).filter((x) => x.pid === pid && has(x, 'WATCHDOG=1')).length;
  await waitFor('pings', () => pings(m.masterPid) >= 2);
  m.signal('SIGUSR2');
  await m.waitEvent('upgrade-ready', {}, { pid: m.masterPid });
  const m2 = Number(fs.readFileSync(m.pidFile, 'utf8'));
  const ready = sink.got.length;
  await waitFor('pings from the old master while the new one is ready', () => pings(m.masterPid, ready) >= 3);
  t.equal(pings(m2), 0, 'none from the new master: it is not main');
  process.kill(m2, 'SIGKILL');
  await m.waitEvent('rolled-back', {}, { pid: m.masterPid });
  const back = sink.got.length;
  await waitFor('pings from the old master after the rollback', () => pings(m.masterPid, back) >= 2);

  const up = await m.cli(['-s', 'upgrade'], { timeoutMs: 60_000 });
  t.equal(up.code, 0, up.stderr);
  const m3 = Number(fs.readFileSync(m.pidFile, 'utf8'));
  const handover = sink.got.findIndex((x) => x.pid === m.masterPid && has(x, `MAINPID=${m3}`));
  t.ok(handover >= 0, 'handed over at the old master exit');
  t.equal(pings(m3, 0), pings(m3, handover), 'the new master pinged only once main');
  await waitFor('pings from the new master', () => pings(m3, handover) >= 2);
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
