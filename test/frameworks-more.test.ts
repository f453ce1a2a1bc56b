// A fetch handler (Hono), NestJS, Next.js with a custom server, ws and socket.io as their users export them (examples/):
// served, reloaded and upgraded under load that never retries, their close hooks run, and
// long-lived connections told goodbye by the importable onDrain hook.
import t from 'tap';
import WebSocket from 'ws';
import { io as connectIo, type Socket } from 'socket.io-client';
import { example, testFramework } from './helpers/frameworks.js';
import { freePort, startMaster, waitFor } from './helpers/master.js';

testFramework(t, 'hono', (pid) => `hono: shutdown hook ran in ${pid}`);
testFramework(t, 'nest', (pid) => `nest: onApplicationShutdown ran in ${pid}`);
testFramework(t, 'next', (pid) => `next: close ran in ${pid}`);

t.test('ws: clients get 1001 from the importable onDrain hook, in a plain exported server', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 2;\nworker_shutdown_timeout 20s;\nlisten 127.0.0.1:${port};\napp ${example('ws')};\n` });
  const codes: number[] = [];
  const clients = await Promise.all(
    Array.from({ length: 20 }, () => new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
      ws.once('message', () => resolve(ws)).once('error', reject).once('close', (code) => codes.push(code));
    })),
  );
  t.teardown(() => clients.forEach((c) => c.terminate()));
  const after = m.lines().length;
  t.equal((await m.cli(['-s', 'reload'])).code, 0);
  await waitFor('every client closed', () => codes.length === 20, 30_000);
  t.same([...new Set(codes)], [1001], 'all 20 closed with 1001');
  t.notOk(m.lines().slice(after).some((l) => /did not exit in time/.test(l.text)), 'no worker killed at its deadline');
});

t.test('socket.io: the drain disconnects every client from the server side, none by a cut transport', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 2;\nworker_shutdown_timeout 20s;\nlisten 127.0.0.1:${port};\napp ${example('socket.io')};\n` });
  const reasons: string[] = [];
  const sockets: Socket[] = await Promise.all(
    Array.from({ length: 20 }, () => new Promise<Socket>((resolve) => {
      const s = connectIo(`http://127.0.0.1:${port}`, { transports: ['websocket'], reconnection: false });
      s.once('hello', () => resolve(s));
      s.once('disconnect', (reason) => reasons.push(reason));
    })),
  );
  t.teardown(() => sockets.forEach((s) => s.close()));
  const after = m.lines().length;
  t.equal((await m.cli(['-s', 'reload'])).code, 0);
  await waitFor('every client disconnected', () => reasons.length === 20, 30_000);
  t.same([...new Set(reasons)], ['io server disconnect'], 'all 20 told by the server (no "transport close")');
  t.notOk(m.lines().slice(after).some((l) => /did not exit in time/.test(l.text)), 'no worker killed at its deadline');
});
