// The root master and the files in directories other users may write: log files, the
// pidfile and its lock, unix socket files, config includes. Each attack runs as nobody.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { cli, fixtures, freePort, get, eventsOf, readLog, runCli, startMaster, tempDir, waitFor } from './helpers/master.js';
import { parseOutcome } from '../src/outcomes.js';
import { UNTOUCHED, asNobody, cannotAttack, daemonAsNobody, secretFile } from './helpers/nobody.js';

const hello = path.join(fixtures, 'apps', 'hello.mjs');

/** A test dir nobody can enter, with `sub` (if given) writable by nobody. */
function arena(t: Parameters<typeof tempDir>[0], sub?: string): { dir: string; sub: string } {
  const dir = tempDir(t, 'tsm-sec-');
  fs.chmodSync(dir, 0o755);
  const s = path.join(dir, sub ?? 'open');
  if (sub) {
    fs.mkdirSync(s, { mode: 0o755 });
    fs.chownSync(s, 65534, 65534);
  }
  return { dir, sub: s };
}

t.test('worker_log: a symlink the worker user plants is never followed, and no file is chowned', { skip: cannotAttack }, async (t) => {
  const { dir, sub: logs } = arena(t, 'logs');
  const secret = secretFile(path.join(dir, 'shadow'));
  const port = await freePort();
  const m = await startMaster(t, { dir, conf: `user nobody;\nworker_log ${logs}/worker.log;\nlisten 127.0.0.1:${port};\napp ${hello};\n` });
  t.equal(fs.statSync(`${logs}/worker.log`).uid, 65534, "created with the worker user's rights");

  // What it plants is replaced (test/security-logs.test.ts): the root file is never reached.
  const plant = asNobody(['/bin/sh', '-c', `rm -f ${logs}/worker.log && ln -s ${dir}/shadow ${logs}/worker.log`]);
  t.equal(plant.code, 0, `nobody planted the symlink: ${plant.stderr}`);
  const after = m.lines().length;
  m.signal('SIGUSR1');
  await m.waitLog(/^worker_log ".*worker\.log" was not a regular file \(ELOOP\)/, { after });
  t.same(secret.check(), UNTOUCHED, 'the root file is neither chowned, nor written, nor chmoded');
  t.equal((await get({ port })).status, 200, 'the old generation serves on');
});

