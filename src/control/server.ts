import fs from 'node:fs';
import net from 'node:net';
import { TsmError, isErrno } from '../errors.js';
import type { Master } from '../master/master.js';
import * as native from '../native/index.js';
import { MAX_LINE, parseRequest, type ControlRequest, type ControlResponse } from './protocol.js';
import { snapshot } from './snapshot.js';
import { endsUpgrade, formatOutcome, reloadSucceeded, type ReloadOutcome, type UpgradeEnd } from '../outcomes.js';

/**
 * A client must complete each request line within this long after connecting or after its
 * last answer; data does not extend it, so a client trickling bytes cannot keep its slot.
 */
const REQUEST_MS = 10_000;
/** A client that does not read an answer for this long is dropped: it holds a slot otherwise. */
const WRITE_MS = 5000;
/**
 * More clients at once than any operator or script needs. A new client past it closes the
 * longest-idle one, so stuck clients cannot lock the operator out; only when every client
 * waits for an answer (a reload under way) is the new one told the socket is busy.
 */
const MAX_CLIENTS = 32;
/** Requests a client may have sent ahead of the answers it has read. */
const MAX_PIPELINED = 16;
/** After an over-long line is refused, the rest of it is read and dropped for this long. */
const DISCARD_MS = 2000;

interface Peer {
  pid: number;
  uid: number;
}

/**
 * SO_PEERCRED of an accepted connection. Node has no API for it, so the fd comes from the
 * socket's libuv handle (`_handle.fd`, a Pipe on Linux); no fd or no credentials: uid -1.
 */
function peerOf(socket: net.Socket): Peer {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
  try {
    const { pid, uid } = native.getPeerCred(fd);
    return { pid, uid };
  } catch {
    return { pid: 0, uid: -1 };
  }
}

/**
 * The master's control socket: a unix socket, mode 0600, where root or the master's own uid
 * (SO_PEERCRED) asks for status or a reload, one JSON object per line. It is not a service
 * socket: the master accepts here, and only here.
 *
 * Bound through the addon and handed to net.Server by fd, not by path: libuv unlinks a path
 * it bound when it closes it, and after an upgrade that path belongs to the new master.
 * The addon also removes a stale socket file (nobody answers: a master killed by KILL) and
 * refuses to bind over a live one.
 */
export class ControlServer {
  private readonly server: net.Server;
  private handedOver = false;
  /** Where it is bound now: `home`, or its .oldbin while this master is the old one of an upgrade. */
  path: string;

  constructor(
    private readonly m: Master,
    /** The configured path, bound at start; a reload does not move it. */
    readonly home: string,
  ) {
    const path = (this.path = home);
    let fd: number;
    try {
      fd = native.listenUnix({ path, backlog: 64, mode: 0o600 });
    } catch (err) {
      const why = isErrno(err) && err.code === 'EADDRINUSE' ? 'in use: another master answers there' : (err as Error).message;
      throw new TsmError('TSM_ERR_CONTROL', `control socket "${path}": ${why}`, { cause: err });
    }
    // allowHalfOpen: a client that sends its request and shuts down its side still gets the answer.
    this.server = net.createServer({ allowHalfOpen: true }, (socket) => this.onConnection(socket));
    this.server.on('error', (err) => m.log.alert(`control socket "${this.path}": ${err.message}`));
    this.server.listen({ fd });
    // The master lives on its signals and children, not on this socket.
    this.server.unref();
  }

  /** During an upgrade the old master answers on PATH.oldbin, the new one on PATH: a renamed socket keeps working. */
  moveTo(path: string): void {
    fs.renameSync(this.path, path);
    this.path = path;
  }

  close(unlink: boolean): void {
    this.server.close();
    if (unlink) fs.rmSync(this.path, { force: true });
  }

  private readonly clients = new Set<Connection>();

  private onConnection(socket: net.Socket): void {
    socket.on('error', () => undefined);
    if (this.clients.size >= MAX_CLIENTS) {
      let idlest: Connection | null = null;
      for (const c of this.clients) if (!c.busy && (!idlest || c.idleSince < idlest.idleSince)) idlest = c;
      if (!idlest) {
        socket.end(`${JSON.stringify({ ok: false, error: `busy: ${MAX_CLIENTS} control clients are waiting for answers` } satisfies ControlResponse)}\n`);
        setTimeout(() => socket.destroy(), WRITE_MS).unref();
        return;
      }
      idlest.socket.destroy();
      this.clients.delete(idlest);
    }
    const peer = peerOf(socket);
    const conn = new Connection(socket, (req, progress) => this.answer(req, peer, progress));
    this.clients.add(conn);
    socket.once('close', () => this.clients.delete(conn));
    if (peer.uid !== 0 && peer.uid !== process.getuid?.()) {
      this.m.log.warn(`control socket: refused a client with uid ${peer.uid} (pid ${peer.pid})`);
      conn.refuse(`permission denied: uid ${peer.uid}`);
    }
  }

