// Exec workers in another language, given the sockets by systemd's socket activation
// protocol: they serve through tsmaster and survive HUP and upgrade with zero failures.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { startLoad } from './helpers/load.js';
import { fixtures, freePort, get, isGone, startMaster, waitFor, childrenOf } from './helpers/master.js';

const python = '/usr/bin/python3';
const hasSystemdModule = spawnSync(python, ['-c', 'import systemd.daemon']).status === 0;

const workers = [
  { name: 'python3-systemd (listen_fds + notify READY=1)', script: 'py_systemd_worker.py', label: 'py-systemd', skip: !hasSystemdModule },
  { name: 'plain python reading LISTEN_FDS (ready after 2 s alive)', script: 'py_plain_worker.py', label: 'py-plain', skip: false },
];

for (const w of workers) {
  t.test(`exec worker: ${w.name}`, { skip: w.skip ? 'python3-systemd is not installed (apt-get install python3-systemd)' : false }, async (t) => {
    const port = await freePort();
    const m = await startMaster(t, {
      conf: `worker_processes 2;\nready_timeout 10s;\nlisten 127.0.0.1:${port};\nexec ${python} ${path.join(fixtures, 'exec', w.script)};\n`,
    });
    const r = await get({ port });
    t.equal(r.status, 200);
    t.match(r.body, new RegExp(`^${w.label}: \\d+`));
    t.ok(childrenOf(m.masterPid).includes(Number(r.body.split(': ')[1])), 'answered by a worker of the master');
    if (w.label === 'py-systemd') t.ok(m.lines().some((l) => /worker process \d+ is ready/.test(l.text)), 'READY=1 marked it ready');

    const load = [startLoad({ port, keepAlive: true, concurrency: 3 }), startLoad({ port, keepAlive: false, concurrency: 3 })];
    t.teardown(() => Promise.all(load.map((l) => l.stop())));
    const first = childrenOf(m.masterPid);
    const reload = await m.cli(['-s', 'reload'], { timeoutMs: 60_000 });
    t.equal(reload.code, 0, `reload: ${reload.stderr}`);
    await waitFor('old workers gone', () => first.every(isGone));
    const up = await m.cli(['-s', 'upgrade'], { timeoutMs: 60_000 });
    t.equal(up.code, 0, `upgrade: ${up.stderr}`);
    t.ok(isGone(m.masterPid), 'the old master is gone');
    const results = await Promise.all(load.map((l) => l.stop()));
    for (const res of results) {
      t.ok(res.ok > 10, `served ${res.ok}`);
      t.same([res.failed, res.non2xx, res.errors], [0, 0, []], 'zero failed requests');
    }
    t.match((await get({ port })).body, new RegExp(`^${w.label}: `));
  });
}

t.test('exec workers leave when the master is SIGKILLed: no orphan keeps the port', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, {
    conf: `worker_processes 2;\nready_timeout 10s;\nlisten 127.0.0.1:${port};\nexec ${python} ${path.join(fixtures, 'exec', 'py_plain_worker.py')};\n`,
  });
  const kids = childrenOf(m.masterPid);
  t.equal(kids.length, 2);
  m.signal('SIGKILL');
  await waitFor('exec workers gone', () => kids.every(isGone), 3000);
  t.pass('both exec workers exited');
});

t.test('worker_stop_signal: exec workers get the configured signal for a graceful stop', async (t) => {
  const port = await freePort();
  const script = "trap 'echo stopped-by-INT; exit 0' INT; while :; do sleep 0.1; done";
  const m = await startMaster(t, {
    conf: `worker_processes 1;\nworker_stop_signal INT;\nlisten 127.0.0.1:${port};\nexec /bin/sh -c "${script}";\n`,
  });
  const [worker] = childrenOf(m.masterPid);
  m.signal('SIGQUIT');
  await waitFor('master exit', () => isGone(m.masterPid));
  t.ok(m.lines().some((l) => l.text === `worker process ${worker} exited with code 0`), 'the worker exited by itself');
  t.match(fs.readFileSync(m.log, 'utf8'), /^stopped-by-INT$/m, 'its INT trap ran');
});
