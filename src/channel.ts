// The master's channel to a Node worker: one JSON object per line over a unix stream socket
// (a stdio slot of the worker). Not Node's IPC channel: there a worker may pass file
// descriptors the master then holds, a line that is not JSON throws out of the master's
// read callback, and a line without an end is buffered without bound. Here lines are
// bounded, malformed ones are dropped, and the master refuses passed fds.
import net from 'node:net';

/** Longest message line (app metrics can be large); a longer one closes the channel. */
const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;
/** A peer that leaves this much unread gets no more messages until it reads. */
const MAX_UNREAD_BYTES = 1024 * 1024;

export class Channel {
  private pending = '';
  /** Lines that were not a JSON value; the first one is reported. */
  private malformed = 0;

  constructor(
    readonly socket: net.Socket,
    onMessage: (msg: unknown) => void,
    onProblem: (why: string) => void = () => undefined,
  ) {
    socket.setEncoding('utf8');
    socket.on('error', () => undefined);
    socket.on('data', (chunk: string) => {
      let start = 0;
      for (let nl = chunk.indexOf('\n'); nl >= 0; nl = chunk.indexOf('\n', start)) {
        const line = this.pending + chunk.slice(start, nl);
        this.pending = '';
        start = nl + 1;
        let msg: unknown;
        try {
          msg = JSON.parse(line);
        } catch {
          if (this.malformed++ === 0) onProblem('a message that is not JSON was dropped');
          continue;
        }
        onMessage(msg);
        if (socket.destroyed) return;
      }
      this.pending += chunk.slice(start);
      if (this.pending.length > MAX_MESSAGE_BYTES) {
        onProblem(`a message longer than ${MAX_MESSAGE_BYTES} bytes: channel closed`);
        this.close();
      }
    });
  }

  /** A socket at `fd` (inherited), as the worker opens its end. */
  static fromFd(fd: number, onMessage: (msg: unknown) => void): Channel {
    return new Channel(new net.Socket({ fd, readable: true, writable: true }), onMessage);
  }

  get connected(): boolean {
    return !this.socket.destroyed && this.socket.writable;
  }

  /** False when the message was not sent: closed, or the peer has not read what it was sent. */
  send(msg: object, done?: () => void): boolean {
    if (!this.connected || this.socket.writableLength > MAX_UNREAD_BYTES) return false;
    this.socket.write(`${JSON.stringify(msg)}\n`, done && (() => done()));
    return true;
  }

  close(): void {
    this.pending = '';
    this.socket.destroy();
  }
}
