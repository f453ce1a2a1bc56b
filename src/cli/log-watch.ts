import fs from 'node:fs';

export interface LogLine {
  pid: number;
  level: string;
  text: string;
  raw: string;
}

const LINE = /^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \[(\w+)\] (\d+)#\d+: (.*)$/;

/** Reads are this big at most; a poll reads at most TAIL_BYTES, the end of what was appended. */
const CHUNK_BYTES = 64 * 1024;
const TAIL_BYTES = 1024 * 1024;
/** The lines kept for a failure's report: the latest. */
const KEPT_LINES = 10_000;
/** Longer is no master's line (a sparse hole reads as one endless line of NULs): dropped. */
const MAX_LINE = 16 * 1024;

/**
 * Follows a master's error log from the moment it is created, so a `-s` command can wait
 * for what the master says happened instead of sleeping. A log that is rotated away
 * (USR1) is followed by path, from its start. Whatever the file holds, a poll reads a
 * bounded amount in bounded chunks and never throws: a log that grew by more than
 * TAIL_BYTES is read from its last TAIL_BYTES (the lines a command waits for are the latest).
 */
export class LogWatch {
  private offset: number;
  private ino: number;
  private partial = '';
  readonly lines: LogLine[] = [];

  constructor(readonly path: string) {
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(path, { throwIfNoEntry: false });
    } catch {
      // Unreadable now (EACCES, ELOOP): followed from its start once it can be read.
    }
    this.offset = st?.size ?? 0;
    this.ino = st?.ino ?? 0;
  }

  /** Read what was appended; returns the new lines. */
  poll(): LogLine[] {
    let fd: number;
    try {
      fd = fs.openSync(this.path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    } catch {
      return [];
    }
    const fresh: LogLine[] = [];
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) return [];
      if (st.ino !== this.ino || st.size < this.offset) {
        this.ino = st.ino;
        this.offset = 0;
        this.partial = '';
      }
      if (st.size - this.offset > TAIL_BYTES) {
        this.offset = st.size - TAIL_BYTES;
        // Mid-line: what comes before the next newline is no whole line.
        this.partial = '\0';
      }
      const buf = Buffer.alloc(CHUNK_BYTES);
      while (this.offset < st.size) {
        const n = fs.readSync(fd, buf, 0, Math.min(CHUNK_BYTES, st.size - this.offset), this.offset);
        if (n <= 0) break;
        this.offset += n;
        this.take(buf.toString('utf8', 0, n), fresh);
      }
    } catch {
      // An unreadable log says nothing; the command decides by its other channels.
    } finally {
      fs.closeSync(fd);
    }
    for (const l of fresh) this.lines.push(l);
    if (this.lines.length > KEPT_LINES) this.lines.splice(0, this.lines.length - KEPT_LINES);
    return fresh;
  }

  private take(text: string, into: LogLine[]): void {
    const parts = (this.partial + text).split('\n');
    this.partial = parts.pop() ?? '';
    if (this.partial.length > MAX_LINE) this.partial = '\0';
    for (const raw of parts) {
      const m = raw.length <= MAX_LINE ? LINE.exec(raw) : null;
      if (m) into.push({ level: m[1]!, pid: Number(m[2]), text: m[3]!, raw });
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Poll `check` until it returns a value other than undefined, or the deadline passes. */
export async function waitFor<T>(check: () => T | undefined, timeoutMs: number, everyMs = 50): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() >= deadline) return undefined;
    await sleep(everyMs);
  }
}
