import fs from 'node:fs';
import type { Writable } from 'node:stream';

/**
 * What a pipe or socket sink may hold queued before lines are dropped: a reader that
 * stopped (a full pipe, a journal restarting) costs this much memory at most, never the
 * event loop (libuv writes pipes without blocking) and never the process.
 */
export const MAX_QUEUED_BYTES = 1024 * 1024;

function lines(chunk: string | Uint8Array): number {
  let n = 0;
  if (typeof chunk === 'string') {
    for (let i = chunk.indexOf('\n'); i !== -1; i = chunk.indexOf('\n', i + 1)) n++;
  } else {
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) n++;
  }
  return Math.max(n, 1);
}

/**
 * One log descriptor written so that a failing write costs lines, never the process: a file
 * (or a device) synchronously, each error (ENOSPC, EIO, EDQUOT) dropping that write only,
 * so writing resumes by itself once there is room; a pipe or socket through its stream, its
 * queue bounded by MAX_QUEUED_BYTES, a broken one (EPIPE) dropping everything after.
 */
export class LogSink {
  /** Lines dropped so far, and the last reason. */
  lost = 0;
  lastError: string | null = null;
  private broken = false;

  /**
   * `stream`: the process's own stream for `fd` (process.stdout, process.stderr) and its
   * original write, used for a pipe or a socket; a file is written by fd.
   */
  constructor(
    readonly fd: number,
    private readonly stream: { writable: Writable; write: Writable['write'] } | null = null,
  ) {
    stream?.writable.on('error', (err: NodeJS.ErrnoException) => {
      this.broken = true;
      this.lastError = err.code ?? String(err);
    });
  }

  /** Whether `fd` is a pipe or a socket (written through a stream), else a file or device. */
  static isStream(fd: number): boolean {
    try {
      const st = fs.fstatSync(fd);
      return st.isFIFO() || st.isSocket();
    } catch {
      return false;
    }
  }

  /** Writes the whole chunk or counts it lost; true when written (or queued). */
  write(chunk: string | Uint8Array): boolean {
    if (this.stream) return this.queue(chunk);
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    let off = 0;
    try {
      while (off < buf.length) off += fs.writeSync(this.fd, buf, off, buf.length - off);
      return true;
    } catch (err) {
      this.drop(buf.subarray(off), (err as NodeJS.ErrnoException).code ?? String(err));
      return false;
    }
  }

  private queue(chunk: string | Uint8Array): boolean {
    const { writable, write } = this.stream!;
    if (this.broken || writable.destroyed) {
      this.drop(chunk, this.lastError ?? 'EPIPE');
      return false;
    }
    if (writable.writableLength > MAX_QUEUED_BYTES) {
      this.drop(chunk, 'EAGAIN');
      return false;
    }
    (write as (this: Writable, chunk: string | Uint8Array) => boolean).call(writable, chunk);
    return true;
  }

  private drop(chunk: string | Uint8Array, code: string): void {
    this.lost += lines(chunk);
    this.lastError = code;
  }
}
