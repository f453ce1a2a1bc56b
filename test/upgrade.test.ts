// Binary upgrade: USR2 / WINCH / QUIT and `-s upgrade` under load, releases switched by a
// `current` symlink, automatic rollback when the new master dies at any step.
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { startLoad, type Load, type LoadResult } from './helpers/load.js';
import { cli, fixtures, freePort, get, isGone, readLog, startMaster, tempDir, waitFor, workersOf, type Instance } from './helpers/master.js';

interface Deploy {
  dir: string;
  port: number;
  /** Make `current` point at a new release whose app answers `<name>: <pid>`. */
  release(name: string, opts?: { app?: string; conf?: string }): void;
}

/** A deploy tree: releases/<name>/{tsmaster.mjs,app.mjs,tsmaster.conf} and a `current` symlink. */
function deployTree(dir: string, port: number): Deploy {
  const confFor = (extra = '') =>
    `pid ${dir}/tsmaster.pid;\nerror_log ${dir}/error.log info;\ndaemon off;\nworker_processes 2;\nready_timeout 10s;\nlisten 127.0.0.1:${port};\napp current/app.mjs;\n${extra}`;
  return {
    dir,
    port,
    release(name, opts = {}) {
      const rel = path.join(dir, 'releases', name);
      fs.mkdirSync(rel, { recursive: true });
      // The release's own entry point: records which release started a master, then runs tsmaster.
      fs.writeFileSync(
        path.join(rel, 'tsmaster.mjs'),
        `import fs from 'node:fs';\nfs.writeFileSync(${JSON.stringify(dir)} + '/started-by-' + process.pid, ${JSON.stringify(name)});\nawait import(${JSON.stringify(cli)});\n`,
      );
      fs.writeFileSync(
        path.join(rel, 'app.mjs'),
        opts.app ?? `export default (req, res) => res.end(${JSON.stringify(name)} + ': ' + process.pid + '\\n');\n`,
      );
      fs.writeFileSync(path.join(rel, 'tsmaster.conf'), opts.conf ?? confFor());
      const tmp = path.join(dir, 'current.tmp');
      fs.rmSync(tmp, { force: true });
      fs.symlinkSync(rel, tmp);
      fs.renameSync(tmp, path.join(dir, 'current'));
    },
  };
}

async function startDeploy(t: Test): Promise<{ d: Deploy; m: Instance }> {
  const dir = tempDir(t);
  const d = deployTree(dir, await freePort());
  d.release('r0');
  const m = await startMaster(t, {
    dir,
    conf: fs.readFileSync(path.join(dir, 'current', 'tsmaster.conf'), 'utf8'),
    confFile: path.join(dir, 'current', 'tsmaster.conf'),
    cli: path.join(dir, 'current', 'tsmaster.mjs'),
  });
  return { d, m };
}

function loads(t: Test, port: number): { stop(): Promise<LoadResult[]> } {
  const ls: Load[] = [startLoad({ port, keepAlive: true, concurrency: 4 }), startLoad({ port, keepAlive: false, concurrency: 4 })];
  const stop = () => Promise.all(ls.map((l) => l.stop()));
  t.teardown(stop);
  return { stop };
}

function assertNoFailures(t: Test, results: LoadResult[]): void {
  const [k, c] = results as [LoadResult, LoadResult];
  t.ok(k.ok > 0 && c.ok > 0, `served keep-alive ${k.ok}, close ${c.ok}`);
  t.same(
    { keepAlive: [k.failed, k.non2xx], close: [c.failed, c.non2xx], errors: [...k.errors, ...c.errors] },
    { keepAlive: [0, 0], close: [0, 0], errors: [] },
    'zero failed, zero non-2xx',
  );
}

const pidOf = (file: string) => Number(fs.readFileSync(file, 'utf8'));

t.test('5 consecutive -s upgrade runs under load: zero failures, new code each time', async (t) => {
  const { d, m } = await startDeploy(t);
  const load = loads(t, d.port);
  let master = m.masterPid;
  for (let i = 1; i <= 5; i++) {
    d.release(`r${i}`);
    const r = await m.cli(['-s', 'upgrade'], { timeoutMs: 60_000 });
    t.equal(r.code, 0, `upgrade ${i}: ${r.stderr}`);
    t.match(r.stdout, /new master process \d+ is ready \(\d+ ms\)[\s\S]*old workers have exited \(\d+ ms\)[\s\S]*old master exited \(\d+ ms\)[\s\S]*upgrade finished: master process \d+ serves \(\d+ ms in all\)/, 'each step with its time');
    const now = pidOf(m.pidFile);
    t.not(now, master, 'a new master');
    t.ok(isGone(master), 'the old master is gone');
    t.notOk(fs.existsSync(`${m.pidFile}.oldbin`), 'no .oldbin left');
    t.equal(fs.readFileSync(path.join(d.dir, `started-by-${now}`), 'utf8'), `r${i}`, 'started from the release the symlink names');
    t.match((await get({ port: d.port })).body, new RegExp(`^r${i}: `), 'answers with the new code');
    // Generation numbers go on: the first master's generation 1, then 2, 3, ... in each new master.
    t.ok(m.events().some((e) => e.line.pid === now && e.event === 'generation-ready' && e.generation === i + 1), `the new master serves generation ${i + 1}`);
    master = now;
  }
  assertNoFailures(t, await load.stop());
  t.equal(workersOf(master).length, 2);
});

