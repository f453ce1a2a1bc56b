// Supervision: crashed, killed, hung and bloated workers are replaced; crash loops back off
// with the sockets kept; USR1 reopens every log; start(ctx) shutdown hooks run.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { startLoad } from './helpers/load.js';
import { cpuSeconds } from '../src/proc.js';
import { app, freePort, get, type Instance, isGone, type LogLine, readLog, sleep, startMaster, tempDir, told, waitFor, workersOf } from './helpers/master.js';


/** utime + stime of a process, in clock ticks, from /proc/PID/stat. */
/** VmRSS of a process in bytes, from /proc/PID/status. */
function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

/** Where a file descriptor of a process points, from /proc/PID/fd. */
function fdTarget(pid: number, fd: number): string | null {
  try {
    return fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
  } catch {
    return null;
  }
}

/** The fds of a process that point at one of `files`. */
function fdsOnto(pid: number, files: string[]): number[] {
  const out: number[] = [];
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    const target = fdTarget(pid, Number(fd));
    if (target !== null && files.includes(target)) out.push(Number(fd));
  }
  return out;
}

function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/** The pid in a `start worker process PID ...` line. */
function startedPid(line: LogLine): number {
  return Number(/^start worker process (\d+) /.exec(line.text)![1]);
}

function indexOf(m: Instance, test: RegExp, pid?: number): number {
  return m.lines().findIndex((l) => test.test(l.text) && (pid === undefined || l.pid === pid));
}

t.test('kill -9 of a worker under Connection: close load: replaced, failures bounded by the requests in flight', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 2;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n` });
  const concurrency = 4;
  const load = startLoad({ port, keepAlive: false, concurrency });
  t.teardown(() => load.stop());
  await waitFor('load running', () => load.result.ok >= 200);
  const [victim, survivor] = workersOf(m.masterPid) as [number, number];
  const failedBefore = load.result.failed;
  const before = m.lines().length;
  process.kill(victim, 'SIGKILL');
  const exit = await m.waitLog(new RegExp(`^worker process ${victim} exited on signal SIGKILL; respawning in \\d+ms$`), { pid: m.masterPid, after: before });
  t.equal(exit.level, 'alert', 'the unexpected exit is an alert');
  const fresh = startedPid(await m.waitLog(/^start worker process \d+ \(generation 1, slot [01]\)$/, { pid: m.masterPid, after: before }));
  await m.waitLog(new RegExp(`^worker process ${fresh} is ready \\(generation 1\\)$`), { pid: m.masterPid, after: before });
  t.not(fresh, victim, 'a new pid');
  t.same(workersOf(m.masterPid).sort(), [survivor, fresh].sort(), 'the survivor and the replacement run, the victim is gone');
  t.ok(isGone(victim));
  const okAtReady = load.result.ok;
  await waitFor('load goes on', () => load.result.ok >= okAtReady + 300);
  const r = await load.stop();
  t.comment(`failed requests around the kill: ${r.failed} of ${r.ok + r.failed} (concurrency ${concurrency})${r.errors.length ? `: ${r.errors.join('; ')}` : ''}`);
  t.equal(failedBefore, 0, 'no failure before the kill');
  t.ok(r.failed <= concurrency, `at most the ${concurrency} requests in flight failed (${r.failed})`);
  t.notOk(r.errors.some((e) => /ECONNREFUSED/.test(e)), 'no connection was refused');
  t.equal(r.non2xx, 0, 'no error status');
  let servedByFresh = false;
  for (let i = 0; i < 200 && !servedByFresh; i++) servedByFresh = (await get({ port })).body.includes(`: ${fresh}`);
  t.ok(servedByFresh, 'the replacement serves');
});

t.test('a hung worker is killed after worker_heartbeat_timeout and replaced by one that serves', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 1;\nworker_heartbeat_timeout 2s;\nlisten 127.0.0.1:${port};\napp ${app('hang.mjs')};\n` });
  const [hung] = workersOf(m.masterPid) as [number];
  t.equal((await get({ port })).body, `hang: ${hung}\n`, 'the worker serves before it hangs');
  const before = m.lines().length;
  const cpu0 = cpuSeconds(hung)!;
  const req = http.request({ host: '127.0.0.1', port, path: '/hang', agent: false });
  const outcome = new Promise<string>((resolve) => {
    req.on('response', (res) => resolve(`status ${res.statusCode}`));
    req.on('error', (err) => resolve(`error ${(err as NodeJS.ErrnoException).code ?? err.message}`));
  });
  req.end();
  // The event loop spins: the process burns CPU time (on a busy machine it may be killed for
  // its silence before it has burnt much: gone counts as spun).
  await waitFor('the worker spins on /hang', () => (cpuSeconds(hung) ?? Infinity) - cpu0 >= 0.3);
  req.destroy();
  t.match(await outcome, /^error /, 'the client gave up on /hang');
  const killed = await m.waitLog(new RegExp(`^worker process ${hung}: no heartbeat for \\d+ms, killing it$`), { pid: m.masterPid, after: before, timeoutMs: 10_000 });
  t.equal(killed.level, 'alert', `logged: ${killed.text}`);
  await m.waitLog(new RegExp(`^worker process ${hung} exited on signal SIGKILL \\(no heartbeat for \\d+ms\\); respawning in \\d+ms$`), { pid: m.masterPid, after: before });
  const fresh = startedPid(await m.waitLog(/^start worker process \d+ \(generation 1, slot 0\)$/, { pid: m.masterPid, after: before }));
  await m.waitLog(new RegExp(`^worker process ${fresh} is ready`), { pid: m.masterPid, after: before });
  t.ok(isGone(hung), 'the hung worker is gone');
  t.equal((await get({ port })).body, `hang: ${fresh}\n`, 'the replacement serves');
  t.same(workersOf(m.masterPid), [fresh], 'one worker, the new one');
});

