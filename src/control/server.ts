import fs from 'node:fs';
import net from 'node:net';
import type { Master } from '../master/master.js';
import * as native from '../native/index.js';
import { MAX_LINE, type ControlRequest, type ControlResponse } from './protocol.js';
import { snapshot } from './snapshot.js';

/** A connection is dropped if its request line does not arrive in this time. */
const IDLE_MS = 10_000;

function reply(socket: net.Socket, res: ControlResponse): void {
  if (!socket.destroyed) socket.end(`${JSON.stringify(res)}\n`);
}

function parse(line: string): ControlRequest | string {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return 'malformed JSON';
  }
  const cmd = typeof v === 'object' && v !== null ? (v as { cmd?: unknown }).cmd : undefined;
  if (cmd === 'status' || cmd === 'reload' || cmd === 'ping') return { cmd };
  return `unknown command ${JSON.stringify(cmd ?? null)}`;
}

/**
 * The master's control socket: a unix socket, mode 0600, where root or the master's own uid
 * (SO_PEERCRED) asks for status or a reload with one JSON line. It is bound through the
 * addon, not by path in libuv, because libuv unlinks a path it bound when it closes it, and
 * after an upgrade that path belongs to the new master.
 */
export class ControlServer {
  private readonly server: net.Server;
  private fd: number;

  constructor(
    private readonly m: Master,
    public path: string,
  ) {
    this.fd = native.listenUnix({ path, backlog: 64, mode: 0o600 });
    this.server = net.createServer((socket) => this.onConnection(socket));
    this.server.on('error', (err) => m.log.alert(`control socket "${this.path}": ${err.message}`));
    this.server.listen({ fd: this.fd });
    // The master lives on its own signals and children, not on this socket.
    this.server.unref();
  }

  /** During an upgrade the old master answers on PATH.oldbin, the new one on PATH. */
  moveTo(path: string): void {
    fs.renameSync(this.path, path);
    this.path = path;
  }

  close(unlink: boolean): void {
    this.server.close();
    if (unlink) fs.rmSync(this.path, { force: true });
  }

  private onConnection(socket: net.Socket): void {
    socket.on('error', () => undefined);
    socket.setTimeout(IDLE_MS, () => socket.destroy());
    // Node has no SO_PEERCRED: ask the accepted fd itself.
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
    let uid = -1;
    try {
      uid = native.getPeerCred(fd).uid;
    } catch {
      // no credentials: refused below
    }
    if (uid !== 0 && uid !== process.getuid?.()) {
      this.m.log.warn(`control socket: refused a client with uid ${uid}`);
      reply(socket, { ok: false, error: `permission denied: uid ${uid}` });
      return;
    }
    let buf = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0 && buf.length > MAX_LINE) {
        reply(socket, { ok: false, error: `request longer than ${MAX_LINE} bytes` });
        socket.destroy();
        return;
      }
      if (nl < 0) return;
      socket.removeAllListeners('data');
      socket.pause();
      void this.answer(socket, buf.slice(0, nl));
    });
  }

  private async answer(socket: net.Socket, line: string): Promise<void> {
    const req = parse(line);
    if (typeof req === 'string') return reply(socket, { ok: false, error: req });
    try {
      switch (req.cmd) {
        case 'ping':
          return reply(socket, { ok: true, pong: process.pid });
        case 'status':
          return reply(socket, { ok: true, status: await snapshot(this.m) });
        case 'reload':
          // Decided in the loop like a HUP; the answer comes when the reload has an outcome.
          this.m.queue.push({ type: 'control-reload', done: (error) => reply(socket, error ? { ok: false, error } : { ok: true, reload: 'finished' }) });
          return;
      }
    } catch (err) {
      reply(socket, { ok: false, error: (err as Error).message });
    }
  }
}