t.test('raw USR2 / WINCH / QUIT under load: zero failures', async (t) => {
  const { d, m } = await startDeploy(t);
  const load = loads(t, d.port);
  d.release('r1');
  m.signal('SIGUSR2');
  const started = await m.waitEvent('upgrade-started', {}, { pid: m.masterPid });
  const m2 = started.pid;
  await m.waitEvent('upgrade-ready', {}, { pid: m.masterPid });
  t.equal(pidOf(m.pidFile), m2, 'pid names the new master');
  t.equal(pidOf(`${m.pidFile}.oldbin`), m.masterPid, 'pid.oldbin names the old one');
  const oldWorkers = workersOf(m.masterPid);
  m.signal('SIGWINCH');
  await waitFor('old workers gone', () => oldWorkers.every(isGone));
  m.signal('SIGQUIT');
  await waitFor('old master gone', () => isGone(m.masterPid));
  assertNoFailures(t, await load.stop());
  t.match((await get({ port: d.port })).body, /^r1: /);
  t.equal(workersOf(m2).length, 2);
});

for (const when of ['before ready', 'after ready, before WINCH', 'after WINCH'] as const) {
  t.test(`SIGKILL of the new master ${when}: automatic rollback`, async (t) => {
    const { d, m } = await startDeploy(t);
    const load = loads(t, d.port);
    d.release('r1', when === 'before ready' ? { app: fs.readFileSync(path.join(fixtures, 'apps', 'slow-start.mjs'), 'utf8') } : {});
    const before = m.lines().length;
    m.signal('SIGUSR2');
    const started = await m.waitEvent('upgrade-started', {}, { pid: m.masterPid, after: before });
    const m2 = started.pid;
    if (when === 'before ready') {
      await m.waitLog(/^start worker process/, { pid: m2, after: before });
    } else {
      await m.waitEvent('upgrade-ready', {}, { pid: m.masterPid, after: before });
    }
    if (when === 'after WINCH') {
      const old = workersOf(m.masterPid);
      m.signal('SIGWINCH');
      await waitFor('old workers gone', () => old.every(isGone));
    }
    process.kill(m2, 'SIGKILL');
    await m.waitEvent('rolled-back', {}, { pid: m.masterPid, after: before });
    t.ok(m.events(before).some((e) => e.event === 'upgrade-rolling-back' && e.pid === m2 && e.how === 'exited on signal SIGKILL'), 'the log says why');
    t.equal(pidOf(m.pidFile), m.masterPid, 'pid names the old master again');
    t.notOk(fs.existsSync(`${m.pidFile}.oldbin`), 'no .oldbin');
    await waitFor('old master serves with 2 workers', () => workersOf(m.masterPid).length === 2);
    t.match((await get({ port: d.port })).body, /^r0: /, 'the old code serves');
    const results = await load.stop();
    const failed = results.reduce((n, r) => n + r.failed + r.non2xx, 0);
    t.comment(`${when}: ${failed} failed requests of ${results.reduce((n, r) => n + r.ok, 0) + failed}`);
    assertNoFailures(t, results);
  });
}

t.test('a release that throws on import, and one with an invalid config: -s upgrade exits 1, nothing lost', async (t) => {
  const { d, m } = await startDeploy(t);
  const load = loads(t, d.port);
  d.release('broken-app', { app: fs.readFileSync(path.join(fixtures, 'apps', 'throws.mjs'), 'utf8') });
  const r = await m.cli(['-s', 'upgrade'], { timeoutMs: 60_000 });
  t.equal(r.code, 1, 'exit 1');
  t.match(r.stderr, /upgrade failed/);
  t.match(r.stderr, /before it was ready: Error: this release is broken on import \(at .*\.mjs:1:7\)/, "the new master's own reason: the app's error and its place");
  t.match(r.stderr, new RegExp(`master process ${m.masterPid} keeps serving`));
  t.equal(pidOf(m.pidFile), m.masterPid);
  t.notOk(fs.existsSync(`${m.pidFile}.oldbin`));

  const conf = fs.readFileSync(path.join(d.dir, 'current', 'tsmaster.conf'), 'utf8');
  d.release('broken-conf', { conf: conf.replace('worker_processes 2;', 'worker_processes two;') });
  // -s upgrade reads the config first, as nginx -s does.
  const c = await m.cli(['-s', 'upgrade']);
  t.equal(c.code, 1);
  t.match(c.stderr, /invalid value "two" in "worker_processes" directive/);
  // A raw USR2 makes the new master find out itself, and the old one roll back.
  const before = m.lines().length;
  m.signal('SIGUSR2');
  await m.waitEvent('rolled-back', {}, { pid: m.masterPid, after: before });
  t.ok(readLog(m.log).slice(before).some((l) => /invalid value "two"/.test(l.text)), "the new master's error is in the log");
  t.equal(pidOf(m.pidFile), m.masterPid);
  t.match((await get({ port: d.port })).body, /^r0: /);
  assertNoFailures(t, await load.stop());
});

