// user, worker_rlimit_nofile, worker_priority, worker_cpu_affinity: read back from /proc.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { fixtures, freePort, get, startMaster, workersOf } from './helpers/master.js';

const hello = path.join(fixtures, 'apps', 'hello.mjs');
const status = (pid: number, field: string) => new RegExp(`^${field}:[ \\t]*(.*)$`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '';

t.test('user nobody: workers run as nobody, the master (root) binds a port below 1024', { skip: process.getuid?.() !== 0 ? 'needs root' : false }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsm-user-'));
  fs.chmodSync(dir, 0o755);
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // Port 80-style: a privileged port nothing else here uses; skip if taken.
  const low = 981;
  const port = await freePort();
  const m = await startMaster(t, {
    dir,
    conf: `user nobody;\nworker_processes 2;\nlisten 127.0.0.1:${low};\nlisten 127.0.0.1:${port};\napp ${hello};\n`,
  });
  for (const w of workersOf(m.masterPid)) {
    t.match(status(w, 'Uid'), /^65534\s+65534\s+65534\s+65534$/, `worker ${w} runs as nobody`);
    t.match(status(w, 'Gid'), /^65534\s+65534\s+65534\s+65534$/, `worker ${w} has nogroup`);
    t.equal(status(w, 'Groups'), '', 'no supplementary groups');
  }
  t.match(status(m.masterPid, 'Uid'), /^0\s/, 'the master stays root');
  t.equal((await get({ port: low })).status, 200, 'serves on the privileged port');
  const log = fs.statSync(path.join(dir, 'error.log'));
  t.equal(log.uid, 0, "the master's error log stays root's");
  t.equal(fs.statSync(path.join(dir, 'error.worker.log')).uid, 65534, "the workers' default log beside it is nobody's");
  t.equal(status(workersOf(m.masterPid)[0]!, 'Uid').split(/\s+/)[0], '65534');
  for (const w of workersOf(m.masterPid)) {
    const env = fs.readFileSync(`/proc/${w}/environ`, 'utf8').split('\0');
    t.ok(env.includes('HOME=/nonexistent') && env.includes('USER=nobody'), `worker ${w} has nobody's HOME and USER, not root's`);
  }
});

t.test('rlimit, priority and affinity are applied to each worker', async (t) => {
  const port = await freePort();
  const cpus = os.availableParallelism();
  const m = await startMaster(t, {
    conf: `worker_processes 2;\nworker_rlimit_nofile 4321;\nworker_priority 7;\nworker_cpu_affinity ${cpus > 1 ? '01 10' : '1 1'};\nlisten 127.0.0.1:${port};\napp ${hello};\n`,
  });
  const workers = workersOf(m.masterPid).sort((a, b) => a - b);
  t.equal(workers.length, 2);
  const lines = m.lines();
  for (const w of workers) {
    const limits = fs.readFileSync(`/proc/${w}/limits`, 'utf8');
    t.match(limits, /^Max open files\s+4321\s+4321\s+files\s*$/m, `worker ${w}: RLIMIT_NOFILE`);
    const stat = fs.readFileSync(`/proc/${w}/stat`, 'utf8');
    const nice = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
    t.equal(nice, 7, `worker ${w}: nice 7`);
    const slot = Number(new RegExp(`start worker process ${w} \\(generation 1, slot (\\d+)\\)`).exec(lines.map((l) => l.text).join('\n'))?.[1]);
    t.equal(status(w, 'Cpus_allowed_list'), cpus > 1 ? String(slot) : '0', `worker ${w} (slot ${slot}): affinity`);
  }
  t.equal((await get({ port })).status, 200);
});
