import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';

interface ConnState {
  active: number;
  idleSince: number;
}

/** Node's default keepAliveTimeout; also the idle grace for servers that have none. */
const DEFAULT_IDLE_GRACE_MS = 5000;
const SWEEP_MS = 200;

/**
 * Tracks the connections and requests of the servers a worker serves, and drains them
 * without the keep-alive race: a draining server answers the next request on each
 * connection with `Connection: close`, and closes a connection only once it has been idle
 * for as long as the server's keep-alive timeout (the time clients were told they may
 * reuse it), never at the moment a client may be sending on it.
 */
export class ConnectionTracker {
  private readonly conns = new Map<net.Socket, ConnState>();
  private readonly pending = new Set<http.ServerResponse>();
  private draining = false;
  private keepAliveMs: number | null = null;
  private graceMs = DEFAULT_IDLE_GRACE_MS;
  private sweeper: NodeJS.Timeout | null = null;
  private onEmpty: (() => void) | null = null;
  requests = 0;

  get connections(): number {
    return this.conns.size;
  }

  track(server: net.Server): void {
    // A TLS connection becomes an HTTP connection only after the handshake.
    const event = server instanceof tls.Server ? 'secureConnection' : 'connection';
    // Before the app's own listeners: a response it ends at once must already know.
    server.prependListener(event, (socket: net.Socket) => this.onConnection(socket));
    server.prependListener('request', (req: http.IncomingMessage, res: http.ServerResponse) => this.onRequest(req, res));
    if (server instanceof http.Server && server.keepAliveTimeout > 0) {
      this.keepAliveMs = Math.max(this.keepAliveMs ?? 0, server.keepAliveTimeout);
    }
  }

  private onConnection(socket: net.Socket): void {
    if (this.conns.has(socket)) return;
    this.conns.set(socket, { active: 0, idleSince: Date.now() });
    socket.once('close', () => {
      this.conns.delete(socket);
      this.checkEmpty();
    });
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.requests++;
    const state = this.conns.get(req.socket);
    if (state) state.active++;
    if (this.draining) res.shouldKeepAlive = false;
    else this.pending.add(res);
    res.once('close', () => {
      this.pending.delete(res);
      if (state) {
        state.active--;
        state.idleSince = Date.now();
      }
    });
  }

  /**
   * Stop keeping connections alive; resolve when none is left. `graceMs` overrides the idle
   * grace (0 when the master is gone and the worker must leave quickly).
   */
  drain(graceMs?: number): Promise<void> {
    this.draining = true;
    this.graceMs = graceMs ?? this.keepAliveMs ?? DEFAULT_IDLE_GRACE_MS;
    for (const res of this.pending) if (!res.headersSent) res.shouldKeepAlive = false;
    this.pending.clear();
    return new Promise((resolve) => {
      this.onEmpty = resolve;
      this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
      this.sweep();
    });
  }

  private sweep(): void {
    const now = Date.now();
    for (const [socket, state] of this.conns) {
      if (state.active === 0 && now - state.idleSince >= this.graceMs) socket.destroy();
    }
    this.checkEmpty();
  }

  private checkEmpty(): void {
    if (!this.onEmpty || this.conns.size > 0) return;
    const done = this.onEmpty;
    this.onEmpty = null;
    if (this.sweeper) clearInterval(this.sweeper);
    done();
  }
}
