// When the log breaks, the service keeps serving (issue 26): a full disk, a pipe whose reader
// exits, a FIFO whose reader stops reading. Each under keep-alive load from clients that never
// retry: no request fails, no worker restarts, lines are counted and said, logging comes back.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { MasterStatus } from '../src/control/protocol.js';
import { childrenOf } from '../src/proc.js';
import { LogWatch } from '../src/cli/log-watch.js';
import { LogLoss, REPORT_MS } from '../src/log/loss.js';
import { LogSink, MAX_QUEUED_BYTES } from '../src/log/sink.js';
import { startLoad } from './helpers/load.js';
import { app, cli, freePort, get, killAll, runCli, sleep, startMaster, tempDir, waitFor, waitForAnswer, workersOf } from './helpers/master.js';


const LOST = /\[alert\] \d+#0: (\d+) log lines? could not be written \(([^)]*)\); dropped/;
const cannotMount = process.getuid?.() !== 0 ? 'needs root (mount -t tmpfs)' : false;

async function status(dir: string): Promise<MasterStatus> {
  const r = await runCli(['-p', dir, '-c', path.join(dir, 'tsmaster.conf'), '-s', 'status', '--json']);
  return (JSON.parse(r.stdout) as { masters: MasterStatus[] }).masters[0]!;
}

/** tsmaster_log_lines_lost_total from the master's metrics socket. */
async function linesLost(sock: string): Promise<number> {
  const r = await get({ socketPath: sock, path: '/metrics' });
  return Number(/^tsmaster_log_lines_lost_total (\d+)$/m.exec(r.body)?.[1] ?? NaN);
}

/** Keep-alive load for `ms`: zero failed requests, the same workers, no restart. */
async function serveThrough(t: Test, o: { port: number; masterPid: number; dir: string; path: string; ms: number }): Promise<void> {
  const before = workersOf(o.masterPid).sort();
  const load = startLoad({ port: o.port, keepAlive: true, concurrency: 4, path: o.path });
  await sleep(o.ms);
  const r = await load.stop();
  t.same({ failed: r.failed, non2xx: r.non2xx, errors: r.errors }, { failed: 0, non2xx: 0, errors: [] }, `zero failed requests of ${r.ok}`);
  t.ok(r.ok > 50, `requests were served all along (${r.ok})`);
  t.same(workersOf(o.masterPid).sort(), before, 'the same workers: none died');
  t.equal((await status(o.dir)).totals.restarts, 0, 'no restart');
}

/** A master in the foreground whose stdout and stderr are `stdio` (error_log and worker_log stderr). */
async function startOnStderr(t: Test, stdio: 'pipe' | number): Promise<{ proc: ChildProcess; dir: string; port: number; metrics: string }> {
  const dir = tempDir(t);
  const port = await freePort();
  const metrics = path.join(dir, 'metrics.sock');
  fs.writeFileSync(
    path.join(dir, 'tsmaster.conf'),
    `daemon off;\npid ${dir}/tsmaster.pid;\nerror_log stderr info;\nworker_log stderr;\nworker_processes 2;\nmetrics_listen unix:${metrics};\nlisten 127.0.0.1:${port};\napp ${app('log-per-request.mjs')};\n`,
  );
  const proc = spawn(process.execPath, [cli, '-p', dir, '-c', path.join(dir, 'tsmaster.conf')], { stdio: ['ignore', stdio, stdio] });
  t.teardown(() => killAll([...childrenOf(proc.pid!), proc.pid!]));
  await waitForAnswer(port);
  await waitFor('both workers', () => workersOf(proc.pid!).length === 2);
  return { proc, dir, port, metrics };
}

