// What the master knows, as Prometheus metrics (prom-client), plus the apps' own metrics
// summed over the workers. Gauges read the master's state at scrape time; counters count
// events as the loop handles them.
import { AggregatorRegistry, Counter, Gauge, Registry, type Metric } from 'prom-client';
import type { Master } from '../master/master.js';
import { logLoss } from '../log/loss.js';
import { isLiveMaster } from '../master/pidfile.js';
import { RESTART_REASONS, WORKER_STATES, type RestartReason, type WorkerRecord } from '../master/process-table.js';
import { UPGRADE_PHASES } from '../master/phase.js';
import { isObject } from '../protocol.js';
import { cpuSeconds, rssBytes } from '../proc.js';
import { version } from '../version.js';

export const CHANGE_RESULTS = ['ok', 'failed', 'rolled_back'] as const;
export type ChangeResult = (typeof CHANGE_RESULTS)[number];

/** How long a scrape waits for the workers' app metrics; a worker that is late is left out. */
const WORKER_METRICS_MS = 1000;
/**
 * A worker's answer is hostile input: bounded in bytes (its channel reads no more, see
 * channel.ts) and in series, and only well-formed metric families. The bounds of a scrape
 * are shared out among the workers it asks, each worker's share capped.
 */
const MAX_APP_FAMILIES = 1000;
const MAX_APP_VALUES = 10_000;
const MAX_ANSWER_BYTES = 1024 * 1024;
const SCRAPE_BYTES = 4 * 1024 * 1024;
const SCRAPE_VALUES = 40_000;
/** Longest label value taken from an app (Prometheus sets none; a long one is a flood). */
export const MAX_LABEL_VALUE = 256;
/**
 * Scrapes within this long after an exposition was rendered get that one: at most two
 * rounds a second, whatever the number of clients, and still every heartbeat's figures
 * (one a second) are seen.
 */
const REUSE_MS = 500;
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const METRIC_TYPES = new Set(['counter', 'gauge', 'histogram', 'summary']);

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const AGGREGATORS = new Set(['sum', 'first', 'min', 'max', 'average', 'omit']);
/** The series names a family of each type may write (prom-client's metricName). */
const SUFFIXES: Record<string, readonly string[]> = { counter: [''], gauge: [''], histogram: ['_bucket', '_sum', '_count'], summary: ['', '_sum', '_count'] };

/**
 * A family as the master will aggregate and print it, rebuilt from what a worker sent (hostile
 * input: prom-client prints names and labels as it finds them), or null to drop it.
 */
function cleanFamily(f: unknown): Metric | null {
  if (!isObject(f) || typeof f.name !== 'string' || !METRIC_NAME.test(f.name) || f.name.startsWith('tsmaster_')) return null;
  if (typeof f.help !== 'string' || typeof f.type !== 'string' || !METRIC_TYPES.has(f.type) || !Array.isArray(f.values)) return null;
  if (f.aggregator !== undefined && (typeof f.aggregator !== 'string' || !AGGREGATORS.has(f.aggregator))) return null;
  const name = f.name;
  const values = [];
  for (const v of f.values as unknown[]) {
    if (!isObject(v) || typeof v.value !== 'number' || Number.isNaN(v.value)) return null;
    const labels: Record<string, string> = {};
    if (v.labels !== undefined) {
      if (!isObject(v.labels)) return null;
      for (const [k, l] of Object.entries(v.labels)) {
        if (!LABEL_NAME.test(k) || (typeof l !== 'string' && typeof l !== 'number')) return null;
        labels[k] = String(l);
        if (labels[k]!.length > MAX_LABEL_VALUE) return null;
      }
    }
    const metricName = v.metricName === undefined ? undefined : SUFFIXES[f.type]!.map((s) => name + s).find((n) => n === v.metricName);
    if (v.metricName !== undefined && metricName === undefined) return null;
    values.push({ value: v.value, labels, ...(metricName ? { metricName } : {}) });
  }
  return { name, help: f.help.replace(/[\r\n]+/g, ' '), type: f.type, aggregator: (f.aggregator as string | undefined) ?? 'sum', values } as unknown as Metric;
}

/** The well-formed families of a worker's answer, bounded; null when it is not a list at all, or over `maxValues` series. */
export function validAppFamilies(data: unknown, maxValues = MAX_APP_VALUES): Metric[] | null {
  if (!Array.isArray(data) || data.length > MAX_APP_FAMILIES) return null;
  const out: Metric[] = [];
  let values = 0;
  for (const f of data) {
    const clean = cleanFamily(f);
    if (!clean) continue;
    values += (clean as unknown as { values: unknown[] }).values.length;
    if (values > maxValues) return null;
    out.push(clean);
  }
  return out;
}

/** One round of questions to the workers, shared by the scrapes that want it. */
interface Scrape {
  waiting: Set<number>;
  got: Metric[][];
  /** Each worker's share of the scrape's bounds. */
  bytes: number;
  values: number;
  done: () => void;
}

