// Who is a master is the kernel's word (uid, /proc/PID/exe), never a process's title: attacks
// as nobody that take the pidfile's lock, hold it open, call themselves a master, or bind a
// fake control socket where a symlink leads, must neither block a start nor fool a command.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { isLiveMaster, readPid } from '../src/master/pidfile.js';
import { app, childrenOf, cmdline, freePort, get, isGone, killAll, runCli, startMaster, tempDir, waitFor, workersOf } from './helpers/master.js';
import { PYTHON, cannotAttack, daemonAsNobody, pythonAsNobody } from './helpers/nobody.js';

const TITLE = 'tsmaster: master process /usr/lib/tsmaster/dist/cli/main.js';

function openDir(t: Parameters<typeof tempDir>[0]): string {
  const dir = tempDir(t, 'tsm-id-');
  fs.chmodSync(dir, 0o755);
  return dir;
}

/**
 * Python as nobody: open argv[1] read-only (and flock it with argv[2] = lock), then exec
 * itself under the master's title, still holding the file; prints `ready` once it is.
 */
const HOLD_UNDER_TITLE = `import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
if sys.argv[2] == "lock": fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
os.set_inheritable(fd, True)
os.execv("${PYTHON}", [${JSON.stringify(TITLE)}, "-u", "-c", "import time; print('ready'); time.sleep(120)"])`;

/** Kill a master and its workers with SIGKILL, and wait until they are gone. */
async function killHard(pid: number): Promise<void> {
  const all = [pid, ...workersOf(pid)];
  killAll(all);
  await waitFor('the killed master and its workers gone', () => all.every(isGone), 10_000);
}

t.test('isLiveMaster: the uid and the executable decide, the title only tells masters from other Node processes', { skip: cannotAttack }, async (t) => {
  const spawnTitled = (argv: string[]) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
    t.teardown(() => child.kill('SIGKILL'));
    return new Promise<number>((resolve) => child.stdout!.once('data', () => resolve(child.pid!)));
  };
  const keep = 'setInterval(() => {}, 1000); console.log("ready")';
  const rootNode = await spawnTitled([process.execPath, '-e', `process.title = ${JSON.stringify(TITLE)}; ${keep}`]);
  t.ok(isLiveMaster(rootNode), "root's Node process with the master's title counts");
  const untitled = await spawnTitled([process.execPath, '-e', keep]);
  t.notOk(isLiveMaster(untitled), "root's Node process without the title does not");
  const python = await spawnTitled(['/bin/bash', '-c', `exec -a ${JSON.stringify(TITLE)} ${PYTHON} -u -c "import time; print('ready'); time.sleep(60)"`]);
  t.ok(cmdline(python).startsWith('tsmaster: master process'), 'the python process carries the title');
  t.notOk(isLiveMaster(python), "root's python under the title does not: another executable (a reused pid)");
  const nobody = await daemonAsNobody(t, `import os; os.execv("${PYTHON}", [${JSON.stringify(TITLE)}, "-u", "-c", "import time; print('ready'); time.sleep(60)"])`);
  t.ok(cmdline(nobody.pid!).startsWith('tsmaster: master process'), "nobody's process carries the title");
  t.notOk(isLiveMaster(nobody.pid!), "nobody's process under the title does not: not root's");
  t.notOk(isLiveMaster(0), 'no pid');
});

