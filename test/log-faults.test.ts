// When the log breaks, the service keeps serving (issue 26): a full disk, a pipe whose reader
// exits, a FIFO whose reader stops reading. Each under keep-alive load from clients that never
// retry: no request fails, no worker restarts, lines are counted and said, logging comes back.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { MasterStatus } from '../src/control/protocol.js';
import { childrenOf } from '../src/proc.js';
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
  await get({ port, path: '/?m=again' });
  await waitFor('the app logs again', () => fs.readFileSync(out, 'utf8').includes('marker again out'));
  await get({ port, path: '/?m=again2' });
  const said = await waitFor('the loss said', () => LOST.exec(fs.readFileSync(out, 'utf8')), 20_000);
  t.match(said[2], /worker process \d+: EAGAIN/, `who and why: ${said[0]}`);
});