export class MasterMetrics {
  readonly registry = new Registry();
  private readonly restarts: Counter<'reason'>;
  private readonly reloads: Counter<'result'>;
  private readonly upgrades: Counter<'result'>;
  private upgradeCounted = false;
  private seq = 0;
  private readonly scrapes = new Map<number, Scrape>();
  /** The exposition being rendered, and the last one with when it was. */
  private rendering: Promise<Buffer> | null = null;
  private last: { at: number; body: Buffer } | null = null;
  /** Workers whose answers were over their share: said once each. */
  private readonly overTold = new Set<number>();

  constructor(private readonly m: Master) {
    const registers = [this.registry];
    const self = this;
    new Gauge({
      name: 'tsmaster_build_info',
      help: 'Always 1: the tsmaster and Node.js versions of this master.',
      labelNames: ['version', 'node'],
      registers,
      collect() {
        this.set({ version, node: process.version }, 1);
      },
    });
    new Gauge({
      name: 'tsmaster_start_time_seconds',
      help: 'When this master process started, in seconds since the epoch.',
      registers,
      collect() {
        this.set(m.startedAt / 1000);
      },
    });
    new Gauge({
      name: 'tsmaster_generation',
      help: 'The generation that serves.',
      registers,
      collect() {
        this.set(m.current);
      },
    });
    new Gauge({
      name: 'tsmaster_workers',
      help: 'Worker processes by state.',
      labelNames: ['state'],
      registers,
      collect() {
        for (const state of WORKER_STATES) this.set({ state }, m.table.all().filter((w) => w.state === state).length);
      },
    });
    new Gauge({
      name: 'tsmaster_upgrade_phase',
      help: 'The binary upgrade: 1 for the phase it is in (as -s status says it), 0 for the others.',
      labelNames: ['phase'],
      registers,
      collect() {
        const now = m.upgradePhase();
        for (const phase of UPGRADE_PHASES) this.set({ phase }, phase === now ? 1 : 0);
      },
    });
    this.restarts = new Counter({ name: 'tsmaster_worker_restarts_total', help: 'Workers replaced by supervision, by reason.', labelNames: ['reason'], registers });
    for (const reason of RESTART_REASONS) this.restarts.inc({ reason }, 0);
    this.reloads = new Counter({ name: 'tsmaster_reloads_total', help: 'Reloads by result.', labelNames: ['result'], registers });
    this.reloads.inc({ result: 'ok' }, 0);
    this.reloads.inc({ result: 'failed' }, 0);
    this.upgrades = new Counter({
      name: 'tsmaster_upgrades_total',
      help: 'Binary upgrades by result: ok on the new master once the old one is gone, failed and rolled_back on the old master.',
      labelNames: ['result'],
      registers,
      collect() {
        self.countFinishedUpgrade();
      },
    });
    for (const result of CHANGE_RESULTS) this.upgrades.inc({ result }, 0);
    new Counter({
      name: 'tsmaster_requests_total',
      help: 'Requests served by the workers, since the first master of this line (kept across upgrades).',
      registers,
      collect() {
        this.reset();
        this.inc(m.totals.requests);
      },
    });
    new Counter({
      name: 'tsmaster_log_lines_lost_total',
      help: 'Log lines the master and its workers could not write (a full disk, a broken or stuck pipe), dropped.',
      registers,
      collect() {
        this.reset();
        this.inc(logLoss.total);
      },
    });
    const perWorker = ['slot', 'generation'] as const;
    const labels = (w: WorkerRecord) => ({ slot: String(w.slot), generation: String(w.generation) });
    const gauge = (name: string, help: string, value: (w: WorkerRecord) => number | null) =>
      new Gauge({
        name,
        help,
        labelNames: perWorker,
        registers,
        collect() {
          this.reset();
          for (const w of m.table.all()) {
            const v = value(w);
            if (v !== null) this.set(labels(w), v);
          }
        },
      });
    new Counter({
      name: 'tsmaster_worker_requests_total',
      help: 'Requests served by each worker (from its heartbeat).',
      labelNames: perWorker,
      registers,
      collect() {
        this.reset();
        for (const w of m.table.all()) this.inc(labels(w), w.requests);
      },
    });
    new Counter({
      name: 'tsmaster_worker_cpu_seconds_total',
      help: 'User and system CPU time of each worker process.',
      labelNames: perWorker,
      registers,
      collect() {
        this.reset();
        for (const w of m.table.all()) {
          const s = cpuSeconds(w.pid);
          if (s !== null) this.inc(labels(w), s);
        }
      },
    });
    gauge('tsmaster_worker_connections', 'Open connections of each worker (from its heartbeat).', (w) => w.connections);
    gauge('tsmaster_worker_resident_memory_bytes', 'Resident set size of each worker process.', (w) => rssBytes(w.pid));
    gauge('tsmaster_worker_heap_used_bytes', 'V8 heap in use in each Node.js worker (from its heartbeat).', (w) => w.heapUsed);
    // Two gauges, not a quantile label: that label belongs to summaries.
    // Since the previous scrape round: a stall between two scrapes shows in the second one.
    gauge('tsmaster_worker_event_loop_delay_p50_seconds', 'Median event-loop delay of each Node.js worker since the previous scrape round.', (w) => (w.scrapeLoopDelay ?? w.loopDelay)?.p50 ?? null);
    gauge('tsmaster_worker_event_loop_delay_p99_seconds', '99th percentile event-loop delay of each Node.js worker since the previous scrape round.', (w) => (w.scrapeLoopDelay ?? w.loopDelay)?.p99 ?? null);
    gauge('tsmaster_worker_event_loop_delay_max_seconds', 'Longest event-loop delay of each Node.js worker since the previous scrape round: a stall between two scrapes.', (w) => (w.scrapeLoopDelay ?? w.loopDelay)?.max ?? null);
    new Gauge({
      name: 'tsmaster_draining_connections',
      help: 'Connections still open on the draining workers of each retiring generation.',
      labelNames: ['generation'],
      registers,
      collect() {
        this.reset();
        for (const gen of m.generations.values()) {
          if (gen.role !== 'retiring') continue;
          const open = m.table.ofGeneration(gen.id).reduce((n, w) => n + w.connections, 0);
          this.set({ generation: String(gen.id) }, open);
        }
      },
    });
  }

