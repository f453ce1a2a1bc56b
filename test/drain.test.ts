// Long-lived connections through a drain: the app is told (ctx.onDrain) with the deadline,
// and says goodbye at the protocol level instead of being cut by the kill.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import WebSocket from 'ws';
import { ReconnectingClient } from './helpers/ws-clients.js';
import { cpuBurners, fixtures, freePort, get, sleep, startMaster, waitFor, workersOf } from './helpers/master.js';

const app = path.join(fixtures, 'apps', 'websocket.mjs');

interface Client {
  ws: WebSocket;
  worker: number;
  close: { code: number; reason: string } | null;
  error: string | null;
}

function connect(port: number): Promise<Client> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    const c: Client = { ws, worker: 0, close: null, error: null };
    ws.once('message', (data) => {
      c.worker = Number(String(data).split(' ').pop());
      resolve(c);
    });
    ws.once('error', (err) => {
      c.error = err.message;
      reject(err);
    });
    ws.once('close', (code, reason) => (c.close = { code, reason: String(reason) }));
  });
}

t.test('200 WebSocket clients through a reload: each gets close 1001 from its worker, none is cut', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 2;\nworker_shutdown_timeout 20s;\nlisten 127.0.0.1:${port};\napp ${app};\n` });
  const old = workersOf(m.masterPid);
  const clients: Client[] = [];
  t.teardown(() => clients.forEach((c) => c.ws.terminate()));
  for (let i = 0; i < 200; i++) clients.push(await connect(port));
  t.same([...new Set(clients.map((c) => c.worker))].sort(), [...old].sort(), 'connected to both old workers');

  const after = m.lines().length;
  const r = await m.cli(['-s', 'reload']);
  t.equal(r.code, 0, `reload: ${r.stderr}`);
  await waitFor('every client closed', () => clients.every((c) => c.close !== null), 30_000);
  const codes = new Map<number, number>();
  for (const c of clients) codes.set(c.close!.code, (codes.get(c.close!.code) ?? 0) + 1);
  t.same([...codes], [[1001, 200]], 'all 200 closed with 1001 (going away), none with 1006 (cut)');
  t.ok(clients.every((c) => c.close!.reason === 'going away'));
  for (const w of old) await m.waitLog(new RegExp(`^worker process ${w} exited with code 0$`), { after });
  t.notOk(m.lines().slice(after).some((l) => /did not exit in time/.test(l.text)), 'no worker had to be killed');
  const told = m.lines().slice(after).filter((l) => /^drain: closing \d+ websocket\(s\), \d+ms left$/.test(l.text));
  t.equal(told.length, 2, 'each old worker was told, with the time left');
  t.ok(told.every((l) => Number(/, (\d+)ms left/.exec(l.text)![1]) > 15_000), 'a deadline from worker_shutdown_timeout 20s');

  const again = await connect(port);
  clients.push(again);
  t.notOk(old.includes(again.worker), 'new clients reach the new generation');
});

t.test('a WebSocket handshake that reaches a worker after its drain began is refused, not taken and cut', async (t) => {
  // The race of a rolling deploy, made certain: the connection is the old worker's (it
  // answered a request on it), the handshake comes after the app's drain handler ran.
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 1;\nworker_shutdown_timeout 20s;\nlisten 127.0.0.1:${port};\napp ${app};\n` });
  const [old] = workersOf(m.masterPid);
  const sock = net.connect(port, '127.0.0.1');
  t.teardown(() => sock.destroy());
  let got = '';
  sock.on('data', (d: Buffer) => (got += d.toString()));
  const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
  sock.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitFor('the old worker answered on the connection', () => got.includes(`ws: ${old}`));
  got = '';
  const after = m.lines().length;
  const reload = m.cli(['-s', 'reload']);
  await m.waitLog(/^drain: closing 0 websocket\(s\)/, { after, pid: old });
  sock.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
  await closed;
  t.match(got, /^HTTP\/1\.1 503 Service Unavailable\r\n/, 'the draining worker refuses the upgrade (503, Connection: close)');
  t.equal((await reload).code, 0);
  await m.waitLog(new RegExp(`^worker process ${old} exited with code 0$`), { after });
  t.notOk(m.lines().slice(after).some((l) => /did not exit in time/.test(l.text)), 'the old worker was not killed at its deadline');
});

t.test('300 reconnecting WebSocket clients through batched upgrades and reloads beside two CPU burners: every close is 1001', async (t) => {
  const runs = Number(process.env.TSM_WS_RUNS ?? 1);
  cpuBurners(t);
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 4;\nworker_reload_batch 1;\nworker_shutdown_timeout 20s;\nlisten 127.0.0.1:${port};\napp ${app};\n` });
  const clients = Array.from({ length: 300 }, () => new ReconnectingClient(port));
  t.teardown(() => clients.forEach((c) => c.stop()));
  const allOpen = () => waitFor('all 300 clients connected', () => clients.every((c) => c.open), 60_000);
  await allOpen();
  const after = m.lines().length;
  for (let i = 0; i < runs; i++) {
    for (const cmd of ['upgrade', 'reload']) {
      const began = Date.now();
      const r = await m.cli(['-s', cmd], { timeoutMs: 120_000 });
      t.equal(r.code, 0, `run ${i + 1}: -s ${cmd} (${Date.now() - began} ms): ${r.stdout}${r.stderr}`);
      await allOpen();
    }
  }
  const closes = new Map<number, number>();
  for (const c of clients) for (const [code, n] of c.closes) closes.set(code, (closes.get(code) ?? 0) + n);
  const refused = clients.reduce((n, c) => n + c.refused, 0);
  t.ok((closes.get(1001) ?? 0) >= 300 * runs * 2, `every client was told 1001 in each change (${closes.get(1001) ?? 0} closes, ${refused} handshakes refused and retried)`);
  t.same([...closes.keys()], [1001], 'no close other than 1001 (no 1006: none cut)');
  t.same(clients.flatMap((c) => c.errors), [], 'no connection error');
  t.notOk(m.lines().slice(after).some((l) => /did not exit in time/.test(l.text)), 'no worker was killed at its deadline');
  // The masters a run started are the test's to end: the last one from the pidfile.
  t.teardown(() => {
    try {
      process.kill(Number(fs.readFileSync(m.pidFile, 'utf8')), 'SIGKILL');
    } catch {}
  });
});

t.test('onShutdown runs as the drain starts, onClose once the last request is answered, before the worker exits', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 1;\nlisten 127.0.0.1:${port};\napp ${path.join(fixtures, 'apps', 'hooks-order.mjs')};\n` });
  const [worker] = workersOf(m.masterPid) as [number];
  const inFlight = get({ port, path: '/?ms=1500' });
  await waitFor('the request in flight', () => fs.readFileSync(m.log, 'utf8').includes(`start worker process ${worker}`) || undefined);
  await sleep(200);
  t.equal((await m.cli(['-s', 'reload'])).code, 0);
  t.equal((await inFlight).body, `slow ${worker}\n`, 'the request in flight is answered');
  await m.waitLog(new RegExp(`^worker process ${worker} exited with code 0$`), { pid: m.masterPid });
  const order = fs.readFileSync(m.log, 'utf8').split('\n').map((l) => new RegExp(`: (hook shutdown|request done|hook close) ${worker}$`).exec(l)?.[1]).filter(Boolean);
  t.same(order, ['hook shutdown', 'request done', 'hook close'], 'shutdown, the last answer, then close');
});
