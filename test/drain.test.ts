// Long-lived connections through a drain: the app is told (ctx.onDrain) with the deadline,
// and says goodbye at the protocol level instead of being cut by the kill.
import path from 'node:path';
import t from 'tap';
import WebSocket from 'ws';
import { fixtures, freePort, startMaster, waitFor, workersOf } from './helpers/master.js';

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
