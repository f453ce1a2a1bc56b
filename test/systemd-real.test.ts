// The shipped units under a real systemd: a container booted by systemd-nspawn on an overlay
// of /, with this checkout bind-mounted at /opt/tsmaster. The container shares the host's
// network, so the HTTP clients run here, outside it.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { freePort, get, root, sleep } from './helpers/master.js';

/** Four clients, each request on a fresh connection, until stopped: what they were answered. */
function freshClients(port: number, path: string): { stop(): Promise<{ answered: number; failures: string[] }> } {
  let stopped = false;
  let answered = 0;
  const failures: string[] = [];
  const one = async () => {
    while (!stopped) {
      try {
        const r = await get({ port, path });
        if (r.status === 200) answered++;
        else failures.push(`status ${r.status}`);
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
  };
  const running = [one(), one(), one(), one()];
  return {
    async stop() {
      stopped = true;
      await Promise.all(running);
      return { answered, failures };
    },
  };
}

const MOUNT = '/opt/tsmaster';
const CONF = '/etc/tsmaster/tsmaster.conf';
const PIDFILE = '/run/tsmaster/tsmaster.pid';
const LOG = '/var/log/tsmaster/error.log';
const TSM = `/usr/local/bin/tsmaster -c ${CONF} -g 'daemon off;'`;
/** The drop-in the watchdog test adds. */
const DROPIN = '/etc/systemd/system/tsmaster.service.d/test.conf';

interface Run {
  code: number | null;
  out: string;
  err: string;
}

function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, out, errOut) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, out: out.trim(), err: errOut.trim() || (err && code === null ? err.message : '') });
    });
  });
}

async function until<T>(what: string, check: () => Promise<T | undefined | false | null>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false && v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await sleep(100);
  }
}

