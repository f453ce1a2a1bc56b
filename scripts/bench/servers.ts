// The six ways of serving app.cjs: one Node process, the cluster module (SCHED_RR and
// SCHED_NONE), PM2 cluster mode, tsmaster on a shared socket and tsmaster with `reuseport`.
// Each has start(), stop(), the pid of its manager process (null for one process) and, for
// PM2 and tsmaster, change(kind) = a reload or an upgrade under load.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { childrenOf, isAlive, procStat } from '../../src/proc.js';
import { freePort, get } from '../../test/helpers/http.js';
import { parseOutcome } from '../../src/outcomes.js';
import { isReadyLine, LogTail } from '../../test/helpers/log.js';
import { cli, root } from '../../test/helpers/paths.js';
import { waitFor, waitUntil } from '../../test/helpers/wait.js';
import { waitHttp } from './load.js';
import { adoptGroup, onStop, run, stopGroup, tempDir, track, type Ran } from './procs.js';

// The apps stay plain CommonJS beside these sources: they are what is served, not the bench.
const apps = path.join(root, 'scripts', 'bench');
const appPath = path.join(apps, 'app.cjs');
const serverPath = path.join(apps, 'server.cjs');
const clusterPath = path.join(apps, 'cluster.cjs');

export type ChangeKind = 'reload' | 'upgrade';

/** What the measurements need of every configuration. */
export interface Served {
  key: string;
  label: string;
  workers: number;
  port: number;
  statsDir: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  managerPid(): number | null;
  workerPids(): number[];
  change?(kind: ChangeKind): Promise<Ran>;
}

/** PM2 and tsmaster: the configurations with a reload (and tsmaster an upgrade) to measure. */
export type Changeable = Served & Required<Pick<Served, 'change'>>;

function tail(file: string, lines = 15): string {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

function readPid(file: string): number | null {
  try {
    return Number.parseInt(fs.readFileSync(file, 'utf8'), 10) || null;
  } catch {
    return null;
  }
}

/** Requests answered per worker pid so far, from the files app.cjs writes. */
export function readCounts(dir: string): Map<number, number> {
  const counts = new Map<number, number>();
  for (const name of fs.readdirSync(dir)) {
    if (!/^\d+$/.test(name)) continue;
    const n = Number.parseInt(fs.readFileSync(path.join(dir, name), 'utf8'), 10);
    if (Number.isFinite(n)) counts.set(Number(name), n);
  }
  return counts;
}

/** Wait for a line from a child's stdout, failing if it exits first. */
function waitLine(child: ChildProcess, re: RegExp, what: string, timeoutMs = 20_000): Promise<void> {
  const stdout = child.stdout!;
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => done(new Error(`${what}: not ready after ${timeoutMs}ms`)), timeoutMs);
    const onData = (d: Buffer) => {
      buf += d;
      if (re.test(buf)) done(null);
    };
    const onExit = (code: number | null, sig: NodeJS.Signals | null) => done(new Error(`${what} exited (${sig ?? code}) before it was ready`));
    function done(err: Error | null) {
      clearTimeout(t);
      stdout.off('data', onData);
      child.off('exit', onExit);
      stdout.resume();
      if (err) reject(err);
      else resolve();
    }
    stdout.on('data', onData);
    child.once('exit', onExit);
  });
}

export class NodeServed implements Served {
  readonly key: string;
  readonly label: string;
  readonly workers: number;
  /** Node's cluster scheduling policy; none: one plain process. */
  private readonly sched: 'rr' | 'none' | undefined;
  port = 0;
  statsDir = '';
  child: ChildProcess | null = null;
  private pgid: number | null = null;

  constructor(o: { key: string; label: string; workers: number; sched?: 'rr' | 'none' }) {
    this.key = o.key;
    this.label = o.label;
    this.workers = o.workers;
    this.sched = o.sched;
  }

