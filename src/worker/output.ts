// A worker's stdout and stderr are the worker log: what the app writes there (console.log,
// process.stdout.write) goes through a LogSink, so a full disk, a closed pipe or a stuck
// reader costs lines, counted, and never the worker, its event loop or a request (issue 26).
import { LogSink } from '../log/sink.js';

type Std = NodeJS.WriteStream;

export interface Output {
  stdout: LogSink;
  stderr: LogSink;
  /** Lines lost on both, and the last reason: told to the master with each heartbeat. */
  lost(): { lines: number; error: string | null };
}

function guard(fd: number, std: Std): LogSink {
  // Node's own stdio write throws (a file) or emits 'error' (a pipe) on ENOSPC or EPIPE,
  // which kills a worker that did not ask for that.
  const original = std.write;
  const sink = new LogSink(fd, LogSink.isStream(fd) ? { writable: std, write: original } : null);
  std.write = function write(chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
    const done = typeof encoding === 'function' ? encoding : cb;
    const data = typeof chunk === 'string' || chunk instanceof Uint8Array ? chunk : String(chunk);
    sink.write(typeof encoding === 'string' && typeof data === 'string' ? Buffer.from(data, encoding as BufferEncoding) : data);
    if (typeof done === 'function') process.nextTick(done as () => void);
    return true;
  } as Std['write'];
  return sink;
}

export function guardOutput(): Output {
  const stdout = guard(1, process.stdout);
  const stderr = guard(2, process.stderr);
  return {
    stdout,
    stderr,
    lost: () => ({ lines: stdout.lost + stderr.lost, error: stderr.lastError ?? stdout.lastError }),
  };
}