t.test("error_log in a directory others can write: the master's log is never followed or handed to the worker user", { skip: cannotAttack }, async (t) => {
  const { dir } = arena(t);
  const logs = path.join(dir, 'logs');
  fs.mkdirSync(logs);
  fs.chmodSync(logs, 0o777);
  const secret = secretFile(path.join(dir, 'shadow'));
  const port = await freePort();
  const log = path.join(logs, 'error.log');
  const m = await startMaster(t, { dir, waitReady: false, conf: `user nobody;\nerror_log ${log} info;\nlisten 127.0.0.1:${port};\napp ${hello};\n` });
  await waitFor('ready', () => eventsOf(readLog(log)).find((e) => e.event === 'generation-ready'));
  t.equal(fs.statSync(log).uid, 0, 'the error log (also the default worker log) stays root\'s');
  t.ok(readLog(log).some((l) => l.level === 'warn' && l.text.includes(`directory "${logs}" of error_log`) && l.text.includes('writable by every user')), 'the start warns about the directory');

  const plant = asNobody(['/bin/sh', '-c', `mv ${log} ${log}.1 && ln -s ${dir}/shadow ${log}`]);
  t.equal(plant.code, 0, plant.stderr);
  m.signal('SIGUSR1');
  await waitFor('reopen refused', () => readLog(`${log}.1`).find((l) => /^reopen failed: open\(\) ".*error\.log" failed \(ELOOP/.test(l.text)));
  t.same(secret.check(), UNTOUCHED, 'root appended nothing to the planted target');
  t.equal((await get({ port })).status, 200);

  const check = await m.cli(['-t']);
  t.equal(check.code, 0, '-t warns but passes');
  t.match(check.stderr, new RegExp(`^tsmaster: \\[warn\\] directory "${logs}" of error_log ".*" is writable by every user$`, 'm'));
});

t.test('the pidfile: its temporary file has no predictable name and is never written through a symlink', { skip: cannotAttack }, async (t) => {
  const { dir, sub: run } = arena(t, 'run');
  const secret = secretFile(path.join(dir, 'target'));
  const pidFile = path.join(run, 'tsmaster.pid');
  // The old name was PID.pid.<pid>.tmp: plant one for each of the next pids.
  const last = Number(fs.readFileSync('/proc/sys/kernel/ns_last_pid', 'utf8'));
  const plant = asNobody([
    '/usr/bin/python3',
    '-c',
    `import os,sys\nfor p in range(${last}, ${last} + 3000): os.symlink(sys.argv[1], "%s.%d.tmp" % (sys.argv[2], p))`,
    path.join(dir, 'target'),
    pidFile,
  ]);
  t.equal(plant.code, 0, plant.stderr);
  const port = await freePort();
  const m = await startMaster(t, { dir, conf: `pid ${pidFile};\nlisten 127.0.0.1:${port};\napp ${hello};\n` });
  t.same(secret.check(), UNTOUCHED, 'the planted targets were not written');
  const st = fs.lstatSync(pidFile);
  t.ok(st.isFile() && st.uid === 0, 'the pidfile is a regular file of root');
  t.equal(fs.readFileSync(pidFile, 'utf8'), `${m.masterPid}\n`);
  t.ok(m.lines().some((l) => l.level === 'warn' && l.text.includes(`directory "${run}" of pid "${pidFile}" is writable by uid 65534`)), 'the start warns about run/');
});

t.test('the pidfile lock: a second master fails with one line, also after the pidfile was deleted or replaced', { skip: cannotAttack }, async (t) => {
  const { dir, sub: run } = arena(t, 'run');
  const pidFile = path.join(run, 'tsmaster.pid');
  const port = await freePort();
  // reuseport and no control socket: nothing else would stop a second master.
  const conf = `pid ${pidFile};\ncontrol_socket off;\nlisten 127.0.0.1:${port} reuseport;\napp ${hello};\n`;
  const m = await startMaster(t, { dir, conf });
  const second = path.join(dir, 'second.conf');
  fs.writeFileSync(second, `daemon off;\nerror_log stderr;\n${conf}`);

  const locked = await runCli(['-c', second]);
  t.equal(locked.code, 1);
  t.match(locked.stderr, new RegExp(`^[\\d/]+ [\\d:]+ \\[emerg\\] \\d+#0: pid file "${pidFile}" is locked by a running tsmaster master \\(pid ${m.masterPid}\\)\\n$`));

  const rm = asNobody(['/bin/rm', pidFile]);
  t.equal(rm.code, 0, `nobody deleted the pidfile: ${rm.stderr}`);
  const deleted = await runCli(['-c', second]);
  t.equal(deleted.code, 1, 'still refused');
  const refused = (r: { stderr: string }) => new RegExp(`^[\\d/]+ [\\d:]+ \\[emerg\\] \\d+#0: pid file "${pidFile}" was deleted or replaced, but tsmaster master process ${m.masterPid} still runs with it\\n$`).test(r.stderr);
  t.ok(refused(deleted), deleted.stderr);
  // Replaced by an empty file of nobody's: its lock is free and it names no master.
  const touch = asNobody(['/usr/bin/touch', pidFile]);
  t.equal(touch.code, 0, `nobody put an empty file in its place: ${touch.stderr}`);
  const replaced = await runCli(['-c', second]);
  t.equal(replaced.code, 1, 'still refused');
  t.ok(refused(replaced), replaced.stderr);
  t.equal((await get({ port })).status, 200, 'the first master serves on');
});

t.test('unix sockets get their mode from bind itself: no chmod by path that a swapped-in symlink redirects', { skip: cannotAttack || (spawnSync('strace', ['-V']).status !== 0 ? 'needs strace' : false) }, async (t) => {
  const { dir, sub: socks } = arena(t, 'socks');
  const secret = secretFile(path.join(dir, 'target'));
  const sock = path.join(socks, 'app.sock');
  // As nobody: the moment the socket file appears, put a symlink to the root file in its place.
  await daemonAsNobody(
    t,
    `import os,sys,time
sock, target = sys.argv[1], sys.argv[2]
print("ready")
while not os.path.lexists(sock): pass
os.symlink(target, sock + ".new"); os.rename(sock + ".new", sock)
time.sleep(60)`,
    sock,
    path.join(dir, 'target'),
  );
  fs.writeFileSync(path.join(dir, 'tsmaster.conf'), `daemon off;\npid ${dir}/tsmaster.pid;\nerror_log ${dir}/error.log info;\ncontrol_socket off;\nlisten unix:${sock} mode=0666;\napp ${hello};\n`);
  // strace holds each bind() for 300 ms after it returns: the window the old chmod left open.
  const traced = spawn('strace', ['-f', '-qq', '-o', '/dev/null', '--seccomp-bpf', '-e', 'trace=bind', '-e', 'inject=bind:delay_exit=300000', process.execPath, cli, '-p', dir, '-c', 'tsmaster.conf'], { stdio: 'ignore' });
  t.teardown(() => traced.kill('SIGKILL'));
  await waitFor('the master is up', () => readLog(path.join(dir, 'error.log')).find((l) => parseOutcome(l.text)?.event === 'generation-ready' || l.level === 'emerg'), 30_000);
  await waitFor('the symlink is in place', () => fs.lstatSync(sock, { throwIfNoEntry: false })?.isSymbolicLink());
  t.same(secret.check(), UNTOUCHED, 'the root file kept its mode 0600');
  const master = Number(fs.readFileSync(path.join(dir, 'tsmaster.pid'), 'utf8'));
  process.kill(master, 'SIGTERM');
  await waitFor('master gone', () => !fs.existsSync(`/proc/${master}`) || fs.readFileSync(`/proc/${master}/stat`, 'utf8').includes(') Z'));
});

t.test('a unix listen socket has its mode at once, without a chmod', async (t) => {
  const dir = tempDir(t);
  const sock = path.join(dir, 'app.sock');
  const m = await startMaster(t, { dir, conf: `listen unix:${sock} mode=0660;\napp ${hello};\n` });
  t.equal(fs.statSync(sock).mode & 0o777, 0o660);
  t.equal((await get({ socketPath: sock })).status, 200);
  t.ok(m.masterPid > 0);
});

t.test('config files: only regular files, bounded in size', async (t) => {
  const dir = tempDir(t);
  const conf = path.join(dir, 'zero.conf');
  fs.writeFileSync(conf, 'include /dev/zero;\n');
  const zero = await runCli(['-t', '-c', conf]);
  t.equal(zero.code, 1);
  t.match(zero.stderr, /^tsmaster: \[emerg\] "\/dev\/zero" is not a regular file in .*zero\.conf:1\n/);
  const big = path.join(dir, 'big.conf');
  fs.writeFileSync(big, `# ${'x'.repeat(1 << 20)}\n`);
  const r = await runCli(['-t', '-c', big]);
  t.equal(r.code, 1);
  t.match(r.stderr, /^tsmaster: \[emerg\] ".*big\.conf" is larger than 1048576 bytes\n/);
  spawnSync('mkfifo', [path.join(dir, 'fifo')]);
  fs.writeFileSync(conf, `include ${dir}/fifo;\n`);
  const fifo = await runCli(['-t', '-c', conf], { timeoutMs: 10_000 });
  t.equal(fifo.code, 1, 'a FIFO is refused, not waited on');
  t.match(fifo.stderr, /is not a regular file/);
});

t.test('a directory nobody puts where the old master\'s control socket was does not trip the new master', { skip: cannotAttack }, async (t) => {
  const { dir, sub: run } = arena(t, 'run');
  const port = await freePort();
  const m = await startMaster(t, { dir, conf: `pid ${run}/tsmaster.pid;\nworker_processes 1;\nlisten 127.0.0.1:${port};\napp ${hello};\n` });
  const after = m.lines().length;
  m.signal('SIGUSR2');
  await m.waitEvent('upgrade-ready', {}, { pid: m.masterPid, after });
  const sock = `${run}/tsmaster.pid.sock.oldbin`;
  const plant = asNobody(['/bin/sh', '-c', `rm -f ${sock} && mkdir ${sock}`]);
  t.equal(plant.code, 0, `nobody put a directory there: ${plant.stderr}`);
  m.signal('SIGKILL');
  await m.waitLog(/^the old master's \.oldbin files stay: /, { after });
  t.pass('the new master says so once');
  t.equal((await get({ port })).status, 200, 'and serves on');
  const st = await m.cli(['-s', 'status']);
  t.equal(st.code, 0, `its loop answers: ${st.stderr}`);
});