  async start(): Promise<void> {
    const dir = tempDir(this.key);
    this.statsDir = tempDir(`${this.key}/stats`);
    this.port = await freePort();
    const err = fs.openSync(path.join(dir, 'stderr.log'), 'a');
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(this.port), HOST: '127.0.0.1', BENCH_STATS_DIR: this.statsDir, BENCH_WORKERS: String(this.workers) };
    if (this.sched) env.NODE_CLUSTER_SCHED_POLICY = this.sched;
    else env.BENCH_SAY_READY = '1';
    const child = track(process.execPath, [this.sched ? clusterPath : serverPath], { detached: true, stdio: ['ignore', 'pipe', err], env }, this.key);
    this.child = child;
    fs.closeSync(err);
    this.pgid = child.pid ?? null;
    await waitLine(child, this.sched ? new RegExp(`^ready ${this.sched}$`, 'm') : /^ready$/m, this.label);
    await waitHttp(this.port);
  }

  managerPid(): number | null {
    return this.sched ? (this.child?.pid ?? null) : null;
  }

  workerPids(): number[] {
    const pid = this.child?.pid;
    if (!pid) return [];
    return this.sched ? childrenOf(pid) : [pid];
  }

  async stop(): Promise<void> {
    if (this.pgid) await stopGroup(this.pgid);
    this.pgid = null;
  }
}

export class Pm2 implements Served {
  readonly key = 'pm2';
  readonly label = 'PM2 cluster mode';
  port = 0;
  statsDir = '';
  installSeconds = 0;
  private dir = '';
  private home = '';
  private bin = '';
  private unregister: (() => void) | null = null;

  constructor(readonly workers: number) {}

  /** npm install --prefix <tmp> pm2; PM2_HOME in the same temp dir. */
  async install(): Promise<string> {
    this.dir = tempDir('pm2');
    this.home = tempDir('pm2/home');
    const t0 = Date.now();
    const r = await run('npm', ['install', '--prefix', this.dir, 'pm2', '--no-audit', '--no-fund', '--loglevel=error'], { timeoutMs: 240_000 });
    if (r.code !== 0) throw new Error(`npm install pm2 failed: ${(r.stderr || r.error || '').trim().slice(-800)}`);
    this.installSeconds = (Date.now() - t0) / 1000;
    this.bin = path.join(this.dir, 'node_modules', 'pm2', 'bin', 'pm2');
    return (JSON.parse(fs.readFileSync(path.join(this.dir, 'node_modules', 'pm2', 'package.json'), 'utf8')) as { version: string }).version;
  }

  private pm2(...args: string[]): Promise<Ran> {
    return run(process.execPath, [this.bin, ...args], { env: { ...process.env, PM2_HOME: this.home }, timeoutMs: 60_000 });
  }

  async start(): Promise<void> {
    this.statsDir = tempDir('pm2/stats');
    this.port = await freePort();
    const eco = path.join(this.dir, 'ecosystem.config.cjs');
    const app = {
      name: 'bench',
      script: serverPath,
      instances: this.workers,
      exec_mode: 'cluster',
      autorestart: true,
      watch: false,
      out_file: path.join(this.dir, 'out.log'),
      error_file: path.join(this.dir, 'err.log'),
      env: { PORT: String(this.port), HOST: '127.0.0.1', BENCH_STATS_DIR: this.statsDir },
    };
    fs.writeFileSync(eco, `module.exports = ${JSON.stringify({ apps: [app] }, null, 2)};\n`);
    // Registered before the start: a daemon that comes up while we fail must still go.
    this.unregister = onStop(() => this.stop());
    const r = await this.pm2('start', eco);
    this.adopt();
    if (r.code !== 0) throw new Error(`pm2 start failed: ${r.stderr.trim().slice(-800)}`);
    await waitFor(`${this.workers} PM2 instances online`, () => this.workerPids().length >= this.workers, 30_000, 200);
    await waitHttp(this.port);
  }

  /** The God daemon runs in its own session: make cleanup kill its group too. */
  private adopt(): void {
    const pid = this.managerPid();
    if (pid && procStat(pid)?.pgrp === pid) adoptGroup(pid, 'pm2 daemon');
  }

  managerPid(): number | null {
    return readPid(path.join(this.home, 'pm2.pid'));
  }

  workerPids(): number[] {
    const god = this.managerPid();
    return god ? childrenOf(god) : [];
  }

