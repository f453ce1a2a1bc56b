// A worker's stdout and stderr are the worker log: what the app writes there (console.log,
// process.stdout.write) goes through a LogSink, so a full disk, a closed pipe or a stuck
// reader costs lines, counted, and never the worker, its event loop or a request (issue 26).
// With worker_log_prefix, each line starts with when, which stream and which worker: the
// worker stamps its own lines, so the master stays out of the app's data path.
import { LogSink } from '../log/sink.js';
import { timestamp } from '../log/logger.js';

type Std = NodeJS.WriteStream;
export type Stream = 'stdout' | 'stderr';

export interface Output {
  stdout: LogSink;
  stderr: LogSink;
  /** Lines lost on both, and the last reason: told to the master with each heartbeat. */
  lost(): { lines: number; error: string | null };
}

/** Who writes: the worker's pid and slot, for the prefix of each line. */
export interface Writer {
  pid: number;
  slot: number;
}

export function linePrefix(stream: Stream, who: Writer, now = new Date()): string {
  return `${timestamp(now)} [${stream}] worker ${who.pid} slot ${who.slot}: `;
}

const NL = 0x0a;

/**
 * `data` with `prefix` before each line that starts in it: after each newline that has more
 * after it, and at its start when the previous write ended a line. A line written in pieces
 * gets one prefix.
 */
export function stampLines(data: Uint8Array, atLineStart: boolean, prefix: string): { data: Buffer; atLineStart: boolean } {
  if (data.length === 0) return { data: Buffer.from(data), atLineStart };
  const head = Buffer.from(prefix);
  const parts: Uint8Array[] = [];
  let from = 0;
  if (atLineStart) parts.push(head);
  for (let nl = data.indexOf(NL); nl !== -1 && nl < data.length - 1; nl = data.indexOf(NL, from)) {
    parts.push(data.subarray(from, nl + 1), head);
    from = nl + 1;
  }
  parts.push(data.subarray(from));
  return { data: Buffer.concat(parts), atLineStart: data[data.length - 1] === NL };
}

function guard(fd: number, std: Std, stream: Stream, who: Writer | null): LogSink {
  // Node's own stdio write throws (a file) or emits 'error' (a pipe) on ENOSPC or EPIPE,
  // which kills a worker that did not ask for that.
  const original = std.write;
  const sink = new LogSink(fd, LogSink.isStream(fd) ? { writable: std, write: original } : null);
  let atLineStart = true;
  std.write = function write(chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
    const done = typeof encoding === 'function' ? encoding : cb;
    const data = typeof chunk === 'string' || chunk instanceof Uint8Array ? chunk : String(chunk);
    const bytes = typeof data === 'string' ? Buffer.from(data, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8') : data;
    if (who) {
      const stamped = stampLines(bytes, atLineStart, linePrefix(stream, who));
      atLineStart = stamped.atLineStart;
      sink.write(stamped.data);
    } else sink.write(bytes);
    if (typeof done === 'function') process.nextTick(done as () => void);
    return true;
  } as Std['write'];
  return sink;
}

/** `who`: stamp the app's lines with it (worker_log_prefix), or null to leave them as written. */
export function guardOutput(who: Writer | null): Output {
  const stdout = guard(1, process.stdout, 'stdout', who);
  const stderr = guard(2, process.stderr, 'stderr', who);
  return {
    stdout,
    stderr,
    lost: () => ({ lines: stdout.lost + stderr.lost, error: stderr.lastError ?? stdout.lastError }),
  };
}
