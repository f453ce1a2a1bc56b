// The master as a container's PID 1 (a new pid namespace, as Docker without --init or a
// Kubernetes pod runs it), and exec workers whose shells leave children behind.
import { exec, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t, { type Test } from 'tap';
import { Reaper, orphansToReap } from '../src/master/reap.js';
import { procStat, processes } from '../src/proc.js';
import { childrenOf, fixtures, freePort, get, isGone, keeperOf, nsPid, root, sleep, startMaster, tempDir, waitFor, waitForAnswer, workersOf, type Instance } from './helpers/master.js';

const orphans = path.join(fixtures, 'apps', 'orphans.mjs');
const slow = path.join(fixtures, 'apps', 'slow.mjs');
const shellBg = path.join(fixtures, 'exec', 'shell_bg.sh');

const noNamespace =
  process.getuid?.() !== 0
    ? 'needs root (unshare --pid)'
    : spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true']).status !== 0
      ? 'unshare --pid --fork --mount-proc does not work here'
      : false;
const noPython = spawnSync('python3', ['-c', '0']).status !== 0 ? 'needs python3' : false;

function zombiesOf(pid: number): number[] {
  return processes().filter((p) => {
    const st = procStat(p);
    return st?.ppid === pid && st.state === 'Z';
  });
}

t.test('orphansToReap: only zombie children the master did not spawn', async (t) => {
  const entries = [
    { pid: 10, ppid: 1, state: 'Z' }, // an orphan that died: reap
    { pid: 11, ppid: 1, state: 'S' }, // an orphan still running: not yet
    { pid: 12, ppid: 1, state: 'Z' }, // a worker that just died: libuv collects it
    { pid: 13, ppid: 7, state: 'Z' }, // someone else's child
  ];
  t.same(orphansToReap(entries, 1, new Set([12])), [10]);
  t.same(orphansToReap(entries, 1, new Set([10, 12])), []);
  t.same(orphansToReap([], 1, new Set()), []);
});

t.test('the reaper never takes the exit status of a child a library started (pidusage runs getconf)', async (t) => {
  const reaper = new Reaper(true);
  let child = 0;
  const done = new Promise<number | null>((resolve) => {
    child = exec('sleep 0.2; exit 3', (err) => resolve(err ? ((err as { code?: number }).code ?? null) : 0)).pid!;
  });
  // Hold the loop until the child is a zombie, so that libuv cannot collect it first.
  const until = Date.now() + 5000;
  while (procStat(child)?.state !== 'Z' && Date.now() < until);
  t.equal(procStat(child)?.state, 'Z', 'a zombie child of this process');
  t.same(reaper.sweep().map((r) => r.pid), [], 'not reaped: Node started it');
  t.equal(await done, 3, 'and its exit code still reaches the one who started it');
});

t.test('as PID 1: orphans are reaped, and workers\' exits still reach supervision', { skip: noNamespace }, async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { pidNamespace: true, conf: `worker_processes 2;\nlisten 127.0.0.1:${port};\napp ${orphans};\n` });
  t.equal(nsPid(m.masterPid), 1, 'the master is PID 1 of its namespace');
  const statuses: number[] = [];
  for (let i = 0; i < 50; i++) statuses.push((await get({ port })).status);
  t.same(statuses, Array(50).fill(200), '50 requests, each leaving an orphan');
  // Each orphan lives 50 ms, then is the master's zombie until it is collected.
  await waitFor('every orphan gone', () => processes().every((p) => procStat(p)?.ppid !== m.masterPid || !/^sleep/.test(cmd(p))) || undefined, 10_000);
  t.same(zombiesOf(m.masterPid), [], 'no zombie left after 50 orphans');

  const [victim] = workersOf(m.masterPid);
  const inner = nsPid(victim!);
  const after = m.lines().length;
  process.kill(victim!, 'SIGKILL');
  await m.waitLog(new RegExp(`^worker process ${inner} exited on signal SIGKILL; respawning`), { after });
  await m.waitLog(/^start worker process \d+ \(generation 1, slot \d\)/, { after });
  await waitFor('two workers again', () => workersOf(m.masterPid).length === 2 || undefined);
  t.equal((await get({ port })).status, 200, 'served after the respawn');
  t.equal(zombiesOf(m.masterPid).length, 0, 'and the dead worker was collected by its own supervision');
});

function cmd(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return '';
  }
}

/** A slow request in flight (2 s by default), then `stop`; the request's outcome and the master's exit. */
async function stopWithSlowRequest(m: Instance, port: number, stop: () => Promise<unknown> | void, ms = 2000) {
  const inFlight = get({ port, path: `/?ms=${ms}` }).then(
    (r) => ({ ok: r.status === 200, text: r.body }),
    (e: Error) => ({ ok: false, text: e.message }),
  );
  await sleep(300);
  await stop();
  const result = await inFlight;
  const exit = await new Promise<number | null>((resolve) => (m.proc!.exitCode !== null ? resolve(m.proc!.exitCode) : m.proc!.once('exit', (code) => resolve(code))));
  return { result, exit };
}

