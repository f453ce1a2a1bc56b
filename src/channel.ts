// The master's channel to a Node worker: one JSON object per line over a unix stream socket
// (a stdio slot of the worker). Not Node's IPC channel: there a worker may pass file
// descriptors the master then holds, a line that is not JSON throws out of the master's
// read callback, and a line without an end is buffered without bound. Here every line
// starts with its type, `{"t":"pong",` (JSON.stringify writes the key `t` first, as each
// message sets it first), and the reader bounds the line by what that type needs before it
// keeps a byte of it or parses it; the master refuses passed fds.
import net from 'node:net';

/** The type of a line is in its first bytes: `{"t":"<type>"` and a `,` or `}`. */
const TAG = /^\{"t":"([a-z-]{1,24})"[,}]/;
const TAG_BYTES = 32;
/** A line without a known type: dropped, up to this long; a longer one closes the channel. */
const MAX_UNTYPED_BYTES = 1024;
const NOT_A_MESSAGE = 'a message that is not JSON of a known type was dropped';
/** A peer that leaves this much unread gets no more messages until it reads. */
const MAX_UNREAD_BYTES = 1024 * 1024;

/** A message: a JSON object whose first key is its type. */
export type Message = { t: string } & Record<string, unknown>;

/** What the reader takes: the longest line of each type. */
export interface LineBounds {
  /** The longest line of a message of this type, or null for a type the reader does not take. */
  max(type: string): number | null;
  /**
   * Types whose line over its bound is dropped (a metrics answer nobody waits for, or over
   * its share of a scrape); any other line over its bound closes the channel.
   */
  skip?: ReadonlySet<string>;
}

export class Channel {
  /** The line being read: its parts so far, its length, its type and bound once known. */
  private parts: Buffer[] = [];
  private size = 0;
  /** null while its first bytes are still coming; '' for a line without a known type. */
  private type: string | null = null;
  private max = TAG_BYTES;
  /** Discarding the rest of a line, up to its newline. */
  private dropping = false;
  /** Problems are reported once each, not once per line. */
  private readonly told = new Set<string>();

  constructor(
    readonly socket: net.Socket,
    private readonly onMessage: (msg: Message) => void,
    private readonly bounds: LineBounds,
    private readonly onProblem: (why: string) => void = () => undefined,
  ) {
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => this.read(chunk));
  }

  /** A socket at `fd` (inherited), as the worker opens its end. */
  static fromFd(fd: number, onMessage: (msg: Message) => void, bounds: LineBounds): Channel {
    return new Channel(new net.Socket({ fd, readable: true, writable: true }), onMessage, bounds);
  }

  private read(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length && !this.socket.destroyed) {
      const nl = chunk.indexOf(10, start);
      const end = nl < 0 ? chunk.length : nl;
      if (!this.dropping) this.take(chunk.subarray(start, end));
      if (nl < 0) return;
      start = nl + 1;
      if (!this.dropping && !this.socket.destroyed) this.deliver();
      this.parts = [];
      this.size = 0;
      this.type = null;
      this.max = TAG_BYTES;
      this.dropping = false;
    }
  }

  /** Keep part of the line, within the bound of its type (learnt from its first bytes). */
  private take(part: Buffer): void {
    this.parts.push(part);
    this.size += part.length;
    if (this.type === null) this.learnType();
    if (this.size <= this.max) return;
    if (!this.type) {
      this.close(`a message longer than ${MAX_UNTYPED_BYTES} bytes without a known type: channel closed`);
    } else if (this.bounds.skip?.has(this.type)) {
      // 0: a late answer, nobody waits for it any more; said only when it was too long.
      if (this.max > 0) this.tell(`a "${this.type}" message longer than ${this.max} bytes was dropped`);
      this.dropping = true;
      this.parts = [];
    } else {
      this.close(`a "${this.type}" message longer than ${this.max} bytes: channel closed`);
    }
  }

  private learnType(): void {
    const head = Buffer.concat(this.parts).subarray(0, TAG_BYTES);
    const tag = TAG.exec(head.toString('latin1'))?.[1];
    const max = tag === undefined ? null : this.bounds.max(tag);
    if (max !== null) {
      this.type = tag!;
      this.max = max;
    } else if (tag !== undefined || head.length === TAG_BYTES) {
      // Not a type this end takes: kept to be dropped at its end, within a small bound.
      this.type = '';
      this.max = MAX_UNTYPED_BYTES;
    }
  }

  private deliver(): void {
    let msg: unknown = null;
    if (this.type) {
      try {
        msg = JSON.parse(Buffer.concat(this.parts, this.size).toString('utf8'));
      } catch {
        // dropped below
      }
    }
    // Its head said the type; a later duplicate key must not say another.
    if (typeof msg !== 'object' || msg === null || (msg as { t?: unknown }).t !== this.type) return this.tell(NOT_A_MESSAGE);
    this.onMessage(msg as Message);
  }

  private tell(why: string): void {
    if (this.told.has(why)) return;
    this.told.add(why);
    this.onProblem(why);
  }

  get connected(): boolean {
    return !this.socket.destroyed && this.socket.writable;
  }

  /** False when the message was not sent: closed, or the peer has not read what it was sent. */
  send(msg: Message, done?: () => void): boolean {
    if (!this.connected || this.socket.writableLength > MAX_UNREAD_BYTES) return false;
    // `t` first, whatever order the object was built in: the reader types the line by its head.
    this.socket.write(`${JSON.stringify(Object.assign({ t: msg.t }, msg))}\n`, done && (() => done()));
    return true;
  }

  close(why?: string): void {
    if (why) this.onProblem(why);
    this.parts = [];
    this.socket.destroy();
  }
}