for (const { separate, daemon } of [
  { separate: false, daemon: false },
  { separate: true, daemon: false },
  { separate: false, daemon: true },
]) {
  t.test(`USR1 reopens the logs of master and workers (${separate ? 'separate worker_log' : 'worker_log = error_log'}${daemon ? ', daemon on' : ''})`, async (t) => {
    const port = await freePort();
    const dir = tempDir(t);
    const errorLog = path.join(dir, 'error.log');
    const workerLog = separate ? path.join(dir, 'worker.log') : errorLog;
    const m = await startMaster(t, {
      dir,
      daemon,
      conf: `worker_processes 2;\n${separate ? `worker_log ${workerLog};\n` : ''}listen 127.0.0.1:${port};\napp ${app('echo-log.mjs')};\n`,
    });
    const workers = workersOf(m.masterPid);
    m.pids(); // teardown remembers them: their start lines are about to move to another file
    type Phase = 'old' | 'moved' | 'around' | 'new';
    const sent: Array<{ marker: string; phase: Phase }> = [];
    const failures: string[] = [];
    let seq = 0;
    const hit = async (phase: Phase) => {
      const marker = `${phase}-${seq++}`;
      try {
        const r = await get({ port, path: `/?m=${marker}` });
        if (r.status !== 200 || !r.body.endsWith(` ${marker}\n`)) failures.push(`${marker}: ${r.status} ${r.body}`);
      } catch (err) {
        failures.push(`${marker}: ${String(err)}`);
      }
      sent.push({ marker, phase });
    };
    for (let i = 0; i < 10; i++) await hit('old');
    fs.renameSync(errorLog, `${errorLog}.1`);
    if (separate) fs.renameSync(workerLog, `${workerLog}.1`);
    const moved = [...new Set([`${errorLog}.1`, `${workerLog}.1`])];
    // Nobody has reopened yet: these still go to the renamed file.
    for (let i = 0; i < 10; i++) await hit('moved');
    // Requests all through the reopen: each marker lands in one file or the other.
    let running = true;
    const around = Array.from({ length: 2 }, async () => {
      while (running) await hit('around');
    });
    t.teardown(async () => {
      running = false;
      await Promise.all(around);
    });
    m.signal('SIGUSR1');
    await waitFor('workers write to the new file', () => workers.every((w) => fdTarget(w, 1) === workerLog && fdTarget(w, 2) === workerLog));
    await waitFor('the master created a new error log', () => fs.existsSync(errorLog));
    running = false;
    await Promise.all(around);
    // Master lines after the reopen: TTIN adds a worker (which gets the new log too), TTOU removes one.
    m.signal('SIGTTIN');
    const added = startedPid(await m.waitLog(/^start worker process \d+ \(generation 1, slot 2\)$/, { pid: m.masterPid }));
    await m.waitLog(new RegExp(`^worker process ${added} is ready`), { pid: m.masterPid });
    t.equal(fdTarget(added, 1), workerLog, 'a worker started after USR1 writes stdout to the new file');
    t.equal(fdTarget(added, 2), workerLog, 'and stderr');
    for (let i = 0; i < 30; i++) await hit('new');
    m.signal('SIGTTOU');
    await m.waitLog(new RegExp(`^worker process ${added} exited with code 0$`), { pid: m.masterPid });
    t.same(failures, [], 'every request answered');

    const counts = (file: string) => {
      const c = new Map<string, number>();
      for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
        // Each line stamped by its worker (worker_log_prefix), on the stream it was written to.
        const x = /^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \[std(?:out|err)\] worker (\d+) slot \d+: marker (\S+) (out|err) \1$/.exec(line);
        if (x) c.set(`${x[2]} ${x[3]}`, (c.get(`${x[2]} ${x[3]}`) ?? 0) + 1);
      }
      return c;
    };
    const inOld = counts(`${workerLog}.1`);
    const inNew = counts(workerLog);
    const wrong: string[] = [];
    const tally = { old: 0, new: 0 };
    for (const { marker, phase } of sent) {
      for (const stream of ['out', 'err']) {
        const key = `${marker} ${stream}`;
        const o = inOld.get(key) ?? 0;
        const n = inNew.get(key) ?? 0;
        tally.old += o;
        tally.new += n;
        if (o + n !== 1) wrong.push(`${key}: ${o} in the renamed file, ${n} in the new one`);
        else if ((phase === 'old' || phase === 'moved') && o !== 1) wrong.push(`${key} is not in the renamed file`);
        else if (phase === 'new' && n !== 1) wrong.push(`${key} is not in the new file`);
      }
    }
    t.same(wrong, [], `each of ${sent.length} markers (stdout and stderr) is in exactly one file, the right one (${tally.old} lines in the renamed file, ${tally.new} in the new)`);
    t.equal(inOld.size + inNew.size, sent.length * 2, 'no other marker lines');
    t.ok(sent.filter((s) => s.phase === 'around').length > 0, 'requests were in flight during the reopen');

    const oldMaster = fs.readFileSync(`${errorLog}.1`, 'utf8');
    const newMaster = fs.readFileSync(errorLog, 'utf8');
    t.equal(readLog(`${errorLog}.1`).filter((l) => l.pid === m.masterPid).at(-1)?.text, 'signal 10 (SIGUSR1) received, reopening logs', "the USR1 line is the master's last in the renamed error log");
    t.ok(told(oldMaster, 'generation-ready'), 'the renamed error log has the start');
    t.notOk(told(newMaster, 'generation-ready'), 'the new error log has not');
    t.notMatch(newMaster, /SIGUSR1|listening on/, 'nothing from before the reopen in the new error log');
    t.notMatch(oldMaster, /SIGTTIN|SIGTTOU|worker count/, 'nothing from after the reopen in the renamed error log');
    for (const want of [/signal 21 \(SIGTTIN\) received, adding a worker/, /worker count of generation 1 is now 3/, /signal 22 \(SIGTTOU\) received, removing a worker/, new RegExp(`worker process ${added} exited with code 0`)]) {
      t.match(newMaster, want, `the new error log has ${want.source}`);
    }
    if (separate) {
      t.notMatch(oldMaster + newMaster, /marker /, 'no worker output in the error log');
      t.notMatch(fs.readFileSync(workerLog, 'utf8') + fs.readFileSync(`${workerLog}.1`, 'utf8'), /\[notice\] \d+#0: (start|signal)/, 'no master line in the worker log');
    }
    for (const w of [m.masterPid, ...workersOf(m.masterPid)]) t.same(fdsOnto(w, moved), [], `process ${w} holds no fd on the renamed file`);
  });
}

