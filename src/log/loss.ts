// Log lines this master and its workers could not write, counted for the metrics and said
// at most once per REPORT_MS, by the master, when it can write again (issue 26).

/** How often at most the master says that lines were lost. */
export const REPORT_MS = 10_000;
/** A worker's count is its word: a heartbeat adds this many lines at most. */
const MAX_STEP = 10_000_000;

export class LogLoss {
  /** Every line lost since this master started: tsmaster_log_lines_lost_total. */
  total = 0;
  private unsaid = 0;
  private readonly why = new Map<string, string>();
  private saidAt = 0;
  private readonly seen = new WeakMap<object, number>();

  /** `who` lost `lines` more lines, the last one for `code` (ENOSPC, EPIPE, EAGAIN...). */
  add(lines: number, who: string, code: string): void {
    if (!(lines > 0)) return;
    this.total += lines;
    this.unsaid += lines;
    // Named until the next report: a few, so a log that never comes back costs no memory.
    if (this.why.has(who) || this.why.size < 8) this.why.set(who, code);
  }

  /** A worker's heartbeat: its total so far (`worker` is its process table record). */
  fromWorker(worker: object, who: string, total: unknown, code: unknown): void {
    if (typeof total !== 'number' || !Number.isSafeInteger(total) || total < 0) return;
    const before = this.seen.get(worker) ?? 0;
    if (total <= before) return;
    this.seen.set(worker, total);
    this.add(Math.min(total - before, MAX_STEP), who, typeof code === 'string' && /^[A-Z0-9_]{1,32}$/.test(code) ? code : 'unknown');
  }

  /** The line to say now, if lines were lost and the last one said is REPORT_MS old. */
  due(now = Date.now()): string | null {
    if (this.unsaid === 0 || now - this.saidAt < REPORT_MS) return null;
    const why = [...this.why].map(([who, code]) => `${who}: ${code}`).join(', ');
    return `${this.unsaid} log line${this.unsaid === 1 ? '' : 's'} could not be written (${why}); dropped, ${this.total} since start`;
  }

  /** `due`'s line was written. */
  said(now = Date.now()): void {
    this.unsaid = 0;
    this.why.clear();
    this.saidAt = now;
  }
}

/** This process's account: the master's Logger and its heartbeat handler add to it. */
export const logLoss = new LogLoss();
