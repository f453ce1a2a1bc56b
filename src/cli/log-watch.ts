import fs from 'node:fs';

export interface LogLine {
  pid: number;
  level: string;
  text: string;
  raw: string;
}

const LINE = /^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \[(\w+)\] (\d+)#\d+: (.*)$/;

/**
 * Follows a master's error log from the moment it is created, so a `-s` command can wait
 * for what the master says happened instead of sleeping. A log that is rotated away
 * (USR1) is followed by path, from its start.
 */
export class LogWatch {
  private offset: number;
  private ino: number;
  private partial = '';
  readonly lines: LogLine[] = [];

  constructor(readonly path: string) {
    const st = fs.statSync(path, { throwIfNoEntry: false });
    this.offset = st?.size ?? 0;
    this.ino = st?.ino ?? 0;
  }

  /** Read what was appended; returns the new lines. */
  poll(): LogLine[] {
    let fd: number;
    try {
      fd = fs.openSync(this.path, 'r');
    } catch {
      return [];
    }
    const fresh: LogLine[] = [];
    try {
      const st = fs.fstatSync(fd);
      if (st.ino !== this.ino || st.size < this.offset) {
        this.ino = st.ino;
        this.offset = 0;
        this.partial = '';
      }
      const len = st.size - this.offset;
      if (len <= 0) return [];
      const buf = Buffer.alloc(len);
      fs.readSync(fd, buf, 0, len, this.offset);
      this.offset += len;
      const text = this.partial + buf.toString('utf8');
      const parts = text.split('\n');
      this.partial = parts.pop() ?? '';
      for (const raw of parts) {
        const m = LINE.exec(raw);
        if (m) fresh.push({ level: m[1]!, pid: Number(m[2]), text: m[3]!, raw });
      }
    } finally {
      fs.closeSync(fd);
    }
    this.lines.push(...fresh);
    return fresh;
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
