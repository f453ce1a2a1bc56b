// QUIT finishes in-flight requests; TERM is prompt; both clean up pidfile and sockets.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { fixtures, freePort, get, isGone, startMaster, waitFor, workersOf } from './helpers/master.js';

const slow = path.join(fixtures, 'apps', 'slow.mjs');

t.test('QUIT with a 2 s request in flight: it completes with 200, then everything exits', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 2;\nlisten 127.0.0.1:${port};\napp ${slow};\n` });
  const workers = workersOf(m.masterPid);
  const inflight = get({ port, path: '/?ms=2000' });
  // Let the request reach a worker before QUIT.
  await new Promise((r) => setTimeout(r, 300));
  m.signal('SIGQUIT');
  const r = await inflight;
  t.equal(r.status, 200, 'in-flight request answered');
  t.match(r.body, /after 2000ms/);
  await waitFor('master exit', () => isGone(m.masterPid));
  for (const w of workers) t.ok(isGone(w), `worker ${w} exited`);
  t.notOk(fs.existsSync(m.pidFile), 'pidfile gone');
  t.ok(m.lines().some((l) => l.text === 'exit'), 'master logged its exit');
});

t.test('QUIT is bounded by worker_shutdown_timeout', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 1;\nworker_shutdown_timeout 500ms;\nlisten 127.0.0.1:${port};\napp ${slow};\n` });
  const inflight = get({ port, path: '/?ms=30000' }).catch((e: Error) => e);
  await new Promise((r) => setTimeout(r, 300));
  m.signal('SIGQUIT');
  await waitFor('master exit', () => isGone(m.masterPid), 10_000);
  t.ok((await inflight) instanceof Error, 'the request that outlived the timeout was cut');
  t.ok(m.lines().some((l) => /did not exit in time, killing it/.test(l.text)), 'the kill is logged');
});

t.test('TERM: all exit promptly even with requests in flight', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 2;\nlisten 127.0.0.1:${port};\napp ${slow};\n` });
  const workers = workersOf(m.masterPid);
  const inflight = get({ port, path: '/?ms=5000' }).catch((e: Error) => e);
  await new Promise((r) => setTimeout(r, 200));
  m.signal('SIGTERM');
  await waitFor('master exit', () => isGone(m.masterPid), 3000);
  for (const w of workers) t.ok(isGone(w));
  t.ok((await inflight) instanceof Error, 'fast shutdown does not wait for requests');
  t.notOk(fs.existsSync(m.pidFile));
});

t.test('keep-alive drain: a busy client gets Connection: close, not a reset', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 1;\nlisten 127.0.0.1:${port};\napp ${path.join(fixtures, 'apps', 'hello.mjs')};\n` });
  const { Client } = await import('undici');
  const client = new Client(`http://127.0.0.1:${port}`, { pipelining: 1 });
  t.teardown(() => client.close());
  const first = await client.request({ path: '/', method: 'GET' });
  await first.body.text();
  t.equal(first.headers.connection, 'keep-alive');
  m.signal('SIGQUIT');
  await m.waitLog(/signal 3 \(SIGQUIT\)/);
  await new Promise((r) => setTimeout(r, 200));
  const second = await client.request({ path: '/', method: 'GET' });
  await second.body.text();
  t.equal(second.statusCode, 200, 'request on the idle keep-alive connection answered');
  t.equal(second.headers.connection, 'close', 'and told to close');
  await waitFor('master exit', () => isGone(m.masterPid));
});