  async change(kind: ChangeKind): Promise<Ran> {
    if (kind !== 'reload') throw new Error(`PM2 has no ${kind}`);
    return this.pm2('reload', 'bench');
  }

  async stop(): Promise<void> {
    this.unregister?.();
    this.unregister = null;
    if (!this.bin || !fs.existsSync(this.home)) return;
    const god = this.managerPid();
    await this.pm2('kill');
    if (god) await stopGroup(god, 2000);
  }
}

/** One GET of the master's metrics_listen; resolves with the status (0: no answer) and the time it took. */
export async function getMetrics(port: number): Promise<{ status: number; ms: number }> {
  const t0 = performance.now();
  const status = await get({ port, path: '/metrics', timeoutMs: 10_000 }).then(
    (r) => r.status,
    () => 0,
  );
  return { status, ms: performance.now() - t0 };
}

export interface TsmasterOptions {
  key: string;
  label: string;
  workers: number;
  reuseport: boolean;
  /** More directives for the config. */
  extra?: string[];
  /** With metrics_listen, scraped every second while it runs, as Prometheus would. */
  metrics?: boolean;
  /** Another app than the hello-world one. */
  app?: string;
}

export class Tsmaster implements Served {
  readonly key: string;
  readonly label: string;
  readonly workers: number;
  private readonly reuseport: boolean;
  private readonly extra: string[];
  private readonly metrics: boolean;
  private readonly app: string;
  port = 0;
  metricsPort: number | null = null;
  statsDir = '';
  child: ChildProcess | null = null;
  private dir = '';
  private conf = '';
  private errorLog = '';
  private pidFile = '';
  private pgid: number | null = null;
  private unregister: (() => void) | null = null;
  private scraper: NodeJS.Timeout | undefined;

  constructor(o: TsmasterOptions) {
    this.key = o.key;
    this.label = o.label;
    this.workers = o.workers;
    this.reuseport = o.reuseport;
    this.extra = o.extra ?? [];
    this.metrics = o.metrics ?? false;
    this.app = o.app ?? appPath;
  }

  private writeConf(): void {
    fs.writeFileSync(
      this.conf,
      [
        'daemon off;',
        `worker_processes ${this.workers};`,
        `pid ${this.pidFile};`,
        `error_log ${this.errorLog} notice;`,
        `worker_log ${path.join(this.dir, 'worker.log')};`,
        `listen 127.0.0.1:${this.port}${this.reuseport ? ' reuseport' : ''};`,
        `app ${this.app};`,
        `env BENCH_STATS_DIR=${this.statsDir};`,
        ...(this.metricsPort ? [`metrics_listen 127.0.0.1:${this.metricsPort};`] : []),
        ...this.extra,
        '',
      ].join('\n'),
    );
  }

  async start(readyTimeoutMs = 30_000): Promise<void> {
    this.dir = tempDir(this.key);
    this.statsDir = tempDir(`${this.key}/stats`);
    this.port = await freePort();
    this.metricsPort = this.metrics ? await freePort() : null;
    this.conf = path.join(this.dir, 'tsmaster.conf');
    this.errorLog = path.join(this.dir, 'error.log');
    this.pidFile = path.join(this.dir, 'tsmaster.pid');
    this.writeConf();
    const out = fs.openSync(path.join(this.dir, 'stdout.log'), 'a');
    const child = track(process.execPath, [cli, '-p', this.dir, '-c', this.conf], { detached: true, stdio: ['ignore', out, out] }, this.key);
    this.child = child;
    fs.closeSync(out);
    this.pgid = child.pid ?? null;
    this.unregister = onStop(() => this.stop());
    const log = new LogTail(this.errorLog, 0);
    const exited = () => child.exitCode !== null || child.signalCode !== null;
    await waitFor(
      `${this.label} ready`,
      () => {
        if (log.find((l) => l.pid === child.pid && isReadyLine(l.text, 1))) return true;
        if (exited()) throw new Error('exited');
        return false;
      },
      readyTimeoutMs,
      20,
    ).catch(() => {
      throw new Error(`${this.label} did not start:\n${tail(this.errorLog)}\n${tail(path.join(this.dir, 'stdout.log'))}`);
    });
    await waitHttp(this.port);
    const metricsPort = this.metricsPort;
    if (metricsPort) {
      // Counted nowhere: the scrapes are there for their cost, not their results.
      this.scraper = setInterval(() => void getMetrics(metricsPort), 1000);
    }
  }