t.test('pidfile: no local user can keep the master from starting again', { skip: cannotAttack }, async (t) => {
  const dir = openDir(t);
  const port = await freePort();
  const conf = `worker_processes 1;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n`;
  const m1 = await startMaster(t, { dir, conf });
  t.equal(fs.statSync(m1.pidFile).mode & 0o777, 0o600, "the pidfile is root's alone");
  t.equal(pythonAsNobody('import os, sys\ntry:\n    os.open(sys.argv[1], os.O_RDONLY); print("opened")\nexcept OSError as e: print(e.strerror)', m1.pidFile).stdout.trim(), 'Permission denied', 'nobody cannot open it, so cannot lock or hold it');

  // A pidfile others may read (an older release wrote 0644): open it, keep it under the title, stop the master.
  fs.chmodSync(m1.pidFile, 0o644);
  const holder = await daemonAsNobody(t, HOLD_UNDER_TITLE, m1.pidFile, 'hold');
  t.ok(cmdline(holder.pid!).startsWith('tsmaster: master process'), 'the attacker holds the pidfile under the title');
  t.equal((await m1.cli(['-s', 'quit'])).code, 0, 'the master stops');
  const m2 = await startMaster(t, { dir, conf });
  t.equal((await get({ port })).status, 200, 'a new master starts though nobody holds the deleted pidfile open under the title');

  // SIGKILL leaves the pidfile behind; nobody takes its lock through a read-only descriptor.
  await killHard(m2.masterPid);
  fs.chmodSync(m2.pidFile, 0o644);
  const locker = await daemonAsNobody(t, HOLD_UNDER_TITLE, m2.pidFile, 'lock');
  t.ok(cmdline(locker.pid!).startsWith('tsmaster: master process'), 'the attacker locks the stale pidfile under the title');
  const m3 = await startMaster(t, { dir, conf });
  t.equal((await get({ port })).status, 200, 'a new master starts over the lock nobody holds');
  t.equal(fs.readFileSync(m3.pidFile, 'utf8').trim(), String(m3.masterPid), 'the pidfile names it');
  t.equal(fs.statSync(m3.pidFile).mode & 0o777, 0o600, 'a new file, not the one nobody locked');

  // A real master still keeps a second one out.
  const second = await runCli(['-p', dir, '-c', m3.conf]);
  t.equal(second.code, 1, 'a second master with the same pidfile fails');
  t.match(second.stderr, `is locked by a running tsmaster master (pid ${m3.masterPid})`, second.stderr);
});

/** A master whose worker (as nobody) calls itself a master and ignores SIGQUIT. */
async function titledWorkers(t: Parameters<typeof tempDir>[0]) {
  const dir = openDir(t);
  const port = await freePort();
  const m = await startMaster(t, {
    dir,
    conf: `user nobody;\nworker_processes 1;\nworker_shutdown_timeout 1s;\ncontrol_socket off;\nenv CLAIMS_SLOW_FILE={{dir}}/slow;\nlisten 127.0.0.1:${port};\napp ${app('claims-master.mjs')};\n`,
  });
  // Its workers, by parentage: workersOf() goes by the title, which the app changed.
  const [worker] = childrenOf(m.masterPid);
  await waitFor('the worker calls itself a master', () => cmdline(worker!).startsWith('tsmaster: master process'), 10_000);
  return { dir, port, m, worker: worker! };
}

t.test('title spoofing: the $MAINPID fallback and -s quit during an upgrade take no worker for a master', { skip: cannotAttack }, async (t) => {
  const { dir, m, worker } = await titledWorkers(t);
  // $MAINPID fallback: the configured pidfile names no master, MAINPID names the worker.
  const other = path.join(dir, 'other.conf');
  fs.writeFileSync(other, fs.readFileSync(m.conf, 'utf8').replace(/^pid .*$/m, `pid ${dir}/none.pid;`));
  const hup = await runCli(['-p', dir, '-c', other, '-s', 'reload'], { env: { ...process.env, MAINPID: String(worker) } });
  t.equal(hup.code, 1, `-s reload refuses: ${hup.stderr.trim()}`);
  t.ok(!isGone(worker), 'the worker got no HUP (a HUP would have stopped it)');

  // -s quit during an upgrade ends both masters; the titled workers are neither.
  m.signal('SIGUSR2');
  const newest = await waitFor('the new master ready', () => {
    const p = readPid(m.pidFile);
    return p !== null && p !== m.masterPid && fs.existsSync(`${m.pidFile}.oldbin`) ? p : undefined;
  }, 30_000);
  const workers = [...childrenOf(m.masterPid).filter((p) => p !== newest), ...childrenOf(newest)];
  t.ok(workers.length >= 2 && workers.every((w) => cmdline(w).startsWith('tsmaster: master process')), 'the workers of both masters call themselves masters');
  const quit = await m.cli(['-s', 'quit']);
  t.equal(quit.code, 0, `-s quit (old master ${m.masterPid}, new ${newest}): ${quit.stderr.trim()}`);
  t.ok(isGone(newest) && isGone(m.masterPid), 'both masters are gone');
  await waitFor('their workers gone', () => workers.every(isGone), 10_000);
});