  restarted(reason: RestartReason): void {
    this.restarts.inc({ reason });
  }

  changed(kind: 'reload' | 'upgrade', result: ChangeResult): void {
    (kind === 'reload' ? this.reloads : this.upgrades).inc({ result });
  }

  /** A master an upgrade started counts its one success once the old master has exited. */
  private countFinishedUpgrade(): void {
    const old = this.m.oldMaster;
    if (old === null || this.upgradeCounted || isLiveMaster(old)) return;
    this.upgradeCounted = true;
    this.upgrades.inc({ result: 'ok' });
  }

  /** The longest metrics answer the channel takes from worker `pid` now: its share while a scrape waits for it, else 0. */
  answerBudget(pid: number): number {
    for (const s of this.scrapes.values()) if (s.waiting.has(pid)) return s.bytes;
    return 0;
  }

  /** A worker's answer to a scrape's request (an event of the loop); `over`: it had more than its share. */
  onWorkerMetrics(pid: number, seq: number, data: unknown, over?: unknown): void {
    const scrape = this.scrapes.get(seq);
    if (!scrape || !scrape.waiting.delete(pid)) return;
    const families = validAppFamilies(data, scrape.values);
    if (families) scrape.got.push(families);
    else this.tellOver(pid, `its app metrics are malformed or over its share of a scrape (${scrape.values} series): left out`);
    if (typeof over === 'number') this.tellOver(pid, `its app metrics (${over} bytes) are over its share of a scrape (${scrape.bytes} bytes): left out`);
    if (scrape.waiting.size === 0) scrape.done();
  }

  private tellOver(pid: number, why: string): void {
    if (this.overTold.has(pid)) return;
    for (const p of this.overTold) if (!this.m.table.get(p)) this.overTold.delete(p);
    this.overTold.add(pid);
    this.m.log.warn(`worker process ${pid}: ${why}`);
  }

  /**
   * The exposition: the master's metrics, then the apps' metrics summed over the workers.
   * Rendered once for all the scrapes that come while it is, and within REUSE_MS after; one
   * buffer, which every connection writes without a copy of its own.
   */
  exposition(): Promise<Buffer> {
    if (this.last && Date.now() - this.last.at < REUSE_MS) return Promise.resolve(this.last.body);
    this.rendering ??= this.render().then(
      (text) => {
        this.rendering = null;
        this.last = { at: Date.now(), body: Buffer.from(text) };
        return this.last.body;
      },
      (err: unknown) => {
        this.rendering = null;
        throw err;
      },
    );
    return this.rendering;
  }

  private async render(): Promise<string> {
    // The workers first: their answers carry the event-loop delay of this round's window.
    const app = await this.askWorkers();
    const own = await this.registry.metrics();
    if (app.length === 0) return own;
    try {
      return own + (await AggregatorRegistry.aggregate(app).metrics());
    } catch {
      // Families that disagree between workers (a type, a label set): the master's own still go out.
      return own;
    }
  }

  private askWorkers(): Promise<Metric[][]> {
    // Draining workers are about to go; a scrape does not wait for them.
    const workers = this.m.table.all().filter((w) => w.state !== 'draining' && this.m.generations.get(w.generation)?.config.worker.kind === 'app' && w.channel?.connected);
    if (workers.length === 0) return Promise.resolve([]);
    const seq = ++this.seq;
    return new Promise((resolve) => {
      const scrape: Scrape = {
        waiting: new Set(workers.map((w) => w.pid)),
        got: [],
        bytes: Math.min(MAX_ANSWER_BYTES, Math.floor(SCRAPE_BYTES / workers.length)),
        values: Math.min(MAX_APP_VALUES, Math.floor(SCRAPE_VALUES / workers.length)),
        done: () => {
          clearTimeout(timer);
          this.scrapes.delete(seq);
          resolve(scrape.got);
        },
      };
      const timer = setTimeout(scrape.done, WORKER_METRICS_MS);
      this.scrapes.set(seq, scrape);
      for (const w of workers) w.channel!.send({ t: 'metrics', seq, max: scrape.bytes });
    });
  }
}