t.test('USR2 twice: one new master only; USR2 to the new master while the old one runs is ignored', async (t) => {
  const { d, m } = await startDeploy(t);
  d.release('r1');
  m.signal('SIGUSR2');
  await m.waitEvent('upgrade-started', {}, { pid: m.masterPid });
  m.signal('SIGUSR2');
  await m.waitEvent('upgrade-ready', {}, { pid: m.masterPid });
  const events = m.events().filter((e) => e.line.pid === m.masterPid);
  t.equal(events.filter((e) => e.event === 'upgrade-started').length, 1, 'one new master');
  t.ok(events.some((e) => e.event === 'upgrade-refused' && /^an upgrade is under way/.test(e.reason)), 'the second USR2 is logged as ignored');
  const m2 = pidOf(m.pidFile);
  process.kill(m2, 'SIGUSR2');
  await m.waitEvent('upgrade-refused', { reason: `the old master process ${m.masterPid} is still running` }, { pid: m2 });
  t.equal(m.events().filter((e) => e.event === 'upgrade-started').length, 1);
});

/** USR2, the new master ready, then WINCH and the old workers gone: the new master's pid. */
async function usr2ThenWinch(m: Instance): Promise<number> {
  m.signal('SIGUSR2');
  await m.waitEvent('upgrade-ready', {}, { pid: m.masterPid });
  const m2 = pidOf(m.pidFile);
  const old = workersOf(m.masterPid);
  m.signal('SIGWINCH');
  await waitFor('old workers gone', () => old.every(isGone));
  return m2;
}

t.test('manual rollback as in nginx: HUP to the old master, QUIT to the new one', async (t) => {
  const { d, m } = await startDeploy(t);
  const load = loads(t, d.port);
  d.release('r1');
  const m2 = await usr2ThenWinch(m);
  m.signal('SIGHUP');
  await waitFor('old master has workers again', () => workersOf(m.masterPid).length === 2);
  await m.waitEvent('workers-restarted', {}, { pid: m.masterPid });
  process.kill(m2, 'SIGQUIT');
  await waitFor('new master gone', () => isGone(m2));
  await m.waitEvent('rolled-back', {}, { pid: m.masterPid });
  t.equal(pidOf(m.pidFile), m.masterPid);
  t.match((await get({ port: d.port })).body, /^r0: /);
  assertNoFailures(t, await load.stop());
});

t.test('kill -9 of the old master after WINCH: the new master serves on and removes the .oldbin files it left', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 1;\nlisten 127.0.0.1:${port};\napp ${path.join(fixtures, 'apps', 'hello.mjs')};\n` });
  const m2 = await usr2ThenWinch(m);
  t.ok(fs.existsSync(`${m.pidFile}.oldbin`) && fs.existsSync(`${m.pidFile}.sock.oldbin`), 'the old master is on the .oldbin names');
  m.signal('SIGKILL');
  await waitFor('the .oldbin pidfile and socket gone', () => (!fs.existsSync(`${m.pidFile}.oldbin`) && !fs.existsSync(`${m.pidFile}.sock.oldbin`)) || undefined);
  t.pass('removed by the new master');
  t.equal(pidOf(m.pidFile), m2);
  t.equal((await get({ port })).status, 200);
  const st = await m.cli(['-s', 'status', '--json']);
  t.equal(st.code, 0, st.stderr);
  t.match(st.stdout, /"phase":"none"/, 'no upgrade under way any more');
});

t.test('-s quit during an unfinished upgrade stops both masters, the new one first, and answers the requests in flight', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 2;\nlisten 127.0.0.1:${port};\napp ${path.join(fixtures, 'apps', 'slow.mjs')};\n` });
  const old = m.masterPid;
  m.signal('SIGUSR2');
  const ready = await m.waitEvent('upgrade-ready', {}, { pid: old });
  // Both masters serve; requests in flight on either are answered.
  const inFlight = Array.from({ length: 6 }, () => get({ port, path: '/?ms=800' }));
  await new Promise((r) => setTimeout(r, 200));
  const r = await m.cli(['-s', 'quit'], { timeoutMs: 60_000 });
  t.equal(r.code, 0, r.stderr);
  t.same((await Promise.all(inFlight)).map((x) => x.status), [200, 200, 200, 200, 200, 200], 'every request in flight answered');
  t.ok(isGone(ready.pid) && isGone(old), 'both masters are gone');
  // The new master went first: the old one served on alone (a rollback, logged as one) until its own QUIT.
  t.ok(m.events().some((e) => e.event === 'upgrade-rolling-back' && e.pid === ready.pid && e.how === 'exited with code 0'), 'the new master stopped first');
  t.notOk(fs.existsSync(m.pidFile) || fs.existsSync(`${m.pidFile}.oldbin`), 'no pidfile, no .oldbin');
});
