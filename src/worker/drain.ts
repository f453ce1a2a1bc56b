import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';

/** Node's default keepAliveTimeout; also the idle grace for servers that have none. */
const DEFAULT_IDLE_GRACE_MS = 5000;
const SWEEP_MS = 200;
/**
 * What a draining worker answers to a protocol upgrade (WebSocket): a connection accepted
 * just before the worker stopped accepting may send its handshake after the app's drain
 * handler said goodbye to its clients; taken then, it would be cut at the deadline. Refused,
 * the client's reconnect reaches a worker that stays.
 */
const REFUSE_UPGRADE = 'HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 0\r\nContent-Length: 0\r\n\r\n';

/** The response an HTTP connection is working on. Node keeps it there; it has no public accessor. */
function busyWith(socket: net.Socket): http.ServerResponse | undefined {
  return (socket as net.Socket & { _httpMessage?: http.ServerResponse | null })._httpMessage ?? undefined;
}

/** HTTP connections keep their parser until they close; an upgrade or a raw net.Server socket has none. */
function hasHttpParser(socket: net.Socket): boolean {
  return (socket as net.Socket & { parser?: unknown }).parser != null;
}

/**
 * Tracks the connections and requests of the servers a worker serves, and drains them
 * without the keep-alive race: a draining server answers the next request on each
 * connection with `Connection: close`, and closes a connection only once it has been idle
 * for as long as the server's keep-alive timeout (the time clients were told they may
 * reuse it), never at the moment a client may be sending on it. Nothing is allocated per
 * request: the hot path only counts.
 */
export class ConnectionTracker {
  /** Open connections, and since when each has been seen idle while draining. */
  private readonly conns = new Map<net.Socket, number | null>();
  /** The servers that take protocol upgrades. */
  private readonly upgradable = new Set<http.Server | https.Server>();
  private draining = false;
  private keepAliveMs: number | null = null;
  private graceMs = DEFAULT_IDLE_GRACE_MS;
  private sweeper: NodeJS.Timeout | null = null;
  private onEmpty: (() => void) | null = null;
  /** ctx.onDrain: connections HTTP does not own (upgraded, raw TCP) are the app's to close. */
  private appClosesUpgraded = false;
  requests = 0;

  get connections(): number {
    return this.conns.size;
  }

  track(server: net.Server): void {
    // A TLS connection becomes an HTTP connection only after the handshake.
    const event = server instanceof tls.Server ? 'secureConnection' : 'connection';
    // Before the app's own listeners: a response it ends at once must already know.
    server.prependListener(event, (socket: net.Socket) => this.onConnection(socket));
    server.prependListener('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
      this.requests++;
      if (this.draining) res.shouldKeepAlive = false;
    });
    if (server instanceof http.Server || server instanceof https.Server) this.upgradable.add(server);
    if (server instanceof http.Server && server.keepAliveTimeout > 0) {
      this.keepAliveMs = Math.max(this.keepAliveMs ?? 0, server.keepAliveTimeout);
    }
  }

  /** The app ends its long-lived connections itself (it registered ctx.onDrain). */
  leaveUpgradedToApp(): void {
    this.appClosesUpgraded = true;
  }

  private onConnection(socket: net.Socket): void {
    if (this.conns.has(socket)) return;
    this.conns.set(socket, null);
    socket.once('close', () => {
      this.conns.delete(socket);
      this.checkEmpty();
    });
  }

  /**
   * Stop keeping connections alive; resolve when none is left. `graceMs` overrides the idle
   * grace (short when the master is gone and the worker must leave quickly).
   */
  drain(graceMs?: number): Promise<void> {
    this.startDraining();
    this.graceMs = graceMs ?? this.keepAliveMs ?? DEFAULT_IDLE_GRACE_MS;
    return new Promise((resolve) => {
      this.onEmpty = resolve;
      this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
      this.sweep();
    });
  }

  /**
   * From the moment the worker stops accepting, before the app's drain handlers run: no
   * more keep-alive, no more upgrades. Requests already in flight whose answer has not
   * started close their connection too.
   */
  startDraining(): void {
    if (this.draining) return;
    this.draining = true;
    for (const server of this.upgradable) {
      server.removeAllListeners('upgrade');
      server.on('upgrade', (_req: http.IncomingMessage, socket: net.Socket) => socket.end(REFUSE_UPGRADE));
    }
    for (const socket of this.conns.keys()) {
      const res = busyWith(socket);
      if (res && !res.headersSent) res.shouldKeepAlive = false;
    }
  }

  /** Close connections that stayed idle for the whole grace; a busy one starts over. */
  private sweep(): void {
    const now = Date.now();
    for (const [socket, idleSince] of this.conns) {
      // An upgraded (WebSocket) or raw TCP connection is never "idle" to HTTP; the app that
      // asked to be told of the drain closes it, or the kill at the deadline does.
      if (this.appClosesUpgraded && !hasHttpParser(socket)) continue;
      if (busyWith(socket)) {
        this.conns.set(socket, null);
        continue;
      }
      const since = idleSince ?? now;
      if (idleSince === null) this.conns.set(socket, now);
      if (now - since >= this.graceMs) socket.destroy();
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