t.test('a serving app whose restarts crash at once (1 and 2 workers): respawns back off, the master and its sockets stay, the log says so', async (t) => {
  const masters = await Promise.all(
    [1, 2].map(async (n) => {
      const port = await freePort();
      const dir = tempDir(t);
      const mark = path.join(dir, 'broken');
      const m = await startMaster(t, { dir, conf: `worker_processes ${n};\nlisten 127.0.0.1:${port};\napp ${app('breaks-on-mark.mjs')};\nenv BREAK_MARK=${mark};\n` });
      return { n, port, m, mark };
    }),
  );
  // It served; now every worker and every restart of one exits 3 at once.
  for (const { mark } of masters) fs.writeFileSync(mark, '');
  // The measuring window, at least 3 s and until the third step: without backoff a crash
  // loop starts some 30 node processes per slot in 3 s.
  const t0 = Date.now();
  await Promise.all(masters.map(({ m }) => m.waitLog(/; respawning in 400ms$/, { pid: m.masterPid, timeoutMs: 20_000 })));
  await sleep(Math.max(0, 3000 - (Date.now() - t0)));
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  for (const { n, port, m } of masters) {
    const lines = m.lines().filter((l) => l.pid === m.masterPid);
    const starts = lines.filter((l) => /^start worker process \d+ /.test(l.text));
    const delays = lines.map((l) => /^worker process \d+ exited with code 3; respawning in (\d+)ms$/.exec(l.text)).filter((x) => x !== null).map((x) => Number(x[1]));
    t.comment(`${n} worker(s): ${starts.length} starts in ${secs} s; respawn delays ${delays.join(', ')} ms`);
    t.ok(starts.length >= 3 && starts.length <= 8 * n, `${n} worker(s): ${starts.length} starts in ${secs} s, at most ${8 * n}`);
    t.ok(delays.length >= 3, `${n} worker(s): several respawn steps`);
    t.same(delays, delays.map((_, i) => 100 * 2 ** i), `${n} worker(s): each step waits twice as long as the one before, from 100ms`);
    t.ok(starts.length <= n * (delays.length + 1), `${n} worker(s): at most ${n} start(s) per step, nothing in between`);
    const loud = lines.filter((l) => /^no worker process of generation 1 is running; the listening sockets stay open$/.test(l.text));
    t.ok(loud.length >= 1, `${n} worker(s): the log says that no worker runs`);
    t.ok(loud.every((l) => l.level === 'alert' || l.level === 'emerg'), 'loudly');
    t.notOk(isGone(m.masterPid), `${n} worker(s): the master stays up`);
    t.ok(await connects(port), `${n} worker(s): connect() is not refused, the socket is kept`);
    // Still under control: TERM during a pending respawn ends it cleanly.
    const before = m.lines().length;
    m.signal('SIGTERM');
    await waitFor('master exit', () => isGone(m.masterPid));
    const tail = m.lines().slice(before).map((l) => l.text);
    const term = tail.indexOf('signal 15 (SIGTERM) received, exiting');
    t.ok(term >= 0 && tail.at(-1) === 'exit', 'TERM and exit logged');
    t.same(tail.slice(term).filter((l) => /^start worker process/.test(l)), [], 'no respawn after TERM');
  }
});