t.test('a full disk (a 256 KiB tmpfs): serving goes on, the loss is said and counted, logging resumes when there is room', { skip: cannotMount }, async (t) => {
  const dir = tempDir(t);
  const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', dir], { encoding: 'utf8' });
  t.equal(mount.status, 0, `mounted: ${mount.stderr}`);
  t.teardown(() => spawnSync('umount', ['-l', dir]));
  const port = await freePort();
  const metrics = path.join(dir, 'metrics.sock');
  const m = await startMaster(t, { dir, conf: `worker_processes 2;\nmetrics_listen unix:${metrics};\nlisten 127.0.0.1:${port};\napp ${app('log-per-request.mjs')};\n` });
  let stderr = '';
  m.proc!.stderr!.on('data', (d: Buffer) => (stderr += d));

  // What is left of the disk, taken.
  const filler = path.join(dir, 'filler');
  const fd = fs.openSync(filler, 'w');
  try {
    for (;;) fs.writeSync(fd, Buffer.alloc(4096));
  } catch (err) {
    t.equal((err as NodeJS.ErrnoException).code, 'ENOSPC', 'the disk is full');
  } finally {
    fs.closeSync(fd);
  }
  await serveThrough(t, { port, masterPid: m.masterPid, dir, path: '/', ms: 3000 });
  // The log could not take it: the master said it on its stderr instead.
  const said = await waitFor('the loss said', () => LOST.exec(stderr));
  t.match(said[2], /worker process \d+: ENOSPC/, `who and why: ${said[0]}`);
  t.ok((await linesLost(metrics)) > 0, 'counted in tsmaster_log_lines_lost_total');

  fs.rmSync(filler);
  await get({ port, path: '/?m=room' });
  await waitFor('the app logs again', () => fs.readFileSync(m.log, 'utf8').includes('marker room out'));
  const after = m.lines().length;
  t.equal((await m.cli(['-s', 'reopen'])).code, 0);
  await m.waitLog(/reopening logs/, { after });
  t.pass('the master logs again');
});

t.test('a pipe whose reader exits (error_log and worker_log stderr): serving goes on, the loss is counted', async (t) => {
  const { proc, dir, port, metrics } = await startOnStderr(t, 'pipe');
  proc.stdout!.destroy();
  proc.stderr!.destroy();
  await serveThrough(t, { port, masterPid: proc.pid!, dir, path: '/', ms: 3000 });
  await waitFor('the loss counted', async () => (await linesLost(metrics)) > 0);
  t.equal(proc.exitCode, null, 'the master runs on');
});

t.test('a FIFO whose reader stops reading: workers neither stall nor grow; when it reads again, so does the log', async (t) => {
  const dir = tempDir(t);
  const fifo = path.join(dir, 'log.fifo');
  const out = path.join(dir, 'read.log');
  spawnSync('mkfifo', [fifo]);
  const reader = spawn('/bin/sh', ['-c', `exec cat "${fifo}" > "${out}"`], { stdio: 'ignore' });
  t.teardown(() => {
    reader.kill('SIGCONT');
    reader.kill('SIGKILL');
  });
  const writer = fs.openSync(fifo, 'w');
  const { proc, dir: mdir, port, metrics } = await startOnStderr(t, writer);
  fs.closeSync(writer);
  reader.kill('SIGSTOP');
  // 256 KiB a request: in 3 s, far more than the pipe and each worker's bounded queue hold.
  await serveThrough(t, { port, masterPid: proc.pid!, dir: mdir, path: '/?kb=256', ms: 3000 });
  for (const w of workersOf(proc.pid!)) {
    const rss = Number(fs.readFileSync(`/proc/${w}/statm`, 'utf8').split(' ')[1]) * 4096;
    t.ok(rss < 150 * 2 ** 20, `worker ${w} did not queue what it could not write (rss ${Math.round(rss / 2 ** 20)} MiB)`);
  }
  await waitFor('the loss counted', async () => (await linesLost(metrics)) > 0);
  t.equal((await status(mdir)).state, 'running', 'the master answers');

  reader.kill('SIGCONT');
  // Until the reader has drained what was queued, a new line may still be dropped: ask again.
  await waitFor('the app logs again', async () => {
    await get({ port, path: '/?m=again' });
    return fs.readFileSync(out, 'utf8').includes('marker again out');
  });
  await get({ port, path: '/?m=again2' });
  const said = await waitFor('the loss said', () => LOST.exec(fs.readFileSync(out, 'utf8')), 20_000);
  t.match(said[2], /worker process \d+: EAGAIN/, `who and why: ${said[0]}`);
});

// ---- the decisions, in-process ---------------------------------------------------------