t.test('title spoofing: -s upgrade without a control socket takes no worker for the new master', { skip: cannotAttack }, async (t) => {
  const { dir, port, m, worker } = await titledWorkers(t);
  // It follows /proc: the old master's titled worker, which exits while the new master
  // starts (slowly), is no new master that exited.
  fs.writeFileSync(path.join(dir, 'slow'), '');
  const upgrading = m.cli(['-s', 'upgrade']);
  await waitFor('the new master started', () => childrenOf(m.masterPid).some((p) => p !== worker && cmdline(p).startsWith('tsmaster: master process') && fs.existsSync(`${m.pidFile}.oldbin`)), 10_000);
  t.equal((await get({ port, path: '/exit' })).body, 'bye\n', "the old master's worker exits meanwhile");
  const up = await upgrading;
  t.equal(up.code, 0, `the upgrade finishes: ${up.stdout}${up.stderr}`);
  t.match(up.stdout, `upgrade finished: master process ${readPid(m.pidFile)} serves`);
  await waitFor('the old master gone', () => isGone(m.masterPid), 10_000);
});

t.test('control socket: a fake one where a symlink leads is named by -t and not trusted by -s', { skip: cannotAttack }, async (t) => {
  const dir = openDir(t);
  // dir/run -> dir/w/run: root's directory, but in one the worker user owns.
  const w = path.join(dir, 'w');
  fs.mkdirSync(path.join(w, 'run'), { recursive: true });
  fs.chownSync(w, 65534, 65534);
  fs.symlinkSync(path.join(w, 'run'), path.join(dir, 'run'));
  const port = await freePort();
  const conf = `user nobody;\nworker_processes 1;\ncontrol_socket ${dir}/run/ctl.sock;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n`;
  const m = await startMaster(t, { dir, conf });
  const test = await m.cli(['-t']);
  t.equal(test.code, 0);
  t.match(test.stderr, `[warn] directory "${w}" of control_socket "${dir}/run/ctl.sock" is writable by the worker user nobody`, test.stderr);

  // nobody moves root's directory away and answers in its place, as the master would.
  await daemonAsNobody(
    t,
    `import json, os, socket, sys
w = sys.argv[1]
os.rename(w + "/run", w + "/moved"); os.mkdir(w + "/run")
s = socket.socket(socket.AF_UNIX); s.bind(w + "/run/ctl.sock"); s.listen(8)
print("ready")
while True:
    c, _ = s.accept()
    try:
        line = c.makefile().readline()
        req = json.loads(line) if line else {}
        res = {"ok": True, "pong": int(sys.argv[2])} if req.get("cmd") == "ping" else {"ok": True, "reload": "finished", "outcome": {"event": "reload-finished", "generation": 2}}
        c.sendall((json.dumps(res) + "\\n").encode())
    except OSError: pass
    c.close()`,
    w,
    String(m.masterPid),
  );
  const after = m.lines().length;
  const reload = await m.cli(['-s', 'reload']);
  t.equal(reload.code, 1, 'root\'s -s reload does not report a reload nobody made');
  t.match(reload.stderr, /control socket ".*ctl\.sock": it is process \d+ of uid 65534, not master process \d+: not trusted/, reload.stderr);
  const status = await m.cli(['-s', 'status']);
  t.equal(status.code, 1, '-s status does not show what the fake says');
  t.match(status.stderr, 'of uid 65534, not a tsmaster master: not trusted', status.stderr);
  t.notOk(m.events(after).some((e) => e.event.startsWith('reload') || e.event === 'generation-ready'), 'no reload was started behind the error');
  t.equal((await get({ port })).status, 200, 'the service answers');
});