  private async answer(req: ControlRequest, peer: Peer, progress: (res: ControlResponse) => void): Promise<ControlResponse> {
    switch (req.cmd) {
      case 'ping':
        return { ok: true, pong: process.pid };
      case 'status':
        return { ok: true, status: await snapshot(this.m) };
      case 'reload': {
        // Decided in the loop like a HUP; the answer comes when the reload has an outcome.
        const outcome = await new Promise<ReloadOutcome>((done) => this.m.queue.push({ type: 'control-reload', done }));
        return reloadSucceeded(outcome) ? { ok: true, reload: 'finished', outcome } : { ok: false, error: formatOutcome(outcome), outcome };
      }
      case 'upgrade': {
        // Decided in the loop like a USR2; each outcome is a line, the one that ends it the answer.
        const end = await new Promise<UpgradeEnd>((done) =>
          this.m.queue.push({
            type: 'control-upgrade',
            waiter: (o) => (endsUpgrade(o) ? done(o) : progress({ ok: true, more: true, outcome: o })),
          }),
        );
        return end.event === 'upgrade-finished' ? { ok: true, upgrade: 'finished', outcome: end } : { ok: false, error: formatOutcome(end), outcome: end };
      }
      case 'handover':
        // Only the old master that started this one, and only once.
        if (this.m.oldMaster === null || peer.pid !== this.m.oldMaster || this.handedOver) {
          return { ok: false, error: 'handover refused: only the old master, once' };
        }
        this.handedOver = true;
        await new Promise<void>((done) => this.m.queue.push({ type: 'control-handover', pid: peer.pid, totals: req.totals, done }));
        return { ok: true, handover: 'accepted' };
    }
  }
}

function countLines(buf: Buffer): number {
  let n = 0;
  for (let i = buf.indexOf(0x0a); i >= 0; i = buf.indexOf(0x0a, i + 1)) n++;
  return n;
}

/**
 * One client: request lines are answered one at a time, in order. An over-long line, the
 * client going idle, or the end of its input after the last answer closes it.
 */
class Connection {
  private buf: Buffer = Buffer.alloc(0);
  /** An answer is being made or written: the client is not idle. */
  busy = false;
  /** Since when it has owed us a request (ms since the epoch). */
  idleSince = Date.now();
  private ended = false;
  private deadline: NodeJS.Timeout | null = null;

  constructor(
    readonly socket: net.Socket,
    /** The answer to a request; `progress` writes a line before it (an upgrade's outcomes). */
    private readonly answer: (req: ControlRequest, progress: (res: ControlResponse) => void) => Promise<ControlResponse>,
  ) {
    this.armDeadline();
    socket.once('close', () => this.clearDeadline());
    socket.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
      this.next();
    });
    socket.on('end', () => {
      this.ended = true;
      this.next();
    });
  }

  /** False when the client does not read its answers fast enough (wait for 'drain'). */
  private reply(res: ControlResponse): boolean {
    return this.socket.writable ? this.socket.write(`${JSON.stringify(res)}\n`) : true;
  }

  /** Answer the next complete line, if there is one and none is being answered. */
  private next(): void {
    if (this.busy || this.socket.destroyed) return;
    let line = '';
    while (line === '') {
      const nl = this.buf.indexOf(0x0a);
      if (nl < 0 || nl > MAX_LINE) {
        if (this.buf.length > MAX_LINE) return this.refuse(`request longer than ${MAX_LINE} bytes`);
        if (!this.ended) return;
        if (this.buf.toString('utf8').trim() !== '') this.reply({ ok: false, error: 'incomplete request: no newline before the end of input' });
        this.socket.end();
        return;
      }
      line = this.buf.subarray(0, nl).toString('utf8').trim();
      this.buf = this.buf.subarray(nl + 1);
    }
    if (countLines(this.buf) >= MAX_PIPELINED) return this.refuse(`more than ${MAX_PIPELINED} requests ahead of their answers`);
    // No request deadline and no more reading while an answer is pending (a reload takes as
    // long as it takes) or while the client has not read the answers already sent.
    this.busy = true;
    this.socket.pause();
    this.clearDeadline();
    const req = parseRequest(line);
    const res = typeof req === 'string' ? Promise.resolve<ControlResponse>({ ok: false, error: req }) : this.answer(req, (r) => this.reply(r));
    res
      .catch((err: unknown): ControlResponse => ({ ok: false, error: err instanceof Error ? err.message : String(err) }))
      .then((r) => {
        if (this.reply(r)) return this.resume();
        // A client that does not read its answers is dropped, not waited for.
        const deadline = setTimeout(() => this.socket.destroy(), WRITE_MS);
        deadline.unref();
        this.socket.once('drain', () => {
          clearTimeout(deadline);
          this.resume();
        });
      })
      .catch(() => this.socket.destroy());
  }

  private resume(): void {
    this.busy = false;
    if (this.socket.destroyed) return;
    this.idleSince = Date.now();
    this.armDeadline();
    this.socket.resume();
    this.next();
  }

  private armDeadline(): void {
    this.clearDeadline();
    this.deadline = setTimeout(() => this.socket.destroy(), REQUEST_MS);
    this.deadline.unref();
  }

  private clearDeadline(): void {
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = null;
  }

  /** Answer once, then drop whatever else the client sends for a while, and close. */
  refuse(error: string): void {
    this.clearDeadline();
    this.buf = Buffer.alloc(0);
    this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('end');
    this.socket.end(`${JSON.stringify({ ok: false, error } satisfies ControlResponse)}\n`);
    this.socket.resume();
    setTimeout(() => this.socket.destroy(), DISCARD_MS).unref();
  }
}