t.test('LogSink on a full device (/dev/full): the write is dropped and counted, never thrown', async (t) => {
  const fd = fs.openSync('/dev/full', 'w');
  t.teardown(() => fs.closeSync(fd));
  const sink = new LogSink(fd);
  t.equal(sink.write('one\ntwo\n'), false);
  t.equal(sink.write('three\n'), false);
  t.same({ lost: sink.lost, lastError: sink.lastError }, { lost: 3, lastError: 'ENOSPC' });
});

t.test('LogSink on a pipe nobody reads: at most MAX_QUEUED_BYTES queued, the rest dropped; EPIPE drops all after', async (t) => {
  const reader = spawn('/bin/sh', ['-c', 'exec sleep 30'], { stdio: ['pipe', 'ignore', 'ignore'] });
  t.teardown(() => reader.kill('SIGKILL'));
  const stdin = reader.stdin!;
  const sink = new LogSink(-1, { writable: stdin, write: stdin.write });
  const line = `${'x'.repeat(1023)}\n`;
  for (let i = 0; i < 4096; i++) sink.write(line);
  t.ok(stdin.writableLength <= MAX_QUEUED_BYTES + line.length, `queued ${stdin.writableLength} bytes`);
  t.ok(sink.lost >= 4096 - (MAX_QUEUED_BYTES + 256 * 1024) / line.length, `${sink.lost} lines dropped`);
  t.equal(sink.lastError, 'EAGAIN');
  reader.kill('SIGKILL');
  await new Promise((r) => stdin.once('close', r));
  const lost = sink.lost;
  t.equal(sink.write('after\n'), false, 'a broken pipe takes nothing more');
  t.equal(sink.lost, lost + 1);
});

t.test('LogLoss: said at most once per REPORT_MS, only when lines were lost; a worker adds what it says, bounded', async (t) => {
  const loss = new LogLoss();
  t.equal(loss.due(0 + REPORT_MS), null, 'nothing lost, nothing said');
  const w = {};
  loss.fromWorker(w, 'worker process 7', 10, 'ENOSPC');
  loss.fromWorker(w, 'worker process 7', 4, 'ENOSPC');
  loss.fromWorker(w, 'worker process 7', 'many', 'ENOSPC');
  loss.add(2, 'master', 'ENOSPC');
  const now = 5 * REPORT_MS;
  t.equal(loss.due(now), '12 log lines could not be written (worker process 7: ENOSPC, master: ENOSPC); dropped, 12 since start');
  loss.said(now);
  loss.fromWorker(w, 'worker process 7', 2 ** 52, 'bogus\nline');
  t.equal(loss.due(now + 1), null, 'not again within REPORT_MS');
  t.equal(loss.due(now + REPORT_MS), '10000000 log lines could not be written (worker process 7: unknown); dropped, 10000012 since start', 'clamped, the code checked');
  t.equal(loss.total, 10_000_012);
});

t.test('LogWatch reads a huge sparse log in bounded chunks and never throws', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'error.log');
  fs.writeFileSync(file, '2026/12/04 01:00:00 [notice] 1#0: before\n');
  const watch = new LogWatch(file);
  fs.appendFileSync(file, '2026/12/04 01:00:01 [notice] 1#0: first\n');
  t.same(watch.poll().map((l) => l.text), ['first']);
  fs.truncateSync(file, 8 * 2 ** 30);
  fs.appendFileSync(file, '\n2026/12/04 01:00:02 [alert] 2#0: after the hole\n');
  const rss = process.memoryUsage.rss();
  t.same(watch.poll().map((l) => l.text), ['after the hole'], 'the lines at the end, past 8 GiB of NULs');
  t.ok(process.memoryUsage.rss() - rss < 64 * 2 ** 20, 'read in bounded memory');
  fs.appendFileSync(file, `2026/12/04 01:00:03 [notice] 1#0: ${'y'.repeat(100_000)}\n2026/12/04 01:00:04 [notice] 1#0: short\n`);
  t.same(watch.poll().map((l) => l.text), ['short'], 'an endless line is dropped, the next one read');
  fs.rmSync(file);
  t.same(watch.poll(), [], 'a log that is gone says nothing');
});