t.test('as PID 1: a graceful stop on the orchestrator\'s signal answers a request in flight', { skip: noNamespace }, async (t) => {
  t.test('SIGTERM with term_shutdown graceful', async (t) => {
    const port = await freePort();
    const m = await startMaster(t, { pidNamespace: true, conf: `term_shutdown graceful;\nlisten 127.0.0.1:${port};\napp ${slow};\n` });
    const { result, exit } = await stopWithSlowRequest(m, port, () => m.signal('SIGTERM'));
    t.ok(result.ok, `the 2 s request was answered: ${result.text}`);
    t.equal(exit, 0, 'the master exited 0');
    t.ok(m.lines().some((l) => l.text === 'signal 15 (SIGTERM) received, shutting down (term_shutdown graceful)'), 'logged as a graceful stop');
  });
  t.test('SIGQUIT (STOPSIGNAL SIGQUIT)', async (t) => {
    const port = await freePort();
    const m = await startMaster(t, { pidNamespace: true, conf: `listen 127.0.0.1:${port};\napp ${slow};\n` });
    const { result, exit } = await stopWithSlowRequest(m, port, () => m.signal('SIGQUIT'));
    t.ok(result.ok, `the 2 s request was answered: ${result.text}`);
    t.equal(exit, 0);
  });
  t.test('SIGTERM without the directive stays the fast stop, as nginx', async (t) => {
    const port = await freePort();
    const m = await startMaster(t, { pidNamespace: true, conf: `listen 127.0.0.1:${port};\napp ${slow};\n` });
    const { result, exit } = await stopWithSlowRequest(m, port, () => m.signal('SIGTERM'));
    t.notOk(result.ok, `the request was cut: ${result.text}`);
    t.equal(exit, 0);
  });
  t.test('-s stop under term_shutdown graceful is still the fast stop (it sends INT)', async (t) => {
    const port = await freePort();
    const m = await startMaster(t, { pidNamespace: true, conf: `term_shutdown graceful;\nlisten 127.0.0.1:${port};\napp ${slow};\n` });
    const { result, exit } = await stopWithSlowRequest(m, port, async () => {
      // The CLI runs inside the namespace, which the kernel ends with its PID 1: exit 0 or SIGKILL.
      const r = await m.cli(['-s', 'stop']);
      t.ok(r.code === 0 || r.code === null, `-s stop: ${r.code} ${r.stderr}`);
      // Longer than a CLI start on a busy machine, so that a cut request means the fast stop.
    }, 10_000);
    t.notOk(result.ok, `the request was cut: ${result.text}`);
    t.equal(exit, 0);
    t.ok(m.lines().some((l) => l.text === 'signal 2 (SIGINT) received, exiting'), 'INT received');
  });
});

t.test('as PID 1: a binary upgrade is refused, since the old master\'s exit would end the namespace', { skip: noNamespace }, async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { pidNamespace: true, conf: `listen 127.0.0.1:${port};\napp ${slow};\n` });
  const r = await m.cli(['-s', 'upgrade']);
  t.equal(r.code, 1, 'upgrade exits 1');
  t.match(r.stderr, /PID 1/, `says why: ${r.stderr.trim()}`);
  t.equal((await get({ port, path: '/?ms=0' })).status, 200, 'the master keeps serving');
  t.ok(!isGone(m.masterPid));
});