t.test('worker_max_memory: a bloated worker is replaced gracefully, requests keep succeeding', async (t) => {
  const MB = 1024 * 1024;
  // What a fresh worker under load weighs depends on Node and on the test runner's
  // instrumentation (tap's hooks reach the workers): a probe measures it. Each /grow adds
  // 20 MB: the limit sits between one and two of them.
  const probePort = await freePort();
  const probe = await startMaster(t, { conf: `worker_processes 1;\nlisten 127.0.0.1:${probePort};\napp ${app('memory.mjs')};\n` });
  const [probed] = workersOf(probe.masterPid) as [number];
  const probeLoad = startLoad({ port: probePort, keepAlive: true, concurrency: 2 });
  let base = rssBytes(probed);
  await waitFor('probe under load', () => {
    base = Math.max(base, rssBytes(probed));
    return probeLoad.result.ok >= 300;
  });
  await probeLoad.stop();
  probe.signal('SIGTERM');
  await waitFor('probe gone', () => isGone(probe.masterPid));
  const limitMb = Math.ceil(base / MB) + 30;
  const limit = limitMb * MB;
  t.comment(`a fresh worker under load: ${(base / MB).toFixed(1)} MB; worker_max_memory ${limitMb}m`);

  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 1;\nworker_max_memory ${limitMb}m;\nlisten 127.0.0.1:${port};\napp ${app('memory.mjs')};\n` });
  const [old] = workersOf(m.masterPid) as [number];
  const keep = startLoad({ port, keepAlive: true, concurrency: 2 });
  const close = startLoad({ port, keepAlive: false, concurrency: 2 });
  t.teardown(() => Promise.all([keep.stop(), close.stop()]));
  await waitFor('load running', () => keep.result.ok >= 100 && close.result.ok >= 100);
  const before = m.lines().length;
  t.notOk(m.lines().some((l) => /over worker_max_memory/.test(l.text)), 'not recycled before it grew');
  t.equal((await get({ port, path: '/grow' })).body, `memory: ${old}\n`);
  t.equal((await get({ port, path: '/grow' })).body, `memory: ${old}\n`);
  const over = await m.waitLog(new RegExp(`^worker process ${old} uses \\d+ bytes, over worker_max_memory ${limit}: replacing it$`), { pid: m.masterPid, after: before });
  t.equal(over.level, 'warn');
  const fresh = startedPid(await m.waitLog(/^start worker process \d+ \(generation 1, slot 0\)$/, { pid: m.masterPid, after: before }));
  // It drains its keep-alive clients first; on 2 CPUs shared with a 64-worker start that can take a while.
  await m.waitLog(new RegExp(`^worker process ${old} exited with code 0$`), { pid: m.masterPid, after: before, timeoutMs: 60_000 });
  const ready = indexOf(m, new RegExp(`^worker process ${fresh} is ready`), m.masterPid);
  const exited = indexOf(m, new RegExp(`^worker process ${old} exited with code 0$`), m.masterPid);
  t.ok(ready >= 0 && ready < exited, 'the new worker was ready before the old one exited');
  t.ok(isGone(old));
  const okNow = keep.result.ok + close.result.ok;
  await waitFor('load goes on', () => keep.result.ok + close.result.ok >= okNow + 200);
  const [k, c] = await Promise.all([keep.stop(), close.stop()]);
  t.same({ failed: k.failed + c.failed, non2xx: k.non2xx + c.non2xx, errors: [...k.errors, ...c.errors] }, { failed: 0, non2xx: 0, errors: [] }, `zero failed of ${k.ok + c.ok} requests`);
  t.equal((await get({ port })).body, `memory: ${fresh}\n`, 'the new worker serves');
  const after = m.lines().slice(before).map((l) => l.text);
  t.notOk(after.some((l) => /respawning|no worker process|while being replaced/.test(l)), 'a replacement, not a crash');
});

t.test('worker_max_memory below what a fresh worker needs: one warning, no endless recycling', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 1;\nworker_max_memory 1m;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n` });
  const first = workersOf(m.masterPid);
  await m.waitLog(/^worker_max_memory 1048576 is below what a fresh worker uses \(\d+ bytes\): not replacing workers for memory$/, { timeoutMs: 5000 });
  // An absence can only be watched for a while: three more heartbeat checks (one a second).
  await sleep(3000);
  t.equal(m.lines().filter((l) => /is below what a fresh worker uses/.test(l.text)).length, 1, 'said once');
  t.notOk(m.lines().some((l) => /replacing it/.test(l.text)), 'no worker replaced');
  t.same(workersOf(m.masterPid), first, 'the same worker serves');
  t.equal((await get({ port })).status, 200);
});