  errorLogPath(): string {
    return this.errorLog;
  }

  tsm(...args: string[]): Promise<Ran> {
    return this.tsmOn(process.execPath, ...args);
  }

  /** The CLI for this master's config, run by the Node binary `node`. */
  tsmOn(node: string, ...args: string[]): Promise<Ran> {
    return run(node, [cli, '-p', this.dir, '-c', this.conf, ...args], { timeoutMs: 90_000 });
  }

  managerPid(): number | null {
    return readPid(this.pidFile);
  }

  workerPids(): number[] {
    const m = this.managerPid();
    return m ? childrenOf(m) : [];
  }

  change(kind: ChangeKind): Promise<Ran> {
    return this.tsm('-s', kind);
  }

  /**
   * USR2 by hand, timed until the new master logs "generation G: all N worker(s) ready",
   * then WINCH and QUIT to the old master as `-s upgrade` does.
   */
  async timeUpgrade(): Promise<{ ms: number; oldPid: number; newPid: number }> {
    const old = this.managerPid();
    if (!old) throw new Error('USR2: no master in the pidfile');
    const log = new LogTail(this.errorLog);
    const t0 = performance.now();
    process.kill(old, 'SIGUSR2');
    let newPid = 0;
    let failure: string | null = null;
    const line = await waitFor(
      'a new master ready',
      () => {
        const l = log.find((l) => {
          const o = l.pid === old ? parseOutcome(l.text) : null;
          if (o?.event === 'upgrade-started') newPid = o.pid;
          if (o?.event === 'upgrade-rolling-back' || o?.event === 'upgrade-refused' || o?.event === 'upgrade-failed') failure = l.text;
          return l.pid !== old && isReadyLine(l.text);
        });
        if (!l && failure !== null) throw new Error(failure);
        return l;
      },
      40_000,
      5,
    ).catch(() => {
      throw new Error(`USR2: no new master ready (${failure ?? 'timeout'})`);
    });
    const ms = performance.now() - t0;
    // Complete the upgrade: the new master publishes its pid once ready. Each wait is best
    // effort: the signals follow anyway.
    await waitUntil(() => this.managerPid() !== old, 10_000, 10);
    process.kill(old, 'SIGWINCH');
    await waitUntil(() => !childrenOf(old).some((p) => p !== line.pid && p !== newPid), 20_000, 20);
    process.kill(old, 'SIGQUIT');
    await waitUntil(() => !isAlive(old), 10_000, 20);
    return { ms, oldPid: old, newPid: line.pid };
  }

  async stop(): Promise<void> {
    this.unregister?.();
    this.unregister = null;
    clearInterval(this.scraper);
    if (!this.pgid) return;
    if (this.managerPid()) await this.tsm('-s', 'stop');
    await stopGroup(this.pgid, 2000);
    this.pgid = null;
  }
}

export function makeConfigs(workers: number): { configs: Served[]; pm2: Pm2 } {
  const pm2 = new Pm2(workers);
  const configs: Served[] = [
    new NodeServed({ key: 'single', label: 'Node, one process', workers: 1 }),
    new NodeServed({ key: 'cluster-rr', label: 'Node cluster, SCHED_RR', workers, sched: 'rr' }),
    new NodeServed({ key: 'cluster-none', label: 'Node cluster, SCHED_NONE', workers, sched: 'none' }),
    pm2,
    new Tsmaster({ key: 'tsm', label: 'tsmaster, shared socket', workers, reuseport: false }),
    new Tsmaster({ key: 'tsm-reuseport', label: 'tsmaster, reuseport', workers, reuseport: true }),
    // The same as 'tsm' with metrics_listen on and scraped every second: its cost, side by side.
    new Tsmaster({ key: 'tsm-metrics', label: 'tsmaster, shared socket, metrics scraped 1/s', workers, reuseport: false, metrics: true }),
  ];
  return { configs, pm2 };
}