/** An exec worker `sh -c "server & wait"`: the worker's pid and the server's, from a request. */
async function shellWorker(t: Test) {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 1;\nready_timeout 10s;\nlisten 127.0.0.1:${port};\nexec ${shellBg};\n` });
  const [shell] = childrenOf(m.masterPid);
  const server = Number((await get({ port })).body.split(': ')[1]);
  t.not(server, shell, 'the server is the shell\'s child, not the worker itself');
  t.equal(procStat(server)?.ppid, shell);
  return { m, port, shell: shell!, server };
}

async function portFree(port: number): Promise<boolean> {
  const srv = net.createServer();
  const ok = await new Promise<boolean>((resolve) => {
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => resolve(true));
  });
  await new Promise<void>((r) => (ok ? srv.close(() => r()) : r()));
  return ok;
}

t.test('exec worker children: a SIGKILLed master leaves no server holding the port', { skip: noPython }, async (t) => {
  const { m, port, server } = await shellWorker(t);
  const keeper = keeperOf(m.masterPid);
  t.ok(keeper, 'the master started its process group keeper');
  m.signal('SIGKILL');
  await waitFor('the shell\'s background server gone', () => isGone(server), 10_000);
  await waitFor('the keeper gone', () => isGone(keeper!), 10_000);
  t.ok(await portFree(port), 'the port can be bound again: a new master could start');
});

t.test('exec worker children: a killed keeper is replaced, and still ends the groups with the master', { skip: noPython }, async (t) => {
  const { m, port, server } = await shellWorker(t);
  const first = keeperOf(m.masterPid)!;
  process.kill(first, 'SIGKILL');
  const second = await waitFor('a new keeper', () => {
    const k = keeperOf(m.masterPid);
    return k !== undefined && k !== first ? k : undefined;
  });
  m.signal('SIGKILL');
  await waitFor('the server gone', () => isGone(server), 10_000);
  await waitFor('the new keeper gone', () => isGone(second), 10_000);
  t.ok(await portFree(port), 'the port is free');
});

t.test('exec worker children: the group ends with its worker, and the worker is replaced', { skip: noPython }, async (t) => {
  const { m, port, shell, server } = await shellWorker(t);
  const after = m.lines().length;
  process.kill(shell, 'SIGKILL');
  await waitFor('the server gone with its shell', () => isGone(server), 10_000);
  await m.waitLog(/^start worker process \d+/, { after });
  await waitFor('a new worker', () => childrenOf(m.masterPid).some((p) => p !== shell) || undefined);
  const r = await waitForAnswer(port);
  t.match(r, /^py-bg: \d+/, 'the new worker serves');
  t.not(Number(r.split(': ')[1]), server);
});

t.test('exec worker children: a graceful stop reaches the whole group and lets the server finish', { skip: noPython }, async (t) => {
  const { m, port, shell, server } = await shellWorker(t);
  const inFlight = get({ port, path: '/?ms=1500' });
  await sleep(300);
  m.signal('SIGQUIT');
  const r = await inFlight;
  t.equal(r.status, 200, 'the request in flight was answered');
  await waitFor('master exit', () => isGone(m.masterPid), 20_000);
  t.ok(isGone(server) && isGone(shell), 'server and shell are gone');
  t.ok(m.lines().some((l) => l.text === `worker process ${shell} exited with code 0`), 'the shell exited by itself once its server had');
  t.notOk(m.lines().some((l) => /did not exit in time/.test(l.text)), 'nothing had to be killed');
});

t.test('the shipped Dockerfile and container config, with the master as PID 1', { skip: noNamespace }, async (t) => {
  const dockerfile = fs.readFileSync(path.join(root, 'scripts', 'docker', 'Dockerfile'), 'utf8');
  const stopSignal = /^STOPSIGNAL (SIG[A-Z]+)$/m.exec(dockerfile)?.[1] as NodeJS.Signals | undefined;
  t.equal(stopSignal, 'SIGQUIT', 'the image stops with QUIT, as nginx\'s');
  t.match(dockerfile, /^HEALTHCHECK .* CMD \["tsmaster", "-p", "\/srv\/app", "-s", "status"\]$/m, 'health from -s status');
  t.match(dockerfile, /^ARG BUILD_BASE=node:24-bookworm$/m, 'built on Node 24 (LTS)');
  t.match(dockerfile, /^ARG BASE=node:24-bookworm-slim$/m, 'and run on it');
  t.match(dockerfile, /npm ci/);

  // The config as shipped, with the address and the log moved into the test's reach.
  const dir = tempDir(t);
  fs.chmodSync(dir, 0o755);
  fs.mkdirSync(path.join(dir, 'run'));
  fs.writeFileSync(path.join(dir, 'server.js'), "module.exports = (req, res) => setTimeout(() => res.end('ok\\n'), Number(new URL(req.url, 'http://x').searchParams.get('ms') ?? 0));\n");
  const port = await freePort();
  const metrics = await freePort();
  const shipped = fs.readFileSync(path.join(root, 'scripts', 'docker', 'tsmaster.conf'), 'utf8');
  const conf = shipped
    .replace(/^listen\s+0\.0\.0\.0:8080;/m, `listen 127.0.0.1:${port};`)
    .replace(/^metrics_listen\s+0\.0\.0\.0:9145;/m, `metrics_listen 127.0.0.1:${metrics};`)
    .replace(/^error_log\s+stderr notice;/m, `error_log ${dir}/error.log info;`)
    // The image's `node` user is this machine's `nobody`.
    .replace(/^user\s+node;/m, 'user nobody;');
  t.not(conf, shipped);
  const m = await startMaster(t, { dir, pidNamespace: true, conf });
  t.equal((await get({ port })).body, 'ok\n');
  const health = await m.cli(['-s', 'status']);
  t.equal(health.code, 0, `the HEALTHCHECK command passes ${health.stdout}${health.stderr}`);
  const k8s = fs.readFileSync(path.join(root, 'scripts', 'kubernetes.yaml'), 'utf8');
  for (const probe of ['/readyz', '/healthz']) {
    t.match(k8s, new RegExp(`path: ${probe}`), `kubernetes.yaml probes ${probe}`);
    t.equal((await get({ port: metrics, path: probe })).status, 200, `${probe} answers 200 on the shipped metrics_listen`);
  }
  const { result, exit } = await stopWithSlowRequest(m, port, () => m.signal(stopSignal!));
  t.ok(result.ok, `docker stop: the request in flight was answered (${result.text})`);
  t.equal(exit, 0, 'and the container exits 0');
});