t.test('start(ctx) apps: onShutdown hooks run on graceful stops (HUP of old workers, QUIT)', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 2;\nlisten 127.0.0.1:${port};\napp ${app('start-ctx.mjs')};\n` });
  const first = workersOf(m.masterPid);
  t.match((await get({ port })).body, /^ctx: \d+ /);
  const hookThenExit = (w: number) => {
    const hook = indexOf(m, /^shutdown hook ran$/, w);
    const exit = indexOf(m, new RegExp(`^worker process ${w} exited with code 0$`), m.masterPid);
    return hook >= 0 && hook < exit;
  };
  m.signal('SIGHUP');
  await m.waitEvent('generation-ready', { generation: 2 }, { pid: m.masterPid });
  for (const w of first) await m.waitLog(new RegExp(`^worker process ${w} exited with code 0$`), { pid: m.masterPid });
  for (const w of first) t.ok(hookThenExit(w), `old worker ${w} ran its hook, then exited, on reload`);
  const second = workersOf(m.masterPid);
  t.equal(second.length, 2);
  m.signal('SIGQUIT');
  await waitFor('master exit', () => isGone(m.masterPid));
  for (const w of second) t.ok(hookThenExit(w), `worker ${w} ran its hook, then exited, on QUIT`);
  const hooks = m.lines().filter((l) => l.text === 'shutdown hook ran');
  t.equal(hooks.length, 4, 'one hook line per worker');
  t.ok(hooks.every((l) => l.level === 'notice'), 'at the level the app asked for');
  t.equal(m.lines().at(-1)?.text, 'exit', 'the master exits last');
});
