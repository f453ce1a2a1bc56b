// metrics_listen: the master's own HTTP socket. /metrics for Prometheus, /healthz and
// /readyz for probes and load balancers, 404 for anything else. Clients are bounded in
// number and time, so a slow or hostile one cannot hold the master.
import http from 'node:http';
import type net from 'node:net';
import type { Master } from '../master/master.js';
import * as native from '../native/index.js';
import type { OpenSocket } from '../sockets/listen.js';
import type { MasterMetrics } from './master-metrics.js';

const MAX_CLIENTS = 32;
/** Whole request, headers included, and idle keep-alive connections. */
const REQUEST_MS = 5000;
/** The loop handles a tick every second; three missed ones mean it is stuck. */
const LOOP_STALE_MS = 3000;
/** At exit, how long the scrapes under way get to finish (one waits at most a second for the workers). */
const CLOSE_MS = 2000;

/** Why the master is not ready for traffic, or null when it is. */
export function notReady(m: Master): string | null {
  // An old master whose new master is ready shares this socket with it: the service is served.
  if (m.upgrade?.ready) return null;
  if (m.state === 'stopping') return 'stopping';
  const ready = m.table.ofGeneration(m.current).some((w) => w.state === 'ready');
  return ready ? null : 'no ready worker';
}

export class MetricsServer {
  private readonly server: http.Server;
  /** Open connections, oldest first, and whether each has a request being answered. */
  private readonly clients = new Map<net.Socket, { busy: boolean }>();

  constructor(
    private readonly m: Master,
    socket: OpenSocket,
    private readonly metrics: MasterMetrics,
  ) {
    const options = { requestTimeout: REQUEST_MS, headersTimeout: REQUEST_MS, keepAliveTimeout: REQUEST_MS, maxHeaderSize: 8192, connectionsCheckingInterval: 1000 };
    this.server = http.createServer(options, (req, res) => {
      void this.answer(req, res);
    });
    // Full: the oldest connection without a request being answered (idle, or still sending its
    // headers: a slow client) makes room, so slow clients cannot lock probes out.
    this.server.prependListener('connection', (s: net.Socket) => {
      if (this.clients.size >= MAX_CLIENTS) {
        const idle = [...this.clients].find(([, c]) => !c.busy)?.[0];
        (idle ?? s).destroy();
        if (!idle) return;
      }
      this.clients.set(s, { busy: false });
      s.once('close', () => this.clients.delete(s));
    });
    this.server.prependListener('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const c = this.clients.get(req.socket);
      if (!c) return;
      c.busy = true;
      res.once('finish', () => (c.busy = false));
    });
    this.server.setTimeout(REQUEST_MS, (s) => s.destroy());
    this.server.on('clientError', (_err, s) => s.destroy());
    this.server.on('error', (err) => m.log.alert(`metrics_listen: ${err.message}`));
    // The socket set keeps its fd (for an upgrade, a rollback); the server owns, and closes, a copy.
    this.server.listen({ fd: native.dupCloexec(socket.fd), backlog: socket.spec.backlog });
  }

  private async answer(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    const reply = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(404, 'not found\n');
    if (path === '/metrics') {
      try {
        return reply(200, await this.metrics.exposition(), this.metrics.registry.contentType);
      } catch (err) {
        return reply(500, `metrics failed: ${(err as Error).message}\n`);
      }
    }
    if (path === '/healthz') {
      const stale = Date.now() - this.m.lastTickAt;
      return stale > LOOP_STALE_MS ? reply(503, `loop stalled for ${stale}ms\n`) : reply(200, 'ok\n');
    }
    if (path === '/readyz') {
      const why = notReady(this.m);
      return why ? reply(503, `not ready: ${why}\n`) : reply(200, 'ready\n');
    }
    return reply(404, 'not found\n');
  }

  /** Stop accepting (a new master may share the socket), finish the scrapes under way, bounded. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_MS)))]);
    clearTimeout(timer);
    this.server.closeAllConnections();
  }
}
