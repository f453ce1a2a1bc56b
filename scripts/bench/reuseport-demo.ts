// The Linux SO_REUSEPORT caveat, shown with tsmaster's own native addon (Node 20 cannot set
// SO_REUSEPORT): two listening sockets share a port, clients connect and send a request
// while nobody accepts, so the kernel queues each connection on one of the two sockets;
// then one socket is closed, as a per-worker reuseport socket would be when its worker's
// generation goes away, and the other one starts serving. With net.ipv4.tcp_migrate_req=0
// the connections queued on the closed socket are reset; with 1 they move to the other.
//
// Run by main.ts in a private network namespace (unshare -n), where it may set the sysctl
// without touching the host. Prints one JSON object.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { root } from '../../test/helpers/paths.js';

export interface DemoRun {
  tcp_migrate_req: number;
  clients: number;
  outcomes: Record<string, number>;
}

// The built addon wrapper in dist/: a compiled copy of src/native would look for the addon
// relative to build/bench/.
const native = (await import(path.join(root, 'dist', 'native', 'index.js'))) as typeof import('../../src/native/index.js');
const CLIENTS = Number(process.argv[2]) || 64;

const migrate = fs.readFileSync('/proc/sys/net/ipv4/tcp_migrate_req', 'utf8').trim();
const a = native.listenTcp({ host: '127.0.0.1', port: 0, backlog: 511, reuseport: true });
const name = native.getsockname(a);
if (!('port' in name)) throw new Error('listenTcp gave a socket without a port');
const port = name.port;
const b = native.listenTcp({ host: '127.0.0.1', port, backlog: 511, reuseport: true });

const outcomes: Array<Promise<string>> = [];
for (let i = 0; i < CLIENTS; i++) {
  outcomes.push(
    new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      let data = '';
      s.setTimeout(3000, () => {
        s.destroy();
        resolve('no answer in 3s');
      });
      s.on('connect', () => s.write('GET / HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n'));
      s.on('data', (d: Buffer) => (data += d));
      s.on('end', () => resolve(data.startsWith('HTTP/1.1 200') ? 'answered' : 'closed without answer'));
      s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    }),
  );
}
// Every handshake completes in the kernel; nobody has accepted yet.
await new Promise((resolve) => setTimeout(resolve, 300));
native.closeFd(a);
const server = http.createServer((_req, res) => res.end('ok\n'));
await new Promise<void>((resolve) => server.listen({ fd: b }, resolve));
const results = await Promise.all(outcomes);
server.close();
const counts: Record<string, number> = {};
for (const r of results) counts[r] = (counts[r] ?? 0) + 1;
const run: DemoRun = { tcp_migrate_req: Number(migrate), clients: CLIENTS, outcomes: counts };
process.stdout.write(JSON.stringify(run));
