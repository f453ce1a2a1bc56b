// Reading a master's error_log: the nginx-format lines, all at once (tests) or as they come
// (the bench, which watches one log for minutes).
import fs from 'node:fs';
import { parseOutcome, type Outcome, type OutcomeEvent } from '../../src/outcomes.js';

export interface LogLine {
  level: string;
  pid: number;
  text: string;
}

function parse(raw: string): LogLine | null {
  const m = /^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \[(\w+)\] (\d+)#\d+: (.*)$/.exec(raw);
  return m ? { level: m[1]!, pid: Number(m[2]), text: m[3]! } : null;
}

function parseAll(lines: string[]): LogLine[] {
  return lines.map(parse).filter((l): l is LogLine => l !== null);
}

export function readLog(file: string): LogLine[] {
  try {
    return parseLog(fs.readFileSync(file, 'utf8'));
  } catch {
    return [];
  }
}

/** Log lines in the error_log's format, from raw text (a whole file, a captured stderr). */
export function parseLog(text: string): LogLine[] {
  return parseAll(text.split('\n'));
}

/** The outcomes (src/outcomes.ts) these log lines tell, each with its line. */
export function eventsOf(lines: readonly LogLine[]): Array<Outcome & { line: LogLine }> {
  return lines.flatMap((line) => {
    const o = parseOutcome(line.text);
    return o ? [{ ...o, line }] : [];
  });
}

/** Whether raw log text tells this outcome. */
export function told(text: string, event: OutcomeEvent): boolean {
  return eventsOf(parseLog(text)).some((e) => e.event === event);
}

/** The line a master logs once every worker of `generation` (any, if not given) is ready. */
export function isReadyLine(text: string, generation?: number): boolean {
  const o = parseOutcome(text);
  return o?.event === 'generation-ready' && (generation === undefined || o.generation === generation);
}

/** Follows a log from its current end (or `from`): each find() reads only what is new. */
export class LogTail {
  private offset: number;
  private partial = '';

  constructor(
    private readonly file: string,
    from?: number,
  ) {
    this.offset = from ?? fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0;
  }

  /** The first new line that matches; the lines read before and after it are gone. */
  find(match: (l: LogLine) => boolean): LogLine | undefined {
    return this.poll().find(match);
  }

  private poll(): LogLine[] {
    let text: string;
    try {
      const fd = fs.openSync(this.file, 'r');
      try {
        const size = fs.fstatSync(fd).size;
        if (size <= this.offset) return [];
        const buf = Buffer.alloc(size - this.offset);
        fs.readSync(fd, buf, 0, buf.length, this.offset);
        this.offset = size;
        text = this.partial + buf.toString('utf8');
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      return [];
    }
    const parts = text.split('\n');
    this.partial = parts.pop() ?? '';
    return parseAll(parts);
  }
}
