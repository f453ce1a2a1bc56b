// metrics_listen: the master's own HTTP socket. /metrics for Prometheus, /healthz and
// /readyz for probes and load balancers, 404 for anything else.
//
// Its clients are hostile input, and so HTTP/1.1 is read here by hand, the small part of it
// these endpoints need (GET and HEAD, no bodies): Node's http server parses every request of
// a pipelined burst at once, and creates, then destroys, a request object for each. Here a
// connection's requests are read one at a time: nothing more is read from it until the last
// answer is written out. Clients are bounded in number and time, so a slow, pipelining or
// hostile one cannot hold the master nor lock probes out.
import net from 'node:net';
import type { Master } from '../master/master.js';
import * as native from '../native/index.js';
import type { OpenSocket } from '../sockets/listen.js';
import type { MasterMetrics } from './master-metrics.js';

const MAX_CLIENTS = 64;
/** A connection this old that has not sent a whole request yet is a slow client: the first to make room. */
const SLOW_MS = 1000;
/** Requests a client may send ahead of their answers; one more closes its connection. */
const MAX_PIPELINED = 4;
/** Request line and headers. */
const MAX_HEAD_BYTES = 8192;
/** What a client may have sent that is not answered yet: that many requests at most. */
const MAX_AHEAD_BYTES = MAX_PIPELINED * MAX_HEAD_BYTES;
/** A request, from the end of the last answer on its connection (or the connection's start) to its own answer written out. */
const REQUEST_MS = 5000;
/** The loop handles a tick every second; three missed ones mean it is stuck. */
const LOOP_STALE_MS = 3000;
/** At exit, how long the scrapes under way get to finish (one waits at most a second for the workers). */
const CLOSE_MS = 2000;

const EMPTY = Buffer.alloc(0);

/**
 * Where the head at the start of `buf` ends (a blank line, CRLF or LF), looked for in its
 * first MAX_HEAD_BYTES only; null when it does not end there.
 */
export function headEnd(buf: Buffer): { index: number; length: number } | null {
  const limit = Math.min(buf.length, MAX_HEAD_BYTES + 4);
  for (let nl = buf.indexOf(0x0a); nl !== -1 && nl < limit; nl = buf.indexOf(0x0a, nl + 1)) {
    const next = buf[nl + 1] === 0x0d ? nl + 2 : nl + 1;
    if (buf[next] === 0x0a && next < limit) {
      const index = nl > 0 && buf[nl - 1] === 0x0d ? nl - 1 : nl;
      if (index > MAX_HEAD_BYTES) return null;
      return { index, length: next + 1 - index };
    }
  }
  return null;
}

const REQUEST_LINE = /^([A-Z]+) (\S+) HTTP\/1\.([01])$/;
const REASONS: Record<number, string> = { 200: 'OK', 400: 'Bad Request', 404: 'Not Found', 431: 'Request Header Fields Too Large', 500: 'Internal Server Error', 503: 'Service Unavailable' };

/** Why the master is not ready for traffic, or null when it is. */
export function notReady(m: Master): string | null {
  // An old master whose new master is ready shares this socket with it: the service is served.
  if (m.upgrade?.ready) return null;
  if (m.state === 'stopping') return 'stopping';
  const ready = m.table.ofGeneration(m.current).some((w) => w.state === 'ready');
  return ready ? null : 'no ready worker';
}

/** What a request head asks: its method, its path, and whether the connection stays open after the answer; null when it is no request. */
export function parseHead(head: string): { method: string; path: string; keepAlive: boolean; body: boolean } | null {
  const [line, ...fields] = head.split(/\r?\n/);
  const req = REQUEST_LINE.exec(line ?? '');
  if (!req) return null;
  const headers = new Map<string, string>();
  for (const f of fields) {
    const colon = f.indexOf(':');
    if (colon <= 0) return null;
    headers.set(f.slice(0, colon).trim().toLowerCase(), f.slice(colon + 1).trim().toLowerCase());
  }
  const connection = headers.get('connection') ?? '';
  const keepAlive = req[3] === '1' ? !/\bclose\b/.test(connection) : /\bkeep-alive\b/.test(connection);
  // These endpoints take no body; one that comes is not read, and ends the connection.
  const body = headers.has('transfer-encoding') || (headers.get('content-length') ?? '0') !== '0';
  return { method: req[1]!, path: req[2]!.split('?')[0]!, keepAlive: keepAlive && !body, body };
}

interface Answer {
  status: number;
  body: string | Buffer;
  type?: string;
}

/**
 * One connection: since when, what it sent of its next requests, how many it has taken since
 * it last had nothing unanswered, whether an answer is under way, and whether it was ever
 * answered.
 */
interface Client {
  since: number;
  answered: boolean;
  buf: Buffer;
  taken: number;
  busy: boolean;
  timer: NodeJS.Timeout;
}

export class MetricsServer {
  private readonly server: net.Server;
  /** Open connections, oldest first. */
  private readonly clients = new Map<net.Socket, Client>();
  private closing = false;