/** Why this file cannot run here, or null. Installs systemd-nspawn when it is missing. */
function whyNot(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (overlay mount, systemd-nspawn)';
  if (spawnSync('nsenter', ['--version']).error) return 'nsenter (util-linux) is not installed';
  if (spawnSync('systemd-nspawn', ['--version']).error) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const apt = (...a: string[]) => spawnSync('apt-get', a, { env, stdio: 'ignore', timeout: 180_000 }).status === 0;
    if (!apt('install', '-y', '-qq', 'systemd-container') && !(apt('update', '-qq') && apt('install', '-y', '-qq', 'systemd-container'))) {
      return 'systemd-nspawn is not installed and apt-get install systemd-container failed';
    }
  }
  // /tmp itself may be an overlay (no upper dir on it) or / may refuse to be a lower dir.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsm-overlay-'));
  try {
    for (const d of ['up', 'wk', 'root']) fs.mkdirSync(path.join(dir, d));
    const m = spawnSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=/,upperdir=${dir}/up,workdir=${dir}/wk`, `${dir}/root`], { encoding: 'utf8' });
    if (m.status !== 0) return `overlay mount of / failed: ${(m.stderr || String(m.error)).trim()}`;
    spawnSync('umount', [`${dir}/root`]);
    return null;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

interface Container {
  /** The container's root as the host sees it (the overlay). */
  root: string;
  /** Run a shell script inside the container. */
  sh(script: string, timeoutMs?: number): Promise<Run>;
  prop(name: string, unit?: string): Promise<string>;
}

/**
 * Mount the overlay and boot the container; teardown powers it off (kills it if it will
 * not go), unmounts and removes the temp dir, also when a test failed.
 */
async function boot(t: Test): Promise<Container> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsm-nspawn-'));
  const rootDir = path.join(dir, 'root');
  for (const d of ['up', 'wk', 'root']) fs.mkdirSync(path.join(dir, d));
  let nspawn: ChildProcess | null = null;
  let pid1 = 0;
  let mounted = false;
  t.teardown(async () => {
    if (nspawn && nspawn.exitCode === null && nspawn.signalCode === null) {
      const exited = new Promise((r) => nspawn!.once('exit', r));
      // TERM makes systemd-nspawn ask the container's systemd to power off.
      nspawn.kill('SIGTERM');
      if ((await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)])) === false) {
        // Killing the container's PID 1 ends its whole pid namespace.
        if (pid1) process.kill(pid1, 'SIGKILL');
        nspawn.kill('SIGKILL');
        await Promise.race([exited, sleep(5_000)]);
      }
    }
    if (mounted) {
      for (let i = 0; i < 20 && spawnSync('umount', [rootDir]).status !== 0; i++) await sleep(250);
      if (spawnSync('mountpoint', ['-q', rootDir]).status === 0) spawnSync('umount', ['-l', rootDir]);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const m = spawnSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=/,upperdir=${dir}/up,workdir=${dir}/wk`, rootDir], { encoding: 'utf8' });
  if (m.status !== 0) throw new Error(`overlay mount of / failed: ${(m.stderr || String(m.error)).trim()}`);
  mounted = true;
  if (!fs.existsSync(path.join(rootDir, process.execPath))) throw new Error(`${process.execPath} is not on the root filesystem the container sees`);
  // A fresh machine-id; no first-boot wizard (it waits for a console that is a pipe here).
  fs.rmSync(path.join(rootDir, 'etc/machine-id'), { force: true });
  fs.symlinkSync('/dev/null', path.join(rootDir, 'etc/systemd/system/systemd-firstboot.service'));
  // Nor the host's timers (apt, e2scrub of the shared disk) in the middle of the test.
  fs.symlinkSync('/dev/null', path.join(rootDir, 'etc/systemd/system/timers.target'));
  // The unit's ExecStart= path, running this checkout.
  fs.writeFileSync(path.join(rootDir, 'usr/local/bin/tsmaster'), `#!/bin/sh\nexec ${process.execPath} ${MOUNT}/dist/cli/main.js "$@"\n`, { mode: 0o755 });
  fs.mkdirSync(path.join(rootDir, 'etc/tsmaster'), { recursive: true });
  fs.mkdirSync(path.join(rootDir, 'var/log/tsmaster'), { recursive: true });

  const started = Date.now();
  let consoleOut = '';
  // basic.target: the host's enabled services (a database here) would start too, on the shared network.
  nspawn = spawn(
    'systemd-nspawn',
    ['--register=no', '--keep-unit', '-q', '-D', rootDir, '-M', `tsm-${process.pid}`, '--console=pipe', `--bind-ro=${root}:${MOUNT}`, '--boot', '--', 'systemd.unit=basic.target'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  nspawn.stdout!.on('data', (d: Buffer) => (consoleOut += d.toString()));
  nspawn.stderr!.on('data', (d: Buffer) => (consoleOut += d.toString()));
  const nspawnPid = nspawn.pid!;
  // `env -i`: the test runner puts its loaders (NODE_OPTIONS, paths in this checkout) into every
  // child's environment; inside the container the checkout is elsewhere, and a systemctl
  // run by hand would not have them either.
  const sh = (script: string, timeoutMs?: number) =>
    run('nsenter', ['-t', String(pid1), '-a', 'env', '-i', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'LANG=C.UTF-8', 'sh', '-c', script], timeoutMs);
  try {
    // The container's PID 1 is the `systemd` child of systemd-nspawn.
    pid1 = await until('the container systemd', async () => {
      if (nspawn!.exitCode !== null) throw new Error(`systemd-nspawn exited with code ${nspawn!.exitCode}`);
      const kids = fs.readFileSync(`/proc/${nspawnPid}/task/${nspawnPid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      return kids.find((k) => fs.readFileSync(`/proc/${k}/comm`, 'utf8').trim() === 'systemd');
    }, 15_000);
    // degraded is fine: some unit of the host's image failed, the manager itself is up.
    await until('system running', async () => ['running', 'degraded'].includes((await sh('systemctl is-system-running')).out), 30_000);
  } catch (err) {
    throw new Error(`container did not boot: ${(err as Error).message}; console: ${consoleOut.slice(-2000)}`);
  }
  t.comment(`container booted in ${Date.now() - started} ms (${(await sh('systemctl --version')).out.split('\n')[0]})`);
  return {
    root: rootDir,
    sh,
    prop: async (name, unit = 'tsmaster.service') => (await sh(`systemctl show -P ${name} ${unit}`)).out,
  };
}

const why = whyNot();
// A boot, restarts after RestartSec=2 and watchdog periods: about 80 s here on 2 busy CPUs.
t.setTimeout(180_000);
t.test('tsmaster.service under a real systemd', { skip: why ?? false }, async (t) => {
  const c = await boot(t);
  const slowApp = `${MOUNT}/test/fixtures/apps/slow.mjs`;
  const write = (file: string, text: string) => {
    fs.mkdirSync(path.dirname(path.join(c.root, file)), { recursive: true });
    fs.writeFileSync(path.join(c.root, file), text);
  };
  const conf = (port: number, extra = '') =>
    `pid ${PIDFILE};\nerror_log ${LOG} info;\nworker_processes 2;\nlisten 127.0.0.1:${port} name=web;\napp ${slowApp};\n${extra}`;
  const shipped = (unit: string) => fs.readFileSync(path.join(root, 'scripts', unit), 'utf8');
  const ok = async (script: string, timeoutMs?: number) => {
    const r = await c.sh(script, timeoutMs);
    if (r.code !== 0) throw new Error(`${script}: exit ${r.code}: ${r.err || r.out}`);
    return r.out;
  };
  const mainPid = async () => Number(await c.prop('MainPID'));
  const pidfile = async () => Number((await c.sh(`cat ${PIDFILE}`)).out);

  /** Both units stopped, this config and the shipped service (and the socket, or a drop-in) installed. */
  async function fresh(port: number, opts: { socket?: boolean; dropin?: string } = {}) {
    await c.sh('systemctl stop tsmaster.socket tsmaster.service; systemctl reset-failed tsmaster.service tsmaster.socket');
    write(CONF, conf(port));
    write('/etc/systemd/system/tsmaster.service', shipped('tsmaster.service'));
    fs.rmSync(path.join(c.root, 'etc/systemd/system/tsmaster.socket'), { force: true });
    fs.rmSync(path.join(c.root, DROPIN), { force: true });
    // The shipped socket with only its port changed.
    if (opts.socket) write('/etc/systemd/system/tsmaster.socket', shipped('tsmaster.socket').replace(/^ListenStream=8080$/m, `ListenStream=${port}`));
    if (opts.dropin) write(DROPIN, opts.dropin);
    await ok('systemctl daemon-reload');
  }

  async function started(t: Test, port: number) {
    await fresh(port);
    await ok('systemctl start tsmaster');
    t.equal((await get({ port, path: '/?ms=1' })).status, 200, 'serving');
  }

  const slow = (port: number, ms: number) => get({ port, path: `/?ms=${ms}` });

  /** After `-s upgrade` the new master is main; the old one is gone. */
  async function upgrade(t: Test, port: number) {
    const before = await mainPid();
    const inFlight = slow(port, 1500);
    await sleep(200);
    await ok(`${TSM} -s upgrade`);
    const after = await mainPid();
    t.not(after, before, `MainPID follows the new master (${before} -> ${after})`);
    t.equal(await pidfile(), after, 'MainPID is the pidfile');
    t.equal((await inFlight).status, 200, 'the request in flight across the upgrade is answered');
    return after;
  }

  t.test('start: Type=notify, MainPID is the pidfile, STATUS= is shown', async (t) => {
    const port = await freePort();
    await started(t, port);
    t.equal(await c.prop('ActiveState'), 'active');
    const pid = await mainPid();
    t.ok(pid > 0);
    t.equal(await pidfile(), pid, 'MainPID is the pidfile');
    t.equal(await c.prop('StatusText'), 'running, generation 1, 2/2 workers ready');
    t.match((await c.sh('systemctl status --no-pager tsmaster')).out, /Status: "running, generation 1, 2\/2 workers ready"/, 'systemctl status shows STATUS=');
  });

  t.test('systemctl reload; a broken config fails it and the unit keeps serving', async (t) => {
    const port = await freePort();
    await started(t, port);
    const pid = await mainPid();
    const inFlight = slow(port, 1500);
    await sleep(200);
    const r = await c.sh('systemctl reload tsmaster');
    t.equal(r.code, 0, `reload: ${r.err}`);
    t.equal((await inFlight).status, 200, 'the request in flight across the reload is answered');
    t.equal(await c.prop('StatusText'), 'running, generation 2, 2/2 workers ready');

    // Refused by `-s reload` itself (it reads the config to find the pidfile), and by a
    // master whose new workers die before they are ready.
    const broken = [
      { conf: conf(port, 'no_such_directive on;\n'), status: 'running, generation 2, 2/2 workers ready' },
      { conf: conf(port).replace(slowApp, `${MOUNT}/test/fixtures/apps/crash.mjs`), status: 'running, generation 2, 2/2 workers ready, last reload failed' },
    ];
    for (const b of broken) {
      write(CONF, b.conf);
      const bad = await c.sh('systemctl reload tsmaster');
      t.not(bad.code, 0, 'systemctl reload exits non-zero');
      t.equal(await c.prop('ActiveState'), 'active', 'the unit stays active');
      t.equal(await mainPid(), pid, 'same master');
      t.equal(await c.prop('StatusText'), b.status);
      t.equal((await get({ port, path: '/?ms=1' })).status, 200, 'and serving');
    }
  });

  t.test('upgrade: MainPID follows the new master once the old one exits; kill -9 of a ready new master before that is a rollback systemd never sees', async (t) => {
    const port = await freePort();
    await started(t, port);
    const m2 = await upgrade(t, port);
    const restarts = await c.prop('NRestarts');
    await ok(`kill -USR2 ${m2}`);
    const m3 = await until('the new master ready (its pidfile)', async () => {
      const p = await pidfile();
      return p > 0 && p !== m2 ? p : undefined;
    });
    // It has told the old master, after all it had to tell systemd.
    await until('the old master to hear it', async () => (await c.sh(`grep -c 'new master process ${m3} is ready' ${LOG}`)).out !== '0');
    t.equal(await mainPid(), m2, 'the old master is still main while it lives');
    await ok(`kill -9 ${m3}`);
    await until('the rollback: the pidfile names the old master again', async () => (await pidfile()) === m2);
    t.equal(await mainPid(), m2, `MainPID stayed ${m2} throughout (the new master was ${m3})`);
    t.equal(await c.prop('ActiveState'), 'active');
    t.equal(await c.prop('NRestarts'), restarts, 'no restart: the old master took the service back');
    await until('STATUS= of the rollback', async () => (await c.prop('StatusText')).endsWith('upgrade rolled back'));
    t.equal((await get({ port, path: '/?ms=1' })).status, 200, 'serving');
    const refused = (await c.sh('journalctl -u tsmaster --no-pager -o cat | grep "reception only permitted"')).out;
    t.equal(refused, '', 'no master sent systemd a message it refused');
  });

  t.test('kill -9 of the master: Restart=on-failure brings the service back', async (t) => {
    const port = await freePort();
    await started(t, port);
    // The first master, and one that is not systemd's child.
    for (const upgraded of [false, true]) {
      const pid = upgraded ? await upgrade(t, port) : await mainPid();
      const restarts = Number(await c.prop('NRestarts'));
      await ok(`kill -9 ${pid}`);
      await until('restarted', async () => Number(await c.prop('NRestarts')) === restarts + 1 && (await c.prop('ActiveState')) === 'active' && (await mainPid()) !== pid);
      t.equal(await pidfile(), await mainPid(), `restarted after kill -9 of ${upgraded ? 'the upgraded' : 'the first'} master`);
      t.equal((await get({ port, path: '/?ms=1' })).status, 200, 'serving');
    }
  });

  t.test('the worker user cannot speak for the service: STATUS=, MAINPID= and WATCHDOG=trigger from a worker are refused', async (t) => {
    const port = await freePort();
    await fresh(port);
    write(CONF, conf(port).replace(slowApp, `${MOUNT}/test/fixtures/apps/notify-attack.mjs`) + 'user nobody;\n');
    await ok('systemctl start tsmaster');
    const master = await mainPid();
    const status = await c.prop('StatusText');
    const restarts = await c.prop('NRestarts');
    const r = await get({ port, path: '/attack' });
    const attack = JSON.parse(r.body) as { pid: number; uid: number; sent: string[] };
    t.equal(attack.uid, 65534, 'the worker runs as nobody');
    t.same(attack.sent, ['sent', 'sent', 'sent', 'sent'], "systemd's notify socket took every datagram");
    // systemd logs each message it refuses: once all 4 are, it has read them all. Or it took
    // one, and the unit shows it.
    const refusals = async () => (await c.sh(`journalctl -u tsmaster --no-pager -o cat | grep -c "Got notification message from PID ${attack.pid}, but reception only permitted for main PID ${master}"`)).out;
    await until('systemd to read the messages', async () => (await refusals()) === '4' || (await c.prop('StatusText')) !== status || (await mainPid()) !== master);
    t.equal(await refusals(), '4', 'systemd refused all 4');
    t.equal(await mainPid(), master, 'MainPID unchanged');
    t.equal(await c.prop('StatusText'), status, 'STATUS unchanged');
    t.equal(await c.prop('NRestarts'), restarts, 'no restart');
    t.equal(await c.prop('ActiveState'), 'active');
    t.equal((await c.sh(`kill -0 ${master}`)).code, 0, 'the master was not aborted');
    t.equal((await get({ port, path: '/' })).status, 200, 'serving');
    await ok('systemctl stop tsmaster');
    t.equal(await c.prop('Result'), 'success');
  });

  t.test('Delegate=yes: an exec worker is in a cgroup of its own below the unit, which holds its setsid() child', async (t) => {
    const port = await freePort();
    await fresh(port);
    const gcPid = '/run/tsmaster/grandchild.pid';
    write(CONF, conf(port).replace(`app ${slowApp};`, `exec /usr/bin/python3 ${MOUNT}/test/fixtures/exec/setsid_grandchild.py ${gcPid};`).replace('worker_processes 2;', 'worker_processes 1;'));
    await ok('systemctl start tsmaster');
    const gc = Number(await until('the grandchild', async () => (await c.sh(`cat ${gcPid}`)).out));
    const cgroup = (await ok(`cat /proc/${gc}/cgroup`)).split('\n').find((l) => l.startsWith('0::'));
    t.match(cgroup, /^0::\/system\.slice\/tsmaster\.service\/tsmaster-worker-\d+$/, "the grandchild is in its worker's cgroup, below the unit's");
    const worker = Number(/tsmaster-worker-(\d+)$/.exec(cgroup!)![1]);
    await ok(`rm ${gcPid}; kill -9 ${worker}`);
    await until('the grandchild gone with its worker', async () => (await c.sh(`kill -0 ${gc}`)).code !== 0);
    t.pass('gone with its worker');
    await until('a new grandchild', async () => (await c.sh(`cat ${gcPid}`)).out);
    await ok('systemctl stop tsmaster');
    t.equal(await c.prop('Result'), 'success');
  });

  t.test('stop and restart after an upgrade are graceful', async (t) => {
    const port = await freePort();
    await started(t, port);
    await upgrade(t, port);
    let inFlight = slow(port, 1000);
    await sleep(300);
    await ok('systemctl restart tsmaster');
    t.equal((await inFlight).status, 200, 'restart: the slow request in flight is answered');
    t.equal(await c.prop('ActiveState'), 'active');
    t.equal(await pidfile(), await mainPid());

    await upgrade(t, port);
    inFlight = slow(port, 1000);
    await sleep(300);
    await ok('systemctl stop tsmaster');
    t.equal((await inFlight).status, 200, 'stop: the slow request in flight is answered');
    t.equal(await c.prop('Result'), 'success', 'no SIGKILL: Result=success');
    t.equal(await c.prop('ActiveState'), 'inactive');
  });

  t.test('systemctl stop while an upgrade is under way (both masters alive) stops both, gracefully', async (t) => {
    const port = await freePort();
    await started(t, port);
    const old = await mainPid();
    await ok(`kill -USR2 ${old}`);
    const fresh = await until('the new master ready (its pidfile)', async () => {
      const p = await pidfile();
      return p > 0 && p !== old ? p : undefined;
    });
    const inFlight = slow(port, 1000);
    await sleep(300);
    await ok('systemctl stop tsmaster', 60_000);
    t.equal((await inFlight).status, 200, 'the slow request in flight is answered');
    t.equal(await c.prop('Result'), 'success', 'no SIGKILL: Result=success');
    t.equal(await c.prop('ActiveState'), 'inactive');
    const left = (await c.sh(`ps -eo pid,args | grep -E 'tsmaster: (master|worker)' | grep -v grep`)).out;
    t.equal(left, '', `no master or worker of either is left (old ${old}, new ${fresh})`);
    t.equal((await c.sh(`ls ${PIDFILE} ${PIDFILE}.oldbin 2>/dev/null`)).out, '', 'no pidfile, no .oldbin');
  });

  t.test('systemctl stop after the config moved the pidfile: ExecStop finds the main process', async (t) => {
    const port = await freePort();
    await started(t, port);
    // After an upgrade the master is not systemd's child: only ExecStop stops it gracefully.
    await upgrade(t, port);
    write(CONF, conf(port).replace(`pid ${PIDFILE};`, 'pid /run/tsmaster/elsewhere.pid;'));
    const inFlight = slow(port, 1000);
    await sleep(300);
    await ok('systemctl stop tsmaster', 60_000);
    t.equal((await inFlight).status, 200, 'the slow request in flight is answered');
    t.equal(await c.prop('Result'), 'success', 'no SIGKILL: Result=success');
  });

  t.test('socket activation with the shipped tsmaster.socket', async (t) => {
    const port = await freePort();
    await fresh(port, { socket: true });
    await ok('systemctl start tsmaster.socket');
    t.equal(await c.prop('ActiveState'), 'inactive', 'the service waits for the first connection');
    t.equal((await get({ port, path: '/?ms=1' })).status, 200, 'the first request starts the service and is answered');
    await until('active', async () => (await c.prop('ActiveState')) === 'active');
    // fd 3 of the master is the socket systemd's PID 1 holds.
    const servesSystemdSocket = async () => {
      const fd3 = await ok(`readlink /proc/${await mainPid()}/fd/3`);
      const held = (await ok('for f in /proc/1/fd/*; do readlink "$f"; done')).split('\n');
      return fd3.startsWith('socket:') && held.includes(fd3);
    };
    t.ok(await servesSystemdSocket(), 'the master serves on the socket from systemd');
    await upgrade(t, port);
    t.ok(await servesSystemdSocket(), 'so does the new master after an upgrade');

    // Clients on fresh connections throughout the restart: none may fail.
    const load = freshClients(port, '/?ms=20');
    const inFlight = slow(port, 1500);
    await sleep(300);
    await ok('systemctl restart tsmaster');
    await sleep(500);
    const { answered, failures } = await load.stop();
    t.equal((await inFlight).status, 200, 'the slow request in flight is answered');
    t.same(failures, [], `no request failed across systemctl restart (${answered} answered)`);
    t.ok(answered > 0);
    t.ok(await servesSystemdSocket(), 'the restarted master serves on the same socket');
    await ok('systemctl stop tsmaster.socket tsmaster.service');
  });

  t.test('WatchdogSec: masters that run are left alone, a stopped one is restarted', async (t) => {
    const port = await freePort();
    // No core dump of the aborted master into the overlay.
    await fresh(port, { dropin: '[Service]\nWatchdogSec=3s\nLimitCORE=0\n' });
    await ok('systemctl start tsmaster');
    t.equal(await c.prop('WatchdogUSec'), '3s');
    const m1 = await mainPid();
    await sleep(6500);
    t.equal(await mainPid(), m1, 'the first master pings: no watchdog timeout in two periods');

    // The new master pings once it is main, after the old one has exited.
    const m2 = await upgrade(t, port);
    await sleep(6500);
    t.equal(await mainPid(), m2, 'the new master pings: no watchdog timeout in two periods');
    t.equal(await c.prop('NRestarts'), '0');

    await ok(`kill -STOP ${m2}`);
    await until('restart after the watchdog timeout', async () => (await c.prop('NRestarts')) === '1' && (await c.prop('ActiveState')) === 'active', 20_000);
    t.match((await c.sh('journalctl -u tsmaster --no-pager')).out, /Watchdog timeout \(limit 3s\)/, 'systemd saw the watchdog timeout');
    t.not(await mainPid(), m2);
    t.equal((await get({ port, path: '/?ms=1' })).status, 200, 'serving again');
    await ok('systemctl stop tsmaster');
  });
  t.test('systemctl restart systemd-journald under load with StandardOutput=journal: no request fails, no worker restarts', async (t) => {
    const port = await freePort();
    await fresh(port, { dropin: '[Service]\nStandardOutput=journal\nStandardError=journal\n' });
    // Master and workers write to the journal's stream socket; the app logs each request.
    write(CONF, `pid ${PIDFILE};\nerror_log stderr info;\nworker_log stderr;\nworker_processes 2;\nlisten 127.0.0.1:${port};\napp ${MOUNT}/test/fixtures/apps/log-per-request.mjs;\n`);
    await ok('systemctl start tsmaster');
    const workers = async () => (await ok("pgrep -f '^tsmaster: worker process' | sort")).split('\n');
    const before = await workers();
    t.equal(before.length, 2, 'two workers');
    const load = freshClients(port, '/?kb=4');
    await sleep(500);
    for (let i = 0; i < 2; i++) {
      await ok('systemctl restart systemd-journald');
      await sleep(700);
    }
    const { answered, failures } = await load.stop();
    t.same(failures, [], `no request failed across two journald restarts (${answered} answered)`);
    t.ok(answered > 0);
    t.same(await workers(), before, 'the same workers: none died');
    t.equal(await c.prop('NRestarts'), '0', 'the service was not restarted');
    t.equal(await c.prop('ActiveState'), 'active');
    // Logging goes on after the restarts.
    await get({ port, path: '/?m=after-journald' });
    // Lines from the streams journald took back from its fd store carry no unit: by content.
    await until('the app still logs to the journal', async () => (await c.sh("journalctl --no-pager -o cat | grep -cE '^[0-9/]+ [0-9:]+ \\[stdout\\] worker [0-9]+ slot [01]: marker after-journald out'")).out !== '0');
    t.pass('the journal has the app lines, stamped with worker and slot');
    await ok('systemctl stop tsmaster');
  });
});