  constructor(
    private readonly m: Master,
    socket: OpenSocket,
    private readonly metrics: MasterMetrics,
  ) {
    this.server = net.createServer((s) => this.onConnection(s));
    this.server.on('error', (err) => m.log.alert(`metrics_listen: ${err.message}`));
    // The socket set keeps its fd (for an upgrade, a rollback); the server owns, and closes, a copy.
    this.server.listen({ fd: native.dupCloexec(socket.fd), backlog: socket.spec.backlog });
  }

  private onConnection(s: net.Socket): void {
    // Full: the oldest slow client (a second and no whole request yet) makes room, or else
    // the oldest connection of all: the newest, a probe, always gets in.
    if (this.clients.size >= MAX_CLIENTS) {
      const now = Date.now();
      const slow = [...this.clients].find(([, c]) => !c.busy && now - c.since >= SLOW_MS)?.[0];
      (slow ?? this.clients.keys().next().value)?.destroy();
    }
    const c: Client = { since: Date.now(), answered: false, buf: EMPTY, taken: 0, busy: false, timer: setTimeout(() => s.destroy(), REQUEST_MS) };
    this.clients.set(s, c);
    s.on('error', () => undefined);
    s.once('close', () => {
      clearTimeout(c.timer);
      this.clients.delete(s);
    });
    // Bytes, not strings: a flood of reads makes no string of each, only the heads are decoded.
    s.on('data', (chunk: Buffer) => {
      // A few requests may come ahead of their answers; a client that sends far more does not
      // read them, and what it sent would pile up here (a head too large is answered 431 below).
      if (c.buf.length + chunk.length > MAX_AHEAD_BYTES && headEnd(c.buf.length > 0 ? Buffer.concat([c.buf, chunk.subarray(0, MAX_HEAD_BYTES)]) : chunk) !== null) return void s.destroy();
      c.buf = c.buf.length > 0 ? Buffer.concat([c.buf, chunk]) : chunk;
      this.next(s, c);
    });
  }

  /** Take the next request of a connection, if its head is all there and no answer is under way. */
  private next(s: net.Socket, c: Client): void {
    if (c.busy || s.destroyed) return;
    const end = headEnd(c.buf);
    if (!end) {
      if (c.buf.length > MAX_HEAD_BYTES) this.send(s, c, { status: 431, body: 'request head too large\n' }, false, false);
      return;
    }
    if (++c.taken > MAX_PIPELINED) return void s.destroy();
    const head = c.buf.toString('latin1', 0, end.index);
    c.buf = c.buf.subarray(end.index + end.length);
    // All it sent is taken: it waited for its answers, and may pipeline a few again.
    if (c.buf.length === 0) c.taken = 0;
    const req = parseHead(head);
    if (!req) return this.send(s, c, { status: 400, body: 'bad request\n' }, false, false);
    // Nothing more is read from it until this answer is out.
    c.busy = true;
    s.pause();
    void this.answer(req.method, req.path).then((a) => this.send(s, c, a, req.method === 'HEAD', req.keepAlive));
  }

  private send(s: net.Socket, c: Client, a: Answer, head: boolean, keepAlive: boolean): void {
    if (s.destroyed) return;
    c.busy = true;
    const open = keepAlive && !this.closing;
    const body = typeof a.body === 'string' ? Buffer.from(a.body) : a.body;
    const lines = [
      `HTTP/1.1 ${a.status} ${REASONS[a.status]}`,
      `content-type: ${a.type ?? 'text/plain; charset=utf-8'}`,
      `content-length: ${body.length}`,
      'cache-control: no-store',
      `connection: ${open ? 'keep-alive' : 'close'}`,
    ];
    s.write(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
    if (!head) s.write(body);
    if (!open) {
      // The last answer: nothing more is read; a client that does not read it meets the timer.
      c.buf = EMPTY;
      s.pause();
      s.end();
      return;
    }
    s.write('', () => {
      // Written out: the connection's next request gets the same time again.
      c.busy = false;
      c.answered = true;
      c.since = Date.now();
      c.timer.refresh();
      s.resume();
      this.next(s, c);
    });
  }

  private async answer(method: string, path: string): Promise<Answer> {
    if (method !== 'GET' && method !== 'HEAD') return { status: 404, body: 'not found\n' };
    if (path === '/metrics') {
      try {
        return { status: 200, body: await this.metrics.exposition(), type: this.metrics.registry.contentType };
      } catch (err) {
        return { status: 500, body: `metrics failed: ${(err as Error).message}\n` };
      }
    }
    if (path === '/healthz') {
      const stale = Date.now() - this.m.lastTickAt;
      return stale > LOOP_STALE_MS ? { status: 503, body: `loop stalled for ${stale}ms\n` } : { status: 200, body: 'ok\n' };
    }
    if (path === '/readyz') {
      const why = notReady(this.m);
      return why ? { status: 503, body: `not ready: ${why}\n` } : { status: 200, body: 'ready\n' };
    }
    return { status: 404, body: 'not found\n' };
  }

  /**
   * Stop accepting (a new master may share the socket), finish the answers under way, and
   * answer the connections just accepted that have not sent their request yet, bounded;
   * idle keep-alive connections close now (their clients go on with the new master).
   */
  async close(): Promise<void> {
    this.closing = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const [s, c] of this.clients) if (!c.busy && c.answered) s.destroy();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_MS)))]);
    clearTimeout(timer);
    for (const s of this.clients.keys()) s.destroy();
  }
}
